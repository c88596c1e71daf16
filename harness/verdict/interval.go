package verdict

import "math"

// Rate is a failure rate with its 95% exact Poisson (Garwood) interval.
type Rate struct {
	PerHour   float64 // failures per hour at risk
	Low, High float64 // 95% interval, per hour
}

// effectConf is the confidence of the effect sizes reported (rates and the
// ratio bound); the spec fixes it at 95% whatever the test's alpha.
const effectConf = 0.95

// PoissonInterval returns the exact two-sided (Garwood) confidence interval
// for the rate of x Poisson events seen in exposureSec seconds, per hour.
// It inverts the Poisson CDF in its mean rather than looking up chi-square
// quantiles: the two give the same interval, and the CDF needs nothing
// beyond lgamma. With no exposure the rate is unbounded.
func PoissonInterval(x int, exposureSec float64, conf float64) (low, high float64) {
	if x < 0 || !(conf > 0 && conf < 1) || math.IsNaN(exposureSec) {
		return math.NaN(), math.NaN()
	}
	if exposureSec <= 0 {
		return 0, math.Inf(1)
	}
	tail := (1 - conf) / 2
	perHour := 3600 / exposureSec
	// The bounds rarely lie more than a few dozen standard deviations
	// from x at any sane confidence; grow the bracket until it holds them.
	top := float64(x) + 10*math.Sqrt(float64(x)+1) + 10
	for poissonCDF(x, top) > tail {
		top *= 2
	}
	// P(X <= x; high) = tail, and P(X >= x; low) = tail.
	sd := math.Sqrt(float64(x) + 1)
	high = solveDecreasing(func(mu float64) (float64, float64) {
		cdf, pmf := poissonCDFPMF(x, mu)
		return cdf - tail, -pmf
	}, 0, top, float64(x)+1+2*sd)
	if x > 0 {
		low = solveDecreasing(func(mu float64) (float64, float64) {
			cdf, pmf := poissonCDFPMF(x-1, mu)
			return cdf - (1 - tail), -pmf
		}, 0, top, math.Max(float64(x)-2*sd, float64(x)/4))
	}
	return low * perHour, high * perHour
}

// clopperPearsonUpper is the exact one-sided upper confidence bound on a
// binomial proportion after x successes in n trials.
func clopperPearsonUpper(x, n int, conf float64) float64 {
	if x >= n {
		return 1
	}
	if x == 0 {
		// Closed form, and exact where an iteration would only be close.
		return -math.Expm1(math.Log(1-conf) / float64(n))
	}
	// P(X <= x; n, p) falls in p with slope -n * P(Y = x; n-1, p).
	return solveDecreasing(func(p float64) (float64, float64) {
		return binomCDF(x, n, p) - (1 - conf), -float64(n) * binomPMF(x, n-1, p)
	}, 0, 1, (float64(x)+1)/(float64(n)+1))
}

// ratioUpper bounds the patched/unpatched rate ratio from above. Given
// n = x1+x2 failures, the patched share is Binomial(n, pi) with
// pi = r*e2/(e1 + r*e2) for rate ratio r, so a bound on pi maps one to one
// onto a bound on r. It is +Inf without an unpatched failure.
func ratioUpper(x1 int, e1 float64, x2 int, e2 float64, conf float64) float64 {
	pu := clopperPearsonUpper(x2, x1+x2, conf)
	if pu >= 1 {
		return math.Inf(1)
	}
	return pu / (1 - pu) * e1 / e2
}

func rateOf(x int, exposure float64) Rate {
	if exposure <= 0 {
		return Rate{}
	}
	lo, hi := PoissonInterval(x, exposure, effectConf)
	return Rate{PerHour: float64(x) / exposure * 3600, Low: lo, High: hi}
}
