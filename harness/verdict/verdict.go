// Package verdict decides whether a patch fixed a race from failure counts over exposure.
//
// The two kernels' failures are treated as Poisson counts over their stress
// exposure and compared with the exact conditional binomial test: given
// n = x1 + x2 failures in total, under equal rates the patched count x2 is
// Binomial(n, e2/(e1+e2)). All tests are one-sided at Options.Alpha.
//
// Decision rules, in order:
//
//   - error: a variant recorded no stress exposure (nothing ran, or only boot
//     failures, infrastructure errors, runs without writeback or out-of-memory
//     runs), the counts are invalid, or Alpha is out of range.
//   - inconclusive: neither kernel failed (the race was not reproduced), or
//     the patched kernel never failed but its clean exposure is too short for
//     the drop to be significant. NeededCleanSeconds says how long it must be.
//   - fixed: the patched kernel never failed and the drop from the unpatched
//     rate is significant.
//   - regressed: the patched kernel failed while the unpatched one never did,
//     or the patched rate is significantly higher.
//   - not-fixed: both kernels failed and the patched rate is not significantly
//     higher. This holds even when the patched rate is significantly lower:
//     a patch for a race must remove the failure, not make it rarer, so a
//     reduction is reported in Reason but is never called a fix.
package verdict

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Verdict is the outcome of comparing an unpatched and a patched kernel.
type Verdict string

// The verdicts Compare returns.
const (
	Fixed        Verdict = "fixed"
	NotFixed     Verdict = "not-fixed"
	Regressed    Verdict = "regressed"
	Inconclusive Verdict = "inconclusive"
	Error        Verdict = "error"
)

// DefaultAlpha is the significance level used when Options.Alpha is zero.
const DefaultAlpha = 0.05

// Counts is what one variant (kernel) produced over all its runs.
type Counts struct {
	// Failures counts kernel failure events: a run with a corruption, a
	// crash or a hang is one event, whatever else happened in it.
	Failures int
	// Exposure is the stress time in seconds that counts toward the rate.
	// A run that ended early contributes only the time it had.
	Exposure float64
	// BootFailures, InfraErrors, NoWriteback and OOMs count runs whose
	// stress time does not count toward Exposure and whose outcome is not
	// held against the kernel. They only explain an Error verdict.
	BootFailures int
	InfraErrors  int
	NoWriteback  int // zswap wrote nothing back: the run proves nothing
	OOMs         int // the guest ran out of memory: a mis-sized workload
}

// Options tunes the test.
type Options struct {
	// Alpha is the one-sided significance level; zero means DefaultAlpha.
	Alpha float64
}

// Validate reports whether o can be used; Compare returns an Error verdict
// for options that fail it, so callers should check them up front.
func (o Options) Validate() error {
	if o.Alpha == 0 {
		return nil
	}
	if !(o.Alpha > 0 && o.Alpha < 1) {
		return fmt.Errorf("significance level %v is out of range: use a value between 0 and 1, e.g. 0.05", o.Alpha)
	}
	return nil
}

func (o Options) alpha() float64 {
	if o.Alpha == 0 {
		return DefaultAlpha
	}
	return o.Alpha
}

// Result is the outcome of Compare.
type Result struct {
	Verdict Verdict
	// PValue is the one-sided p-value in the direction the verdict is about:
	// "patched fails less often" for fixed, inconclusive and not-fixed,
	// "patched fails more often" for regressed. It is 1 for error and when
	// neither kernel failed; it is always within [0, 1].
	PValue float64
	// RateUnpatched and RatePatched are failures per hour of exposure
	// (zero for a variant with no exposure).
	RateUnpatched float64
	RatePatched   float64
	// Reason is one sentence a kernel developer can act on.
	Reason string
	// NeededCleanSeconds is the total failure-free patched exposure that
	// would make the drop significant, given the unpatched failures and
	// exposure as observed: the e2 at which the same test reaches Alpha
	// (a clean run must be longer than this). It is set only when the
	// unpatched kernel failed and the patched one did not; otherwise zero.
	NeededCleanSeconds float64
}

