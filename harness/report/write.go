package report

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"zswaprace/harness/fsutil"
)

// The file names WriteAll uses inside its directory.
const (
	JSONFile     = "report.json"
	JUnitFile    = "junit.xml"
	MarkdownFile = "summary.md"
)

// WriteAll writes report.json, junit.xml, summary.md and survival.svg into dir, creating
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
		WriteSurvivalSVG(filepath.Join(dir, SurvivalFile), r),
	)
}

// WriteJSON writes r as indented JSON to path, atomically.
func WriteJSON(path string, r *Report) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w (a NaN or infinite number in the results is a harness bug)", path, err)
	}
	return fsutil.WriteFileAtomic(path, append(data, '\n'))
}
