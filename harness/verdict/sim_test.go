package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// The Monte-Carlo test plays whole comparisons: Design.decide picks the
// runs, jobs VMs at a time, each run stops at its first failure or at
// RunSeconds, a boot costs 5 s, Spent is the elapsed (simulated) clock,
// and Compare judges the result. It is the evidence that the design keeps
// its false-fix rate at alpha, so it must be able to fail: the bounds are
// asserted, never tuned to pass.

const (
	simRun  = 120.0 // RunSeconds
	simBoot = 5.0
)

// hazard draws a run's time to its first race failure, in seconds.
type hazard struct {
	name string
	draw func(r *rand.Rand) float64
}

func exponential(name string, mean float64) hazard {
	return hazard{name, func(r *rand.Rand) float64 { return r.ExpFloat64() * mean }}
}

// weibull has the given shape and mean: shape < 1 fails mostly early in a
// run, shape > 1 mostly late.
func weibull(name string, shape, mean float64) hazard {
	scale := mean / math.Gamma(1+1/shape)
	return hazard{name, func(r *rand.Rand) float64 { return scale * math.Pow(r.ExpFloat64(), 1/shape) }}
}

// warmUp never fails in a run's first 45 s, then at a constant rate.
func warmUp(name string) hazard {
	return hazard{name, func(r *rand.Rand) float64 { return 45 + r.ExpFloat64()*60 }}
}

func never() hazard {
	return hazard{"never", func(*rand.Rand) float64 { return math.Inf(1) }}
}

type flight struct {
	end     float64
	patched bool
	t       float64 // time to failure; >= simRun means a clean run
}

// simulate plays one comparison and returns Compare's result on it, with
// the final state.
func simulate(t testing.TB, p Plan, jobs int, un, pa hazard, rng *rand.Rand) (Result, State) {
	next := func(s State) Action { a, _ := p.Next(s); return a }
	budget := math.Inf(1)
	if d, ok := p.(Design); ok {
		// decide is Next without the words, and much faster.
		next = func(s State) Action { a, _ := d.decide(s); return a }
		budget = d.Budget
	}
	runSeconds := p.runSeconds()
	var s State
	fl := make([]flight, 0, jobs)
	clock := 0.0
	for {
		for len(fl) < jobs {
			s.Spent = clock
			a := next(s)
			if a == Wait {
				if len(fl) == 0 {
					t.Fatalf("Wait with nothing in flight: %+v", s)
				}
				break
			}
			if a == Stop {
				if len(fl) != 0 {
					t.Fatalf("Stop with %d runs in flight: %+v", len(fl), s)
				}
				if clock > budget+simBoot {
					t.Fatalf("spent %g s of a %g s budget", clock, budget)
				}
				return Compare(s.Unpatched, s.Patched, p.Options()), s
			}
			h, patched := un, false
			if a == RunPatched {
				h, patched = pa, true
				s.InFlightPatched++
			} else {
				s.InFlightUnpatched++
			}
			ft := h.draw(rng)
			fl = append(fl, flight{clock + simBoot + min(ft, runSeconds), patched, ft})
		}
		first := 0
		for i := range fl {
			if fl[i].end < fl[first].end {
				first = i
			}
		}
		f := fl[first]
		fl[first] = fl[len(fl)-1]
		fl = fl[:len(fl)-1]
		clock = f.end
		c := &s.Unpatched
		if f.patched {
			c = &s.Patched
			s.InFlightPatched--
		} else {
			s.InFlightUnpatched--
		}
		c.Boots++
		if f.t < runSeconds {
			c.Failures++
			c.Exposure += f.t
		} else {
			c.Exposure += runSeconds
		}
	}
}

// tally counts verdicts over trials, and what the trials cost.
type tally struct {
	n         int
	count     map[Verdict]int
	truncated int // stage 1 cut short by the budget with 0 < x1 < Target
	truncFix  int // ... and the verdict fixed
	patched   int // patched runs, all trials
	spent     float64
}

func (c tally) rate(v Verdict) float64 { return float64(c.count[v]) / float64(c.n) }

