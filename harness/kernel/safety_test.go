package kernel

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"zswaprace/harness/fault"
)

// A hunk line "+++ b/../../../victim" is content ("++ b/../../../victim"
// added to mm/z.c), not a file header.
const hunkPlusPlusPatch = `--- a/mm/z.c
+++ b/mm/z.c
@@ -2,6 +2,7 @@
 two
 three
 four
+++ b/../../../victim
 five
 six
 seven
`

func TestPatchFilesSkipsHunkContent(t *testing.T) {
	got, err := PatchFiles([]byte(hunkPlusPlusPatch))
	if err != nil || len(got) != 1 || got[0] != "mm/z.c" {
		t.Fatalf("PatchFiles = %q, %v; want [mm/z.c]", got, err)
	}
}

// The reproduction: a victim file next to the cache must survive a variant
// switch after a patch with a "+++ b/../../../victim" hunk line.
func TestSwitchKeepsFilesOutsideTree(t *testing.T) {
	base := t.TempDir()
	victim := filepath.Join(base, "victim")
	os.WriteFile(victim, []byte("precious"), 0o644)
	pristine := tree(t, original)
	plan := &Plan{Source: &Source{Dir: pristine, ID: "test"}, Cache: filepath.Join(base, "c")}
	ctx := context.Background()
	tr, err := plan.prepareTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Clean(filepath.Join(tr, "../../../victim")) != victim {
		t.Fatalf("test layout: tree %s", tr)
	}
	files, _ := PatchFiles([]byte(hunkPlusPlusPatch))
	p := &Patch{Path: "evil.patch", Data: []byte(hunkPlusPlusPatch), Files: files}
	if err := plan.switchTo(ctx, tr, Variant{Name: "patched", Steps: []Step{{Patch: p}}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tr, "mm", "z.c")); !strings.Contains(string(b), "\n++ b/../../../victim\n") {
		t.Errorf("the hunk line was not applied as content: %q", b)
	}
	if err := plan.switchTo(ctx, tr, Variant{Name: "unpatched"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(tr, "mm", "z.c")); string(b) != original {
		t.Errorf("not restored: %q", b)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("victim outside the tree: %v", err)
	}
	// A dirty list that names paths outside the tree (planted, or from an
	// older harness) is refused at use time.
	for _, bad := range []string{"../../../victim", victim} {
		os.WriteFile(filepath.Join(tr, dirtyList), []byte(bad+"\n"), 0o644)
		err := plan.switchTo(ctx, tr, Variant{Name: "unpatched"})
		if err == nil {
			t.Errorf("dirty list entry %q: no error", bad)
		}
		if _, err := os.Stat(victim); err != nil {
			t.Fatalf("dirty list entry %q removed the victim: %v", bad, err)
		}
	}
}

// A symlink inside the tree that leads outside is never written or removed
// through.
func TestSwitchRefusesSymlinkOut(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "z.c"), []byte("outside"), 0o644)
	os.WriteFile(filepath.Join(outside, "gone.c"), []byte("outside"), 0o644)
	pristine := tree(t, original)
	plan := &Plan{Source: &Source{Dir: pristine, ID: "test"}, Cache: filepath.Join(base, "c")}
	ctx := context.Background()
	tr, err := plan.prepareTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The tree's mm/ is a link to a directory outside.
	os.RemoveAll(filepath.Join(tr, "mm"))
	if err := os.Symlink(outside, filepath.Join(tr, "mm")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"mm/z.c", "mm/gone.c"} {
		os.WriteFile(filepath.Join(tr, dirtyList), []byte(f+"\n"), 0o644)
		err := plan.switchTo(ctx, tr, Variant{Name: "unpatched"})
		if err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("%s through a symlink out of the tree: got %v, want an error saying it leads outside", f, err)
		}
	}
	for _, f := range []string{"z.c", "gone.c"} {
		if b, err := os.ReadFile(filepath.Join(outside, f)); err != nil || string(b) != "outside" {
			t.Errorf("outside/%s: %q, %v", f, b, err)
		}
	}
}