// Compare tests whether the patched kernel fails less often than the
// unpatched one and turns the answer into a Verdict (see the package
// documentation for the rules).
func Compare(unpatched, patched Counts, opt Options) Result {
	if err := opt.Validate(); err != nil {
		return Result{Verdict: Error, PValue: 1, Reason: err.Error()}
	}
	if err := errors.Join(unusable("unpatched", unpatched), unusable("patched", patched)); err != nil {
		reason := strings.ReplaceAll(err.Error(), "\n", " and ")
		return Result{Verdict: Error, PValue: 1, Reason: reason + "; see the run details for what went wrong, fix it and rerun"}
	}

	alpha := opt.alpha()
	x1, e1 := unpatched.Failures, unpatched.Exposure
	x2, e2 := patched.Failures, patched.Exposure
	res := Result{
		PValue:        1,
		RateUnpatched: perHour(x1, e1),
		RatePatched:   perHour(x2, e2),
	}
	n := x1 + x2
	q := e2 / (e1 + e2)
	pLower := binomCDF(x2, n, q) // patched has a lower rate
	pHigher := binomSF(x2, n, q) // patched has a higher rate
	seen := fmt.Sprintf("unpatched failed %s in %s, patched %s in %s",
		times(x1), seconds(e1), times(x2), seconds(e2))
	test := fmt.Sprintf("exact conditional binomial, one-sided, alpha %g", alpha)

	switch {
	case n == 0:
		res.Verdict = Inconclusive
		res.Reason = seen + ": the race was not reproduced, so the patch cannot be judged; " +
			"run the unpatched kernel longer or with the race-window instrumentation"
	case x2 == 0:
		res.PValue = pLower
		res.NeededCleanSeconds = neededClean(x1, e1, alpha)
		if pLower < alpha {
			res.Verdict = Fixed
			res.Reason = fmt.Sprintf("%s; p=%s (%s): the patch fixes the race", seen, pval(pLower), test)
		} else {
			res.Verdict = Inconclusive
			res.Reason = fmt.Sprintf("%s; p=%s (%s) is not significant: run the patched kernel clean for more than %s in all (%s more) to claim a fix",
				seen, pval(pLower), test, seconds(res.NeededCleanSeconds), seconds(res.NeededCleanSeconds-e2))
		}
	case x1 == 0:
		res.Verdict = Regressed
		res.PValue = pHigher
		res.Reason = fmt.Sprintf("%s; p=%s (%s): the patched kernel fails where the unpatched one never did, so the patch likely introduced the failure; look at the patched runs' crash titles and corruption examples",
			seen, pval(pHigher), test)
	case pHigher < alpha:
		res.Verdict = Regressed
		res.PValue = pHigher
		res.Reason = fmt.Sprintf("%s; p=%s (%s): the patched kernel fails significantly more often, so the patch made things worse",
			seen, pval(pHigher), test)
	default:
		res.Verdict = NotFixed
		res.PValue = pLower
		how := "not significantly less often"
		if pLower < alpha {
			how = "less often but still fails"
		}
		res.Reason = fmt.Sprintf("%s; p=%s (%s): the patched kernel fails %s, so the race is not fixed",
			seen, pval(pLower), test, how)
	}
	return res
}

// Decided reports whether the patched runs still planned can no longer
// change the verdict, so the scheduler may stop. plannedPatchedExposure is
// the total patched stress time of the plan, including what has already run.
//
// The unpatched counts are taken as final: run the unpatched kernel first.
// Decided is true when
//
//   - the planned patched exposure has all run, or
//   - the options are invalid (Compare reports an error whatever the counts), or
//   - the patched kernel has failed and Compare says not-fixed or regressed:
//     no later run can make the patch a fix. Further patched runs could still
//     move the label between not-fixed and regressed, both of which say "no
//     fix"; run the whole plan if the strength of a regression matters.
//
// It never stops because the patched kernel looks clean, even when the drop
// is already significant: a single later failure would turn "fixed" into
// "not-fixed". Nor does it stop on an unusable unpatched variant: the
// patched runs still show whether that kernel boots and survives the load.
func Decided(unpatched, patched Counts, plannedPatchedExposure float64, opt Options) bool {
	if patched.Exposure >= plannedPatchedExposure || opt.Validate() != nil {
		return true
	}
	switch Compare(unpatched, patched, opt).Verdict {
	case NotFixed, Regressed:
		return true
	}
	return false
}

// unusable says why c cannot be used for a rate, or returns nil.
func unusable(name string, c Counts) error {
	switch {
	case c.Failures < 0 || c.BootFailures < 0 || c.InfraErrors < 0 || c.NoWriteback < 0 || c.OOMs < 0 ||
		math.IsNaN(c.Exposure) || math.IsInf(c.Exposure, 0) || c.Exposure < 0:
		return fmt.Errorf("%s counts are invalid (%+v), a harness bug", name, c)
	case c.Exposure > 0:
		return nil
	case c.Failures > 0:
		return fmt.Errorf("%s recorded %s but no stress time, so no failure rate can be computed",
			name, plural(c.Failures, "failure", "failures"))
	}
	var why []string
	for _, k := range []struct {
		n         int
		one, many string
	}{
		{c.BootFailures, "boot failure", "boot failures"},
		{c.InfraErrors, "infra error", "infra errors"},
		{c.NoWriteback, "run without zswap writeback", "runs without zswap writeback"},
		{c.OOMs, "run out of memory", "runs out of memory"},
	} {
		if k.n > 0 {
			why = append(why, plural(k.n, k.one, k.many))
		}
	}
	if len(why) == 0 {
		return fmt.Errorf("%s ran no stress (no runs recorded)", name)
	}
	return fmt.Errorf("%s has no usable stress time (%s)", name, strings.Join(why, ", "))
}

// neededClean solves (e1/(e1+e2))^x1 = alpha for e2: the p-value of a clean
// patched exposure e2 against x1 unpatched failures in e1.
func neededClean(x1 int, e1, alpha float64) float64 {
	return e1 * (math.Pow(alpha, -1/float64(x1)) - 1)
}

func perHour(failures int, exposure float64) float64 {
	if exposure <= 0 {
		return 0
	}
	return float64(failures) / exposure * 3600
}

// binomCDF returns P(X <= k) for X ~ Binomial(n, p), 0 < p < 1.
func binomCDF(k, n int, p float64) float64 {
	if k >= n {
		return 1
	}
	sum := 0.0
	for i := 0; i <= k; i++ {
		sum += binomPMF(i, n, p)
	}
	return math.Min(sum, 1)
}

// binomSF returns P(X >= k) for X ~ Binomial(n, p), 0 < p < 1.
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
	lc := lgamma(n+1) - lgamma(k+1) - lgamma(n-k+1)
	return math.Exp(lc + float64(k)*math.Log(p) + float64(n-k)*math.Log1p(-p))
}

func lgamma(x int) float64 {
	v, _ := math.Lgamma(float64(x))
	return v
}

func times(n int) string {
	return plural(n, "time", "times")
}

// plural names n things, given the singular and plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func seconds(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

func pval(p float64) string {
	return fmt.Sprintf("%.2g", p)
}
