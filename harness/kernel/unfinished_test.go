package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A make that stands in for the kernel's: configs, and a bzImage that
// waits while the tree holds a file named "hang".
const unfinishedMakefile = `
tinyconfig:
	mkdir -p o && printf 'CONFIG_A=y\n' > o/.config
olddefconfig:
	@true
bzImage:
	@while [ -f $(CURDIR)/hang ]; do sleep 0.1; done
	mkdir -p o/arch/x86/boot
	head -c 514 /dev/zero > o/arch/x86/boot/bzImage
	printf HdrS >> o/arch/x86/boot/bzImage
	head -c 4000 /dev/zero >> o/arch/x86/boot/bzImage
`

// A build that is interrupted leaves its tree marked; the next build in
// the tree starts from an empty output directory and says so, since a
// half-written file there can break it (seen after a Ctrl-C: a shell
// syntax error in tools/objtool). A build that ends clears the mark.
func TestUnfinishedBuildStartsClean(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	tree := t.TempDir()
	for name, data := range map[string]string{"Makefile": unfinishedMakefile, "hang": ""} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var said []string
	p := &Plan{Cache: t.TempDir(), Jobs: 1, Say: func(s string) { said = append(said, s) }}
	v := Variant{Name: "unpatched"}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	if _, err := p.compile(ctx, v, tree, "k1", filepath.Join(p.Cache, "img1"), time.Now()); err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("interrupted build: err %v", err)
	}
	if _, err := os.Stat(filepath.Join(tree, unfinishedMark)); err != nil {
		t.Fatalf("an interrupted build left no mark: %v", err)
	}
	// What the interrupted build left in the output directory.
	stale := filepath.Join(tree, "o", "tools", "objtool", ".half-written.cmd")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(stale, []byte("cmd_x := 'unterminated"), 0o644)
	os.Remove(filepath.Join(tree, "hang"))
	said = nil
	img, err := p.compile(context.Background(), v, tree, "k2", filepath.Join(p.Cache, "img2"), time.Now())
	if err != nil {
		t.Fatalf("build after an interrupted one: %v", err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Errorf("the output directory was not emptied after an unfinished build")
	}
	if !strings.Contains(strings.Join(said, "\n"), "did not finish") {
		t.Errorf("the build did not say why it starts clean: %q", said)
	}
	if _, err := os.Stat(filepath.Join(tree, unfinishedMark)); err == nil {
		t.Errorf("a finished build left the mark")
	}
	if _, err := os.Stat(img.Kernel); err != nil {
		t.Errorf("no image: %v", err)
	}
	// A finished build's output is kept for the next (incremental) one.
	keep := filepath.Join(tree, "o", "kept.o")
	os.WriteFile(keep, nil, 0o644)
	if _, err := p.compile(context.Background(), v, tree, "k3", filepath.Join(p.Cache, "img3"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a build after a finished one emptied the output directory: %v", err)
	}
}

// The kernel's make does not inherit an enclosing make's flags: run from
// `make bench BENCH_FLAGS="--rows 'a|b'"`, MAKEFLAGS carried the outer
// command line's variables into tools/objtool's build, which failed with
// a shell syntax error.
func TestBuildIgnoresEnclosingMake(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	tree := t.TempDir()
	mk := "bzImage:\n\t@test -z \"$(BENCH_FLAGS)\" || { echo inherited BENCH_FLAGS=$(BENCH_FLAGS); exit 1; }\n"
	if err := os.WriteFile(filepath.Join(tree, "Makefile"), []byte(mk), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MAKEFLAGS", ` -- BENCH_FLAGS=--rows\ generic:.a|b`)
	t.Setenv("MAKELEVEL", "1")
	var log strings.Builder
	p := &Plan{Cache: t.TempDir(), Jobs: 1}
	if err := p.runMake(context.Background(), tree, &log, nil, "bzImage"); err != nil {
		t.Fatalf("make inherited the enclosing make's variables: %v\n%s", err, log.String())
	}
}
