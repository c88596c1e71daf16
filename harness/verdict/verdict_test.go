package verdict

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// judged is the part of a Result the table pins down exactly; Reason is
// checked by substrings.
type judged struct {
	Verdict            Verdict
	PValue             float64
	NeededCleanSeconds float64
	RatioUpper         *float64
	Notes              []string
}

func ptr(f float64) *float64 { return &f }

// c95 is the multiple of f1 at which x1 failures against a clean exposure
// reach p = 0.05 (and the ratio bound 1): (f1/(f1+e2))^x1 = 0.05.
func c95(x1 int) float64 { return math.Pow(0.05, -1/float64(x1)) - 1 }

// adaptive is the design the design-aware cases were collected under.
var adaptive = Design{RunSeconds: 120, Budget: 24 * 3600}

func TestCompare(t *testing.T) {
	tests := []struct {
		name      string
		unpatched Counts
		patched   Counts
		opt       Options
		want      judged
		reason    []string
	}{
		{
			// q = 480/720 = 2/3; P(X2 <= 0 | n=3) = (1/3)^3.
			name:      "fixed",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			want:      judged{Fixed, 1.0 / 27, 240 * c95(3), ptr(c95(3) * 240 / 480), nil},
			reason: []string{"unpatched failed on the race 3 times in 240 s at risk (45/h, 95% CI 9.3 to 132/h), patched 0 times in 480 s (0/h, 95% CI 0 to 28/h)",
				"p=0.037 (exact conditional binomial, one-sided, alpha 0.05)",
				"the patched rate is at most 1/1.2 of the unpatched rate (95%)", "fixes the race"},
		},
		{
			// One failure in 60 s against 600 s clean: p = 60/660.
			name:      "clean but too short",
			unpatched: Counts{Failures: 1, Exposure: 60},
			patched:   Counts{Exposure: 600},
			want:      judged{Inconclusive, 60.0 / 660, 1140, ptr(19.0 * 60 / 600), nil},
			reason:    []string{"p=0.091", "short of the 1140 s that would show a fix (p below 0.05)", "540 s more"},
		},
		{
			name:      "neither failed",
			unpatched: Counts{Exposure: 600},
			patched:   Counts{Exposure: 600},
			want:      judged{Verdict: Inconclusive, PValue: 1},
			reason:    []string{"not reproduced", "race-window instrumentation"},
		},
		{
			// n = 12, q = 2/3: P(X2 <= 2) = (1 + 12*2 + 66*4) / 3^12.
			name:      "fewer failures is still not fixed",
			unpatched: Counts{Failures: 10, Exposure: 300},
			patched:   Counts{Failures: 2, Exposure: 600},
			want:      judged{NotFixed, 289.0 / 531441, 0, ptr(cpRatio(10, 300, 2, 600)), nil},
			reason:    []string{"fails less often but still fails", "not fixed"},
		},
		{
			// n = 7, q = 1/2: P(X2 >= 6) = 8/128 is not significant, so
			// not regressed; the p reported is P(X2 <= 6) = 127/128.
			name:      "more failures but not significant",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: 6, Exposure: 300},
			want:      judged{NotFixed, 127.0 / 128, 0, ptr(cpRatio(1, 300, 6, 300)), nil},
			reason:    []string{"not significantly less often"},
		},
		{
			// n = 8, q = 1/2: P(X2 >= 7) = 9/256.
			name:      "significantly worse",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: 7, Exposure: 300},
			want:      judged{Regressed, 9.0 / 256, 0, ptr(cpRatio(1, 300, 7, 300)), nil},
			reason:    []string{"it fails on the race significantly more often (p=0.035)"},
		},
		{
			// Finding (rule 4): this was regressed with p=0.5. n = 1,
			// q = 1/2: P(X2 >= 1) = 1/2, not significant.
			name:      "patched failed once where unpatched never did",
			unpatched: Counts{Exposure: 360},
			patched:   Counts{Failures: 1, Exposure: 360},
			want:      judged{Verdict: Inconclusive, PValue: 0.5},
			reason:    []string{"p=0.5", "not reproduced on the unpatched kernel", "1 failure is not significantly more"},
		},
		{
			// n = 5, q = 300/3900: P(X2 >= 5) = q^5.
			name:      "patched failed significantly where unpatched never did",
			unpatched: Counts{Exposure: 3600},
			patched:   Counts{Failures: 5, Exposure: 300},
			want:      judged{Verdict: Regressed, PValue: math.Pow(300.0/3900, 5)},
			reason:    []string{"made things worse", "on the race significantly more often"},
		},
		{
			name:      "stricter alpha",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{Alpha: 0.01},
			want:      judged{Inconclusive, 1.0 / 27, 240 * (math.Pow(0.01, -1.0/3) - 1), ptr(c95(3) * 240 / 480), nil},
			reason:    []string{"alpha 0.01", "p below 0.01"},
		},
		{
			// Finding (rule 1): this was fixed with p=0.0042 and no word of
			// the boot failures. Fisher: P(X >= 2) drawing 3 of 6 boots,
			// 2 of them failed, = 4/20.
			name:      "patched boot failures are not a fix",
			unpatched: Counts{Failures: 3, Exposure: 23, Boots: 3},
			patched:   Counts{Exposure: 120, BootFailures: 2, Boots: 3},
			want: judged{Inconclusive, math.Pow(23.0/143, 3), 23 * c95(3), ptr(c95(3) * 23 / 120),
				[]string{"patched: 2 of 3 boots failed, not time at risk"}},
			reason: []string{"failed to boot 2 times where the unpatched never did (2 of 3 boots; p=0.2, one-sided Fisher exact test, not significant)",
				"other runs: patched: 2 of 3 boots failed"},
		},
		{
			// Rule 2: 5 of 10 boots against 0 of 10: C(15,5)/C(20,10).
			name:      "patched boot failures significantly more",
			unpatched: Counts{Failures: 3, Exposure: 23, Boots: 10},
			patched:   Counts{Exposure: 1200, BootFailures: 5, Boots: 10},
			want: judged{Regressed, 3003.0 / 184756, 0, ptr(c95(3) * 23 / 1200),
				[]string{"patched: 5 of 10 boots failed, not time at risk"}},
			reason: []string{"fails to boot significantly more often (5 of 10 boots against 0 of 10, one-sided Fisher exact test) (p=0.016)"},
		},
		{
			// Rule 2 for memory; the OOM run's 50 s count at risk.
			name:      "patched alone ran out of memory",
			unpatched: Counts{Failures: 3, Exposure: 23},
			patched:   Counts{Exposure: 600, OOMs: 1, OOMSeconds: 50},
			want: judged{Inconclusive, math.Pow(23.0/673, 3), 23 * c95(3), ptr(c95(3) * 23 / 650),
				[]string{"patched: 1 run ran out of memory; its 50 s of stress count as time at risk without a race failure"}},
			reason: []string{"the patched kernel ran out of memory in 1 run where the unpatched did not"},
		},
		{
			// Finding (rule 3): this was fixed with p = 20/620 = 0.032. With
			// the OOM time at risk, p = 220/820.
			name:      "unpatched OOM time is time at risk",
			unpatched: Counts{Failures: 1, Exposure: 20, OOMs: 2, OOMSeconds: 200},
			patched:   Counts{Exposure: 600},
			want: judged{Inconclusive, 220.0 / 820, 220 * 19, ptr(19 * 220.0 / 600),
				[]string{"unpatched: 2 runs ran out of memory; their 200 s of stress count as time at risk without a race failure"}},
			reason: []string{"p=0.27", "ran out of memory"},
		},
		{
			name:      "both ran out of memory",
			unpatched: Counts{Failures: 1, Exposure: 20, OOMs: 2, OOMSeconds: 200},
			patched:   Counts{Exposure: 600, OOMs: 1, OOMSeconds: 30},
			want: judged{Verdict: Error, PValue: 1,
				Notes: []string{"unpatched: 2 runs ran out of memory", "patched: 1 run ran out of memory"}},
			reason: []string{"both kernels ran out of memory (unpatched in 2 runs, patched in 1 run)",
				"lower --workers or --mib-per-worker, or raise --mem or --swap"},
		},
		{
			// Rule 5.
			name:      "weaker patched workload",
			unpatched: Counts{Failures: 3, Exposure: 240, WritebackPerSec: 1000},
			patched:   Counts{Exposure: 4800, WritebackPerSec: 200},
			want:      judged{Inconclusive, math.Pow(240.0/5040, 3), 240 * c95(3), ptr(c95(3) * 240 / 4800), nil},
			reason: []string{"the patched kernel wrote back 200 pages/s against 1000 for the unpatched: " +
				"the workload did not stress the patched kernel as hard, so its clean runs prove little"},
		},
		{
			// Demo 4 here: 26.3 pages/s over the unpatched kernel's short
			// failed runs, 12.9 over the patched kernel's full ones.
			name:      "patched workload a little weaker",
			unpatched: Counts{Failures: 3, Exposure: 240, WritebackPerSec: 1000},
			patched:   Counts{Exposure: 4800, WritebackPerSec: 490},
			want:      judged{Fixed, math.Pow(240.0/5040, 3), 240 * c95(3), ptr(c95(3) * 240 / 4800), nil},
		},
		{
			// A patch that stops writeback must never be fixed.
			name:      "patched stopped writing back",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 4800, NoWriteback: 2},
			want: judged{Inconclusive, math.Pow(240.0/5040, 3), 240 * c95(3), ptr(c95(3) * 240 / 4800),
				[]string{"patched: zswap wrote nothing back in 2 runs, which did not count since such a run never reaches the race"}},
			reason: []string{"zswap wrote nothing back in 2 runs of the patched kernel where the unpatched always did"},
		},
		{
			// Rule 4 for other failures: q = 480/5280, P(X2 >= 5 | n=5) = q^5.
			name:      "other failures significantly more",
			unpatched: Counts{Failures: 3, Exposure: 4800},
			patched:   Counts{Exposure: 480, OtherFailures: 5},
			want: judged{Regressed, math.Pow(480.0/5280, 5), 0, ptr(c95(3) * 4800 / 480),
				[]string{"patched: 5 runs failed other than by the race (another crash or hang, a WARNING or a failed health check); their time counts at risk, not as race failures"}},
			reason: []string{"it fails other than by the race significantly more often (5 runs in 480 s against 0 runs in 4800 s) (p=6.2e-06)"},
		},
		{
			// Rule 6: other failures that are not significant still let a
			// fix through, and the reason says so.
			name:      "other failures not significant",
			unpatched: Counts{Failures: 3, Exposure: 240, OtherFailures: 1},
			patched:   Counts{Exposure: 4800, OtherFailures: 1},
			want: judged{Fixed, math.Pow(240.0/5040, 3), 240 * c95(3), ptr(c95(3) * 240 / 4800), []string{
				"unpatched: 1 run failed other than by the race (another crash or hang, a WARNING or a failed health check); their time counts at risk, not as race failures",
				"patched: 1 run failed other than by the race (another crash or hang, a WARNING or a failed health check); their time counts at risk, not as race failures"}},
			reason: []string{"fixes the race; other runs: unpatched: 1 run failed other than by the race"},
		},
		{
			// The ratio bound 0.857 misses 1/10; it reaches it at
			// 10 * c95(3) * 240 s of clean time.
			name:      "reduction too small to show",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{MinReduction: 10},
			want:      judged{Inconclusive, 1.0 / 27, 10 * 240 * c95(3), ptr(c95(3) * 240 / 480), nil},
			reason:    []string{"p below 0.05 and a rate ratio bound of at most 1/10", "3635 s more"},
		},
		{
			name:      "reduction shown",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 4200},
			opt:       Options{MinReduction: 10},
			want:      judged{Fixed, math.Pow(240.0/4440, 3), 10 * 240 * c95(3), ptr(c95(3) * 240 / 4200), nil},
			reason:    []string{"at most 1/10 of the unpatched rate (95%)"},
		},
		{
			// Rule 1: every run counts and is said.
			name:      "runs that did not count",
			unpatched: Counts{Failures: 3, Exposure: 240, BootFailures: 1, Boots: 6, InfraErrors: 1, NoWriteback: 1},
			patched:   Counts{Exposure: 4800, Boots: 42, InfraErrors: 2},
			want: judged{Fixed, math.Pow(240.0/5040, 3), 240 * c95(3), ptr(c95(3) * 240 / 4800), []string{
				"unpatched: 1 of 6 boots failed, not time at risk",
				"unpatched: 1 run hit a host (infrastructure) error and did not count",
				"unpatched: zswap wrote nothing back in 1 run, which did not count since such a run never reaches the race",
				"patched: 2 runs hit a host (infrastructure) error and did not count",
			}},
			reason: []string{"fixes the race; other runs: unpatched: 1 of 6 boots failed", "; patched: 2 runs hit a host"},
		},
		{
			// Design-aware: the 3 failed runs count as 3 full runs of
			// 120 s, so f1 = 23 + 360 s and p = (383/1103)^3.
			name:      "adaptive design counts failed runs in full",
			unpatched: Counts{Failures: 3, Exposure: 23, Boots: 3},
			patched:   Counts{Exposure: 720, Boots: 6},
			opt:       adaptive.Options(),
			want:      judged{Fixed, math.Pow(383.0/1103, 3), 383 * c95(3), ptr(c95(3) * 383 / 720), nil},
			reason:    []string{"exact conditional binomial, failed runs counted in full, one-sided, alpha 0.05"},
		},
		{
			name:      "adaptive design: one clean run short",
			unpatched: Counts{Failures: 3, Exposure: 23, Boots: 3},
			patched:   Counts{Exposure: 600, Boots: 5},
			opt:       adaptive.Options(),
			want:      judged{Inconclusive, math.Pow(383.0/983, 3), 383 * c95(3), ptr(c95(3) * 383 / 600), nil},
			reason:    []string{"short of the 657 s"},
		},
		{
			// A run in flight took stage 1 past its target: the level is
			// alpha^(4/3), so the target stays c95(3) * f1 with
			// f1 = 480 + 4 * 120. p = (960/2520)^4 = 0.021 is below alpha
			// but not below 0.018.
			name:      "adaptive design past its target",
			unpatched: Counts{Failures: 4, Exposure: 480},
			patched:   Counts{Exposure: 1560},
			opt:       adaptive.Options(),
			want:      judged{Inconclusive, math.Pow(960.0/2520, 4), 960 * c95(3), ptr(c95(4) * 960 / 1560), nil},
			reason:    []string{"p below 0.018, the level the adaptive design set after 4 times"},
		},
		{
			name:      "adaptive design past its target, reached",
			unpatched: Counts{Failures: 4, Exposure: 480},
			patched:   Counts{Exposure: 1680},
			opt:       adaptive.Options(),
			want:      judged{Fixed, math.Pow(960.0/2640, 4), 960 * c95(3), ptr(c95(4) * 960 / 1680), nil},
		},
		{
			// On seconds at risk, a patched failure 10 s into its first run
			// against 1200 s clean is significant: q = 10/1210.
			name:      "early patched failure",
			unpatched: Counts{Exposure: 1200},
			patched:   Counts{Failures: 1, Exposure: 10},
			want:      judged{Verdict: Regressed, PValue: 10.0 / 1210},
		},
		{
			// With the runs' length known, the failed patched run counts in
			// full for "patched fails more": q = 130/1330, not significant.
			name:      "adaptive design: early patched failure",
			unpatched: Counts{Exposure: 1200},
			patched:   Counts{Failures: 1, Exposure: 10},
			opt:       adaptive.Options(),
			want:      judged{Verdict: Inconclusive, PValue: 130.0 / 1330},
		},
		{
			name:      "patched not run: race not reproduced",
			unpatched: Counts{Exposure: 3600, Boots: 30},
			want:      judged{Verdict: Inconclusive, PValue: 1},
			reason:    []string{"the patched kernel was not run: the race was not reproduced"},
		},
		{
			name:      "patched not run: budget spent",
			unpatched: Counts{Failures: 2, Exposure: 3600, Boots: 30},
			opt:       adaptive.Options(),
			want:      judged{Verdict: Inconclusive, PValue: 1, NeededCleanSeconds: 3840 * c95(2)},
			reason:    []string{"the patched kernel was not run, so the patch cannot be judged yet", "more than 13333 s"},
		},
		{
			name:      "patched only boot failures",
			unpatched: Counts{Failures: 3, Exposure: 240, Boots: 3},
			patched:   Counts{BootFailures: 3, Boots: 3},
			want: judged{Verdict: Error, PValue: 1,
				Notes: []string{"patched: 3 of 3 boots failed, not time at risk"}},
			reason: []string{"patched has no usable stress time (3 boot failures); see the run details", "rerun"},
		},
		{
			name:      "both ran nothing",
			unpatched: Counts{InfraErrors: 1, BootFailures: 1, Boots: 4, NoWriteback: 2},
			patched:   Counts{},
			want: judged{Verdict: Error, PValue: 1, Notes: []string{
				"unpatched: 1 of 4 boots failed, not time at risk",
				"unpatched: 1 run hit a host (infrastructure) error and did not count",
				"unpatched: zswap wrote nothing back in 2 runs, which did not count since such a run never reaches the race",
			}},
			reason: []string{
				"unpatched has no usable stress time (1 boot failure, 1 infra error, 2 runs without zswap writeback)",
				" and patched ran no stress (no runs recorded)",
			},
		},
		{
			name:      "failure without exposure",
			unpatched: Counts{Exposure: 300},
			patched:   Counts{Failures: 1},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"patched recorded 1 failure but no stress time"},
		},
		{
			name:      "invalid exposure",
			unpatched: Counts{Failures: 1, Exposure: math.NaN()},
			patched:   Counts{Exposure: 300},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"unpatched counts are invalid", "harness bug"},
		},
		{
			name:      "negative failures",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: -1, Exposure: 300},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"patched counts are invalid"},
		},
		{
			name:      "more boot failures than boots",
			unpatched: Counts{Failures: 1, Exposure: 300, BootFailures: 2},
			patched:   Counts{Exposure: 300},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"unpatched counts are invalid"},
		},
		{
			name:      "OOM time without OOMs",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Exposure: 300, OOMSeconds: 5},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"patched counts are invalid"},
		},
		{
			name:      "alpha out of range",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{Alpha: 1.5},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"significance level 1.5 is out of range"},
		},
		{
			name:      "reduction out of range",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{MinReduction: 0.5},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"minimum reduction 0.5 is out of range"},
		},
		{
			name:      "options disagree with the design",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{Alpha: 0.01, Design: adaptive},
			want:      judged{Verdict: Error, PValue: 1},
			reason:    []string{"disagree with the design's", "harness bug"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(tt.unpatched, tt.patched, tt.opt)
			proj := judged{got.Verdict, got.PValue, got.NeededCleanSeconds, got.RatioUpper, got.Notes}
			if diff := cmp.Diff(tt.want, proj, cmpopts.EquateApprox(1e-9, 0)); diff != "" {
				t.Errorf("Compare(%+v, %+v) mismatch (-want +got):\n%s\nreason: %s", tt.unpatched, tt.patched, diff, got.Reason)
			}
			for _, s := range tt.reason {
				if !strings.Contains(got.Reason, s) {
					t.Errorf("Reason %q does not contain %q", got.Reason, s)
				}
			}
			if strings.Contains(got.Reason, "\n") {
				t.Errorf("Reason spans lines: %q", got.Reason)
			}
			if got.PValue < 0 || got.PValue > 1 {
				t.Errorf("PValue %g is out of [0, 1]", got.PValue)
			}
		})
	}
}

