// Package tap reads the Test Anything Protocol output of a workload, as
// the kernel's selftests (kselftest) print it, into one result per test.
package tap

import (
	"regexp"
	"strconv"
	"strings"
)

// Result is one test point: "ok 3 name # SKIP reason".
type Result struct {
	Number    int    `json:"number"`
	Name      string `json:"name"`
	OK        bool   `json:"ok"`
	Directive string `json:"directive,omitempty"` // SKIP, TODO, XFAIL, XPASS or TIMEOUT, upper case
	Reason    string `json:"reason,omitempty"`    // the directive's text
}

// Passed says whether the test point counts as passed: ok, or a TODO or
// XFAIL that is allowed to fail.
func (r Result) Passed() bool {
	return r.OK || r.Directive == "TODO" || r.Directive == "XFAIL"
}

// String is the test point as TAP prints it.
func (r Result) String() string {
	s := "ok " + strconv.Itoa(r.Number)
	if !r.OK {
		s = "not " + s
	}
	if r.Name != "" {
		s += " " + r.Name
	}
	if r.Directive != "" {
		s += " # " + r.Directive
		if r.Reason != "" {
			s += " " + r.Reason
		}
	}
	return s
}

var (
	point = regexp.MustCompile(`^(not ok|ok)\b[ \t]*(\d+)?[ \t]*(?:-[ \t]+)?(.*)$`)
	plan  = regexp.MustCompile(`^1\.\.(\d+)\b`)
)

var directives = []string{"SKIP", "TODO", "XFAIL", "XPASS", "TIMEOUT"}

// Parse reads the top-level test points and the plan ("1..N", 0 if none)
// in out. Indented or "# "-prefixed lines (subtests, diagnostics) are not
// top-level. A test point without a number takes the one after the last. A
// number seen again is the same test printed twice (kselftest's buffered
// stdout is copied into every child it forks): the first one stands. When
// cut is set, out is the tail of a longer output and its first line may be
// a fragment, so it is skipped.
func Parse(out string, cut bool) (results []Result, planned int) {
	lines := strings.Split(out, "\n")
	if cut && len(lines) > 0 {
		lines = lines[1:]
	}
	seen := map[int]bool{}
	last := 0
	for _, l := range lines {
		l = strings.TrimRight(l, "\r \t")
		if m := plan.FindStringSubmatch(l); m != nil {
			planned, _ = strconv.Atoi(m[1])
			continue
		}
		m := point.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		r := Result{OK: m[1] == "ok", Number: last + 1}
		if m[2] != "" {
			r.Number, _ = strconv.Atoi(m[2])
		}
		last = r.Number
		desc, comment, hasComment := cutComment(m[3])
		r.Name = strings.TrimSpace(desc)
		if hasComment {
			word, rest, _ := strings.Cut(strings.TrimSpace(comment), " ")
			for _, d := range directives {
				if strings.EqualFold(word, d) || (d == "SKIP" && len(word) > 4 && strings.EqualFold(word[:4], "skip")) {
					r.Directive, r.Reason = d, strings.TrimSpace(rest)
					break
				}
			}
		}
		if seen[r.Number] {
			continue
		}
		seen[r.Number] = true
		results = append(results, r)
	}
	return results, planned
}

// cutComment splits a description at its first unescaped '#'.
func cutComment(s string) (desc, comment string, ok bool) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '#':
			return strings.ReplaceAll(s[:i], `\#`, "#"), s[i+1:], true
		}
	}
	return strings.ReplaceAll(s, `\#`, "#"), "", false
}