func play(t testing.TB, p Plan, jobs, trials int, un, pa hazard, seed uint64) tally {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	c := tally{n: trials, count: map[Verdict]int{}}
	target := 0
	if d, ok := p.(Design); ok {
		target = d.target()
	}
	for range trials {
		res, s := simulate(t, p, jobs, un, pa, rng)
		c.count[res.Verdict]++
		if x1 := s.Unpatched.Failures; x1 > 0 && x1 < target {
			c.truncated++
			if res.Verdict == Fixed {
				c.truncFix++
			}
		}
		c.patched += s.Patched.Boots
		c.spent += s.Spent
	}
	return c
}

const trials = 10000

// checkFalse asserts that identical kernels are called fixed or regressed
// in at most alpha of the trials, as measured: no allowance for noise.
func checkFalse(t *testing.T, p Plan, c tally) {
	t.Helper()
	if c.rate(Fixed) > p.alpha() {
		t.Errorf("false fixed %d of %d (%.4f) exceeds alpha %g", c.count[Fixed], c.n, c.rate(Fixed), p.alpha())
	}
	if c.rate(Regressed) > p.alpha() {
		t.Errorf("false regressed %d of %d (%.4f) exceeds alpha %g", c.count[Regressed], c.n, c.rate(Regressed), p.alpha())
	}
}

// TestSimulatedFalseVerdicts plays identical kernels against each other
// over hazard shapes that fail early in a run, late, or not before a
// warm-up, at rates from several failures per run to one in 25 runs.
func TestSimulatedFalseVerdicts(t *testing.T) {
	var shapes []hazard
	for _, mean := range []float64{30, 120, 600, 3000} {
		shapes = append(shapes,
			exponential(fmt.Sprintf("exp mean %g s", mean), mean),
			weibull(fmt.Sprintf("weibull 0.5 mean %g s", mean), 0.5, mean),
			weibull(fmt.Sprintf("weibull 2 mean %g s", mean), 2, mean))
	}
	shapes = append(shapes, warmUp("warm-up 45 s then exp mean 60 s"))
	d := Design{RunSeconds: simRun, Budget: 8 * 3600}
	for i, h := range shapes {
		for _, jobs := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/jobs=%d", h.name, jobs), func(t *testing.T) {
				t.Parallel()
				c := play(t, d, jobs, trials, h, h, uint64(100*i+jobs))
				t.Logf("%-24s jobs=%d: false fixed %.4f, false regressed %.4f (inconclusive %.3f, not-fixed %.3f, error %.4f)",
					h.name, jobs, c.rate(Fixed), c.rate(Regressed), c.rate(Inconclusive), c.rate(NotFixed), c.rate(Error))
				checkFalse(t, d, c)
			})
		}
	}
}

// TestSimulatedTruncatedStage1 makes the budget end stage 1 early in most
// trials, with a Target high enough that a fix from a truncated stage 1 is
// within reach of the other half of the budget.
func TestSimulatedTruncatedStage1(t *testing.T) {
	for i, c := range []struct {
		d Design
		h hazard
	}{
		{Design{RunSeconds: simRun, Budget: 6000, Target: 10}, exponential("exp mean 600 s", 600)},
		{Design{RunSeconds: simRun, Budget: 6000, Target: 10}, weibull("weibull 0.5 mean 3000 s", 0.5, 3000)},
		{Design{RunSeconds: simRun, Budget: 12000, Target: 10}, exponential("exp mean 1200 s", 1200)},
		{Design{RunSeconds: simRun, Budget: 4000, Target: 8}, exponential("exp mean 300 s", 300)},
	} {
		for _, jobs := range []int{1, 2} {
			// Budget is elapsed time: more VMs do as much in less.
			d := c.d
			d.Budget /= float64(jobs)
			t.Run(fmt.Sprintf("%s/target=%d/budget=%g/jobs=%d", c.h.name, d.Target, d.Budget, jobs), func(t *testing.T) {
				t.Parallel()
				r := play(t, d, jobs, trials, c.h, c.h, uint64(1000+10*i+jobs))
				t.Logf("%s, Target %d, budget %g s, jobs=%d: false fixed %.4f (%d of them from the %d truncated stages 1), false regressed %.4f",
					c.h.name, d.Target, d.Budget, jobs, r.rate(Fixed), r.truncFix, r.truncated, r.rate(Regressed))
				checkFalse(t, d, r)
				if r.truncFix == 0 {
					t.Errorf("no trial was fixed from a truncated stage 1: the scenario does not test that branch")
				}
			})
		}
	}
}

