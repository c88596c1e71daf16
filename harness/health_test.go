package main

import (
	"testing"

	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// A patch that leaks in every run where the unpatched kernel never does is
// regressed through the other-failures test, with the leaks counted as
// runs that went on to their end (the check comes after the workload).
// Four leaking runs of five are not enough at alpha 0.05 (p = 0.0625, for
// five against five clean): the test must be able to say no.
func TestLeaksAreRegressed(t *testing.T) {
	run := func(o report.Outcome) report.Run {
		r := report.Run{Outcome: o, StressSeconds: 60, WrittenBackPages: 600, PagesVerified: 600000}
		if o == report.OutcomeLeak {
			r.CrashTitles = []string{report.TitleLeak}
		}
		return r
	}
	runs := func(n, leaks int) []report.Run {
		var out []report.Run
		for i := range n {
			o := report.OutcomeClean
			if i < leaks {
				o = report.OutcomeLeak
			}
			r := run(o)
			r.Index = i + 1
			out = append(out, r)
		}
		return out
	}
	plan := verdict.FixedDesign{Runs: 5, RunSeconds: 60}
	for _, tt := range []struct {
		leaks int
		want  verdict.Verdict
	}{{5, verdict.Regressed}, {4, verdict.Inconclusive}} {
		u := report.Aggregate("unpatched", "u", runs(5, 0), report.Signature{})
		p := report.Aggregate("patched", "p", runs(5, tt.leaks), report.Signature{})
		c := counts(p)
		if c.OtherFailures != tt.leaks || c.RanOn != tt.leaks || p.Leaks != tt.leaks {
			t.Errorf("%d leaks: counts %+v, leak runs %d", tt.leaks, c, p.Leaks)
		}
		res := verdict.Compare(counts(u), c, plan.Options())
		if res.Verdict != tt.want {
			t.Errorf("%d leaking runs of 5: %s (%s), want %s", tt.leaks, res.Verdict, res.Reason, tt.want)
		}
	}
}
