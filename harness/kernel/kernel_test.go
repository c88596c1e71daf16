package kernel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/harness/fault"
)

const original = `one
two
three
four
five
six
seven
`

const withFix = `one
two
three
four
recheck
five
six
seven
`

const fixPatch = `From: Someone <a@example.invalid>
Subject: [PATCH] mm: fix a race

A mail preamble, as git format-patch writes it.
---
 mm/z.c | 1 +
--- a/mm/z.c
+++ b/mm/z.c
@@ -2,6 +2,7 @@
 two
 three
 four
+recheck
 five
 six
 seven
`

func tree(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "mm"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "mm", "z.c"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDetect(t *testing.T) {
	files, err := PatchFiles([]byte(fixPatch))
	if err != nil {
		t.Fatal(err)
	}
	p := &Patch{Path: "fix.patch", Data: []byte(fixPatch), Files: files}
	if diff := cmp.Diff([]string{"mm/z.c"}, p.Files); diff != "" {
		t.Errorf("PatchFiles (-want +got):\n%s", diff)
	}
	tests := []struct {
		name    string
		content string
		want    Direction
		wantErr string
	}{
		{"tree lacks the patch", original, Apply, ""},
		{"tree already has it", withFix, Reverse, ""},
		{"neither", strings.Replace(original, "four", "FOUR", 1), "", "Hunk #1 FAILED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tree(t, tt.content)
			got, err := Detect(context.Background(), dir, p)
			if tt.wantErr != "" {
				var fe *fault.Error
				if !errors.As(err, &fe) || fe.Kind != fault.Usage || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "mm/z.c") {
					t.Fatalf("got %v, want a usage error naming mm/z.c and %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Detect = %q, %v; want %q", got, err, tt.want)
			}
			// Detection is a dry run: the tree is untouched.
			if b, _ := os.ReadFile(filepath.Join(dir, "mm", "z.c")); string(b) != tt.content {
				t.Errorf("Detect modified the tree")
			}
			// Applying in the detected direction gives the other state.
			if err := ApplyTo(context.Background(), dir, p, got == Reverse); err != nil {
				t.Fatal(err)
			}
			want := withFix
			if got == Reverse {
				want = original
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "mm", "z.c")); string(b) != want {
				t.Errorf("after applying: %q", b)
			}
		})
	}
}

// GNU patch must not write through a hard link: the pristine tree stays
// pristine when a variant tree is a hard-linked copy.
func TestApplyBreaksHardLink(t *testing.T) {
	pristine := tree(t, original)
	variant := filepath.Join(t.TempDir(), "v")
	os.MkdirAll(filepath.Join(variant, "mm"), 0o755)
	if err := os.Link(filepath.Join(pristine, "mm", "z.c"), filepath.Join(variant, "mm", "z.c")); err != nil {
		t.Skip("no hard links here:", err)
	}
	p := &Patch{Path: "fix.patch", Data: []byte(fixPatch)}
	if err := ApplyTo(context.Background(), variant, p, false); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(pristine, "mm", "z.c")); string(b) != original {
		t.Fatalf("patching the variant changed the pristine tree")
	}
}

func TestMergeAndLost(t *testing.T) {
	base := "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=y\nCONFIG_N=5\n"
	frags := []Fragment{
		{Name: "base", Options: []Option{{"CONFIG_B", "y"}, {"CONFIG_C", "n"}, {"CONFIG_N", "1"}}},
		{Name: "debug", Options: []Option{{"CONFIG_N", "7"}, {"CONFIG_D", "y"}}},
	}
	got := Merge(base, frags)
	want := "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=7\nCONFIG_D=y\n"
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Merge (-want +got):\n%s", diff)
	}
	// olddefconfig dropped D (missing dependency) and changed N.
	resolved := "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\nCONFIG_N=8\n"
	lost := Lost(resolved, frags)
	wantLost := []string{
		"CONFIG_D=y (from debug.config; resolved to n)",
		"CONFIG_N=7 (from debug.config; resolved to 8)",
	}
	if diff := cmp.Diff(wantLost, lost); diff != "" {
		t.Errorf("Lost (-want +got):\n%s", diff)
	}
	if l := Lost(Merge(base, frags), frags); len(l) != 0 {
		t.Errorf("nothing lost, got %v", l)
	}
}

func TestParseConfigRejectsGarbage(t *testing.T) {
	if _, err := ParseConfig("CONFIG_A=y\nthis is not an option\n"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("got %v, want an error naming line 2", err)
	}
}

