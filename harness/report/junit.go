package report

import (
	"encoding/xml"
	"fmt"
	"strings"
	"time"

	"zswaprace/harness/fsutil"
)

// The JUnit XML schema as CI systems (Jenkins, GitLab, GitHub actions)
// read it: one testsuite per variant, one testcase per run.
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
	Name      string       `xml:"name,attr"`
	Classname string       `xml:"classname,attr"`
	Time      string       `xml:"time,attr"`
	Failure   *junitResult `xml:"failure"`
	Error     *junitResult `xml:"error"`
	Skipped   *junitResult `xml:"skipped"`
	SystemOut string       `xml:"system-out,omitempty"`
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes r as JUnit XML to path, atomically. Runs with a
// corruption, crash or hang are failures; boot failures, infra errors, OOMs
// and unknown outcomes are errors; runs without writeback and interrupted
// runs are skipped. An unpatched kernel's failures show up as failures too:
// reproducing the race there is the point, so read the verdict property.
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
			c := junitCaseFrom(tool, v.Name, run)
			s.Tests++
			switch {
			case c.Failure != nil:
				s.Failures++
			case c.Error != nil:
				s.Errors++
			case c.Skipped != nil:
				s.Skipped++
			}
			suiteTime += run.BootSeconds + run.StressSeconds
			s.Cases = append(s.Cases, c)
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
	result := &junitResult{Type: string(run.Outcome), Text: detail}
	switch run.Outcome {
	case OutcomeCorruption:
		result.Message = corruptionMessage(run)
		c.Failure = result
	case OutcomeCrash:
		result.Message = firstOr(run.CrashTitles, "kernel crash (no title parsed; see the console log)")
		c.Failure = result
	case OutcomeHang:
		result.Message = "hang: " + firstLine(run.Error, firstOr(run.CrashTitles, "no progress from the stress workers"))
		c.Failure = result
	case OutcomeWarning:
		result.Message = firstLine(run.Error, firstOr(run.CrashTitles, "kernel WARNING"))
		c.Failure = result
	case OutcomeClean:
	case OutcomeNoWriteback:
		result.Message = "zswap wrote nothing back, so the run proves nothing; not counted"
		c.Skipped = result
	case OutcomeInterrupted:
		result.Message = "interrupted before the run finished"
		c.Skipped = result
	case OutcomeOOM:
		result.Message = "guest ran out of memory: the workload is too big for the guest; not counted against the kernel"
		c.Error = result
	default:
		result.Message = firstLine(run.Error, string(run.Outcome))
		c.Error = result
	}
	return c
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