// cpRatio is the ratio bound from the Clopper-Pearson bound, which
// TestClopperPearson checks against published values.
func cpRatio(x1 int, e1 float64, x2 int, e2 float64) float64 {
	pu := clopperPearsonUpper(x2, x1+x2, 0.95)
	return pu / (1 - pu) * e1 / e2
}

// TestReasonMentionsEveryRun checks rule 1 across verdicts: whatever the
// verdict, every kind of run set apart on either side is named.
func TestReasonMentionsEveryRun(t *testing.T) {
	extra := Counts{BootFailures: 1, Boots: 5, InfraErrors: 1, NoWriteback: 1, OtherFailures: 1}
	words := []string{"boots failed", "infrastructure", "wrote nothing back", "other than by the race"}
	for _, c := range []struct {
		name   string
		un, pa Counts
	}{
		{"fixed", Counts{Failures: 3, Exposure: 240}, Counts{Exposure: 4800}},
		{"not fixed", Counts{Failures: 3, Exposure: 240}, Counts{Failures: 1, Exposure: 4800}},
		{"not reproduced", Counts{Exposure: 240}, Counts{Exposure: 4800}},
	} {
		for _, side := range []string{"unpatched", "patched"} {
			un, pa := c.un, c.pa
			add := func(x *Counts) {
				x.BootFailures, x.Boots, x.InfraErrors, x.NoWriteback, x.OtherFailures =
					extra.BootFailures, extra.Boots, extra.InfraErrors, extra.NoWriteback, extra.OtherFailures
			}
			if side == "unpatched" {
				add(&un)
			} else {
				add(&pa)
			}
			got := Compare(un, pa, Options{})
			for _, w := range words {
				if !strings.Contains(got.Reason, side+": ") || !strings.Contains(got.Reason, w) {
					t.Errorf("%s, %s side: reason does not name %q: %s", c.name, side, w, got.Reason)
				}
			}
			if len(got.Notes) != len(words) {
				t.Errorf("%s, %s side: %d notes, want %d: %q", c.name, side, len(got.Notes), len(words), got.Notes)
			}
		}
	}
}