// DetectAfter's scratch copy stays in its scratch directory.
func TestDetectAfterStaysInScratch(t *testing.T) {
	base := t.TempDir()
	t.Setenv("TMPDIR", filepath.Join(base, "tmp"))
	os.MkdirAll(filepath.Join(base, "tmp"), 0o755)
	os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o644)
	src := filepath.Join(base, "src")
	os.MkdirAll(filepath.Join(src, "mm"), 0o755)
	os.WriteFile(filepath.Join(src, "mm", "z.c"), []byte(original), 0o644)
	fix := &Patch{Path: "fix.patch", Data: []byte(fixPatch), Files: []string{"mm/z.c", "../secret"}}
	widen := &Patch{Path: "widen.patch", Data: []byte(fixPatch), Files: []string{"mm/z.c"}}
	_, err := DetectAfter(context.Background(), src, fix, []*Patch{widen})
	if err == nil || !strings.Contains(err.Error(), "../secret") {
		t.Errorf("got %v, want an error naming ../secret", err)
	}
	if _, err := os.Stat(filepath.Join(base, "tmp", "secret")); err == nil {
		t.Errorf("DetectAfter wrote outside its scratch directory")
	}
}

// Two first-time unpacks of one source must not share a scratch directory.
func TestUnpackOnceConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "src", "id")
	fill := func(tmp string) error {
		if err := os.WriteFile(filepath.Join(tmp, "Makefile"), []byte("all:\n"), 0o644); err != nil {
			return err
		}
		time.Sleep(200 * time.Millisecond)
		return os.WriteFile(filepath.Join(tmp, "Kconfig"), []byte("# k\n"), 0o644)
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = unpackOnce(dir, nil, fill)
		}()
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("unpack %d: %v", i, err)
		}
	}
	for _, f := range []string{"Makefile", "Kconfig"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("unpacked source lacks %s", f)
		}
	}
	left, _ := filepath.Glob(dir + ".tmp*")
	if len(left) > 0 {
		t.Errorf("scratch directories left behind: %v", left)
	}
}

// A cached image is checked before it is served, and a bad one is
// rebuilt with a message.
func TestCachedImageValidated(t *testing.T) {
	cacheDir := t.TempDir()
	tr := t.TempDir()
	kern := fakeBuiltTree(t, tr)
	plan := &Plan{Cache: cacheDir}
	imgDir := filepath.Join(cacheDir, "images", "k")
	os.MkdirAll(filepath.Dir(imgDir), 0o755)
	if _, err := plan.store(Variant{Name: "v"}, "k", tr, imgDir); err != nil {
		t.Fatal(err)
	}
	if img, err := cachedImage(imgDir, "v", "k"); err != nil || img == nil || !img.Cached {
		t.Fatalf("a good image is not served: %v, %v", img, err)
	}
	if img, err := cachedImage(filepath.Join(cacheDir, "images", "none"), "v", "none"); img != nil || err != nil {
		t.Errorf("no image: got %v, %v; want nothing", img, err)
	}
	bz := filepath.Join(imgDir, "bzImage")
	for name, tc := range map[string]struct {
		data []byte
		why  string
	}{
		"empty":       {[]byte{}, "empty"},
		"no HdrS":     {make([]byte, 4096), "boot header"},
		"short":       {[]byte("MZ"), "boot header"},
		"other bytes": {append(append([]byte{}, kern...), 1), "sha256"},
	} {
		os.WriteFile(bz, tc.data, 0o644)
		if img, err := cachedImage(imgDir, "v", "k"); img != nil || err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: got %v, %v; want an error about %s", name, img, err, tc.why)
		}
	}
	os.WriteFile(bz, kern, 0o644)

	// image.json cannot point the kernel elsewhere, and one without a
	// checksum (older harness, or planted) is not trusted.
	js := filepath.Join(imgDir, "image.json")
	good, _ := os.ReadFile(js)
	elsewhere := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(elsewhere, kern, 0o644)
	os.WriteFile(js, []byte(strings.Replace(string(good), bz, elsewhere, 1)), 0o644)
	if img, err := cachedImage(imgDir, "v", "k"); err != nil || img.Kernel != bz {
		t.Errorf("image.json naming another kernel: got %v, %v; want %s", img, err, bz)
	}
	var noSum map[string]any
	json.Unmarshal(good, &noSum)
	delete(noSum, "sha256")
	b, _ := json.Marshal(noSum)
	os.WriteFile(js, b, 0o644)
	if img, err := cachedImage(imgDir, "v", "k"); img != nil || err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("no sha256: got %v, %v", img, err)
	}
	os.WriteFile(js, good, 0o644)
	if img, err := cachedImage(imgDir, "v", "other"); img != nil || err == nil {
		t.Errorf("image.json for another key: got %v, %v", img, err)
	}

	// Build rebuilds, saying why; with no make on PATH the rebuild stops
	// at once (and nothing is compiled).
	os.WriteFile(bz, make([]byte, 4096), 0o644)
	bin := t.TempDir()
	cp, err := exec.LookPath("cp")
	if err != nil {
		t.Skip("no cp")
	}
	os.Symlink(cp, filepath.Join(bin, "cp"))
	t.Setenv("PATH", bin)
	var said []string
	plan = &Plan{Source: &Source{Dir: tree(t, original), ID: "test"}, Cache: cacheDir, Say: func(s string) { said = append(said, s) }}
	v := Variant{Name: "unpatched"}
	key := plan.Key(v)
	os.Rename(imgDir, filepath.Join(cacheDir, "images", key))
	b, _ = os.ReadFile(filepath.Join(cacheDir, "images", key, "image.json"))
	os.WriteFile(filepath.Join(cacheDir, "images", key, "image.json"), []byte(strings.ReplaceAll(string(b), `"k"`, `"`+key+`"`)), 0o644)
	imgs, err := plan.Build(context.Background(), v)
	if err == nil || len(imgs) != 0 {
		t.Fatalf("Build served %v (err %v), want a rebuild", imgs, err)
	}
	if !strings.Contains(strings.Join(said, "\n"), "not using the cached image") {
		t.Errorf("Build did not say why it rebuilds: %q", said)
	}
}

