package verdict

import (
	"math"
	"testing"
)

// TestPoissonInterval checks the exact (Garwood) 95% interval against the
// published table, per unit time: an exposure of an hour gives events per
// hour directly.
func TestPoissonInterval(t *testing.T) {
	for _, c := range []struct {
		x         int
		low, high float64
	}{
		{0, 0, 3.689},
		{1, 0.0253, 5.572},
		{2, 0.2422, 7.225},
		{3, 0.6186, 8.767},
		{5, 1.6235, 11.668},
		{10, 4.7954, 18.390},
		{50, 37.111, 65.919},
	} {
		low, high := PoissonInterval(c.x, 3600, 0.95)
		if math.Abs(low-c.low) > 1e-3*math.Max(c.low, 1e-3) || math.Abs(high-c.high) > 1e-3*c.high {
			t.Errorf("PoissonInterval(%d, 1 h) = (%.5g, %.5g), want (%.5g, %.5g)", c.x, low, high, c.low, c.high)
		}
	}
	// x = 0 over T seconds: high = -ln(0.025)/T, per hour.
	if _, high := PoissonInterval(0, 120, 0.95); !near(high, -math.Log(0.025)/120*3600) {
		t.Errorf("high for 0 in 120 s = %g, want %g", high, -math.Log(0.025)/120*3600)
	}
	// The bounds are where the tails are exactly (1-conf)/2.
	for _, x := range []int{1, 4, 17} {
		for _, conf := range []float64{0.8, 0.95, 0.999} {
			low, high := PoissonInterval(x, 3600, conf)
			tail := (1 - conf) / 2
			if got := poissonCDF(x, high); math.Abs(got-tail) > 1e-9 {
				t.Errorf("x=%d conf=%g: P(X <= x; high) = %g, want %g", x, conf, got, tail)
			}
			if got := 1 - poissonCDF(x-1, low); math.Abs(got-tail) > 1e-9 {
				t.Errorf("x=%d conf=%g: P(X >= x; low) = %g, want %g", x, conf, got, tail)
			}
		}
	}
	if low, high := PoissonInterval(2, 0, 0.95); low != 0 || !math.IsInf(high, 1) {
		t.Errorf("no exposure: (%g, %g), want (0, +Inf)", low, high)
	}
	if low, _ := PoissonInterval(2, 60, 1); !math.IsNaN(low) {
		t.Errorf("confidence 1 gave %g, want NaN", low)
	}
}

// TestClopperPearson checks one-sided 95% upper bounds against published
// values (the 0.95 quantile of Beta(x+1, n-x)).
func TestClopperPearson(t *testing.T) {
	for _, c := range []struct {
		x, n int
		want float64
	}{
		{0, 1, 0.95},
		{0, 3, 1 - math.Pow(0.05, 1.0/3)},
		{1, 4, 0.7514},
		{1, 10, 0.3942},
		{2, 20, 0.2826},
		{5, 5, 1},
	} {
		if got := clopperPearsonUpper(c.x, c.n, 0.95); math.Abs(got-c.want) > 1e-4 {
			t.Errorf("clopperPearsonUpper(%d, %d) = %.5f, want %.5f", c.x, c.n, got, c.want)
		}
	}
	// Where it is not 1, the bound is where the lower tail is 5%.
	for n := 1; n <= 30; n++ {
		for x := 0; x < n; x++ {
			if p := binomCDF(x, n, clopperPearsonUpper(x, n, 0.95)); math.Abs(p-0.05) > 1e-9 {
				t.Errorf("P(X <= %d; %d, upper) = %g, want 0.05", x, n, p)
			}
		}
	}
}

func TestRatioUpper(t *testing.T) {
	// No patched failure: p_U = 1 - 0.05^(1/3), ratio = p_U/(1-p_U) * e1/e2.
	if got, want := ratioUpper(3, 240, 0, 480, 0.95), c95(3)*0.5; !near(got, want) {
		t.Errorf("ratioUpper(3, 240, 0, 480) = %g, want %g", got, want)
	}
	// 1 of 4 patched, equal exposures: p_U = 0.7514, ratio = 3.022.
	if got := ratioUpper(3, 300, 1, 300, 0.95); math.Abs(got-0.7514/0.2486) > 2e-3 {
		t.Errorf("ratioUpper(3, 300, 1, 300) = %g, want about 3.022", got)
	}
	if got := ratioUpper(0, 300, 2, 300, 0.95); !math.IsInf(got, 1) {
		t.Errorf("ratioUpper without unpatched failures = %g, want +Inf", got)
	}
}

// TestBinomial checks the tails against sums of binomial terms computed
// independently, and that the two tails add up.
func TestBinomial(t *testing.T) {
	for _, n := range []int{1, 2, 5, 12, 40, 200, 1500} {
		for _, p := range []float64{0.01, 1.0 / 3, 0.5, 0.9} {
			for k := 0; k <= min(n, 60); k++ {
				if n <= 200 {
					if got, want := binomCDF(k, n, p), binomCDFByHand(k, n, p); !near(got, want) {
						t.Errorf("binomCDF(%d, %d, %g) = %g, want %g", k, n, p, got, want)
					}
				}
				if k < n {
					if sum := binomCDF(k, n, p) + binomSF(k+1, n, p); math.Abs(sum-1) > 1e-9 {
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

func TestFisherGreater(t *testing.T) {
	for _, c := range []struct {
		k1, n1, k2, n2 int
		want           float64
	}{
		{0, 10, 3, 10, 19448.0 / 184756}, // C(17,7)/C(20,10)
		{0, 10, 5, 10, 3003.0 / 184756},  // C(15,5)/C(20,10)
		{0, 3, 2, 3, 4.0 / 20},           // C(4,1)/C(6,3)
		{2, 3, 0, 3, 1},                  // P(X >= 0)
		{0, 5, 0, 5, 1},                  // no failures at all
		// 1 of 2 against 1 of 4, total 6, 2 bad, draw 4: P(X >= 1) = 1 - C(4,4)/C(6,4).
		{1, 2, 1, 4, 1 - 1.0/15},
	} {
		if got := fisherGreater(c.k1, c.n1, c.k2, c.n2); !near(got, c.want) {
			t.Errorf("fisherGreater(%d/%d, %d/%d) = %g, want %g", c.k1, c.n1, c.k2, c.n2, got, c.want)
		}
	}
}

// TestTruncatedBranchPoisson backs the package doc's claim: in the Poisson
// model, a stage 1 cut short by the budget, judged at alpha with c(x1), keeps
// the total chance of a false fix within alpha for every Target up to 20.
// P(fixed)/alpha = P(Poisson(u·alpha^(-1/T)) >= T) + Σ_{j<T} Poisson(j; u·alpha^(-1/j)).
func TestTruncatedBranchPoisson(t *testing.T) {
	for _, alpha := range []float64{0.01, 0.05, 0.1} {
		for target := 1; target <= 20; target++ {
			worst := 0.0
			for u := 1e-3; u < 500; u *= 1.02 {
				total := 1 - poissonCDF(target-1, u*math.Pow(alpha, -1/float64(target)))
				for j := 1; j < target; j++ {
					nu := u * math.Pow(alpha, -1/float64(j))
					total += math.Exp(-nu + float64(j)*math.Log(nu) - lfact(j))
				}
				worst = max(worst, total)
			}
			if worst > 1+1e-9 {
				t.Errorf("alpha %g, Target %d: P(fixed) reaches %.6f alpha", alpha, target, worst)
			}
		}
	}
}