// TestSimulatedFixedDesign plays the fixed design, 10 runs per kernel, on
// identical kernels whose runs fail early, late, or at a constant rate.
func TestSimulatedFixedDesign(t *testing.T) {
	d := FixedDesign{Runs: 10, RunSeconds: simRun}
	for i, h := range []hazard{
		exponential("exp mean 600 s", 600),
		weibull("weibull 0.5 mean 600 s", 0.5, 600),
		weibull("weibull 2 mean 600 s", 2, 600),
	} {
		t.Run(h.name, func(t *testing.T) {
			t.Parallel()
			c := play(t, d, 2, trials, h, h, uint64(4000+i))
			t.Logf("fixed design, 10 runs, %s: false fixed %.4f, false regressed %.4f", h.name, c.rate(Fixed), c.rate(Regressed))
			checkFalse(t, d, c)
		})
	}
}

// TestSimulatedPower checks that a real fix is found: the unpatched kernel
// fails after 60 s on average, the patched one never.
func TestSimulatedPower(t *testing.T) {
	d := Design{RunSeconds: simRun, Budget: 24 * 3600}
	for _, jobs := range []int{1, 2} {
		t.Run(fmt.Sprintf("jobs=%d", jobs), func(t *testing.T) {
			t.Parallel()
			c := play(t, d, jobs, trials, exponential("exp mean 60 s", 60), never(), uint64(2000+jobs))
			t.Logf("fix found (exp mean 60 s vs never), jobs=%d: %.4f, %.1f patched runs and %.0f s spent on average",
				jobs, c.rate(Fixed), float64(c.patched)/float64(c.n), c.spent/float64(c.n))
			if c.rate(Fixed) < 0.95 {
				t.Errorf("fixed in %.4f of trials, want at least 0.95", c.rate(Fixed))
			}
		})
	}
}

// TestSimulatedMinReduction plays a patch that only cuts the rate 30-fold:
// asking for a 10-fold reduction with 95% confidence must call it fixed far
// less often than asking only for significance.
func TestSimulatedMinReduction(t *testing.T) {
	un, pa := exponential("exp mean 60 s", 60), exponential("exp mean 1800 s", 1800)
	plain := Design{RunSeconds: simRun, Budget: 24 * 3600}
	strict := plain
	strict.MinReduction = 10
	var rates [2]float64
	for i, d := range []Design{plain, strict} {
		c := play(t, d, 1, trials, un, pa, 3000)
		rates[i] = c.rate(Fixed)
		t.Logf("30-fold reduction, MinReduction %g: fixed %.4f, %.1f patched runs on average", d.MinReduction, c.rate(Fixed), float64(c.patched)/float64(c.n))
	}
	if !(rates[1] < rates[0]/3) {
		t.Errorf("fixed %.4f with MinReduction 10, %.4f without: want far fewer", rates[1], rates[0])
	}
}

// secondsAtRisk is a fixed design judged the naive way, on seconds at
// risk alone (Options without a design).
type secondsAtRisk struct{ FixedDesign }

func (d secondsAtRisk) Options() Options { return Options{Alpha: d.alpha()} }

// TestSimulationHasTeeth shows that the simulation catches an analysis that
// breaks alpha: judged on seconds at risk, identical kernels whose runs fail
// early are called regressed far more often than alpha, because the
// patched kernel's runs stop at its first, early, failure.
func TestSimulationHasTeeth(t *testing.T) {
	h := weibull("weibull 0.5 mean 120 s", 0.5, 120)
	c := play(t, secondsAtRisk{FixedDesign{Runs: 5, RunSeconds: simRun}}, 1, 2000, h, h, 5000)
	t.Logf("seconds at risk alone, fixed design, %s: false fixed %.4f, false regressed %.4f", h.name, c.rate(Fixed), c.rate(Regressed))
	if c.rate(Regressed) <= 2*DefaultAlpha {
		t.Errorf("false regressed %.4f: the simulation no longer shows the flaw it guards against", c.rate(Regressed))
	}
}
