package verdict

import (
	"math"
	"strings"
	"testing"
)

func TestCompare(t *testing.T) {
	tests := []struct {
		name      string
		unpatched Counts
		patched   Counts
		opt       Options
		want      Verdict
		// wantP is the p-value computed by hand from the binomial sum.
		wantP  float64
		needed float64 // expected NeededCleanSeconds
		reason []string
	}{
		{
			// q = 480/720 = 2/3; P(X2 <= 0 | n=3) = (1/3)^3.
			name:      "fixed",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Failures: 0, Exposure: 480},
			want:      Fixed,
			wantP:     1.0 / 27,
			needed:    240 * (math.Pow(0.05, -1.0/3) - 1),
			reason:    []string{"unpatched failed 3 times in 240 s, patched 0 times in 480 s", "p=0.037", "exact conditional binomial", "fixes the race"},
		},
		{
			// One failure in 60 s against 600 s clean: p = 60/660.
			name:      "clean but too short",
			unpatched: Counts{Failures: 1, Exposure: 60},
			patched:   Counts{Failures: 0, Exposure: 600},
			want:      Inconclusive,
			wantP:     60.0 / 660,
			needed:    1140,
			reason:    []string{"p=0.091", "more than 1140 s in all (540 s more)"},
		},
		{
			name:      "neither failed",
			unpatched: Counts{Failures: 0, Exposure: 600},
			patched:   Counts{Failures: 0, Exposure: 600},
			want:      Inconclusive,
			wantP:     1,
			reason:    []string{"not reproduced", "race-window instrumentation"},
		},
		{
			// n = 12, q = 2/3: P(X2 <= 2) = (1 + 12*2 + 66*4) / 3^12.
			name:      "fewer failures is still not fixed",
			unpatched: Counts{Failures: 10, Exposure: 300},
			patched:   Counts{Failures: 2, Exposure: 600},
			want:      NotFixed,
			wantP:     289.0 / 531441,
			reason:    []string{"fails less often but still fails", "not fixed"},
		},
		{
			// n = 4, q = 1/2: P(X2 <= 2) = (1 + 4 + 6) / 16.
			name:      "same rate",
			unpatched: Counts{Failures: 2, Exposure: 300},
			patched:   Counts{Failures: 2, Exposure: 300},
			want:      NotFixed,
			wantP:     11.0 / 16,
			reason:    []string{"not significantly less often"},
		},
		{
			// n = 7, q = 1/2: P(X2 >= 6) = (7 + 1) / 128 = 0.0625, not significant;
			// the reported p is P(X2 <= 6) = 127/128.
			name:      "more failures but not significant",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: 6, Exposure: 300},
			want:      NotFixed,
			wantP:     127.0 / 128,
		},
		{
			// n = 8, q = 1/2: P(X2 >= 7) = (8 + 1) / 256.
			name:      "significantly worse",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: 7, Exposure: 300},
			want:      Regressed,
			wantP:     9.0 / 256,
			reason:    []string{"p=0.035", "significantly more often"},
		},
		{
			// n = 2, q = 1/3: P(X2 >= 2) = 1/9; regressed by rule, not by significance.
			name:      "patched fails, unpatched never did",
			unpatched: Counts{Failures: 0, Exposure: 600},
			patched:   Counts{Failures: 2, Exposure: 300},
			want:      Regressed,
			wantP:     1.0 / 9,
			reason:    []string{"unpatched one never did"},
		},
		{
			// With alpha 0.01 the fixed case above is no longer significant.
			name:      "stricter alpha",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Failures: 0, Exposure: 480},
			opt:       Options{Alpha: 0.01},
			want:      Inconclusive,
			wantP:     1.0 / 27,
			needed:    240 * (math.Pow(0.01, -1.0/3) - 1),
			reason:    []string{"alpha 0.01"},
		},
		{
			name:      "patched only boot failures",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{BootFailures: 3},
			want:      Error,
			wantP:     1,
			reason:    []string{"patched has no usable stress time (3 boot failures); see the run details", "rerun"},
		},
		{
			name:      "both ran nothing",
			unpatched: Counts{InfraErrors: 1, BootFailures: 1, NoWriteback: 2, OOMs: 1},
			patched:   Counts{},
			want:      Error,
			wantP:     1,
			reason: []string{
				"unpatched has no usable stress time (1 boot failure, 1 infra error, 2 runs without zswap writeback, 1 run out of memory)",
				" and patched ran no stress (no runs recorded)",
			},
		},
		{
			name:      "failure without exposure",
			unpatched: Counts{Failures: 0, Exposure: 300},
			patched:   Counts{Failures: 1, Exposure: 0},
			want:      Error,
			wantP:     1,
			reason:    []string{"patched recorded 1 failure but no stress time"},
		},
		{
			name:      "invalid exposure",
			unpatched: Counts{Failures: 1, Exposure: math.NaN()},
			patched:   Counts{Exposure: 300},
			want:      Error,
			wantP:     1,
			reason:    []string{"harness bug"},
		},
		{
			name:      "negative failures",
			unpatched: Counts{Failures: 1, Exposure: 300},
			patched:   Counts{Failures: -1, Exposure: 300},
			want:      Error,
			wantP:     1,
			reason:    []string{"patched counts are invalid"},
		},
		{
			name:      "alpha out of range",
			unpatched: Counts{Failures: 3, Exposure: 240},
			patched:   Counts{Exposure: 480},
			opt:       Options{Alpha: 1.5},
			want:      Error,
			wantP:     1,
			reason:    []string{"significance level 1.5 is out of range"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Compare(tt.unpatched, tt.patched, tt.opt)
			if got.Verdict != tt.want {
				t.Errorf("Verdict = %q, want %q (reason: %s)", got.Verdict, tt.want, got.Reason)
			}
			if !near(got.PValue, tt.wantP) {
				t.Errorf("PValue = %.12g, want %.12g", got.PValue, tt.wantP)
			}
			if !near(got.NeededCleanSeconds, tt.needed) {
				t.Errorf("NeededCleanSeconds = %g, want %g", got.NeededCleanSeconds, tt.needed)
			}
			for _, s := range tt.reason {
				if !strings.Contains(got.Reason, s) {
					t.Errorf("Reason %q does not contain %q", got.Reason, s)
				}
			}
			if strings.Contains(got.Reason, "\n") {
				t.Errorf("Reason spans lines: %q", got.Reason)
			}
		})
	}
}

