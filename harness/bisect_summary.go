package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"

	"zswaprace/harness/verdict"
)

// bisectRow is one line of a bisection's table: a step as its step.json
// recorded it.
type bisectRow struct {
	Role     string  `json:"role"` // "bad end", "good end" or "step N"
	Commit   string  `json:"commit"`
	Subject  string  `json:"subject"`
	Verdict  string  `json:"verdict"`
	Runs     int     `json:"runs"`
	Failures int     `json:"failures"`
	Stress   float64 `json:"stress_seconds"`
	Reason   string  `json:"reason,omitempty"`
	Miss     float64 `json:"chance_bad_called_good,omitempty"`
	StepMiss float64 `json:"step_miss,omitempty"` // the miss chance the step was allowed
}

// bisectSummary is bisect.json: the culprit, every step, and the bound on
// naming a wrong culprit that the steps actually used.
type bisectSummary struct {
	Good        string      `json:"good"`
	Bad         string      `json:"bad"`
	Culprit     string      `json:"culprit,omitempty"`
	Subject     string      `json:"culprit_subject,omitempty"`
	Unresolved  string      `json:"unresolved,omitempty"` // git bisect's words when skips left several candidates
	BadEnd      *badEndFile `json:"bad_end"`
	Steps       []bisectRow `json:"steps"`
	Verdicts    int         `json:"verdicts"`
	StepMiss    float64     `json:"step_miss"`
	WrongBound  float64     `json:"wrong_culprit_at_most"`
	Confidence  float64     `json:"confidence"`
	Assumptions []string    `json:"assumptions"`
	Skipped     []bisectRow `json:"skipped"`
}

var bisectLogLine = regexp.MustCompile(`^git bisect (good|bad|skip) ([0-9a-f]{7,40})`)

// summarize reads a bisection's step.json files, in the order of git's
// bisect log, and bounds the chance of a wrong culprit: every verdict (the
// good end's check included) could have been a bad commit called good,
// each with at most the step's miss chance.
func summarize(out, good, bad, culprit, unresolved string, log io.Reader, be *badEndFile) (*bisectSummary, error) {
	s := &bisectSummary{Good: good, Bad: bad, Culprit: culprit, Unresolved: unresolved, BadEnd: be, StepMiss: be.StepMiss}
	read := func(role, commit string) (bisectRow, error) {
		row := bisectRow{Role: role, Commit: commit}
		b, err := os.ReadFile(filepath.Join(out, "step-"+commit[:12], "step.json"))
		if err != nil {
			return row, fmt.Errorf("step %.12s left no step.json: %v", commit, err)
		}
		var st struct {
			Subject  string   `json:"subject"`
			Verdict  string   `json:"verdict"`
			Runs     int      `json:"runs"`
			Failures int      `json:"failures"`
			Clean    float64  `json:"clean_seconds"`
			Stress   float64  `json:"stress_seconds"`
			Reason   string   `json:"reason"`
			Miss     *float64 `json:"chance_bad_called_good"`
			StepMiss float64  `json:"step_miss"`
		}
		if err := json.Unmarshal(b, &st); err != nil {
			return row, err
		}
		row.Subject, row.Verdict, row.Runs, row.Failures, row.Reason = st.Subject, st.Verdict, st.Runs, st.Failures, st.Reason
		row.Stress = max(st.Clean, st.Stress)
		row.StepMiss = st.StepMiss
		if st.Miss != nil {
			row.Miss = *st.Miss
		}
		return row, nil
	}
	for _, r := range []struct{ role, commit string }{{"bad end", bad}, {"good end", good}} {
		row, err := read(r.role, r.commit)
		if err != nil {
			return nil, err
		}
		s.Steps = append(s.Steps, row)
	}
	sc := bufio.NewScanner(log)
	n := 0
	for sc.Scan() {
		m := bisectLogLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n++
		row, err := read(fmt.Sprintf("step %d", n), m[2])
		if err != nil {
			return nil, err
		}
		if row.Verdict != m[1] {
			return nil, fmt.Errorf("step %.12s: git recorded %s, the step says %s", m[2], m[1], row.Verdict)
		}
		s.Steps = append(s.Steps, row)
	}
	var misses []float64
	for _, row := range s.Steps[1:] {
		switch row.Verdict {
		case "good", "bad":
			// What the step was allowed (--miss may differ from the
			// measurement's share), not what was planned.
			m := row.StepMiss
			if m == 0 {
				m = be.StepMiss
			}
			misses = append(misses, m)
		case "skip":
			s.Skipped = append(s.Skipped, row)
		}
	}
	s.Verdicts = len(misses)
	s.WrongBound = verdict.WrongCulprit(misses)
	s.Confidence = 1 - s.WrongBound
	s.Assumptions = []string{
		"every commit from the culprit on fails like the bad end, at the bad end's rate or faster",
		"a commit before the culprit never fails with the race's signature (a corrupt page, or a crash or hang titled like the bad end's)",
	}
	if culprit != "" {
		for _, row := range s.Steps {
			if row.Commit == culprit {
				s.Subject = row.Subject
			}
		}
	}
	return s, sc.Err()
}

