// Package fsutil writes files so that a full disk or a crash never leaves
// a partial one under the final name.
package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic writes data to a temporary file next to path, syncs it
// and renames it over path, so that path never holds a partial file: a
// full disk or an unwritable directory leaves path as it was. The file is
// readable by all (0644): reports are meant to be shared.
func WriteFileAtomic(path string, data []byte) error {
	return WriteFileAtomicMode(path, data, 0o644)
}

// WriteFileAtomicMode is WriteFileAtomic with the file's permission bits:
// the file has them from the start, never wider ones. Each writer has its
// own temporary name, so concurrent writers of one path never fail: the
// last rename wins.
func WriteFileAtomicMode(path string, data []byte, perm os.FileMode) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("write %s: %w; check that the directory is writable, that the disk has free space and that %s is not a directory", path, err, base)
		}
	}()
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	// CreateTemp makes the file private (0600).
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// syncDir makes a rename durable. It is best effort: some file systems
// cannot sync a directory, and the file itself is already complete.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}