func TestPatchFilesRejectsEscapes(t *testing.T) {
	hunk := "@@ -1 +1 @@\n-a\n+b\n"
	tests := map[string]struct {
		patch string
		want  []string // in the error
	}{
		"dotdot new":     {"--- a/mm/z.c\n+++ b/../x\n" + hunk, []string{`"b/../x"`, `".."`, "line 2"}},
		"dotdot raw":     {"--- ../x\n+++ ../x\n" + hunk, []string{`"../x"`, `".."`, "line 1"}},
		"absolute":       {"--- /etc/x\n+++ /etc/x\n" + hunk, []string{`"/etc/x"`, "absolute"}},
		"absolute new":   {"--- /dev/null\n+++ /etc/x\n" + hunk, []string{`"/etc/x"`, "absolute"}},
		"dotdot old":     {"--- a/../../x\n+++ b/mm/z.c\n" + hunk, []string{`"a/../../x"`, `".."`}},
		"git header":     {"diff --git a/../x b/../x\nindex 1..2 100644\n--- a/mm/z.c\n+++ b/mm/z.c\n" + hunk, []string{`"a/../x"`, "line 1"}},
		"git rename":     {"diff --git a/mm/a.c b/mm/b.c\nsimilarity index 90%\nrename from mm/a.c\nrename to ../../b.c\n", []string{`"../../b.c"`, "line 4"}},
		"quoted":         {"--- \"a/mm/z.c\"\n+++ \"b/..\\057x\"\n" + hunk, []string{`"b/../x"`, `".."`}},
		"quoted space":   {"--- a/mm/z.c\n+++ \"b/x /etc/passwd\"\n" + hunk, []string{"spaces"}},
		"symlink":        {"diff --git a/mm/l b/mm/l\nnew file mode 120000\nindex 0..1\n--- /dev/null\n+++ b/mm/l\n@@ -0,0 +1 @@\n+/etc\n", []string{"symbolic link", "line 2"}},
		"dirty list":     {"--- /dev/null\n+++ b/.zswaprace-dirty\n@@ -0,0 +1 @@\n+../../x\n", []string{".zswaprace-dirty"}},
		"object dir":     {"--- a/o/.config\n+++ b/o/.config\n" + hunk, []string{"o/.config"}},
		"after a hunk":   {"--- a/mm/z.c\n+++ b/mm/z.c\n" + hunk + "--- a/../x\n+++ b/../x\n" + hunk, []string{`"a/../x"`, "line 6"}},
		"truncated hunk": {"--- a/mm/z.c\n+++ b/mm/z.c\n@@ -1,3 +1,3 @@\n a\n", []string{"truncated"}},
		"context diff":   {"*** a/mm/z.c\n--- b/mm/z.c\n***************\n", []string{"unified"}},
		"too many lines": {"--- a/mm/z.c\n+++ b/mm/z.c\n@@ -1,1 +1,2 @@\n-a\n-b\n+c\n", []string{"more lines"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			files, err := PatchFiles([]byte(tt.patch))
			if err == nil {
				t.Fatalf("no error; files %q", files)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %s", err, w)
				}
			}
		})
	}
	// Through ReadPatch: a usage error naming the patch file.
	path := filepath.Join(t.TempDir(), "evil.patch")
	os.WriteFile(path, []byte(tests["dotdot new"].patch), 0o644)
	var fe *fault.Error
	if _, err := ReadPatch(path); !errors.As(err, &fe) || fe.Kind != fault.Usage || !strings.Contains(err.Error(), path) {
		t.Errorf("ReadPatch: got %v, want a usage error naming %s", err, path)
	}
}

