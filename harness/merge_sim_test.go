package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"zswaprace/harness/verdict"
)

// The pooling of adaptive shards is not the two-stage design's exact test:
// each shard stopped by its own rule, and merge judges the union as one
// fixed design (pooledPlan). This seeded Monte-Carlo plays identical
// kernels on K shards, each driven by verdict.Design as compare drives it,
// pools their counts as merge does, and asserts that false fixed and false
// regressed stay at or under alpha, as measured: no allowance for noise.

const (
	poolSimRun  = 120.0
	poolSimBoot = 5.0
)

// simShard plays one adaptive comparison of identical kernels whose runs
// fail after draw() seconds, jobs VMs at a time, and returns its counts.
func simShard(t *testing.T, d verdict.Design, jobs int, draw func() float64) (un, pa verdict.Counts) {
	type flight struct {
		end, ft float64
		patched bool
	}
	var s verdict.State
	var fl []flight
	clock := 0.0
	for {
		for len(fl) < jobs {
			s.Spent = clock
			a, _ := d.Next(s)
			if a == verdict.Wait {
				break
			}
			if a == verdict.Stop {
				return s.Unpatched, s.Patched
			}
			patched := a == verdict.RunPatched
			if patched {
				s.InFlightPatched++
			} else {
				s.InFlightUnpatched++
			}
			ft := draw()
			fl = append(fl, flight{clock + poolSimBoot + min(ft, poolSimRun), ft, patched})
		}
		if len(fl) == 0 {
			t.Fatalf("the design waits with nothing in flight: %+v", s)
		}
		first := 0
		for i := range fl {
			if fl[i].end < fl[first].end {
				first = i
			}
		}
		f := fl[first]
		fl = append(fl[:first], fl[first+1:]...)
		clock = f.end
		c := &s.Unpatched
		if f.patched {
			c, s.InFlightPatched = &s.Patched, s.InFlightPatched-1
		} else {
			s.InFlightUnpatched--
		}
		c.Boots++
		if f.ft < poolSimRun {
			c.Failures++
			c.Exposure += f.ft
		} else {
			c.Exposure += poolSimRun
		}
	}
}

func addCounts(a, b verdict.Counts) verdict.Counts {
	a.Failures += b.Failures
	a.Exposure += b.Exposure
	a.Boots += b.Boots
	return a
}

// TestPooledAdaptiveShardsFalseVerdicts: 2 and 4 shards, 1 and 2 VMs per
// shard, runs that fail at a constant rate or mostly early, with budgets
// that let stage 2 finish and budgets that cut it short (the case where a
// shard alone is inconclusive but the pool may not be).
func TestPooledAdaptiveShardsFalseVerdicts(t *testing.T) {
	if testing.Short() {
		t.Skip("simulation")
	}
	type hazard struct {
		name string
		draw func(r *rand.Rand) float64
	}
	weibull := func(shape, mean float64) func(r *rand.Rand) float64 {
		scale := mean / math.Gamma(1+1/shape)
		return func(r *rand.Rand) float64 { return scale * math.Pow(r.ExpFloat64(), 1/shape) }
	}
	exp := func(mean float64) func(r *rand.Rand) float64 {
		return func(r *rand.Rand) float64 { return r.ExpFloat64() * mean }
	}
	// A rare race (mean 3000 s against 120-s runs) with a short budget is
	// the dangerous case: stage 1 is cut short, each shard alone is
	// inconclusive, and only the pool can call a fix.
	cases := []struct {
		h      hazard
		budget float64
	}{
		{hazard{"exp mean 600 s", exp(600)}, 8 * 3600},
		{hazard{"exp mean 600 s", exp(600)}, 3600},
		{hazard{"weibull 0.5 mean 600 s", weibull(0.5, 600)}, 3600},
		{hazard{"exp mean 3000 s", exp(3000)}, 3600},
		{hazard{"exp mean 3000 s", exp(3000)}, 6000},
		{hazard{"exp mean 3000 s", exp(3000)}, 12000},
	}
	const trials = 2000
	seed := uint64(0)
	for _, c := range cases {
		h, budget := c.h, c.budget
		for _, k := range []int{2, 4} {
			for _, jobs := range []int{1, 2} {
				seed++
				name := fmt.Sprintf("%s/budget=%gs/shards=%d/jobs=%d", h.name, budget, k, jobs)
				rng := rand.New(rand.NewPCG(seed, 0x5eed))
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					d := verdict.Design{RunSeconds: poolSimRun, Budget: budget / float64(jobs)}
					plan := pooledDesign(1, poolSimRun, verdict.DefaultAlpha, nil)
					count := map[verdict.Verdict]int{}
					for range trials {
						var un, pa verdict.Counts
						for range k {
							u, p := simShard(t, d, jobs, func() float64 { return h.draw(rng) })
							un, pa = addCounts(un, u), addCounts(pa, p)
						}
						count[verdict.Compare(un, pa, plan.Options()).Verdict]++
					}
					fixed, regressed := float64(count[verdict.Fixed])/trials, float64(count[verdict.Regressed])/trials
					t.Logf("%s: false fixed %.4f, false regressed %.4f, inconclusive %.3f, not-fixed %.3f",
						name, fixed, regressed, float64(count[verdict.Inconclusive])/trials, float64(count[verdict.NotFixed])/trials)
					if fixed > verdict.DefaultAlpha || regressed > verdict.DefaultAlpha {
						t.Errorf("pooled adaptive shards: false fixed %.4f, false regressed %.4f; alpha is %g", fixed, regressed, verdict.DefaultAlpha)
					}
				})
			}
		}
	}
}
