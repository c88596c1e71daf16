package verdict

import (
	"strings"
	"testing"
)

func TestDesignNext(t *testing.T) {
	d := Design{RunSeconds: 120, Budget: 3600}
	fast := Counts{Failures: 3, Exposure: 23, Boots: 3} // needs 657 s clean: 6 runs
	tests := []struct {
		name string
		d    Design
		s    State
		want Action
		why  string
	}{
		{"start", d, State{}, RunUnpatched, "stage 1: unpatched has failed on the race 0 times of the 3 wanted"},
		{"stage 1 goes on", d, State{Unpatched: Counts{Failures: 1, Exposure: 200, Boots: 3}, Spent: 300}, RunUnpatched, "1 time of the 3"},
		{"stage 1 may end just under half the budget", d, State{Unpatched: Counts{Exposure: 1500, Boots: 13}, Spent: 1799}, RunUnpatched, "stage 1"},
		{"stage 1 reached its target, runs in flight", d, State{Unpatched: fast, InFlightUnpatched: 1, Spent: 60}, Wait, "waiting for 1 unpatched run"},
		{"stage 2 starts", d, State{Unpatched: fast, Spent: 60}, RunPatched, "stage 2: patched clean for 0.0 s (0 runs in flight) of the 657 s"},
		{"not reproduced in half the budget", d, State{Unpatched: Counts{Exposure: 1700, Boots: 14}, Spent: 1800}, Stop, "not reproduced"},
		{"not reproduced, runs in flight", d, State{Unpatched: Counts{Exposure: 1700, Boots: 14}, InFlightUnpatched: 1, Spent: 1800}, Wait, "before setting the patched target"},
		{"truncated stage 1 goes to stage 2", d, State{Unpatched: Counts{Failures: 2, Exposure: 1600, Boots: 14}, Spent: 1800}, RunPatched, "stage 2"},
		{"target covered", d, State{Unpatched: fast, Patched: Counts{Exposure: 720, Boots: 6}, Spent: 900}, Stop, "patched clean time reaches the 657 s"},
		{"target covered by runs in flight", d, State{Unpatched: fast, Patched: Counts{Exposure: 480, Boots: 4}, InFlightPatched: 2, Spent: 700}, Wait, "reaches the 657 s"},
		{"target not covered", d, State{Unpatched: fast, Patched: Counts{Exposure: 600, Boots: 5}, Spent: 700}, RunPatched, "stage 2: patched clean for 600 s"},
		{"patched failed", d, State{Unpatched: fast, Patched: Counts{Failures: 1, Exposure: 40, Boots: 1}, Spent: 100}, Stop, "failed on the race 1 time"},
		{"patched failed, runs in flight", d, State{Unpatched: fast, Patched: Counts{Failures: 1, Exposure: 40, Boots: 1}, InFlightPatched: 1, Spent: 100}, Wait, "waiting for 1 run in flight"},
		{"patched boot failure", d, State{Unpatched: fast, Patched: Counts{BootFailures: 1, Boots: 1}, Spent: 100}, Stop, "failed to boot 1 time where the unpatched never did"},
		{"boot failures on both", d, State{Unpatched: Counts{Failures: 3, Exposure: 23, BootFailures: 1, Boots: 4}, Patched: Counts{BootFailures: 1, Boots: 1}, Spent: 100}, RunPatched, "stage 2"},
		{"patched OOM", d, State{Unpatched: fast, Patched: Counts{OOMs: 1, OOMSeconds: 50, Boots: 1}, Spent: 100}, Stop, "ran out of memory in 1 run"},
		{"patched wrote nothing back", d, State{Unpatched: fast, Patched: Counts{NoWriteback: 1, Boots: 1}, Spent: 100}, Stop, "wrote nothing back"},
		{"weaker workload", d, State{Unpatched: Counts{Failures: 3, Exposure: 23, Boots: 3, WritebackPerSec: 900}, Patched: Counts{Exposure: 120, Boots: 1, WritebackPerSec: 200}, Spent: 200}, Stop, "wrote back 200 pages/s against 900"},
		{"patched infra error goes on", d, State{Unpatched: fast, Patched: Counts{InfraErrors: 1, Boots: 1}, Spent: 100}, RunPatched, "stage 2"},
		{"budget spent in stage 2", d, State{Unpatched: fast, Patched: Counts{Exposure: 240, Boots: 2}, Spent: 3481}, Stop, "budget spent"},
		{"budget spent, runs in flight", d, State{Unpatched: fast, Patched: Counts{Exposure: 240, Boots: 2}, InFlightPatched: 1, Spent: 3481}, Wait, "budget spent"},
		{"last run that fits", d, State{Unpatched: fast, Patched: Counts{Exposure: 240, Boots: 2}, Spent: 3480}, RunPatched, "stage 2"},
		{"run longer than the budget", Design{RunSeconds: 120, Budget: 100}, State{}, Stop, "budget spent"},
		{"unpatched never boots", d, State{Unpatched: Counts{BootFailures: 3, Boots: 3}, Spent: 100}, Stop, "failed to boot in all 3 runs"},
		{"invalid design", Design{RunSeconds: 120}, State{}, Stop, "invalid design: budget 0 s is out of range"},
		{"invalid design, runs in flight", Design{Budget: 100}, State{InFlightPatched: 1}, Wait, "invalid design: run duration 0 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.d.Next(tt.s)
			if got != tt.want || !strings.Contains(why, tt.why) {
				t.Errorf("Next = %v, %q; want %v, ...%q...", got, why, tt.want, tt.why)
			}
		})
	}
}

