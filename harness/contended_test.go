package main

import (
	"strings"
	"testing"

	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// A comparison whose runs ran on a busy host says so in its notes, whatever
// the verdict: an inconclusive verdict may be the host's, not the kernel's.
func TestVerdictNotesContendedRuns(t *testing.T) {
	busy := 4.4
	run := func(l *float64) report.Run {
		return report.Run{Outcome: report.OutcomeClean, StressSeconds: 60, PagesVerified: 60000, WrittenBackPages: 100,
			Counters: map[string]int64{}, GuestCPUs: 2, HostCPUs: 2, HostLoad: l}
	}
	for _, tt := range []struct {
		name string
		load *float64
		want string
	}{
		{"busy host", &busy, "3 of 4 runs ran on a busy host"},
		{"quiet host", nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			un := report.Aggregate("unpatched", "k", []report.Run{run(tt.load), run(tt.load)}, report.Signature{})
			pa := report.Aggregate("patched", "k", []report.Run{run(tt.load), run(nil)}, report.Signature{})
			var rep report.Report
			fillVerdict(&rep, verdict.Compare(counts(un), counts(pa), verdict.Options{}), &un, &pa)
			got := strings.Join(rep.Notes, "\n")
			if tt.want == "" && strings.Contains(got, "busy") {
				t.Errorf("notes on a quiet host: %q", got)
			}
			if tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("notes %q, want %q", got, tt.want)
			}
		})
	}
}
