package verdict

import "math"

// binomCDF returns P(X <= k) for X ~ Binomial(n, p), 0 < p < 1.
func binomCDF(k, n int, p float64) float64 {
	if k >= n {
		return 1
	}
	if k < 0 {
		return 0
	}
	sum := 0.0
	for i := 0; i <= k; i++ {
		sum += binomPMF(i, n, p)
	}
	return math.Min(sum, 1)
}

// binomSF returns P(X >= k) for X ~ Binomial(n, p), 0 < p < 1. It sums the
// upper terms itself rather than taking 1-CDF, so tiny tails survive.
func binomSF(k, n int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	sum := 0.0
	for i := k; i <= n; i++ {
		sum += binomPMF(i, n, p)
	}
	return math.Min(sum, 1)
}

func binomPMF(k, n int, p float64) float64 {
	switch {
	case p == 0:
		return b2f(k == 0)
	case p == 1:
		return b2f(k == n)
	}
	lc := lfact(n) - lfact(k) - lfact(n-k)
	return math.Exp(lc + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}

// poissonCDF returns P(X <= k) for X ~ Poisson(mu).
func poissonCDF(k int, mu float64) float64 {
	cdf, _ := poissonCDFPMF(k, mu)
	return cdf
}

// poissonCDFPMF returns P(X <= k) and P(X = k) for X ~ Poisson(mu); the
// second is minus the first's derivative in mu, which the interval
// inversion needs.
func poissonCDFPMF(k int, mu float64) (cdf, pmf float64) {
	if k < 0 {
		return 0, 0
	}
	if mu == 0 {
		return 1, b2f(k == 0)
	}
	lmu := math.Log(mu)
	for i := 0; i <= k; i++ {
		pmf = math.Exp(-mu + float64(i)*lmu - lfact(i))
		cdf += pmf
	}
	return math.Min(cdf, 1), pmf
}

// fisherGreater is the one-sided Fisher exact p-value that group 2's
// proportion k2/n2 exceeds group 1's k1/n1: the hypergeometric upper tail
// of k2 given the margins.
func fisherGreater(k1, n1, k2, n2 int) float64 {
	total, bad := n1+n2, k1+k2
	if n2 == 0 || bad == 0 {
		return 1
	}
	hi := min(bad, n2)
	lo := max(0, n2-(total-bad))
	p := 0.0
	for k := max(k2, lo); k <= hi; k++ {
		p += math.Exp(lchoose(bad, k) + lchoose(total-bad, n2-k) - lchoose(total, n2))
	}
	return math.Min(p, 1)
}

// solveDecreasing finds where a decreasing function crosses zero in
// [lo, hi], given f(lo) >= 0 >= f(hi); fdf returns f and its slope. It
// takes Newton steps while they stay inside the bracket, which shrinks
// every step, and bisects otherwise, so it always converges and usually
// in a handful of steps: the tests and the simulation invert thousands of
// intervals.
func solveDecreasing(fdf func(float64) (f, slope float64), lo, hi, x float64) float64 {
	if !(x > lo && x < hi) {
		x = lo + (hi-lo)/2
	}
	for range 200 {
		f, slope := fdf(x)
		switch {
		case f == 0:
			return x
		case f > 0:
			lo = x
		default:
			hi = x
		}
		next := x - f/slope
		if !(next > lo && next < hi) {
			next = lo + (hi-lo)/2
		}
		if math.Abs(next-x) <= 1e-13*math.Abs(next) || hi-lo <= 1e-15*hi {
			return next
		}
		x = next
	}
	return x
}

func lchoose(n, k int) float64 {
	return lfact(n) - lfact(k) - lfact(n-k)
}

// lfactTable caches log(n!) for the counts the tests meet every time, so
// a tail sum costs one exp per term.
var lfactTable = func() []float64 {
	t := make([]float64, 1024)
	for i := range t {
		t[i], _ = math.Lgamma(float64(i) + 1)
	}
	return t
}()

func lfact(n int) float64 {
	if n < len(lfactTable) {
		return lfactTable[n]
	}
	v, _ := math.Lgamma(float64(n) + 1)
	return v
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
