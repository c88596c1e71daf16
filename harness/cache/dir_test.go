package cache

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDirOrder(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("ZSWAPRACE_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	if got, want := Dir(), filepath.Join(tmp, fmt.Sprintf("zswaprace-%d", os.Geteuid())); got != want {
		t.Errorf("no HOME: Dir = %s, want %s", got, want)
	}
	t.Setenv("HOME", "/home/h")
	if got, want := Dir(), "/home/h/.cache/zswaprace"; got != want {
		t.Errorf("HOME: Dir = %s, want %s", got, want)
	}
	t.Setenv("XDG_CACHE_HOME", "/x")
	if got, want := Dir(), "/x/zswaprace"; got != want {
		t.Errorf("XDG_CACHE_HOME: Dir = %s, want %s", got, want)
	}
	t.Setenv("ZSWAPRACE_CACHE", "/z")
	if got, want := Dir(), "/z"; got != want {
		t.Errorf("ZSWAPRACE_CACHE: Dir = %s, want %s", got, want)
	}
}

// A cache another user can write to is refused, with what to do.
func TestLockRefusesSharedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	os.Mkdir(dir, 0o755)
	os.Chmod(dir, 0o777)
	if u, err := Lock(dir, nil); err == nil {
		u()
		t.Fatalf("Lock on a world-writable cache: no error")
	} else if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "chmod") {
		t.Errorf("got %v, want an error naming %s and what to do", err, dir)
	}
}

// The fallback in the shared temporary directory is made private, and one
// another user made first is refused.
func TestEnsure(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("ZSWAPRACE_CACHE", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "")
	d, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(d)
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Fatalf("fallback cache %s: %v, %v; want a directory with mode 0700", d, st, err)
	}
	if err := Ensure(d); err != nil {
		t.Errorf("second start: %v", err)
	}

	t.Run("world-writable", func(t *testing.T) {
		os.Chmod(d, 0o777)
		defer os.Chmod(d, 0o700)
		if _, err := Open(); err == nil || !strings.Contains(err.Error(), d) || !strings.Contains(err.Error(), "writable by group or others") {
			t.Errorf("got %v, want an error naming %s and saying others can write it", err, d)
		}
	})
	t.Run("group-writable", func(t *testing.T) {
		os.Chmod(d, 0o770)
		defer os.Chmod(d, 0o700)
		if err := Ensure(d); err == nil {
			t.Errorf("no error")
		}
	})
	t.Run("another user's", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to give a directory to another user")
		}
		other := filepath.Join(t.TempDir(), "c")
		os.Mkdir(other, 0o755)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if err := Ensure(other); err == nil || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.Contains(err.Error(), "ZSWAPRACE_CACHE") {
			t.Errorf("got %v, want an error about the owner and what to do", err)
		}
		if u, err := Lock(other, nil); err == nil {
			u()
			t.Errorf("Lock on another user's cache: no error")
		}
	})
	t.Run("planted symlink", func(t *testing.T) {
		t.Setenv("TMPDIR", t.TempDir())
		target := t.TempDir()
		if err := os.Symlink(target, tmpDir()); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("got %v, want an error about the symbolic link", err)
		}
	})
	t.Run("parent writable by others", func(t *testing.T) {
		parent := filepath.Join(t.TempDir(), "p")
		os.Mkdir(parent, 0o755)
		os.Chmod(parent, 0o777)
		if err := Ensure(filepath.Join(parent, "c")); err == nil || !strings.Contains(err.Error(), parent) {
			t.Errorf("got %v, want an error naming %s", err, parent)
		}
		os.Chmod(parent, 0o777|os.ModeSticky) // as /tmp
		if err := Ensure(filepath.Join(parent, "c")); err != nil {
			t.Errorf("sticky parent: %v", err)
		}
	})
}