func TestRates(t *testing.T) {
	got := Compare(Counts{Failures: 3, Exposure: 3600}, Counts{Exposure: 7000, OOMs: 1, OOMSeconds: 200}, Options{})
	// Garwood 95% for 3 events: (0.619, 8.767); for 0 events: (0, 3.689).
	// The patched OOM run's 200 s are at risk: 7200 s in all.
	want := []any{Rate{PerHour: 3, Low: 0.6186, High: 8.7673}, Rate{PerHour: 0, Low: 0, High: 3.6889 / 2}, 3600.0, 7200.0}
	if diff := cmp.Diff(want, []any{got.UnpatchedRate, got.PatchedRate, got.UnpatchedAtRisk, got.PatchedAtRisk}, cmpopts.EquateApprox(2e-4, 0)); diff != "" {
		t.Errorf("rates mismatch (-want +got):\n%s", diff)
	}
	got = Compare(Counts{Failures: 3, Exposure: 240}, Counts{}, Options{Alpha: 2})
	if got.UnpatchedRate != (Rate{}) || got.PatchedRate != (Rate{}) || got.UnpatchedAtRisk != 0 || got.RatioUpper != nil {
		t.Errorf("error result has rates %+v, %+v, %g s at risk, ratio %v; want none", got.UnpatchedRate, got.PatchedRate, got.UnpatchedAtRisk, got.RatioUpper)
	}
}