// print writes the table a developer reads at the end of make bisect.
func (s *bisectSummary) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "step\tcommit\tverdict\truns\tfailures\tstress s\twhy / subject")
	for _, r := range s.Steps {
		why := r.Subject
		if r.Verdict == "skip" || r.Verdict == "abort" || (r.Verdict == "bad" && r.Reason != "") {
			why = r.Reason
		}
		fmt.Fprintf(tw, "%s\t%.12s\t%s\t%d\t%d\t%.0f\t%s\n", r.Role, r.Commit, r.Verdict, r.Runs, r.Failures, r.Stress, why)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if s.Culprit != "" {
		fmt.Fprintf(w, "culprit: %s\n  %.12s %s\n", s.Culprit, s.Culprit, s.Subject)
	} else {
		fmt.Fprintf(w, "no single culprit: %s\n", s.Unresolved)
	}
	fmt.Fprintf(w, "confidence: %.3f: the chance that this names a wrong culprit is at most %.3f (the sum over its %d verdicts of the chance each was allowed to call a bad commit good, %.3g as planned; bad verdicts need the race's own signature)\n",
		s.Confidence, s.WrongBound, s.Verdicts, s.StepMiss)
	if s.WrongBound > s.BadEnd.Wrong && s.BadEnd.Wrong > 0 {
		fmt.Fprintf(w, "  above the %.3g asked for: skips or a history with merges gave more verdicts than the %d planned\n", s.BadEnd.Wrong, s.BadEnd.Steps)
	}
	if len(s.Skipped) > 0 {
		fmt.Fprintf(w, "skipped: %d commit(s), see the table for why\n", len(s.Skipped))
	}
}

// cmdBisectSummary is make bisect's last step: the table, and bisect.json.
func cmdBisectSummary(args []string) int {
	fs := newFlags("bisect-summary", "bisect-summary --out DIR --good SHA --bad SHA --log FILE [--culprit SHA | --unresolved TEXT]")
	out := fs.String("out", "", "the bisection's output directory")
	good := fs.String("good", "", "good end")
	bad := fs.String("bad", "", "bad end")
	logPath := fs.String("log", "", "git bisect log")
	culprit := fs.String("culprit", "", "the first bad commit git bisect named")
	unresolved := fs.String("unresolved", "", "what git bisect said when it could not name one")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	} else if *out == "" || *good == "" || *bad == "" || *logPath == "" {
		fs.Usage()
		return exitError
	}
	be, err := readBadEnd(filepath.Join(*out, "bad-end.json"))
	if err == nil {
		var f *os.File
		if f, err = os.Open(*logPath); err == nil {
			defer f.Close()
			var s *bisectSummary
			if s, err = summarize(*out, *good, *bad, *culprit, strings.TrimSpace(*unresolved), f, be); err == nil {
				s.print(os.Stdout)
				err = writeJSONFile(filepath.Join(*out, "bisect.json"), s)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-summary:", err)
		return exitError
	}
	return 0
}