func TestFragmentsInRepo(t *testing.T) {
	frags, err := LoadFragments("../../kconfigs", []string{"base", "zswap", "debug", "kasan"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"CONFIG_ZSWAP": false, "CONFIG_ADVISE_SYSCALLS": false, "CONFIG_KALLSYMS": false, "CONFIG_VIRTIO_CONSOLE": false, "CONFIG_ZBUD": false}
	for _, f := range frags {
		for _, o := range f.Options {
			if _, ok := want[o.Name]; ok && o.Value == "y" {
				want[o.Name] = true
			}
		}
	}
	for name, ok := range want {
		if !ok {
			t.Errorf("fragments do not turn on %s", name)
		}
	}
}

func TestKey(t *testing.T) {
	fix := &Patch{Data: []byte(fixPatch)}
	other := &Patch{Data: []byte(fixPatch + " ")}
	plan := func(id string, frags ...Fragment) *Plan {
		return &Plan{Source: &Source{ID: id}, Fragments: frags}
	}
	f1 := Fragment{Name: "base", Options: []Option{{"CONFIG_A", "y"}}}
	f2 := Fragment{Name: "base", Options: []Option{{"CONFIG_A", "n"}}}
	un, pa := Variants(fix, Reverse, nil)
	base := plan("src1", f1).Key(un)
	same := plan("src1", f1).Key(un)
	if base != same {
		t.Fatalf("key not stable: %s vs %s", base, same)
	}
	unOther, _ := Variants(other, Reverse, nil)
	unWiden, _ := Variants(fix, Reverse, fix)
	unApply, _ := Variants(fix, Apply, nil)
	differs := map[string]string{
		"patched variant":  plan("src1", f1).Key(pa),
		"other source":     plan("src2", f1).Key(un),
		"other fragment":   plan("src1", f2).Key(un),
		"other patch text": plan("src1", f1).Key(unOther),
		"widened":          plan("src1", f1).Key(unWiden),
		"other direction":  plan("src1", f1).Key(unApply),
	}
	for what, k := range differs {
		if k == base {
			t.Errorf("%s gives the same key", what)
		}
	}
}

func TestVariants(t *testing.T) {
	fix, widen := &Patch{Path: "fix"}, &Patch{Path: "widen"}
	un, pa := Variants(fix, Reverse, widen)
	if diff := cmp.Diff([]Step{{Patch: widen}, {Patch: fix, Reverse: true}}, un.Steps); diff != "" {
		t.Errorf("unpatched steps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Step{{Patch: widen}}, pa.Steps); diff != "" {
		t.Errorf("patched steps (-want +got):\n%s", diff)
	}
	un, pa = Variants(fix, Apply, nil)
	if len(un.Steps) != 0 || len(pa.Steps) != 1 || pa.Steps[0].Reverse {
		t.Errorf("apply: unpatched %v, patched %v", un.Steps, pa.Steps)
	}
}

// Direction is judged on the tree as the instrumentation leaves it.
func TestDetectAfter(t *testing.T) {
	fix := &Patch{Path: "fix.patch", Data: []byte(fixPatch), Files: []string{"mm/z.c"}}
	shift := `--- a/mm/z.c
+++ b/mm/z.c
@@ -1,3 +1,4 @@
+zero
 one
 two
 three
`
	widen := &Patch{Path: "widen.patch", Data: []byte(shift), Files: []string{"mm/z.c"}}
	dir := tree(t, original)
	got, err := DetectAfter(context.Background(), dir, fix, []*Patch{widen})
	if err != nil || got != Apply {
		t.Fatalf("DetectAfter = %q, %v; want apply", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "mm", "z.c")); string(b) != original {
		t.Errorf("DetectAfter modified the tree")
	}
	// An instrumentation patch that clobbers the fix's context is caught.
	clobber := strings.Replace(shift, "+zero\n one\n two\n three\n", "-one\n-two\n-three\n+ONE\n", 1)
	clobber = strings.Replace(clobber, "@@ -1,3 +1,4 @@", "@@ -1,3 +1,1 @@", 1)
	bad := &Patch{Path: "clobber.patch", Data: []byte(clobber), Files: []string{"mm/z.c"}}
	if _, err := DetectAfter(context.Background(), dir, fix, []*Patch{bad}); err == nil || !strings.Contains(err.Error(), "after applying clobber.patch") || strings.Contains(err.Error(), os.TempDir()+"/zswaprace-detect") {
		t.Errorf("got %v, want an error naming the tree and the instrumentation patch", err)
	}
}

// Variants share one tree: switching restores what the last variant
// patched, applies the next one's patches, and never touches the pristine
// source the tree is hard-linked to.
func TestSwitchVariants(t *testing.T) {
	pristine := tree(t, original)
	plan := &Plan{Source: &Source{Dir: pristine, ID: "test"}, Cache: t.TempDir()}
	ctx := context.Background()
	tr, err := plan.prepareTree(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fix := &Patch{Path: "fix.patch", Data: []byte(fixPatch), Files: []string{"mm/z.c"}}
	read := func() string {
		b, _ := os.ReadFile(filepath.Join(tr, "mm", "z.c"))
		return string(b)
	}
	steps := []struct {
		v    Variant
		want string
	}{
		{Variant{Name: "patched", Steps: []Step{{Patch: fix}}}, withFix},
		{Variant{Name: "unpatched"}, original},
		{Variant{Name: "patched", Steps: []Step{{Patch: fix}}}, withFix},
		{Variant{Name: "patched again", Steps: []Step{{Patch: fix}}}, withFix},
	}
	for _, s := range steps {
		if err := plan.switchTo(ctx, tr, s.v); err != nil {
			t.Fatalf("%s: %v", s.v.Name, err)
		}
		if got := read(); got != s.want {
			t.Errorf("%s: tree holds %q", s.v.Name, got)
		}
		if b, _ := os.ReadFile(filepath.Join(pristine, "mm", "z.c")); string(b) != original {
			t.Fatalf("%s: the pristine source was modified", s.v.Name)
		}
	}
}

// A patch run that is stopped (Ctrl-C, a deadline) is the harness's
// interruption, not bad input: a build killed while preparing its tree
// said "bad input: patch ... patch failed".
func TestPatchInterruptedIsNotBadInput(t *testing.T) {
	p := &Patch{Path: "fix.patch", Data: []byte(fixPatch), Files: []string{"mm/z.c"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := tree(t, original)
	_, derr := Detect(ctx, dir, p)
	aerr := ApplyTo(ctx, dir, p, false)
	_, aferr := DetectAfter(ctx, dir, p, []*Patch{p})
	for name, err := range map[string]error{"Detect": derr, "ApplyTo": aerr, "DetectAfter": aferr} {
		if fault.KindOf(err) != fault.Infra || !strings.Contains(fmt.Sprint(err), "interrupted") {
			t.Errorf("%s on a cancelled context: %v (kind %v), want an infra error saying interrupted", name, err, fault.KindOf(err))
		}
	}
}