// TestDesignAgreesWithCompare runs stage 2 clean, one full run at a time,
// and checks that the design stops exactly where Compare turns to fixed:
// with the last run Compare says fixed, without it not.
func TestDesignAgreesWithCompare(t *testing.T) {
	for _, d := range []Design{
		{RunSeconds: 120, Budget: 1e9},
		{RunSeconds: 120, Budget: 1e9, MinReduction: 10},
		{RunSeconds: 30, Budget: 1e9, Target: 5, Alpha: 0.01},
		{RunSeconds: 300, Budget: 1e9, Target: 1},
	} {
		for x1 := 1; x1 <= 7; x1++ {
			for _, e1 := range []float64{5, 23, 240, 1234.5, 9000} {
				un := Counts{Failures: x1, Exposure: e1, Boots: x1 + int(e1/d.RunSeconds)}
				// A stage 1 short of its target ended on the budget.
				s := State{Unpatched: un, Spent: d.Budget / 2}
				runs := 0
				for {
					a, why := d.Next(s)
					if a == Stop {
						break
					}
					if a != RunPatched || runs > 100000 {
						t.Fatalf("%+v x1=%d e1=%g: %v (%s) after %d clean runs", d, x1, e1, a, why, runs)
					}
					runs++
					s.Patched = Counts{Exposure: float64(runs) * d.RunSeconds, Boots: runs}
				}
				opt := d.Options()
				if got := Compare(un, s.Patched, opt); got.Verdict != Fixed {
					t.Errorf("%+v x1=%d e1=%g: the design stopped after %d clean runs, Compare says %s: %s", d, x1, e1, runs, got.Verdict, got.Reason)
				}
				if runs > 0 {
					less := Counts{Exposure: float64(runs-1) * d.RunSeconds, Boots: runs - 1}
					if got := Compare(un, less, opt); got.Verdict == Fixed {
						t.Errorf("%+v x1=%d e1=%g: Compare says fixed after %d clean runs, the design asked for %d", d, x1, e1, runs-1, runs)
					}
				}
			}
		}
	}
}

// TestCannotFixAgrees checks the design's cheap stopping test against the
// reasons Compare gives.
func TestCannotFixAgrees(t *testing.T) {
	var sides []Counts
	for _, boot := range []int{0, 1} {
		for _, oom := range []int{0, 1} {
			for _, nowb := range []int{0, 1} {
				for _, wb := range []float64{0, 300, 1000} {
					sides = append(sides, Counts{Failures: 3, Exposure: 100, BootFailures: boot, Boots: 3,
						OOMs: oom, NoWriteback: nowb, WritebackPerSec: wb})
				}
			}
		}
	}
	for _, un := range sides {
		for _, pa := range sides {
			if got, want := cannotFix(un, pa), len(ruledOut(un, pa)) > 0; got != want {
				t.Errorf("cannotFix(%+v, %+v) = %v, but reasons %q", un, pa, got, ruledOut(un, pa))
			}
		}
	}
}

func TestFixedDesignNext(t *testing.T) {
	d := FixedDesign{Runs: 2, RunSeconds: 120}
	un := Counts{Failures: 1, Exposure: 150, Boots: 2}
	tests := []struct {
		name string
		s    State
		want Action
	}{
		{"start", State{}, RunUnpatched},
		{"second unpatched", State{InFlightUnpatched: 1}, RunUnpatched},
		{"unpatched all started", State{Unpatched: Counts{Exposure: 120, Boots: 1}, InFlightUnpatched: 1}, Wait},
		{"patched", State{Unpatched: un}, RunPatched},
		{"patched all started", State{Unpatched: un, Patched: Counts{Exposure: 120, Boots: 1}, InFlightPatched: 1}, Wait},
		{"done", State{Unpatched: un, Patched: Counts{Exposure: 240, Boots: 2}}, Stop},
		{"patched failed", State{Unpatched: un, Patched: Counts{Failures: 1, Exposure: 20, Boots: 1}}, Stop},
		{"patched boot failure", State{Unpatched: un, Patched: Counts{BootFailures: 1, Boots: 1}}, Stop},
		{"invalid", State{}, Stop},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dd := d
			if tt.name == "invalid" {
				dd.Runs = 0
			}
			if got, why := dd.Next(tt.s); got != tt.want {
				t.Errorf("Next = %v (%s), want %v", got, why, tt.want)
			}
		})
	}
}
