package report

import (
	"regexp"
	"slices"
	"strings"
)

// FailureClass says what a run's failure counts as in a comparison.
type FailureClass string

const (
	// RaceFailure is the race under test: a corrupt page, or a crash or hang
	// that matches the race's signature. Only these decide fixed.
	RaceFailure FailureClass = "race"
	// OtherFailure is any other kernel failure: a crash or hang with another
	// signature, or a WARNING. These decide only through their own test
	// (regressed when the patched kernel has significantly more).
	OtherFailure FailureClass = "other"
)

// Signature tells the race's own failures from the kernel's other ones.
// Corruption is always the race's, and so is a failed external workload
// (--workload: the peer workload is the race's test, and a non-zero exit is
// its failure). A crash or hang is the race's when its
// title, or its guilty function, matches a title seen on the unpatched
// kernel during the workload or one of Patterns (--signature).
type Signature struct {
	Titles   []string         // crash and hang titles learned from the unpatched runs
	Patterns []*regexp.Regexp // --signature
	Ignore   []*regexp.Regexp // --ignore: known benign reports, not counted at all
}

// Learn adds the titles of the crashes and hangs in runs (reports printed
// during the workload, not ignored) to the signature.
func (s Signature) Learn(runs []Run) Signature {
	s.Titles = slices.Clone(s.Titles)
	for _, r := range runs {
		for _, k := range s.counted(r) {
			if k.Kind != "warning" && !slices.Contains(s.Titles, k.Title) {
				s.Titles = append(s.Titles, k.Title)
			}
		}
	}
	return s
}

// Classify says what r's failure counts as, or "" when r is not a kernel
// failure (or only has ignored reports).
func (s Signature) Classify(r Run) FailureClass {
	if r.Outcome == OutcomeCorruption || r.Outcome == OutcomeWorkloadFailed {
		return RaceFailure
	}
	if !r.Failed() {
		return ""
	}
	if isHealth(r.Outcome) {
		// Never learned: only a signature that names it makes a health
		// failure the race's.
		counted := 0
		for _, k := range healthReports(r) {
			if s.ignored(k) {
				continue
			}
			counted++
			if s.matches(k) {
				return RaceFailure
			}
		}
		if counted == 0 {
			return "" // --ignore named every one
		}
		return OtherFailure
	}
	reports := s.counted(r)
	if len(reports) == 0 {
		return "" // every report was ignored
	}
	for _, k := range reports {
		if k.Kind != "warning" && s.matches(k) {
			return RaceFailure
		}
	}
	for _, k := range reports {
		if k.Kind == "warning" && s.matchesPattern(k) {
			return RaceFailure
		}
	}
	return OtherFailure
}

// counted is r's reports that count against the kernel: printed during the
// workload, not OOMs, not ignored. A failed run with no report of its own
// (a hang seen only as a silent agent) gets one from its outcome.
func (s Signature) counted(r Run) []KernelReport {
	var out []KernelReport
	for _, k := range r.Reports {
		if k.BeforeWorkload || k.Kind == "oom" || k.Kind == KindDataRace || s.ignored(k) {
			continue
		}
		out = append(out, k)
	}
	if len(r.Reports) > 0 || (r.Outcome != OutcomeCrash && r.Outcome != OutcomeHang) {
		return out
	}
	titles := r.CrashTitles
	if len(titles) == 0 {
		titles = []string{string(r.Outcome) + ": no report on the console"}
	}
	for _, t := range titles {
		k := KernelReport{Kind: string(r.Outcome), Title: t}
		if !strings.HasSuffix(t, ")") && !s.ignored(k) { // "(warning, not counted)" and the like
			out = append(out, k)
		}
	}
	return out
}

func (s Signature) matches(k KernelReport) bool {
	if slices.Contains(s.Titles, k.Title) {
		return true
	}
	if k.Function != "" {
		for _, t := range s.Titles {
			if strings.HasSuffix(t, " in "+k.Function) {
				return true
			}
		}
	}
	return s.matchesPattern(k)
}

func (s Signature) matchesPattern(k KernelReport) bool {
	for _, p := range s.Patterns {
		if p.MatchString(k.Title) || (k.Function != "" && p.MatchString(k.Function)) {
			return true
		}
	}
	return false
}

func (s Signature) ignored(k KernelReport) bool {
	for _, p := range s.Ignore {
		if p.MatchString(k.Title) {
			return true
		}
	}
	return false
}

// Strings lists the signature's titles and patterns, for the report.
func (s Signature) Strings() []string {
	out := slices.Clone(s.Titles)
	for _, p := range s.Patterns {
		out = append(out, "/"+p.String()+"/")
	}
	return out
}