// TestNeededCleanSeconds checks that the needed exposure is where the test
// itself turns: just above it is fixed, just below it is not, with and
// without the design's full-run counting and MinReduction.
func TestNeededCleanSeconds(t *testing.T) {
	for _, c := range []struct {
		x1  int
		e1  float64
		opt Options
	}{
		{1, 60, Options{}}, {3, 240, Options{}}, {5, 1000, Options{Alpha: 0.01}}, {20, 30, Options{}},
		{3, 240, Options{MinReduction: 4}}, {3, 23, adaptive.Options()}, {5, 700, adaptive.Options()},
		{2, 700, adaptive.Options()}, {3, 500, Design{RunSeconds: 60, Budget: 1e5, MinReduction: 10}.Options()},
	} {
		un := Counts{Failures: c.x1, Exposure: c.e1}
		need := Compare(un, Counts{Exposure: 1}, c.opt).NeededCleanSeconds
		if v := Compare(un, Counts{Exposure: need * (1 + 1e-9)}, c.opt).Verdict; v != Fixed {
			t.Errorf("%+v: just above needed %g s: %s, want fixed", c, need, v)
		}
		if v := Compare(un, Counts{Exposure: need * (1 - 1e-9)}, c.opt).Verdict; v != Inconclusive {
			t.Errorf("%+v: just below needed %g s: %s, want inconclusive", c, need, v)
		}
	}
	// 1 failure in 60 s needs more than 19 * 60 s clean, since p = 60/(60+e2).
	if got := Compare(Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 60}, Options{}).NeededCleanSeconds; !near(got, 19*60) {
		t.Errorf("NeededCleanSeconds = %g, want %g", got, 19.0*60)
	}
}

