package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// inTree returns where the file rel of the tree at root is, after checking
// that it is there: rel must be a clean relative path without ".."
// components, and following the tree's symbolic links (every directory on
// the way, and the file itself if it is a link) must not lead outside
// root. Every read, write and removal of a path that came from a patch or
// a tree's state goes through here (readTree, writeTree, removeTree):
// patches come from mailing lists, and the harness runs as root.
//
// The returned path has the links on the way resolved; a file that is
// itself a link (inside the tree) is returned as the link, so replacing
// or removing it replaces or removes the link.
func inTree(root, rel string) (string, error) {
	if rel == "" || rel == "." {
		return "", fmt.Errorf("%q is not a file in the tree %s", rel, root)
	}
	if filepath.IsAbs(rel) {
		return "", fmt.Errorf("%q is an absolute path, outside the tree %s", rel, root)
	}
	parts := strings.Split(rel, "/")
	for _, p := range parts {
		switch p {
		case "..":
			return "", fmt.Errorf("%q has a \"..\" component: it would lead outside the tree %s", rel, root)
		case "", ".":
			return "", fmt.Errorf("%q is not a clean path in the tree %s", rel, root)
		}
	}
	if strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%q has a NUL byte", rel)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	cur := realRoot
	for i, p := range parts {
		next := filepath.Join(cur, p)
		fi, err := os.Lstat(next)
		if errors.Is(err, fs.ErrNotExist) {
			// The rest does not exist yet; it will be made under cur.
			return filepath.Join(cur, filepath.Join(parts[i:]...)), nil
		}
		if err != nil {
			return "", err
		}
		last := i == len(parts)-1
		if fi.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(next)
			res, err := filepath.EvalSymlinks(next)
			if err != nil {
				return "", fmt.Errorf("%s: %s is a symbolic link to %s, which does not resolve (%v): refusing to follow it", rel, next, target, err)
			}
			if !within(realRoot, res) || (last && res == realRoot) {
				return "", fmt.Errorf("%s leads outside the tree %s: %s is a symbolic link to %s", rel, root, next, target)
			}
			if last {
				return next, nil
			}
			cur = res
			continue
		}
		if !last && !fi.IsDir() {
			return "", fmt.Errorf("%s: %s is not a directory", rel, next)
		}
		cur = next
	}
	return cur, nil
}

// within says whether path p is root or under it (both resolved).
func within(root, p string) bool {
	r, err := filepath.Rel(root, p)
	return err == nil && r != ".." && !strings.HasPrefix(r, "../") && !filepath.IsAbs(r)
}

// readTree reads the file rel of the tree at root.
func readTree(root, rel string) ([]byte, fs.FileInfo, error) {
	p, err := inTree(root, rel)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	st, err := os.Stat(p)
	return data, st, err
}

// writeTree replaces the file rel of the tree at root with data: a new
// file renamed into place, so that a hard link to the pristine source (or
// a link the file was) is replaced, never written through. Missing
// directories are made.
func writeTree(root, rel string, data []byte, perm fs.FileMode) error {
	p, err := inTree(root, rel)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".*.zswaprace-tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// removeTree removes the file rel of the tree at root, if it is there.
func removeTree(root, rel string) error {
	p, err := inTree(root, rel)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
