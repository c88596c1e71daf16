package kernel

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/harness/fault"
)

// zswap61 and zswap612 are the lines of each zswap the profiles look for.
const (
	zswap61  = "static struct zswap_entry *zswap_rb_search(struct rb_root *root, pgoff_t offset);\nstatic void zswap_entry_get(struct zswap_entry *entry);\nstatic int zswap_writeback_entry(struct zpool *pool, unsigned long handle);\n"
	zswap612 = "static enum lru_status shrink_memcg_cb(void);\nstatic int zswap_writeback_entry(void)\n{\n\ttree = swap_zswap_tree(swpentry);\n\tif (entry != xa_cmpxchg(tree, offset, entry, NULL, GFP_KERNEL))\n\t\treturn -ENOMEM;\n}\n"
	// zswap612unfixed is 6.12's zswap without the race check.
	zswap612unfixed = "static enum lru_status shrink_memcg_cb(void);\nstatic int zswap_writeback_entry(void)\n{\n\ttree = swap_zswap_tree(swpentry);\n}\n"
)

// fakeTree writes a kernel tree of version VERSION.PATCHLEVEL.SUBLEVEL
// with zswap as its mm/zswap.c ("" for none).
func fakeTree(t *testing.T, dir, version, zswap string) string {
	t.Helper()
	v := strings.SplitN(version, ".", 3)
	for len(v) < 3 {
		v = append(v, "")
	}
	files := map[string]string{
		"Makefile": "# SPDX-License-Identifier: GPL-2.0\nVERSION = " + v[0] + "\nPATCHLEVEL = " + v[1] + "\nSUBLEVEL = " + v[2] + "\nEXTRAVERSION =\nNAME = Test\n",
		"Kconfig":  "mainmenu \"test\"\n",
	}
	if zswap != "" {
		files["mm/zswap.c"] = zswap
	}
	if err := os.MkdirAll(filepath.Join(dir, "mm"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func isUsage(err error) bool {
	var fe *fault.Error
	return errors.As(err, &fe) && fe.Kind == fault.Usage
}

func TestProfileFor(t *testing.T) {
	for _, c := range []struct {
		name, version, zswap string
		want                 string   // the line, "" for an error
		errHas               []string // what the error must say
	}{
		{"6.1", "6.1.192", zswap61, "6.1", nil},
		{"6.1 early", "6.1.0", zswap61, "6.1", nil},
		{"6.12", "6.12.117", zswap612, "6.12", nil},
		{"5.15 has no profile", "5.15.160", zswap61, "", []string{"5.15 tree", "kernel 5.15.160", "no profile for 5.15", "6.1, 6.12", "harness/kernel/profile.go"}},
		{"6.6 has no profile", "6.6.30", zswap612, "", []string{"6.6 tree", "no profile for 6.6", "harness/kernel/profile.go"}},
		{"6.12 without the race check", "6.12.1", zswap612unfixed, "6.12", nil},
		{"6.12 with 6.1's zswap", "6.12.1", zswap61, "", []string{"lacks swap_zswap_tree, shrink_memcg_cb", "6.12 profile"}},
		{"6.1 without the rbtree", "6.1.5", zswap612, "", []string{"lacks zswap_rb_search, zswap_entry_get"}},
		{"no mm/zswap.c", "6.1.192", "", "", []string{"without a readable mm/zswap.c"}},
		{"no version", "", zswap61, "", []string{"no VERSION and PATCHLEVEL"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := fakeTree(t, t.TempDir(), c.version, c.zswap)
			p, err := ProfileFor(dir)
			if c.want != "" {
				if err != nil {
					t.Fatalf("ProfileFor: %v", err)
				}
				if p.Line != c.want {
					t.Errorf("line %s, want %s", p.Line, c.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ProfileFor chose %s, want an error", p.Line)
			}
			if !isUsage(err) {
				t.Errorf("error %v is not a usage error", err)
			}
			for _, s := range c.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
		})
	}
}

// The 6.1 profile is what the harness did before profiles: the same
// fragments, the same command line, the same patches and counter.
func TestProfile61IsTodays(t *testing.T) {
	p := DefaultProfile()
	if p == nil || p.Line != "6.1" {
		t.Fatalf("default profile %+v, want 6.1's", p)
	}
	if diff := cmp.Diff([]string{"base", "zswap", "debug"}, p.Fragments); diff != "" {
		t.Errorf("fragments (-want +got):\n%s", diff)
	}
	want := []string{"zswap.enabled=1", "zswap.zpool=zbud", "zswap.compressor=lzo", "zswap.max_pool_percent=20"}
	if diff := cmp.Diff(want, p.Cmdline("", "lzo", 20)); diff != "" {
		t.Errorf("command line (-want +got):\n%s", diff)
	}
	if p.FixPatch != "zswap-writeback-race-fix.patch" || p.WidenPatch != "zswap-writeback-delay.patch" || p.DelayParam != "zswap.writeback_delay_us" {
		t.Errorf("patches %s, %s, parameter %s", p.FixPatch, p.WidenPatch, p.DelayParam)
	}
	if p.WrittenBack != "written_back_pages" {
		t.Errorf("written-back counter %q", p.WrittenBack)
	}
	if got := ProfileByLine(""); got == nil || got.Line != "6.1" {
		t.Errorf(`ProfileByLine("") = %+v, want 6.1 (images from before profiles)`, got)
	}
	if ProfileByLine("5.15") != nil {
		t.Error("ProfileByLine(5.15) found a profile")
	}
}

func TestProfile612(t *testing.T) {
	p := ProfileByLine("6.12")
	if p == nil {
		t.Fatal("no 6.12 profile")
	}
	want := []string{"zswap.enabled=1", "zswap.zpool=zsmalloc", "zswap.compressor=lzo", "zswap.max_pool_percent=20", "zswap.shrinker_enabled=1"}
	if diff := cmp.Diff(want, p.Cmdline("", "lzo", 20)); diff != "" {
		t.Errorf("command line (-want +got):\n%s", diff)
	}
	if got := p.Cmdline("zbud", "lzo", 20)[1]; got != "zswap.zpool=zbud" {
		t.Errorf("--zpool zbud gives %q", got)
	}
	if !p.CanWriteBack("zsmalloc") || DefaultProfile().CanWriteBack("zsmalloc") {
		t.Error("zsmalloc writes back in 6.12 and not in 6.1")
	}
	if p.WrittenBack != "zswpwb" {
		t.Errorf("written-back counter %q, want zswpwb", p.WrittenBack)
	}
}

// Every file a profile names is in the checkout (and so in the embedded
// assets), and the Debian sources are the profiles Debian ships.
func TestProfilesNameRealFiles(t *testing.T) {
	root := filepath.Join("..", "..")
	for _, p := range Profiles() {
		for _, f := range p.Fragments {
			if _, err := os.Stat(filepath.Join(root, "kconfigs", f+".config")); err != nil {
				t.Errorf("%s: fragment %s: %v", p.Line, f, err)
			}
		}
		for _, f := range []string{p.FixPatch, p.WidenPatch} {
			if _, err := ReadPatch(filepath.Join(root, "patches", f)); err != nil {
				t.Errorf("%s: patch %s: %v", p.Line, f, err)
			}
		}
		if p.DefaultZpool == "" || !p.CanWriteBack(p.DefaultZpool) {
			t.Errorf("%s: default zpool %q cannot write back", p.Line, p.DefaultZpool)
		}
		if err := CheckSpec("debian:" + p.Line); (err == nil) != p.Debian {
			t.Errorf("debian:%s: %v (Debian %v)", p.Line, err, p.Debian)
		}
	}
	if err := CheckSpec("debian:6.6"); err == nil || !strings.Contains(err.Error(), "debian:6.1 and debian:6.12") {
		t.Errorf("debian:6.6: %v", err)
	}
}

// git:PATH@REV and source directories pick the profile of the tree's
// line, and refuse a line without one.
func TestResolveProfiled(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	repo := fakeTree(t, t.TempDir(), "6.12.3", zswap612)
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v: %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "6.12")
	good := git("rev-parse", "HEAD")
	fakeTree(t, repo, "6.6.30", zswap612)
	git("commit", "-q", "-am", "6.6")
	ctx, cache := context.Background(), filepath.Join(t.TempDir(), "cache")
	say := func(string) {}

	src, err := ResolveProfiled(ctx, "git:"+repo+"@"+good, cache, say)
	if err != nil {
		t.Fatalf("git source of a 6.12 tree: %v", err)
	}
	if src.Profile == nil || src.Profile.Line != "6.12" || src.Profile.FixPatch != "zswap-writeback-race-fix-6.12.patch" {
		t.Errorf("profile %+v, want 6.12's", src.Profile)
	}
	_, err = ResolveProfiled(ctx, "git:"+repo+"@HEAD", cache, say)
	if err == nil || !isUsage(err) || !strings.Contains(err.Error(), "no profile for 6.6") || !strings.Contains(err.Error(), "harness/kernel/profile.go") ||
		!strings.Contains(err.Error(), "git:"+repo+"@HEAD is a 6.6 tree") {
		t.Errorf("git source of a 6.6 tree: %v, want a usage error saying there is no profile for 6.6 and where to add one", err)
	}
	// The checkout itself, now at 6.6, as a source directory; and a 6.1 one.
	if _, err := ResolveProfiled(ctx, repo, cache, say); err == nil || !strings.Contains(err.Error(), "no profile for 6.6") {
		t.Errorf("source directory of a 6.6 tree: %v", err)
	}
	dir := fakeTree(t, t.TempDir(), "6.1.30", zswap61)
	if src, err := ResolveProfiled(ctx, dir, cache, say); err != nil || src.Profile.Line != "6.1" {
		t.Errorf("source directory of a 6.1 tree: %+v, %v", src, err)
	}
}

// The profile is not part of an image's key: images cached before
// profiles existed are still found.
func TestKeyIgnoresProfile(t *testing.T) {
	p := &Plan{Source: &Source{ID: "x"}}
	w := &Patch{Path: "w", Data: []byte("w")}
	for _, c := range []struct{ before, now Boot }{
		{Boot{}, Boot{Profile: "6.1"}},
		{Boot{Widening: WidenDelay}, Boot{Widening: WidenDelay, Profile: "6.1", DelayParam: "zswap.writeback_delay_us"}},
	} {
		a := p.Key(Variant{Name: "v", Steps: []Step{{Patch: w}}, Boot: c.before})
		b := p.Key(Variant{Name: "v", Steps: []Step{{Patch: w}}, Boot: c.now})
		if a != b {
			t.Errorf("%+v and %+v: keys %s and %s differ", c.before, c.now, a, b)
		}
	}
	a := p.Key(Variant{Name: "v", Boot: Boot{Widening: WidenDelayAt, WidenAt: "mm/zswap.c:9 (sleep)", DelayParam: WidenAtParam}})
	b := p.Key(Variant{Name: "v", Boot: Boot{Widening: WidenDelayAt, WidenAt: "mm/zswap.c:9 (busy-wait)", DelayParam: WidenAtParam}})
	if a == b {
		t.Error("two --widen-at placements have the same key")
	}
}