func TestPatchFilesFormats(t *testing.T) {
	tests := map[string]struct {
		patch string
		want  []string
	}{
		"format-patch mail with two files and a signature": {`From 1234 Mon Sep 17 00:00:00 2001
From: A <a@example.invalid>
Subject: [PATCH] x

Text that quotes a diff header:
+++ b/mm/quoted.c
---
 mm/a.c | 2 +-
 mm/b.c | 1 +

diff --git a/mm/a.c b/mm/a.c
index 111..222 100644
--- a/mm/a.c
+++ b/mm/a.c
@@ -1,2 +1,2 @@
 a
---- a/evil
+++ b/../../evil
@@ -10 +10,2 @@
 x
+y
\ No newline at end of file
diff --git a/mm/b.c b/mm/b.c
new file mode 100644
index 0000000..333
--- /dev/null
+++ b/mm/b.c
@@ -0,0 +1 @@
+new
-- 
2.39.0
`, []string{"mm/quoted.c", "mm/a.c", "mm/b.c"}},
		"rename":                            {"diff --git a/mm/old.c b/mm/new.c\nsimilarity index 100%\nrename from mm/old.c\nrename to mm/new.c\n", []string{"mm/old.c", "mm/new.c"}},
		"deleted":                           {"diff --git a/mm/gone.c b/mm/gone.c\ndeleted file mode 100644\n--- a/mm/gone.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n", []string{"mm/gone.c"}},
		"quoted":                            {"diff --git \"a/mm/\\303\\251.c\" \"b/mm/\\303\\251.c\"\n--- \"a/mm/\\303\\251.c\"\n+++ \"b/mm/\\303\\251.c\"\n@@ -1 +1 @@\n-a\n+b\n", []string{"mm/\u00e9.c"}},
		"time stamps and CRLF":              {"--- linux.orig/mm/z.c\t2024-01-01 00:00:00\r\n+++ linux/mm/z.c\t2024-01-01 00:00:01\r\n@@ -1 +1 @@\r\n-a\r\n+b\r\n", []string{"mm/z.c"}},
		"hunk lines that look like headers": {"--- a/mm/z.c\n+++ b/mm/z.c\n@@ -1,3 +1,4 @@\n--- a/../x\n+++ b/../y\n \n diff --git a/../z b/../z\n+@@ -1 +1 @@\n", []string{"mm/z.c"}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := PatchFiles([]byte(tt.patch))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// inTree refuses what would leave the tree and allows links inside it.
func TestInTree(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "tree")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(root, "mm"), 0o755)
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(root, "mm", "z.c"), []byte("z"), 0o644)
	os.WriteFile(filepath.Join(outside, "f"), []byte("outside"), 0o644)
	os.Symlink(outside, filepath.Join(root, "out"))
	os.Symlink("../../outside/f", filepath.Join(root, "mm", "f"))
	os.Symlink("mm", filepath.Join(root, "inside"))
	os.Symlink("z.c", filepath.Join(root, "mm", "zz.c"))
	os.Symlink("/nonexistent/x", filepath.Join(root, "dangling"))
	for rel, want := range map[string]string{
		"../outside/f": `".."`,
		"mm/../../x":   `".."`,
		"/etc/passwd":  "absolute",
		"":             "not a file",
		"out/f":        "outside",
		"out/new":      "outside",
		"mm/f":         "outside",
		"dangling":     "does not resolve",
		"dangling/x":   "does not resolve",
		"mm/z.c/x":     "not a directory",
	} {
		if p, err := inTree(root, rel); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("inTree(%q) = %q, %v; want an error saying %s", rel, p, err, want)
		}
	}
	for rel, want := range map[string]string{
		"mm/z.c":       "mm/z.c",
		"mm/new/x.c":   "mm/new/x.c",
		"inside/z.c":   "mm/z.c",
		"inside/new.c": "mm/new.c",
		"mm/zz.c":      "mm/zz.c", // the link itself
	} {
		p, err := inTree(root, rel)
		if err != nil || p != filepath.Join(root, want) {
			t.Errorf("inTree(%q) = %q, %v; want %s", rel, p, err, filepath.Join(root, want))
		}
	}
	// Writes and removals through a refused path do nothing outside.
	if err := writeTree(root, "out/f", []byte("x"), 0o644); err == nil {
		t.Errorf("writeTree through a link out: no error")
	}
	if err := removeTree(root, "mm/f"); err == nil {
		t.Errorf("removeTree of a link out: no error")
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "f")); string(b) != "outside" {
		t.Errorf("outside/f changed: %q", b)
	}
	// Replacing a file inside never writes through a hard link.
	os.Link(filepath.Join(root, "mm", "z.c"), filepath.Join(base, "hard"))
	if err := writeTree(root, "mm/z.c", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "hard")); string(b) != "z" {
		t.Errorf("writeTree wrote through a hard link")
	}
}

