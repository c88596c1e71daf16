package verdict

import "math"

// BadEnd is what a bisection measured at its bad end: how many times the
// race failed there, in how many seconds of stress.
//
// The bad end's rate is not known, only estimated, and an estimate taken
// just after a failure runs high. So a step does not plug a point estimate
// into exp(-rate*t). It uses the chance, averaged over what the bad end's
// rate could be given this measurement, that a commit which fails like the
// bad end stays clean for t seconds:
//
//	miss(t) = (T / (T + t))^k
//
// for k failures in T seconds. When the measurement stops at its k-th
// failure (inverse sampling, as bisect-run --measure does), T is a Gamma(k,
// rate) draw and the average over it of exp(-rate*t) is exactly this, for
// every rate: a step that stays clean for CleanNeeded(miss) seconds calls a
// bad commit good with chance miss, however fast or slow the machine is.
// When the budget runs out first, k is the failures seen by then; the
// seeded simulation in bisect_sim_test.go checks that this stays under the
// stated figure too.
type BadEnd struct {
	Failures int     `json:"failures"`
	Exposure float64 `json:"stress_seconds"`
}

// MissChance is the chance that a commit failing like the bad end shows no
// failure in clean seconds of stress. With no failure at the bad end there
// is nothing to miss and no step can be called good: 1.
func (b BadEnd) MissChance(clean float64) float64 {
	if b.Failures <= 0 || b.Exposure <= 0 {
		return 1
	}
	return math.Pow(b.Exposure/(b.Exposure+clean), float64(b.Failures))
}

// CleanNeeded is the clean stress, in seconds, after which MissChance is at
// most miss: +Inf when the bad end never failed.
func (b BadEnd) CleanNeeded(miss float64) float64 {
	if b.Failures <= 0 || b.Exposure <= 0 || miss <= 0 {
		return math.Inf(1)
	}
	if miss >= 1 {
		return 0
	}
	return b.Exposure * (math.Pow(miss, -1/float64(b.Failures)) - 1)
}

// BisectSteps is how many verdicts a bisection of candidates commits gives,
// the good end's check included: ceil(log2(candidates)) + 1. Each of them
// could be a bad commit called good, so a bisection that names a wrong
// culprit with chance at most wrong gives each step StepMiss(wrong, steps).
func BisectSteps(candidates int) int {
	if candidates <= 1 {
		return 1
	}
	return int(math.Ceil(math.Log2(float64(candidates)))) + 1
}

// StepMiss is the per-step miss chance that keeps the chance of any miss
// in steps verdicts under wrong (Bonferroni's union bound).
func StepMiss(wrong float64, steps int) float64 {
	if steps < 1 {
		steps = 1
	}
	return wrong / float64(steps)
}

// WrongCulprit bounds the chance that a bisection named the wrong culprit,
// given the miss chance allowed to each verdict it made: any verdict could
// have been a bad commit called good (a good commit is never called bad:
// that takes the race's own signature). The union bound, capped at 1.
func WrongCulprit(stepMiss []float64) float64 {
	s := 0.0
	for _, m := range stepMiss {
		s += m
	}
	return math.Min(1, s)
}
