// Package kernel turns a kernel source and a patch into bootable kernels:
// it resolves the source, works out the patch's direction, prepares
// harness-owned trees for each variant, merges config fragments and builds
// out of tree, caching images by everything that went into them.
package kernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"zswaprace/harness/cache"
	"zswaprace/harness/fault"
)

// Source is a pristine kernel tree the harness never writes into.
type Source struct {
	Spec string // as the user gave it
	Dir  string // tree root
	ID   string // identity for cache keys
	// Version is exactly which source it is, for the record.
	Version SourceVersion
	// Profile is what the harness knows of its kernel line's zswap (set
	// by ResolveProfiled).
	Profile *Profile
}

// debianLine is the line of a "debian:LINE" source, or a usage error
// naming the ones there are (the profiles Debian ships).
func debianLine(spec string) (string, error) {
	ver := strings.TrimPrefix(spec, "debian:")
	for _, l := range DebianLines() {
		if l == ver {
			return ver, nil
		}
	}
	return "", fault.Newf(fault.Usage, "source", "unknown source %q: Debian sources are %s", spec, debianSpecs())
}

// debianSpecs lists the Debian sources: "debian:6.1 and debian:6.12".
func debianSpecs() string {
	var l []string
	for _, v := range DebianLines() {
		l = append(l, "debian:"+v)
	}
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " and " + l[len(l)-1]
}

// SpecHelp lists the kinds of source, for flag help and messages.
func SpecHelp() string {
	return strings.ReplaceAll(debianSpecs(), " and ", ", ") + ", git:PATH@REV or a kernel source directory"
}

