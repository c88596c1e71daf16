package report

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"zswaprace/harness/fsutil"
)

// The JUnit XML schema as CI systems (Jenkins, GitLab, GitHub actions)
// read it: a "verdict" testsuite with the one test case that judges the
// patch, then one testsuite per variant, one testcase per run.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Classname  string          `xml:"classname,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitResult    `xml:"failure"`
	Error      *junitResult    `xml:"error"`
	Skipped    *junitResult    `xml:"skipped"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes r as JUnit XML to path, atomically. The test case
// "verdict" fails exactly when the verdict is not "fixed", so a CI job is
// green when the patch works and red (UNSTABLE in Jenkins) otherwise.
// Every run is a passed test case, with its outcome and details in its
// properties and system-out: a reproduction on the unpatched kernel is the
// point of that kernel, not a failure, and the verdict case already judges
// the patched kernel's runs. Runs that count for nothing (no writeback,
// interrupted, OOM, boot failures and infra errors) are skipped with the
// reason; the verdict weighs the boot failures. The TAP tests of an
// external workload are test cases too (junitTAPCases).
func WriteJUnit(path string, r *Report) error {
	data, err := xml.MarshalIndent(junitFrom(r), "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, append([]byte(xml.Header), append(data, '\n')...))
}

func junitFrom(r *Report) junitSuites {
	tool := r.Tool
	if tool == "" {
		tool = "zswaprace"
	}
	out := junitSuites{Name: tool}
	vs := junitVerdictSuite(tool, r)
	out.Suites = append(out.Suites, vs)
	out.Tests, out.Failures = vs.Tests, vs.Failures
	var total float64
	for _, v := range r.Variants {
		s := junitSuite{
			Name: v.Name,
			Properties: []junitProperty{
				{"kernel", v.Kernel},
				{"verdict", r.Verdict},
				{"reason", r.Reason},
				{"accel", r.Accel},
				{"source", r.Source},
				{"patch", r.Patch},
				{"patch_direction", r.PatchDirection},
			},
		}
		if !r.Started.IsZero() {
			s.Timestamp = r.Started.UTC().Format(time.RFC3339)
		}
		var suiteTime float64
		for _, run := range v.RunDetails {
			for _, c := range append([]junitCase{junitCaseFrom(tool, v.Name, run)}, junitTAPCases(tool, v.Name, run)...) {
				s.Tests++
				switch {
				case c.Failure != nil:
					s.Failures++
				case c.Error != nil:
					s.Errors++
				case c.Skipped != nil:
					s.Skipped++
				}
				s.Cases = append(s.Cases, c)
			}
			suiteTime += run.BootSeconds + run.StressSeconds
		}
		s.Time = junitTime(suiteTime)
		total += suiteTime
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	out.Time = junitTime(total)
	return out
}

func junitCaseFrom(tool, variant string, run Run) junitCase {
	c := junitCase{
		Name:      fmt.Sprintf("%s/run-%d", variant, run.Index),
		Classname: tool + "." + variant,
		Time:      junitTime(run.BootSeconds + run.StressSeconds),
		SystemOut: runSummary(run),
	}
	detail := runDetail(run)
	c.Properties = []junitProperty{{"outcome", string(run.Outcome)}}
	if run.CountedAs != nil {
		c.Properties = append(c.Properties, junitProperty{"counted_as", string(*run.CountedAs)})
	}
	if run.FirstFailureSeconds != nil {
		c.Properties = append(c.Properties, junitProperty{"first_failure_seconds", fmt.Sprintf("%g", *run.FirstFailureSeconds)})
	}
	if run.ConsoleLog != "" {
		c.Properties = append(c.Properties, junitProperty{"console_log", run.ConsoleLog})
	}
	var message string
	var skip bool
	switch run.Outcome {
	case OutcomeCorruption:
		message = corruptionMessage(run)
	case OutcomeCrash:
		message = firstOr(run.CrashTitles, "kernel crash (no title parsed; see the console log)")
	case OutcomeHang:
		message = "hang: " + firstLine(run.Error, firstOr(run.CrashTitles, "no progress from the stress workers"))
	case OutcomeWarning:
		message = firstLine(run.Error, firstOr(run.CrashTitles, "kernel WARNING"))
	case OutcomeWorkloadFailed:
		message = firstLine(run.Error, "the workload failed")
	case OutcomeHealth, OutcomeLeak:
		message = string(run.Outcome) + ": " + firstLine(run.Error, firstOr(run.CrashTitles, "the kernel failed the health check after the workload"))
	case OutcomeClean:
	case OutcomeNoWriteback:
		message, skip = "zswap wrote nothing back, so the run proves nothing; not counted", true
	case OutcomeInterrupted:
		message, skip = "interrupted before the run finished", true
	case OutcomeOOM:
		message, skip = "guest ran out of memory: the workload is too big for the guest; not counted against the kernel", true
	default:
		message, skip = firstLine(run.Error, string(run.Outcome))+"; no stress time counted (the verdict weighs boot failures)", true
	}
	if message != "" {
		c.Properties = append(c.Properties, junitProperty{"message", message})
		c.SystemOut += "\n" + message
	}
	if detail != "" {
		c.SystemOut += "\n" + strings.TrimRight(detail, "\n")
	}
	if skip {
		c.Skipped = &junitResult{Type: string(run.Outcome), Message: message}
	}
	return c
}

// junitVerdictSuite is the suite of the one test case that judges the
// patch: it fails exactly when the verdict is not "fixed", or not the one
// r.Expect names.
func junitVerdictSuite(tool string, r *Report) junitSuite {
	c := junitCase{Name: "verdict", Classname: tool + ".verdict", Time: junitTime(0)}
	c.Properties = []junitProperty{{"verdict", r.Verdict}, {"reason", r.Reason}}
	text := fmt.Sprintf("verdict %s: %s", r.Verdict, r.Reason)
	if r.PValue != nil {
		c.Properties = append(c.Properties, junitProperty{"p_value", fmt.Sprintf("%.4g", *r.PValue)})
		text += fmt.Sprintf("\np = %.4g", *r.PValue)
		if r.Alpha > 0 {
			text += fmt.Sprintf(" (alpha %g)", r.Alpha)
		}
	}
	for _, n := range r.Notes {
		text += "\nnote: " + n
	}
	c.SystemOut = text
	s := junitSuite{Name: "verdict", Tests: 1, Time: junitTime(0),
		Properties: []junitProperty{{"verdict", r.Verdict}, {"source", r.Source}, {"patch", r.Patch}, {"accel", r.Accel}}}
	if !r.Started.IsZero() {
		s.Timestamp = r.Started.UTC().Format(time.RFC3339)
	}
	want := r.Expect
	if want == "" {
		want = "fixed"
	} else {
		c.Properties = append(c.Properties, junitProperty{"expect", want})
	}
	if r.Verdict != want {
		c.Failure = &junitResult{Type: r.Verdict, Message: fmt.Sprintf("verdict %s, want %s: %s", r.Verdict, want, firstLine(r.Reason, "no reason given")), Text: text}
		s.Failures = 1
	}
	s.Cases = []junitCase{c}
	return s
}

// corruptionMessage summarises a corrupted run in one line, with its first
// example.
func corruptionMessage(run Run) string {
	var parts []string
	for _, cl := range classOrder(run.CorruptionsByClass) {
		if n := run.CorruptionsByClass[cl]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", cl, n))
		}
	}
	msg := fmt.Sprintf("%d corrupted pages", run.Corruptions)
	if len(parts) > 0 {
		msg += " (" + strings.Join(parts, ", ") + ")"
	}
	if len(run.Examples) > 0 {
		msg += ": " + run.Examples[0]
	}
	if len(run.CrashTitles) > 0 {
		msg += "; then " + run.CrashTitles[0]
	}
	return msg
}

// runSummary is the one-line account of a run's measurements.
func runSummary(run Run) string {
	s := fmt.Sprintf("%s on %s: stress %s, boot %s, %s pages verified, %s written back, %s corruptions",
		run.Outcome, run.Accel, seconds(run.StressSeconds), seconds(run.BootSeconds),
		grouped(run.PagesVerified), writtenBack(run.WrittenBackPages), grouped(run.Corruptions))
	if run.FirstFailureSeconds != nil {
		s += ", first failure at " + seconds(*run.FirstFailureSeconds)
	}
	return s
}

// runDetail is everything a developer needs to look into a run: examples,
// crash titles, the error with its console tail, and where the files are.
func runDetail(run Run) string {
	var b strings.Builder
	if len(run.Examples) > 0 {
		b.WriteString("Corruption examples:\n")
		for _, e := range run.Examples {
			fmt.Fprintf(&b, "  %s\n", e)
		}
	}
	if len(run.CrashTitles) > 0 {
		b.WriteString("Crash titles:\n")
		for _, t := range run.CrashTitles {
			fmt.Fprintf(&b, "  %s\n", t)
		}
	}
	if run.Error != "" {
		fmt.Fprintf(&b, "%s\n", strings.TrimRight(run.Error, "\n"))
	}
	if run.Health != nil {
		fmt.Fprintf(&b, "Health: %s\n", run.Health.Summary())
		b.WriteString(run.Health.PageOwner.Detail())
	}
	if run.ConsoleLog != "" {
		fmt.Fprintf(&b, "Console log: %s\n", run.ConsoleLog)
	}
	if run.KernelConfig != "" {
		fmt.Fprintf(&b, "Kernel config: %s\n", run.KernelConfig)
	}
	return b.String()
}

func writtenBack(n int64) string {
	if n < 0 {
		return "unknown"
	}
	return grouped(uint64(n))
}

func junitTime(s float64) string {
	return fmt.Sprintf("%.3f", s)
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

func firstLine(s, def string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return def
	}
	line, _, _ := strings.Cut(s, "\n")
	return line
}
