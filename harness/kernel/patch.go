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
	"strconv"
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
	files, err := PatchFiles(b)
	if err != nil {
		return nil, fault.Newf(fault.Usage, "read patch", "%s: %v", path, err)
	}
	if len(files) == 0 {
		return nil, fault.Newf(fault.Usage, "read patch", "%s has no unified diff (no --- and +++ file headers)", path)
	}
	return &Patch{Path: path, Data: b, Files: files}, nil
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// PatchFiles returns the files a -p1 patch touches, relative to the tree
// root: every name GNU patch could take from the file headers ("--- " and
// "+++ " lines, "diff --git" lines and git's rename and copy lines), which
// are read only outside hunks. A hunk's lines are its content whatever they
// look like ("+++ b/x" in a hunk adds the line "++ b/x"); where a hunk ends
// comes from the line counts of its "@@ -a,b +c,d @@" header. A file name
// that is absolute, has a ".." component, has spaces or control characters,
// names one of the harness's own files in a tree (o/, .zswaprace-*,
// build.log) or that the patch makes a symbolic link is an error that says
// which line, which name and why.
func PatchFiles(data []byte) ([]string, error) {
	var files []string
	seen := map[string]bool{}
	add := func(n int, raw string, strip bool) error {
		if raw == "/dev/null" {
			return nil
		}
		if err := checkPatchName(raw); err != nil {
			return fmt.Errorf("line %d: file name %q %v", n, raw, err)
		}
		name := raw
		if strip {
			// -p1, as GNU patch strips: up to the first run of slashes.
			// A name without a slash gives GNU patch no name at all.
			i := strings.IndexByte(raw, '/')
			if i < 0 {
				return nil
			}
			name = strings.TrimLeft(raw[i+1:], "/")
			if name == "" {
				return nil
			}
		}
		name = filepath.Clean(name)
		if name == "." {
			return fmt.Errorf("line %d: file name %q names the tree itself", n, raw)
		}
		if err := checkPatchName(name); err != nil {
			return fmt.Errorf("line %d: file name %q %v", n, raw, err)
		}
		if err := checkReserved(name); err != nil {
			return fmt.Errorf("line %d: file name %q %v", n, raw, err)
		}
		if !seen[name] {
			seen[name] = true
			files = append(files, name)
		}
		return nil
	}
	lines := strings.Split(string(data), "\n")
	oldLeft, newLeft := 0, 0 // lines still to come in the current hunk
	inGit := false           // in a "diff --git" header, before its first hunk
	hunkNext := false        // a hunk may start here: after headers or a hunk
	for i := 0; i < len(lines); i++ {
		n, l := i+1, strings.TrimSuffix(lines[i], "\r")
		if oldLeft > 0 || newLeft > 0 {
			switch {
			case l == "" || l[0] == ' ':
				oldLeft--
				newLeft--
			case l[0] == '-':
				oldLeft--
			case l[0] == '+':
				newLeft--
			case l[0] == '\\': // "\ No newline at end of file"
			default:
				return nil, fmt.Errorf("line %d: the hunk ends early (%d old and %d new lines missing): the patch is truncated or mangled", n, max(oldLeft, 0), max(newLeft, 0))
			}
			if oldLeft < 0 || newLeft < 0 {
				return nil, fmt.Errorf("line %d: the hunk has more lines than its header says: the patch is mangled", n)
			}
			continue
		}
		switch {
		case strings.HasPrefix(l, "@@ "):
			if !hunkNext {
				continue // not after a file header: not a hunk to GNU patch either
			}
			m := hunkHeader.FindStringSubmatch(l)
			if m == nil {
				return nil, fmt.Errorf("line %d: cannot read the hunk header %q", n, l)
			}
			oldLeft, newLeft = hunkLen(m[2]), hunkLen(m[4])
			if oldLeft == 0 && newLeft == 0 {
				return nil, fmt.Errorf("line %d: empty hunk %q", n, l)
			}
			inGit = false
		case strings.HasPrefix(l, "diff --git "):
			a, b, err := gitNames(strings.TrimPrefix(l, "diff --git "))
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			for _, name := range []string{a, b} {
				if err := add(n, name, true); err != nil {
					return nil, err
				}
			}
			inGit, hunkNext = true, false
		case inGit && hasAnyPrefix(l, "rename from ", "rename to ", "copy from ", "copy to "):
			// Git writes these names without the a/ and b/ prefixes.
			_, rest, _ := strings.Cut(l, " ")
			_, rest, _ = strings.Cut(rest, " ")
			name, err := parseName(rest)
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			if err := add(n, name, false); err != nil {
				return nil, err
			}
		case inGit && hasAnyPrefix(l, "new file mode 120000", "new mode 120000"):
			return nil, fmt.Errorf("line %d: the patch makes a symbolic link, which the harness does not apply", n)
		case strings.HasPrefix(l, "***************"):
			return nil, fmt.Errorf("line %d: a context diff: the harness takes unified diffs only (diff -u, git diff, git format-patch)", n)
		case strings.HasPrefix(l, "--- ") && i+1 < len(lines) && strings.HasPrefix(lines[i+1], "+++ "):
			for _, h := range []string{l, strings.TrimSuffix(lines[i+1], "\r")} {
				name, err := parseName(h[4:])
				if err != nil {
					return nil, fmt.Errorf("line %d: %v", n, err)
				}
				if err := add(n, name, true); err != nil {
					return nil, err
				}
				n++
			}
			i++
			hunkNext = true
		case strings.HasPrefix(l, "+++ "):
			// GNU patch takes a lone +++ name too.
			name, err := parseName(l[4:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %v", n, err)
			}
			if err := add(n, name, true); err != nil {
				return nil, err
			}
			hunkNext = true
		case inGit, strings.HasPrefix(l, "\\"):
			// git's other extended header lines (index, mode, similarity),
			// or "\ No newline at end of file" after a hunk's last line
		default:
			hunkNext = false
		}
	}
	if oldLeft > 0 || newLeft > 0 {
		return nil, fmt.Errorf("the last hunk ends early (%d old and %d new lines missing): the patch is truncated", oldLeft, newLeft)
	}
	return files, nil
}

// hunkLen is a hunk header's line count: absent means 1.
func hunkLen(s string) int {
	if s == "" {
		return 1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 30 // absurd: the hunk runs to the end and is reported
	}
	return n
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// parseName reads the file name at the start of a header's text: a
// C-quoted name as git writes unusual ones ("a/f\303\251"), or else the
// text up to the first blank (a tab and a time stamp may follow).
func parseName(s string) (string, error) {
	if strings.HasPrefix(s, `"`) {
		name, _, err := unquoteC(s)
		return name, err
	}
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		s = s[:i]
	}
	if s == "" {
		return "", errors.New("a file header without a file name")
	}
	return s, nil
}

// gitNames reads the two names of a "diff --git a/X b/Y" line.
func gitNames(s string) (a, b string, err error) {
	if strings.HasPrefix(s, `"`) {
		a, n, err := unquoteC(s)
		if err != nil {
			return "", "", err
		}
		s = strings.TrimLeft(s[n:], " ")
		b, err := parseName(s)
		return a, b, err
	}
	f := strings.Fields(s)
	if len(f) != 2 {
		if i := strings.Index(s, ` "`); i >= 0 {
			b, _, err := unquoteC(s[i+1:])
			return s[:i], b, err
		}
		return "", "", fmt.Errorf("cannot read the file names of \"diff --git %s\" (file names with spaces are not supported)", s)
	}
	return f[0], f[1], nil
}

// unquoteC reads a C-quoted string as git writes file names, returning it
// and the number of bytes of s it took.
func unquoteC(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), i + 1, nil
		case c != '\\':
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch c := s[i]; c {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case '\\', '"':
			b.WriteByte(c)
		default:
			if c < '0' || c > '3' || i+2 >= len(s) {
				return "", 0, fmt.Errorf("bad escape in the quoted file name %s", s)
			}
			v, err := strconv.ParseUint(s[i:i+3], 8, 8)
			if err != nil {
				return "", 0, fmt.Errorf("bad escape in the quoted file name %s", s)
			}
			b.WriteByte(byte(v))
			i += 2
		}
	}
	return "", 0, fmt.Errorf("unterminated quoted file name %s", s)
}