// CheckTools fails, as a host problem, when a tool the kernel build needs is
// missing: otherwise every build would fail and look like the kernel's fault
// (and a bisection would skip every commit).
func CheckTools() error {
	var missing []string
	for _, t := range []string{"make", "gcc", "ld", "flex", "bison", "bc", "patch", "perl", "tar", "xz"} {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	for _, h := range []string{"/usr/include/gelf.h"} {
		if _, err := os.Stat(h); err != nil {
			missing = append(missing, h+" (libelf-dev)")
		}
	}
	if len(missing) > 0 {
		return fault.Newf(fault.Infra, "kernel build tools", "missing %s: run scripts/install-deps.sh", strings.Join(missing, ", "))
	}
	return nil
}

// minFreeBytes is what unpacking and building two variants needs.
const minFreeBytes = 3 << 30

// CheckSpec checks what can be checked of a source's name without side
// effects (no apt, no unpacking): a known Debian version, a git source
// naming an existing directory and a revision, or a kernel tree. The
// harness calls it before anything slow starts.
func CheckSpec(spec string) error {
	switch {
	case strings.HasPrefix(spec, "debian:"):
		_, err := debianLine(spec)
		return err
	case strings.HasPrefix(spec, "git:"):
		repo, rev, ok := strings.Cut(strings.TrimPrefix(spec, "git:"), "@")
		if !ok || repo == "" || rev == "" {
			return fault.Newf(fault.Usage, "source", "git source %q: want git:PATH@REV", spec)
		}
		if st, err := os.Stat(repo); err != nil || !st.IsDir() {
			return fault.Newf(fault.Usage, "source", "git source %q: %s is not a directory", spec, repo)
		}
		return nil
	}
	st, err := os.Stat(spec)
	if err != nil || !st.IsDir() {
		return fault.Newf(fault.Usage, "source", "unknown source %q: use %s", spec, SpecHelp())
	}
	if !isKernelTree(spec) {
		return fault.Newf(fault.Usage, "source", "%s is not a kernel source tree (no Makefile, Kconfig and mm/)", spec)
	}
	return nil
}

// ResolveProfiled is Resolve, and picks the source's kernel profile: a
// tree of a line without one is a usage error that says how to add it.
func ResolveProfiled(ctx context.Context, spec, cacheDir string, say func(string)) (*Source, error) {
	src, err := Resolve(ctx, spec, cacheDir, say)
	if err != nil {
		return nil, err
	}
	if src.Profile, err = profileNamed(src.Dir, spec); err != nil {
		return nil, err
	}
	return src, nil
}

// Resolve finds or prepares the source named by spec: "debian:LINE" for
// the lines Debian ships, "git:PATH@REV", or a directory holding a kernel
// tree. It does not pick a profile (ResolveProfiled does).
func Resolve(ctx context.Context, spec, cacheDir string, say func(string)) (*Source, error) {
	if err := CheckSpec(spec); err != nil {
		return nil, err
	}
	switch {
	case strings.HasPrefix(spec, "debian:"), strings.HasPrefix(spec, "git:"):
		// These unpack into the cache: check it is the user's own first.
		if err := cache.Ensure(cacheDir); err != nil {
			return nil, fault.New(fault.Infra, "cache", err)
		}
		if strings.HasPrefix(spec, "git:") {
			return gitSource(ctx, spec, cacheDir, say)
		}
		return debianSource(ctx, spec, cacheDir, say)
	}
	st, err := os.Stat(spec)
	if err != nil || !st.IsDir() {
		return nil, fault.Newf(fault.Usage, "source", "unknown source %q: use %s", spec, SpecHelp())
	}
	if !isKernelTree(spec) {
		return nil, fault.Newf(fault.Usage, "source", "%s is not a kernel source tree (no Makefile, Kconfig and mm/)", spec)
	}
	dir, _ := filepath.Abs(spec)
	id, err := dirIdentity(ctx, dir)
	if err != nil {
		return nil, fault.New(fault.Infra, "source "+dir, err)
	}
	return &Source{Spec: spec, Dir: dir, ID: id, Version: SourceVersion{Kernel: MakefileVersion(dir), Commit: treeCommit(ctx, dir)}}, nil
}

func isKernelTree(dir string) bool {
	for _, p := range []string{"Makefile", "Kconfig", "mm"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}

func debianSource(ctx context.Context, spec, cacheDir string, say func(string)) (*Source, error) {
	ver, err := debianLine(spec)
	if err != nil {
		return nil, err
	}
	pkg := "linux-source-" + ver
	tarball := "/usr/src/" + pkg + ".tar.xz"
	if _, err := os.Stat(tarball); err != nil {
		if os.Geteuid() != 0 {
			return nil, fault.Newf(fault.Infra, "source "+spec, "%s is missing: run 'sudo apt-get install %s' (or scripts/install-deps.sh)", tarball, pkg)
		}
		say("installing " + pkg + " with apt-get (about 140 MB)")
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", pkg)
		// Ctrl-C: let apt stop cleanly rather than SIGKILL dpkg mid-install.
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		cmd.WaitDelay = time.Minute
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			if ctx.Err() != nil {
				return nil, fault.New(fault.Infra, "apt-get install "+pkg+": interrupted", ctx.Err())
			}
			return nil, &fault.Error{Kind: fault.Infra, Op: "apt-get install " + pkg, Err: err, Detail: tail(string(out), 20)}
		}
	}
	pv := PackageVersion(ctx, pkg)
	st, err := os.Stat(tarball)
	if err != nil {
		return nil, fault.New(fault.Infra, "source "+spec, err)
	}
	id := fmt.Sprintf("debian-%s-%s-%d", ver, pv, st.Size())
	dir := filepath.Join(cacheDir, "src", id)
	if err := unpackOnce(dir, say, func(tmp string) error {
		say(fmt.Sprintf("unpacking %s into %s", tarball, dir))
		cmd := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", tmp)
		if out, err := cmd.CombinedOutput(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("tar interrupted: %w", ctx.Err())
			}
			return fmt.Errorf("tar: %v: %s", err, tail(string(out), 5))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	tree := filepath.Join(dir, pkg)
	return &Source{Spec: spec, Dir: tree, ID: id, Version: SourceVersion{Package: pv, Kernel: MakefileVersion(tree)}}, nil
}

func gitSource(ctx context.Context, spec, cacheDir string, say func(string)) (*Source, error) {
	repo, rev, ok := strings.Cut(strings.TrimPrefix(spec, "git:"), "@")
	if !ok || repo == "" || rev == "" {
		return nil, fault.Newf(fault.Usage, "source", "git source %q: want git:PATH@REV", spec)
	}
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fault.New(fault.Infra, "source "+spec+": interrupted", ctx.Err())
		}
		return nil, fault.Newf(fault.Usage, "source", "%s: %s is not a commit in a git repository", repo, rev)
	}
	commit := strings.TrimSpace(string(out))
	id := "git-" + commit
	dir := filepath.Join(cacheDir, "src", id)
	if err := unpackOnce(dir, say, func(tmp string) error {
		say(fmt.Sprintf("exporting %s at %.12s", repo, commit))
		cmd := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", repo, commit, tmp)
		// Stop git and tar too, not just the shell.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		if out, err := cmd.CombinedOutput(); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("git archive interrupted: %w", ctx.Err())
			}
			return fmt.Errorf("git archive: %v: %s", err, tail(string(out), 5))
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if !isKernelTree(dir) {
		return nil, fault.Newf(fault.Usage, "source", "%s at %s is not a kernel source tree", repo, rev)
	}
	return &Source{Spec: spec, Dir: dir, ID: id, Version: SourceVersion{Kernel: MakefileVersion(dir), Commit: commit}}, nil
}

// unpackOnce fills dir through fill(tmp) and a rename, so an interrupted
// unpack never looks finished. One unpack of a source runs at a time, in
// this process and others (a lock file next to dir): a second waits and
// then finds dir done. Each fills its own scratch directory all the same,
// and a rename that finds dir already there counts as done.
func unpackOnce(dir string, say func(string), fill func(tmp string) error) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent, base := filepath.Split(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fault.New(fault.Infra, "cache", err)
	}
	unlock, err := cache.LockFile(dir+".lock", say)
	if err != nil {
		return fault.New(fault.Infra, "cache", err)
	}
	defer unlock()
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	// Scratch directories of unpacks that were interrupted: with the lock
	// held, nobody is filling them.
	if ents, err := os.ReadDir(parent); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), base+".tmp") {
				os.RemoveAll(filepath.Join(parent, e.Name()))
			}
		}
	}
	if err := CheckFree(parent, minFreeBytes); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, base+".tmp-")
	if err != nil {
		return fault.New(fault.Infra, "cache", err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.RemoveAll(tmp)
		return fault.New(fault.Infra, "cache", err)
	}
	if err := fill(tmp); err != nil {
		os.RemoveAll(tmp)
		return fault.New(fault.Infra, "unpack source", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dir); serr == nil {
			return nil // another unpack finished first
		}
		return fault.New(fault.Infra, "unpack source", err)
	}
	return nil
}

