package kernel

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPackageVersion asks a fake dpkg-query first on PATH.
func TestPackageVersion(t *testing.T) {
	bin := t.TempDir()
	script := `#!/bin/sh
# dpkg-query -W -f=${Version} PKG
[ "$1" = -W ] && [ "$2" = '-f=${Version}' ] || { echo "bad arguments: $*" >&2; exit 2; }
case "$3" in
linux-source-6.1) printf '6.1.192-2' ;;
*) echo "dpkg-query: no packages found matching $3" >&2; exit 1 ;;
esac
`
	if err := os.WriteFile(filepath.Join(bin, "dpkg-query"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	ctx := context.Background()
	if got := PackageVersion(ctx, "linux-source-6.1"); got != "6.1.192-2" {
		t.Errorf("PackageVersion(linux-source-6.1) = %q, want 6.1.192-2", got)
	}
	if got := PackageVersion(ctx, "linux-source-6.12"); got != "" {
		t.Errorf("a package that is not installed: %q, want empty", got)
	}
	t.Setenv("PATH", t.TempDir())
	if got := PackageVersion(ctx, "linux-source-6.1"); got != "" {
		t.Errorf("no dpkg-query: %q, want empty", got)
	}
}

func TestMakefileVersion(t *testing.T) {
	for _, c := range []struct{ makefile, want string }{
		{"# SPDX-License-Identifier: GPL-2.0\nVERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 192\nEXTRAVERSION =\nNAME = Curry Ramen\n", "6.1.192"},
		{"VERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 0\nEXTRAVERSION = -rc3\n", "6.12.0-rc3"},
		{"VERSION = 2\nPATCHLEVEL = 6\nSUBLEVEL =\nEXTRAVERSION =\n", "2.6"},
		// Only the first assignment counts, as make's would for these.
		{"VERSION = 5\nPATCHLEVEL = 4\nSUBLEVEL = 1\nEXTRAVERSION =\nfoo:\n\tVERSION=9 something\n", "5.4.1"},
		{"all:\n\ttrue\n", ""},
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte(c.makefile), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := MakefileVersion(dir); got != c.want {
			t.Errorf("MakefileVersion(%q) = %q, want %q", c.makefile, got, c.want)
		}
	}
	if got := MakefileVersion(t.TempDir()); got != "" {
		t.Errorf("no Makefile: %q, want empty", got)
	}
}

// TestTreeCommit: a git checkout's HEAD, "-dirty" with changes, nothing
// for a plain directory or one inside another checkout.
func TestTreeCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	ctx := context.Background()
	dir := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if got := treeCommit(ctx, dir); got != "" {
		t.Errorf("plain directory: %q, want empty", got)
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte("VERSION = 6\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	git("add", "Makefile")
	git("commit", "-q", "-m", "one")
	head := git("rev-parse", "HEAD")
	if got := treeCommit(ctx, dir); got != head {
		t.Errorf("clean checkout: %q, want %q", got, head)
	}
	if got := treeCommit(ctx, filepath.Join(dir, "sub")); got != "" {
		t.Errorf("a directory inside a checkout: %q, want empty", got)
	}
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), []byte("VERSION = 7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := treeCommit(ctx, dir); got != head+"-dirty" {
		t.Errorf("changed checkout: %q, want %q", got, head+"-dirty")
	}
}

// TestResolveRecordsVersion: a source directory's Source says its
// Makefile version and commit.
func TestResolveRecordsVersion(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "mm"), 0o755)
	os.WriteFile(filepath.Join(dir, "Kconfig"), nil, 0o644)
	os.WriteFile(filepath.Join(dir, "Makefile"), []byte("VERSION = 6\nPATCHLEVEL = 1\nSUBLEVEL = 3\nEXTRAVERSION = -x\n"), 0o644)
	src, err := Resolve(context.Background(), dir, t.TempDir(), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	if src.Version != (SourceVersion{Kernel: "6.1.3-x"}) {
		t.Errorf("Version = %+v, want kernel 6.1.3-x and no commit", src.Version)
	}
}

// TestLoadFragmentsHashes: each fragment records its file and sha256.
func TestLoadFragmentsHashes(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.config"), []byte("CONFIG_ZSWAP=y\n"), 0o644)
	fr, err := LoadFragments(dir, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of "CONFIG_ZSWAP=y\n", from sha256sum.
	const want = "9d6d60c8e4c0ead4f9154d65f77286ca16407ad0df48cc51dccd3153db072faf"
	if fr[0].Path != filepath.Join(dir, "a.config") || fr[0].SHA256 != want {
		t.Errorf("fragment %+v, want path %s and sha256 %s", fr[0], filepath.Join(dir, "a.config"), want)
	}
}
