package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

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