// checkPatchName says what is wrong with a file name from a patch, as the
// end of a sentence that starts with the name.
func checkPatchName(name string) error {
	if filepath.IsAbs(name) {
		return errors.New("is an absolute path, outside the source tree")
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return errors.New(`has a ".." component: it would lead outside the source tree`)
		}
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f {
			return errors.New("has spaces or control characters")
		}
	}
	return nil
}

// checkReserved refuses the names of the harness's own files in a tree:
// a patch that wrote them could steer the next variant switch.
func checkReserved(name string) error {
	top, _, _ := strings.Cut(name, "/")
	if top == "o" || top == "build.log" || strings.HasPrefix(top, ".zswaprace") {
		return fmt.Errorf("names %s, which the harness keeps in its trees (object directory, build log, tree state)", top)
	}
	return nil
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
	if err := interrupted(ctx, p); err != nil {
		return "", err
	}
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
	for _, q := range append([]*Patch{p}, before...) {
		for _, f := range q.Files {
			// The names come from the patch: both the read from dir and
			// the write into the scratch copy are checked.
			if _, err := inTree(dir, f); err != nil {
				return "", fault.Newf(fault.Usage, "patch "+q.Path, "%v", err)
			}
			data, _, err := readTree(dir, f)
			if err != nil {
				continue // a file the patch creates
			}
			if err := writeTree(tmp, f, data, 0o644); err != nil {
				return "", fault.New(fault.Infra, "detect patch direction", err)
			}
		}
	}
	for _, b := range before {
		if err := ApplyTo(ctx, tmp, b, false); err != nil {
			if ierr := interrupted(ctx, b); ierr != nil {
				return "", ierr
			}
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
	if ierr := interrupted(ctx, p); ierr != nil {
		return ierr
	}
	if err != nil {
		return &fault.Error{Kind: fault.Usage, Op: "patch " + p.Path, Err: fmt.Errorf("%s", failedHunk(out)), Detail: out}
	}
	return nil
}

// interrupted is the error of a patch run that was stopped (Ctrl-C, a
// deadline): the harness's, not the patch's, whose killed patch(1) would
// otherwise read as "patch failed", bad input.
func interrupted(ctx context.Context, p *Patch) error {
	if ctx.Err() == nil {
		return nil
	}
	return fault.New(fault.Infra, "patch "+p.Path+": interrupted", ctx.Err())
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
