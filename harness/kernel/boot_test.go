package kernel

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"zswaprace/harness/cache"
)

// An image says what it needs at boot in its image.json, and only for the
// very file the harness built.
func TestImageDescribesItsBoot(t *testing.T) {
	cacheDir, tr := t.TempDir(), t.TempDir()
	kern := fakeBuiltTree(t, tr)
	os.MkdirAll(filepath.Join(cacheDir, "images"), 0o755)
	plan := &Plan{Cache: cacheDir}
	for _, widening := range []string{WidenDelay, ""} {
		imgDir := filepath.Join(cacheDir, "images", "k"+widening)
		img, err := plan.store(Variant{Name: "v", Boot: Boot{Widening: widening}}, "k"+widening, tr, imgDir)
		if err != nil {
			t.Fatal(err)
		}
		boot, ok, err := ReadBoot(img.Kernel)
		if err != nil || !ok || boot.Widening != widening {
			t.Errorf("ReadBoot = %+v, %v, %v; want widening %q", boot, ok, err, widening)
		}
		cached, err := cachedImage(imgDir, "v", "k"+widening)
		if err != nil || cached.Boot.Widening != widening {
			t.Errorf("cached image boot %+v, %v; want widening %q", cached, err, widening)
		}
	}
	// A bzImage the harness did not build, and one changed since.
	other := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(other, kern, 0o644)
	if _, ok, err := ReadBoot(other); ok || err != nil {
		t.Errorf("a foreign bzImage: ok %v, err %v", ok, err)
	}
	changed := filepath.Join(cacheDir, "images", "k"+WidenDelay, "bzImage")
	os.WriteFile(changed, append(kern, 1), 0o644)
	if _, ok, _ := ReadBoot(changed); ok {
		t.Errorf("a bzImage changed after it was built still trusts its image.json")
	}
}

// A comparison whose kernels are built must not wait for another
// process's build: with the cache lock held elsewhere, Build serves cached
// images at once, and waits only when one is missing.
func TestBuildCachedWithoutLock(t *testing.T) {
	cacheDir, tr := t.TempDir(), t.TempDir()
	if err := os.Chmod(cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fakeBuiltTree(t, tr)
	os.MkdirAll(filepath.Join(cacheDir, "images"), 0o755)
	plan := &Plan{Cache: cacheDir, Source: &Source{ID: "test"}}
	a, b := Variant{Name: "unpatched"}, Variant{Name: "patched", Boot: Boot{Widening: WidenDelay}}
	for _, v := range []Variant{a, b} {
		if _, err := plan.store(v, plan.Key(v), tr, filepath.Join(cacheDir, "images", plan.Key(v))); err != nil {
			t.Fatal(err)
		}
	}
	unlock, err := cache.Lock(cacheDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	done := make(chan error, 1)
	go func() {
		imgs, err := plan.Build(context.Background(), a, b)
		if err == nil && (len(imgs) != 2 || !imgs[0].Cached || imgs[1].Variant != "patched") {
			err = fmt.Errorf("images %+v", imgs)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Build of cached kernels waited for the cache lock")
	}
}

// fakeBuiltTree makes tr look like a tree the harness has built: a
// bzImage with the x86 boot header in o/ and its .config. It returns the
// bzImage's bytes.
func fakeBuiltTree(t *testing.T, tr string) []byte {
	t.Helper()
	boot := filepath.Join(tr, "o", "arch", "x86", "boot")
	if err := os.MkdirAll(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	kern := make([]byte, 4096)
	copy(kern[0x202:], "HdrS")
	if err := os.WriteFile(filepath.Join(boot, "bzImage"), kern, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tr, "o", ".config"), []byte("CONFIG_A=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return kern
}
