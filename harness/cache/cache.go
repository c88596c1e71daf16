// Package cache locates the harness's cache (sources, trees, images,
// initramfs files, keys) and serialises writers to it.
package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dir is where the cache lives: $ZSWAPRACE_CACHE, else
// $XDG_CACHE_HOME/zswaprace, else $HOME/.cache/zswaprace, else a per-user
// directory in the temporary directory (/tmp/zswaprace-<uid>). It does not
// check the directory: Open and Lock do.
func Dir() string {
	if d := os.Getenv("ZSWAPRACE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "zswaprace")
	}
	if h := os.Getenv("HOME"); h != "" && filepath.IsAbs(h) {
		return filepath.Join(h, ".cache", "zswaprace")
	}
	return tmpDir()
}

// tmpDir is the fallback cache in the shared temporary directory: named
// for the user, so that two users never share one.
func tmpDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("zswaprace-%d", os.Geteuid()))
}

// Open returns Dir after Ensure.
func Open() (string, error) {
	d := Dir()
	return d, Ensure(d)
}

// Ensure creates the cache directory dir if it is missing (private to the
// user) and checks that nobody else can have put anything in it: dir must
// be a directory owned by the current user and not writable by group or
// others, and no directory above it may let others replace it. The cache
// holds kernels that are booted and keys that are trusted, so a cache
// another user could write to is refused, never used.
func Ensure(dir string) error {
	if dir == "" {
		return errors.New("cache directory: empty path")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	return check(dir)
}

// fixHint says what to do about a cache that failed check.
func fixHint(dir string) string {
	return fmt.Sprintf("if you did not set it up so, another user may have planted files in it: remove it (rm -rf %s) or set ZSWAPRACE_CACHE to a directory only you can write", dir)
}

func check(dir string) error {
	uid := os.Geteuid()
	li, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if li.Mode()&fs.ModeSymlink != 0 {
		// A link the user made (to a larger disk) is fine; one planted in
		// a shared directory is not.
		if owner(li) != uid && owner(li) != 0 {
			return fmt.Errorf("cache directory %s is a symbolic link owned by uid %d, not by you (uid %d); %s", dir, owner(li), uid, fixHint(dir))
		}
		if dir == tmpDir() {
			return fmt.Errorf("cache directory %s is a symbolic link in the shared temporary directory; %s", dir, fixHint(dir))
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("cache directory %s is not a directory: remove it or set ZSWAPRACE_CACHE to a directory", dir)
	}
	if o := owner(st); o != uid {
		return fmt.Errorf("cache directory %s is owned by uid %d, not by you (uid %d); %s", dir, o, uid, fixHint(dir))
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("cache directory %s is writable by group or others (mode %04o): run chmod go-w %s; %s", dir, st.Mode().Perm(), dir, fixHint(dir))
	}
	// Every directory above must keep others from renaming the cache away
	// and putting their own in its place: not writable by others, unless
	// sticky (as /tmp is).
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("cache directory %s: %w", dir, err)
	}
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("cache directory %s: %w", dir, err)
		}
		if st.Mode().Perm()&0o022 != 0 && st.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("cache directory %s: %s above it is writable by group or others (mode %04o) and not sticky, so another user could replace the cache: set ZSWAPRACE_CACHE to a directory in a private place", dir, d, st.Mode().Perm())
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return nil
}

func owner(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

// Lock takes the cache's lock, waiting (and saying so) while another
// harness process holds it: two builds in one tree or one image directory
// would corrupt each other. The lock dies with the process. The cache is
// checked first (Ensure).
func Lock(dir string, say func(string)) (unlock func(), err error) {
	if err := Ensure(dir); err != nil {
		return nil, err
	}
	return LockFile(filepath.Join(dir, "lock"), say)
}

// LockFile takes an exclusive lock on the file at path (created if
// missing), waiting (and saying so) while another holder has it. Two
// LockFile calls on one path exclude each other within one process too.
func LockFile(path string, say func(string)) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if say != nil {
			say(fmt.Sprintf("waiting for another harness process using %s", filepath.Dir(path)))
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
