package main

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// The kconfigs/ and patches/ a harness away from its checkout reads are
// the checkout's, byte for byte, and every one of them.
func TestAssetRootIsTheCheckouts(t *testing.T) {
	checkout, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	roots := make([]string, 4)
	errs := make([]error, 4)
	for i := range roots { // first-time extractions at once agree
		wg.Add(1)
		go func() { defer wg.Done(); roots[i], errs[i] = assetRoot(cache) }()
	}
	wg.Wait()
	for i := range roots {
		if errs[i] != nil || roots[i] != roots[0] {
			t.Fatalf("assetRoot %d: %q, %v; want %q", i, roots[i], errs[i], roots[0])
		}
	}
	dir := roots[0]
	for _, pattern := range []string{"kconfigs/*.config", "patches/*.patch"} {
		want, _ := filepath.Glob(filepath.Join(checkout, pattern))
		got, _ := filepath.Glob(filepath.Join(dir, pattern))
		if len(want) == 0 || len(got) != len(want) {
			t.Errorf("%s: %d files extracted, the checkout has %d", pattern, len(got), len(want))
		}
		for _, w := range want {
			rel, _ := filepath.Rel(checkout, w)
			a, _ := os.ReadFile(w)
			b, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil || string(a) != string(b) {
				t.Errorf("%s differs from the checkout's (%v)", rel, err)
			}
		}
	}
	if left, _ := filepath.Glob(filepath.Join(cache, "assets", ".tmp-*")); len(left) > 0 {
		t.Errorf("temporary directories left: %v", left)
	}
	if again, err := assetRoot(cache); err != nil || again != dir {
		t.Errorf("second call: %q, %v; want %q", again, err, dir)
	}
}

// Away from any checkout, with no ZSWAPRACE_ROOT, the harness reads the
// embedded copies instead of failing.
func TestRepoRootAwayFromCheckout(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("ZSWAPRACE_ROOT", "")
	t.Setenv("ZSWAPRACE_CACHE", cache)
	t.Chdir(t.TempDir())
	root, err := repoRoot()
	if err != nil {
		t.Fatalf("repoRoot: %v", err)
	}
	if rel, err := filepath.Rel(cache, root); err != nil || !filepath.IsLocal(rel) {
		t.Errorf("root %s is not in the cache %s", root, cache)
	}
	b := &buildFlags{}
	frags, err := b.fragments()
	if err != nil || len(frags) != 3 {
		t.Errorf("fragments: %d, %v", len(frags), err)
	}
	p, err := b.patchPath("zswap-writeback-race-fix.patch")
	if _, serr := os.Stat(p); err != nil || serr != nil {
		t.Errorf("patch %s: %v %v", p, err, serr)
	}
}
