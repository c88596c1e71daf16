package report

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"zswaprace/harness/tap"
)

// Each TAP test point of an external workload is a test case of its run's
// variant suite: not ok fails, SKIP is skipped, a not ok TODO passes; the
// run's own case and the verdict case stay.
func TestJUnitTAPCases(t *testing.T) {
	run := Run{
		Variant: "patched", Index: 2, Outcome: OutcomeWorkloadFailed, Accel: "tcg", StressSeconds: 30,
		ConsoleLog: "out/patched/run-2/console.log",
		Workload: &WorkloadResult{Command: "/selftests/zswap_test", ExitCode: 1, TestsPlanned: 5, Tests: []tap.Result{
			{Number: 1, Name: "swapin", OK: true},
			{Number: 2, Name: "writeback race", OK: false},
			{Number: 3, Name: "no zswap", OK: true, Directive: "SKIP", Reason: "zswap is not built in"},
			{Number: 4, Name: "known bug", OK: false, Directive: "TODO", Reason: "not fixed yet"},
			{Number: 5, OK: false, Directive: "TIMEOUT"},
		}},
	}
	clean := Run{Variant: "unpatched", Index: 1, Outcome: OutcomeClean, Accel: "tcg", StressSeconds: 30}
	r := &Report{Tool: "zswaprace", Verdict: "inconclusive", Reason: "r", Variants: []Variant{
		Aggregate("unpatched", "k1", []Run{clean}, Signature{}),
		Aggregate("patched", "k2", []Run{run}, Signature{}),
	}}
	path := filepath.Join(t.TempDir(), JUnitFile)
	if err := WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, data)
	}
	if len(got.Suites) != 3 || got.Suites[0].Name != "verdict" || len(got.Suites[0].Cases) != 1 {
		t.Fatalf("suites %+v: want the verdict suite with its one case, then one per variant", got.Suites)
	}
	// verdict 1 + unpatched 1 + patched (run + 5 TAP tests).
	if got.Tests != 8 || got.Failures != 3 || got.Skipped != 1 {
		t.Errorf("totals: %d tests, %d failures, %d skipped; want 8, 3 (verdict, not ok 2, not ok 5 TIMEOUT), 1", got.Tests, got.Failures, got.Skipped)
	}
	s := got.Suites[2]
	if s.Tests != 6 || s.Failures != 2 || s.Skipped != 1 {
		t.Errorf("patched suite: %d tests, %d failures, %d skipped; want 6, 2, 1", s.Tests, s.Failures, s.Skipped)
	}
	props := func(n, directive string) []junitProperty {
		p := []junitProperty{{"tap_number", n}, {"run_outcome", "workload-failed"}}
		if directive != "" {
			p = append(p, junitProperty{"tap_directive", directive})
		}
		return p
	}
	failText := "patched/run-2 (workload-failed), console log out/patched/run-2/console.log"
	want := []junitCase{
		{Name: "patched/run-2/1 swapin", Classname: "zswaprace.patched.run-2", Time: "0.000", Properties: props("1", ""), SystemOut: "ok 1 swapin"},
	}
	want = append(want,
		junitCase{Name: "patched/run-2/2 writeback race", Classname: "zswaprace.patched.run-2", Time: "0.000", Properties: props("2", ""),
			SystemOut: "not ok 2 writeback race",
			Failure:   &junitResult{Type: "tap-not-ok", Message: "not ok 2 writeback race", Text: failText}},
		junitCase{Name: "patched/run-2/3 no zswap", Classname: "zswaprace.patched.run-2", Time: "0.000", Properties: props("3", "SKIP"),
			SystemOut: "ok 3 no zswap # SKIP zswap is not built in",
			Skipped:   &junitResult{Type: "tap-skip", Message: "zswap is not built in"}},
		junitCase{Name: "patched/run-2/4 known bug", Classname: "zswaprace.patched.run-2", Time: "0.000", Properties: props("4", "TODO"),
			SystemOut: "not ok 4 known bug # TODO not fixed yet"},
		junitCase{Name: "patched/run-2/5", Classname: "zswaprace.patched.run-2", Time: "0.000", Properties: props("5", "TIMEOUT"),
			SystemOut: "not ok 5 # TIMEOUT",
			Failure:   &junitResult{Type: "tap-not-ok-timeout", Message: "not ok 5 # TIMEOUT", Text: failText}},
	)
	if s.Cases[0].Name != "patched/run-2" {
		t.Errorf("the run's own case %q does not come first", s.Cases[0].Name)
	}
	if diff := cmp.Diff(want, s.Cases[1:], cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("TAP cases (-want +got):\n%s", diff)
	}
	// The harness's own workload has no TAP cases.
	if n := len(got.Suites[1].Cases); n != 1 {
		t.Errorf("unpatched suite has %d cases, want its one run", n)
	}
}
