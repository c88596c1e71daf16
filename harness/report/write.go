package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The file names WriteAll uses inside its directory.
const (
	JSONFile     = "report.json"
	JUnitFile    = "junit.xml"
	MarkdownFile = "summary.md"
)

// WriteAll writes report.json, junit.xml and summary.md into dir, creating
// dir if needed. It tries every file and returns all the errors together;
// each file is either complete or absent (or as it was before).
func WriteAll(dir string, r *Report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create report directory: %w; choose an output directory you can write to", err)
	}
	return errors.Join(
		WriteJSON(filepath.Join(dir, JSONFile), r),
		WriteJUnit(filepath.Join(dir, JUnitFile), r),
		WriteMarkdown(filepath.Join(dir, MarkdownFile), r),
	)
}

// WriteJSON writes r as indented JSON to path, atomically.
func WriteJSON(path string, r *Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w (a NaN or infinite number in the results is a harness bug)", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

// writeFileAtomic writes data to a temporary file next to path, syncs it
// and renames it over path, so that path never holds a partial file: a
// full disk or an unwritable directory leaves path as it was.
func writeFileAtomic(path string, data []byte) (err error) {
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
	// CreateTemp makes the file private; reports are meant to be shared.
	if err := f.Chmod(0o644); err != nil {
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
