package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// bisectSim is one simulated machine: a linear history of candidates
// commits after a good base, the culprit somewhere in it, every commit from
// the culprit on failing at the same rate. Runs are runSec long and stop at
// the first failure; the first warmup seconds of every run cannot fail (the
// workload is still filling swap), but count as stress, as they do in the
// harness.
type bisectSim struct {
	mttf, runSec, warmup float64
	budget, overhead     float64 // the bad end's wall budget and each run's boot
	measureFailures      int
	candidates           int
	wrong                float64 // the target: chance of naming a wrong culprit
}

// run simulates one run of a commit; it returns the stress seconds and
// whether the run failed.
func (s bisectSim) run(rng *rand.Rand, bad bool) (float64, bool) {
	if !bad {
		return s.runSec, false
	}
	at := s.warmup + rng.ExpFloat64()*s.mttf
	if at >= s.runSec {
		return s.runSec, false
	}
	return at, true
}

// measure is bisect-run --measure: runs until measureFailures failures or
// until the next run would not fit in the budget.
func (s bisectSim) measure(rng *rand.Rand) BadEnd {
	var b BadEnd
	wall := 0.0
	for b.Failures < s.measureFailures && wall+s.overhead+s.runSec <= s.budget {
		sec, failed := s.run(rng, true)
		b.Exposure += sec
		wall += s.overhead + sec
		if failed {
			b.Failures++
		}
	}
	return b
}

// step is one sequential bisect step: bad at the first failure, good once
// the clean stress leaves at most miss of a chance that a bad commit would
// look this clean.
func (s bisectSim) step(rng *rand.Rand, bad bool, b BadEnd, miss float64) bool {
	clean := 0.0
	for b.MissChance(clean) > miss {
		sec, failed := s.run(rng, bad)
		if failed {
			return false
		}
		clean += sec
	}
	return true
}

// bisect runs one whole bisection. It returns whether it started (the bad
// end failed), whether it named the wrong culprit, and the wrong-culprit
// chance it states.
func (s bisectSim) bisect(rng *rand.Rand) (started, wrong bool, stated float64) {
	culprit := 1 + rng.IntN(s.candidates)
	b := s.measure(rng)
	if b.Failures == 0 {
		return false, false, 0
	}
	miss := StepMiss(s.wrong, BisectSteps(s.candidates))
	verdicts := []float64{miss} // the good end's check
	if !s.step(rng, false, b, miss) {
		panic("a good commit failed")
	}
	lo, hi := 0, s.candidates
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		verdicts = append(verdicts, miss)
		if s.step(rng, mid >= culprit, b, miss) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return true, hi != culprit, WrongCulprit(verdicts)
}

// The claim in the README and in make bisect's output: the chance that a
// bisection names the wrong culprit is at most the stated figure (MISS,
// default 0.05), whatever the race's mean time to failure, on fast and slow
// machines, with the bad end's measurement cut short by its budget.
func TestBisectWrongCulpritUnderStatedFigure(t *testing.T) {
	for _, mttf := range []float64{30, 120, 300} {
		for _, warmup := range []float64{0, 15} {
			s := bisectSim{mttf: mttf, runSec: 60, warmup: warmup, budget: 20 * 60, overhead: 15,
				measureFailures: 4, candidates: 10, wrong: 0.05}
			t.Run(fmt.Sprintf("mttf=%.0fs,warmup=%.0fs", mttf, warmup), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(11, uint64(mttf+warmup)))
				const n = 20000
				started, wrong, stated := 0, 0, 0.0
				for range n {
					st, w, f := s.bisect(rng)
					if !st {
						continue
					}
					started++
					if w {
						wrong++
					}
					stated += f
				}
				rate, mean := float64(wrong)/float64(started), stated/float64(started)
				// Three standard errors of the estimated rate above the
				// target would still be a failure of the claim.
				se := math.Sqrt(s.wrong * (1 - s.wrong) / float64(started))
				t.Logf("%d of %d bisections started; wrong culprit %.4f (stated %.4f, target %.2f)", started, n, rate, mean, s.wrong)
				if rate > mean || rate > s.wrong {
					t.Errorf("wrong culprit in %.4f of bisections, above the stated %.4f (target %.2f, se %.4f)", rate, mean, s.wrong, se)
				}
				if started < n/2 {
					t.Errorf("only %d of %d bisections found the bad end failing", started, n)
				}
			})
		}
	}
}