// Two first-time resolutions of one git source share the unpacked tree.
func TestResolveGitConcurrent(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, "mm"), 0o755)
	for _, f := range []string{"Makefile", "Kconfig", "mm/z.c"} {
		os.WriteFile(filepath.Join(repo, f), []byte(original), 0o644)
	}
	git := func(args ...string) {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "x")
	cacheDir := filepath.Join(t.TempDir(), "cache")
	var wg sync.WaitGroup
	srcs := make([]*Source, 4)
	errs := make([]error, len(srcs))
	for i := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srcs[i], errs[i] = Resolve(context.Background(), "git:"+repo+"@HEAD", cacheDir, func(string) {})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("resolve %d: %v", i, err)
		}
		if srcs[i].Dir != srcs[0].Dir {
			t.Errorf("resolve %d: %s, not %s", i, srcs[i].Dir, srcs[0].Dir)
		}
	}
	if b, err := os.ReadFile(filepath.Join(srcs[0].Dir, "mm", "z.c")); err != nil || string(b) != original {
		t.Errorf("unpacked mm/z.c: %q, %v", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(cacheDir, "src", "*.tmp*"))
	if len(left) > 0 {
		t.Errorf("scratch directories left behind: %v", left)
	}
	// A cache another user could write to is refused before anything is
	// unpacked into it.
	os.Chmod(cacheDir, 0o777)
	if _, err := Resolve(context.Background(), "git:"+repo+"@HEAD", cacheDir, func(string) {}); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable cache: got %v", err)
	}
}

// Ctrl-C while a git source is being exported (or before its commit is
// looked up) is an interruption, not a bad source or an infrastructure
// error: it said "infrastructure error: unpack source: git archive:
// signal: killed".
func TestResolveGitInterrupted(t *testing.T) {
	realGit, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	repo := t.TempDir()
	for _, f := range []string{"Makefile", "Kconfig"} {
		os.WriteFile(filepath.Join(repo, f), []byte(original), 0o644)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "."}, {"-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "x"}} {
		if out, err := exec.Command(realGit, append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
	}
	// A git whose archive stalls, as a large tree's does.
	bin := t.TempDir()
	wrapper := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = archive ] && exec sleep 60; done\nexec " + realGit + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	for _, tt := range []struct {
		name  string
		after time.Duration // cancel after this; 0: before Resolve
	}{
		{"during the export", 300 * time.Millisecond},
		{"before the commit is looked up", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cacheDir := filepath.Join(t.TempDir(), "cache")
			ctx, cancel := context.WithCancel(context.Background())
			if tt.after == 0 {
				cancel()
			} else {
				time.AfterFunc(tt.after, cancel)
			}
			defer cancel()
			start := time.Now()
			_, err := Resolve(ctx, "git:"+repo+"@HEAD", cacheDir, func(string) {})
			if !errors.Is(err, context.Canceled) || fault.KindOf(err) == fault.Usage {
				t.Errorf("Resolve: %v (kind %v), want the interruption (context.Canceled), not a usage error", err, fault.KindOf(err))
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("took %s to stop", d)
			}
			if left, _ := filepath.Glob(filepath.Join(cacheDir, "src", "*")); len(left) > 1 {
				t.Errorf("left in the cache: %v", left)
			}
		})
	}
}
