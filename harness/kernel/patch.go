package kernel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"zswaprace/harness/fault"
)

// Direction says how a patch relates to a source tree.
type Direction string

const (
	// Apply: the tree lacks the patch; unpatched is the tree, patched is tree+patch.
	Apply Direction = "apply"
	// Reverse: the tree already has the patch; unpatched is the tree with the
	// patch reversed, patched is the tree as it is.
	Reverse Direction = "reverse"
)

// Patch is a unified diff or a git format-patch mail.
type Patch struct {
	Path  string
	Data  []byte
	Files []string // paths the patch touches, relative to the tree root
}

// ReadPatch loads a patch and lists the files it touches.
func ReadPatch(path string) (*Patch, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fault.New(fault.Usage, "read patch", err)
	}
	files := PatchFiles(b)
	if len(files) == 0 {
		return nil, fault.Newf(fault.Usage, "read patch", "%s has no unified diff (no +++ lines)", path)
	}
	return &Patch{Path: path, Data: b, Files: files}, nil
}

var plusFile = regexp.MustCompile(`(?m)^\+\+\+ (\S+)`)

// PatchFiles returns the files a -p1 patch touches.
func PatchFiles(data []byte) []string {
	var files []string
	seen := map[string]bool{}
	for _, m := range plusFile.FindAllSubmatch(data, -1) {
		p := string(m[1])
		if p == "/dev/null" {
			continue
		}
		if _, rest, ok := strings.Cut(p, "/"); ok {
			p = rest
		}
		if !seen[p] {
			seen[p] = true
			files = append(files, p)
		}
	}
	return files
}

// patchArgs: no fuzz, so a patch that is already in the tree is never applied
// a second time at a nearby spot.
var patchArgs = []string{"-p1", "--fuzz=0", "--no-backup-if-mismatch", "-r", "-"}

func runPatch(ctx context.Context, dir string, p *Patch, reverse, dryRun bool) (string, error) {
	args := append([]string{}, patchArgs...)
	if reverse {
		// -f, not --batch: batch mode turns -R around when the patch looks
		// unapplied, which would make every patch "reverse" cleanly.
		args = append(args, "-f", "-R")
	} else {
		// --forward skips (and fails) a patch that looks already applied.
		args = append(args, "--batch", "--forward")
	}
	if dryRun {
		args = append(args, "--dry-run")
	}
	cmd := exec.CommandContext(ctx, "patch", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(p.Data)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Detect says whether the tree at dir lacks the patch (Apply) or already has
// it (Reverse). A patch that does neither cleanly is a usage error that
// quotes patch's own words about the failing hunk.
func Detect(ctx context.Context, dir string, p *Patch) (Direction, error) {
	fwdOut, fwdErr := runPatch(ctx, dir, p, false, true)
	revOut, revErr := runPatch(ctx, dir, p, true, true)
	switch {
	case fwdErr == nil && revErr == nil:
		return "", fault.Newf(fault.Usage, "patch "+p.Path, "applies both forwards and in reverse to %s: cannot tell whether the tree has it", dir)
	case fwdErr == nil:
		return Apply, nil
	case revErr == nil:
		return Reverse, nil
	}
	if _, err := exec.LookPath("patch"); err != nil {
		return "", fault.New(fault.Infra, "patch", fmt.Errorf("GNU patch is not installed: run scripts/install-deps.sh (apt-get install patch)"))
	}
	return "", &fault.Error{
		Kind:   fault.Usage,
		Op:     "patch " + p.Path,
		Err:    fmt.Errorf("neither applies to nor reverses from %s: %s", dir, failedHunk(fwdOut)),
		Detail: "forward:\n" + fwdOut + "reverse:\n" + revOut,
	}
}

// DetectAfter is Detect on the tree as it will be when the patch is
// applied: after the patches in before (the instrumentation), so that a
// patch whose context overlaps theirs is caught here, with a clear message,
// and not halfway through preparing a tree. It works on a scratch copy of
// just the files involved; dir is not touched.
func DetectAfter(ctx context.Context, dir string, p *Patch, before []*Patch) (Direction, error) {
	if len(before) == 0 {
		return Detect(ctx, dir, p)
	}
	tmp, err := os.MkdirTemp("", "zswaprace-detect-")
	if err != nil {
		return "", fault.New(fault.Infra, "detect patch direction", err)
	}
	defer os.RemoveAll(tmp)
	files := append([]string{}, p.Files...)
	for _, b := range before {
		files = append(files, b.Files...)
	}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue // a file the patch creates
		}
		dst := filepath.Join(tmp, f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "", fault.New(fault.Infra, "detect patch direction", err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			return "", fault.New(fault.Infra, "detect patch direction", err)
		}
	}
	for _, b := range before {
		if err := ApplyTo(ctx, tmp, b, false); err != nil {
			return "", fault.Newf(fault.Usage, "patch "+b.Path, "does not apply to %s: %v", dir, err)
		}
	}
	d, err := Detect(ctx, tmp, p)
	if err != nil {
		var fe *fault.Error
		if errors.As(err, &fe) {
			msg := strings.ReplaceAll(fe.Err.Error(), tmp, dir)
			if len(before) > 0 {
				msg += " (checked after applying " + filepath.Base(before[0].Path) + ")"
			}
			fe.Err = errors.New(msg)
		}
	}
	return d, err
}

// ApplyTo applies (or reverses) the patch in dir.
func ApplyTo(ctx context.Context, dir string, p *Patch, reverse bool) error {
	out, err := runPatch(ctx, dir, p, reverse, false)
	if err != nil {
		return &fault.Error{Kind: fault.Usage, Op: "patch " + p.Path, Err: fmt.Errorf("%s", failedHunk(out)), Detail: out}
	}
	return nil
}

// failedHunk picks the line that says which hunk of which file failed.
func failedHunk(out string) string {
	file := ""
	for _, l := range strings.Split(out, "\n") {
		if f, ok := strings.CutPrefix(l, "checking file "); ok {
			file = f
		}
		if f, ok := strings.CutPrefix(l, "patching file "); ok {
			file = f
		}
		if strings.Contains(l, "FAILED") || strings.Contains(l, "can't find file") || strings.Contains(l, "No file to patch") || strings.Contains(l, "Reversed (or previously applied)") {
			if file != "" {
				return file + ": " + strings.TrimSpace(l)
			}
			return strings.TrimSpace(l)
		}
	}
	if s := strings.TrimSpace(out); s != "" {
		return s
	}
	return "patch failed"
}