// CheckFree fails with a clear message when dir's file system has less than
// need bytes free.
func CheckFree(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return nil
	}
	free := int64(st.Bavail) * st.Bsize
	if free < need {
		return fault.Newf(fault.Infra, "disk space", "%s has %d MiB free, the kernel trees need about %d MiB: free some space or point ZSWAPRACE_CACHE at a larger disk", dir, free>>20, need>>20)
	}
	return nil
}

// dirIdentity names a user's tree: its commit and local changes when it is a
// git checkout, else the sizes and times of its files.
func dirIdentity(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, dir)
	if out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output(); err == nil {
		diff, _ := exec.CommandContext(ctx, "git", "-C", dir, "diff", "HEAD").Output()
		h.Write(out)
		h.Write(diff)
		// New files count too (a new .c file changes the kernel).
		untracked, _ := exec.CommandContext(ctx, "git", "-C", dir, "ls-files", "-o", "--exclude-standard", "-z").Output()
		for _, f := range strings.Split(string(untracked), "\x00") {
			if b, err := os.ReadFile(filepath.Join(dir, f)); f != "" && err == nil {
				fmt.Fprintln(h, "untracked", f, len(b))
				h.Write(b)
			}
		}
		return "dir-" + hex.EncodeToString(h.Sum(nil))[:16], nil
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintln(h, p, info.Size(), info.ModTime().UnixNano())
		return nil
	})
	return "dir-" + hex.EncodeToString(h.Sum(nil))[:16], err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
