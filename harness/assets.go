package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"zswaprace"
)

// assetRoot is a directory holding kconfigs/ and patches/ as embedded in
// this binary, written once into dir/assets/HASH (HASH of their names and
// contents) and reused: what a harness run away from its checkout reads
// instead of the checkout's copies. Two harnesses starting at once each
// write a private directory and rename it into place; the loser's is
// removed.
func assetRoot(dir string) (string, error) {
	files := map[string][]byte{}
	var names []string
	h := sha256.New()
	err := fs.WalkDir(zswaprace.Assets, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := zswaprace.Assets.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = b
		names = append(names, p) // WalkDir walks in lexical order
		fmt.Fprintf(h, "%s %d\n", p, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
	}
	base := filepath.Join(dir, "assets")
	final := filepath.Join(base, hex.EncodeToString(h.Sum(nil))[:16])
	if st, err := os.Stat(final); err == nil && st.IsDir() {
		return final, nil
	}
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
	}
	tmp, err := os.MkdirTemp(base, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
	}
	defer os.RemoveAll(tmp)
	for _, p := range names {
		out := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
		}
		if err := os.WriteFile(out, files[p], 0o644); err != nil {
			return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another harness got there first: its copy is the same.
		if st, serr := os.Stat(final); serr == nil && st.IsDir() {
			return final, nil
		}
		return "", fmt.Errorf("embedded kconfigs and patches: %w", err)
	}
	return final, nil
}
