// Package cache locates the harness's cache (sources, trees, images,
// initramfs files, keys) and serialises writers to it.
package cache

import (
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir is where the cache lives: $ZSWAPRACE_CACHE, else the user's cache
// directory (~/.cache/zswaprace).
func Dir() string {
	if d := os.Getenv("ZSWAPRACE_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "zswaprace")
	}
	return filepath.Join(os.TempDir(), "zswaprace-cache")
}

// Lock takes the cache's lock, waiting (and saying so) while another
// harness process holds it: two builds in one tree or one image directory
// would corrupt each other. The lock dies with the process.
func Lock(dir string, say func(string)) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if say != nil {
			say(fmt.Sprintf("waiting for another harness process using %s", dir))
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", dir, err)
		}
	}
	return func() { unix.Flock(int(f.Fd()), unix.LOCK_UN); f.Close() }, nil
}
