package kernel

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
)

// SourceVersion is exactly which source a kernel was built from, for the
// record (report.json's provenance): "" for what does not apply or could
// not be found.
type SourceVersion struct {
	// Package is the Debian package's version (dpkg-query), e.g.
	// "6.1.192-2", for debian:X sources.
	Package string `json:"package_version,omitempty"`
	// Kernel is the version the tree's Makefile gives, as
	// 'make kernelversion' prints it: VERSION.PATCHLEVEL.SUBLEVEL and
	// EXTRAVERSION, e.g. "6.1.192" or "6.12.0-rc3".
	Kernel string `json:"kernel_version,omitempty"`
	// Commit is the git commit of a git:PATH@REV source, or the HEAD of a
	// source directory that is a git checkout, with "-dirty" appended when
	// the checkout has uncommitted changes to tracked files.
	Commit string `json:"commit,omitempty"`
}

// PackageVersion is the installed version of the Debian package pkg, as
// dpkg-query reports it, or "" when dpkg-query cannot tell (no such
// package, or no dpkg).
func PackageVersion(ctx context.Context, pkg string) string {
	out, err := exec.CommandContext(ctx, "dpkg-query", "-W", "-f=${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// MakefileVersion is the kernel version the top Makefile of the tree in
// dir sets, the way 'make kernelversion' prints it, or "" when dir has no
// readable Makefile with a VERSION.
func MakefileVersion(dir string) string {
	vars := makefileVars(dir)
	if vars["VERSION"] == "" {
		return ""
	}
	// $(VERSION)$(if $(PATCHLEVEL),.$(PATCHLEVEL)$(if $(SUBLEVEL),.$(SUBLEVEL)))$(EXTRAVERSION)
	v := vars["VERSION"]
	if vars["PATCHLEVEL"] != "" {
		v += "." + vars["PATCHLEVEL"]
		if vars["SUBLEVEL"] != "" {
			v += "." + vars["SUBLEVEL"]
		}
	}
	return v + vars["EXTRAVERSION"]
}

// treeCommit is the HEAD of dir when it is the top of a git checkout, with
// "-dirty" when tracked files have uncommitted changes; "" otherwise.
func treeCommit(ctx context.Context, dir string) string {
	top, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return ""
	}
	// A tree inside someone else's checkout (an unpacked tarball in a
	// repository) is not that repository's commit.
	if a, b := filepath.Clean(strings.TrimSpace(string(top))), evalDir(dir); a != b {
		return ""
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	commit := strings.TrimSpace(string(out))
	if exec.CommandContext(ctx, "git", "-C", dir, "diff", "--quiet", "HEAD").Run() != nil {
		commit += "-dirty"
	}
	return commit
}

func evalDir(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return dir
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		return r
	}
	return abs
}