func TestRates(t *testing.T) {
	got := Compare(Counts{Failures: 3, Exposure: 240}, Counts{Failures: 1, Exposure: 7200}, Options{})
	if !near(got.RateUnpatched, 45) || !near(got.RatePatched, 0.5) {
		t.Errorf("rates = %g, %g per hour; want 45, 0.5", got.RateUnpatched, got.RatePatched)
	}
	got = Compare(Counts{Failures: 3, Exposure: 240}, Counts{}, Options{})
	if got.RateUnpatched != 0 || got.RatePatched != 0 {
		t.Errorf("error result has rates %g, %g; want zero", got.RateUnpatched, got.RatePatched)
	}
}

// TestNeededCleanSeconds checks that the needed exposure is where the test
// itself crosses alpha: 1 failure in 60 s needs a clean patched run longer
// than 19 * 60 s at alpha 0.05, since p = 60 / (60 + e2).
func TestNeededCleanSeconds(t *testing.T) {
	got := Compare(Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 60}, Options{})
	if !near(got.NeededCleanSeconds, 19*60) {
		t.Fatalf("NeededCleanSeconds = %g, want %g", got.NeededCleanSeconds, 19.0*60)
	}
	for _, c := range []struct {
		x1    int
		e1    float64
		alpha float64
	}{{1, 60, 0.05}, {3, 240, 0.05}, {5, 1000, 0.01}, {20, 30, 0.05}} {
		opt := Options{Alpha: c.alpha}
		need := Compare(Counts{Failures: c.x1, Exposure: c.e1}, Counts{Exposure: 1}, opt).NeededCleanSeconds
		if p := Compare(Counts{Failures: c.x1, Exposure: c.e1}, Counts{Exposure: need}, opt).PValue; !near(p, c.alpha) {
			t.Errorf("%+v: p at needed %g s = %g, want alpha", c, need, p)
		}
		if v := Compare(Counts{Failures: c.x1, Exposure: c.e1}, Counts{Exposure: need * 1.001}, opt).Verdict; v != Fixed {
			t.Errorf("%+v: just above needed %g s: %s, want fixed", c, need, v)
		}
		if v := Compare(Counts{Failures: c.x1, Exposure: c.e1}, Counts{Exposure: need * 0.999}, opt).Verdict; v != Inconclusive {
			t.Errorf("%+v: just below needed %g s: %s, want inconclusive", c, need, v)
		}
	}
}