func TestMethod(t *testing.T) {
	for _, c := range []struct {
		opt  Options
		want string
	}{
		{Options{}, "exact conditional binomial on seconds at risk, one-sided, alpha 0.05"},
		{adaptive.Options(), "two-stage inverse sampling (unpatched until 3 race failures, then a fixed clean patched exposure), exact conditional binomial with failed runs counted in full, one-sided alpha 0.05"},
		{FixedDesign{Runs: 3, RunSeconds: 120, MinReduction: 10}.Options(), "fixed design (3 runs per kernel, patched runs skipped once a fix is ruled out), exact conditional binomial with failed runs counted in full, one-sided alpha 0.05, fixed only if the 95% upper bound on the rate ratio is at most 1/10"},
	} {
		if got := Compare(Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 60}, c.opt).Method; got != c.want {
			t.Errorf("Method = %q, want %q", got, c.want)
		}
	}
}

func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// A patched kernel that warns in each of its 5 runs, against 5 clean
// unpatched runs (found end to end by TestPatchThatWarnsIsRegressed): the
// warning runs went on to their end, so they must not be counted in full
// a second time, or 5 against 0 in equal time would not be significant.
func TestWarningsInEveryRunAreRegressed(t *testing.T) {
	opt := FixedDesign{Runs: 5, RunSeconds: 60}.Options()
	un := Counts{Exposure: 300, Boots: 5, WritebackPerSec: 15}
	pa := Counts{Exposure: 300, OtherFailures: 5, RanOn: 5, Boots: 5, WritebackPerSec: 15}
	if res := Compare(un, pa, opt); res.Verdict != Regressed || res.PValue >= 0.05 {
		t.Errorf("verdict %s p=%g (%s), want regressed", res.Verdict, res.PValue, res.Reason)
	}
	// Runs that stopped at their failure are counted in full: then 5
	// against 0 is not significant.
	pa.RanOn = 0
	if res := Compare(un, pa, opt); res.Verdict == Regressed {
		t.Errorf("failures that stopped their runs: verdict %s p=%g, want not regressed", res.Verdict, res.PValue)
	}
	pa.RanOn = 6
	if res := Compare(un, pa, opt); res.Verdict != Error {
		t.Errorf("more runs went on than failed: verdict %s, want error", res.Verdict)
	}
}