// One step on a bad commit: the chance of calling it good is at most the
// step's miss, averaged over the bad end's measurement, for any rate.
func TestBisectStepMissChance(t *testing.T) {
	for _, c := range []struct{ mttf, warmup float64 }{{30, 0}, {120, 0}, {300, 0}, {120, 30}, {300, 30}} {
		mttf := c.mttf
		s := bisectSim{mttf: mttf, runSec: 60, warmup: c.warmup, budget: 20 * 60, overhead: 15, measureFailures: 4}
		rng := rand.New(rand.NewPCG(5, uint64(mttf+c.warmup)))
		const n, miss = 40000, 0.05
		missed, started := 0, 0
		for range n {
			b := s.measure(rng)
			if b.Failures == 0 {
				continue
			}
			started++
			if s.step(rng, true, b, miss) {
				missed++
			}
		}
		rate := float64(missed) / float64(started)
		t.Logf("mttf %.0f s, warm-up %.0f s: a bad commit called good in %.4f of steps (miss %.2f)", mttf, c.warmup, rate, miss)
		if rate > miss {
			t.Errorf("mttf %.0f s: a bad commit was called good in %.4f of steps, above %.2f", mttf, rate, miss)
		}
	}
}

// The finding this replaces: runs per step from a 3-run point estimate of
// the bad end's rate, taken when it has failed, called bad commits good far
// more often than the 5% it claimed once the mean time to failure was long
// against the 60 s runs. This test shows the old rule fails the claim, so
// the claim is one a simulation can refute.
func TestBisectPointEstimateRuleMisses(t *testing.T) {
	s := bisectSim{mttf: 300, runSec: 60}
	rng := rand.New(rand.NewPCG(7, 7))
	const n, miss = 20000, 0.05
	missed, started := 0, 0
	for range n {
		failures, exposure := 0, 0.0
		for range 3 {
			sec, failed := s.run(rng, true)
			exposure += sec
			if failed {
				failures++
			}
		}
		if failures == 0 {
			continue // make bisect stopped: the bad end did not fail
		}
		started++
		perSec := float64(failures) / exposure
		runs := max(1, int(math.Ceil(math.Log(1/miss)/perSec/s.runSec-1e-9)))
		clean := true
		for range runs {
			if _, failed := s.run(rng, true); failed {
				clean = false
				break
			}
		}
		if clean {
			missed++
		}
	}
	rate := float64(missed) / float64(started)
	t.Logf("point-estimate rule: a bad commit called good in %.3f of steps (claimed %.2f)", rate, miss)
	if rate <= miss {
		t.Errorf("the point-estimate rule kept its claim (%.3f <= %.2f): the finding no longer reproduces", rate, miss)
	}
}

func TestBadEndBounds(t *testing.T) {
	b := BadEnd{Failures: 4, Exposure: 200}
	need := b.CleanNeeded(0.05)
	if got := b.MissChance(need); math.Abs(got-0.05) > 1e-12 {
		t.Errorf("MissChance(CleanNeeded(0.05)) = %v", got)
	}
	if b.MissChance(0) != 1 {
		t.Error("no stress should miss for sure")
	}
	if (BadEnd{}).MissChance(1e9) != 1 || !math.IsInf((BadEnd{}).CleanNeeded(0.05), 1) {
		t.Error("a bad end that never failed must never let a step be good")
	}
	// The point estimate would need 200/4*ln(20) = 150 s; the honest bound
	// needs more.
	if need <= 150 {
		t.Errorf("CleanNeeded = %.0f s, no more than the point estimate's 150 s", need)
	}
	for _, tt := range []struct{ candidates, steps int }{{1, 1}, {2, 2}, {8, 4}, {9, 5}, {10, 5}, {1000, 11}} {
		if got := BisectSteps(tt.candidates); got != tt.steps {
			t.Errorf("BisectSteps(%d) = %d, want %d", tt.candidates, got, tt.steps)
		}
	}
}