func TestDecided(t *testing.T) {
	tests := []struct {
		name      string
		unpatched Counts
		patched   Counts
		planned   float64
		opt       Options
		want      bool
	}{
		{"both failed", Counts{Failures: 2, Exposure: 300}, Counts{Failures: 1, Exposure: 100}, 600, Options{}, true},
		{"patched failed, unpatched never", Counts{Exposure: 600}, Counts{Failures: 1, Exposure: 100}, 600, Options{}, true},
		{"clean and already significant", Counts{Failures: 3, Exposure: 240}, Counts{Exposure: 480}, 600, Options{}, false},
		{"clean and not yet significant", Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 100}, 600, Options{}, false},
		{"nothing failed yet", Counts{Exposure: 600}, Counts{Exposure: 100}, 600, Options{}, false},
		{"plan used up", Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 600}, 600, Options{}, true},
		{"plan overrun", Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 601}, 600, Options{}, true},
		{"no patched exposure yet", Counts{Failures: 1, Exposure: 60}, Counts{}, 600, Options{}, false},
		{"patched failed with no exposure", Counts{Failures: 1, Exposure: 60}, Counts{Failures: 1}, 600, Options{}, false},
		{"empty plan", Counts{}, Counts{}, 0, Options{}, true},
		{"unpatched unusable", Counts{BootFailures: 3}, Counts{Failures: 1, Exposure: 100}, 600, Options{}, false},
		{"invalid options", Counts{Failures: 1, Exposure: 60}, Counts{Exposure: 10}, 600, Options{Alpha: -1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decided(tt.unpatched, tt.patched, tt.planned, tt.opt); got != tt.want {
				t.Errorf("Decided = %v, want %v (verdict now: %+v)", got, tt.want, Compare(tt.unpatched, tt.patched, tt.opt))
			}
		})
	}
}

// TestBinomial checks the tails against sums of binomial terms computed
// independently, and that the two tails add up.
func TestBinomial(t *testing.T) {
	for _, n := range []int{1, 2, 5, 12, 40, 200} {
		for _, p := range []float64{0.01, 1.0 / 3, 0.5, 0.9} {
			for k := 0; k <= n; k++ {
				if got, want := binomCDF(k, n, p), binomCDFByHand(k, n, p); !near(got, want) {
					t.Errorf("binomCDF(%d, %d, %g) = %g, want %g", k, n, p, got, want)
				}
				if k < n {
					if sum := binomCDF(k, n, p) + binomSF(k+1, n, p); !near(sum, 1) {
						t.Errorf("CDF(%d)+SF(%d) for n=%d p=%g = %g, want 1", k, k+1, n, p, sum)
					}
				}
			}
		}
	}
	// Tiny tails must not be lost to cancellation.
	if got, want := binomSF(200, 200, 0.01), math.Pow(0.01, 200); !near(got, want) {
		t.Errorf("binomSF(200, 200, 0.01) = %g, want %g", got, want)
	}
}

// binomCDFByHand sums C(n,i) p^i (1-p)^(n-i) with the binomial coefficient
// built up multiplicatively.
func binomCDFByHand(k, n int, p float64) float64 {
	sum, c := 0.0, 1.0
	for i := 0; i <= k; i++ {
		sum += c * math.Pow(p, float64(i)) * math.Pow(1-p, float64(n-i))
		c = c * float64(n-i) / float64(i+1)
	}
	return sum
}

func near(a, b float64) bool {
	if a == b {
		return true
	}
	return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}
