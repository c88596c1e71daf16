package verdict

import (
	"errors"
	"fmt"
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

// Result is the outcome of Compare.
type Result struct {
	Verdict Verdict
	// Method names the design and test behind the verdict.
	Method string
	// PValue is the one-sided p-value in the direction the verdict is about:
	// "patched fails less often" for fixed, not-fixed and most inconclusive
	// verdicts, "patched fails more often" for regressed and for an
	// inconclusive verdict where only the patched kernel failed. It is 1 for
	// error and when neither kernel failed.
	PValue float64
	// UnpatchedRate and PatchedRate are race failures per hour at risk, with
	// 95% intervals, over UnpatchedAtRisk and PatchedAtRisk seconds: the
	// time at risk Compare counted, OOM time included where it counts (see
	// the package doc). All zero for an error verdict or a kernel not run.
	UnpatchedRate, PatchedRate     Rate
	UnpatchedAtRisk, PatchedAtRisk float64
	// RatioUpper is the 95% upper bound on patched rate / unpatched rate,
	// from the Clopper-Pearson bound on the patched share of the failures,
	// with the unpatched failed runs counted in full when the design is
	// known; nil when the unpatched kernel never failed on the race.
	RatioUpper *float64
	// Reason is one sentence a kernel developer can act on.
	Reason string
	// Notes says, one entry per kind and kernel, which runs did not count
	// as race failures or as time at risk, and why.
	Notes []string
	// NeededCleanSeconds is the clean patched time at risk beyond which
	// the verdict would be fixed, given the unpatched counts as observed.
	// It is set only when the unpatched kernel failed on the race and the
	// patched kernel did not; otherwise zero.
	NeededCleanSeconds float64
}

// Compare tests whether the patched kernel fails less often than the
// unpatched one and turns the answer into a Verdict (see the package
// documentation for the rules).
func Compare(unpatched, patched Counts, opt Options) Result {
	res := Result{Verdict: Error, PValue: 1}
	if err := opt.Validate(); err != nil {
		res.Reason = err.Error()
		return res
	}
	res.Method = opt.method()
	if err := errors.Join(invalid("unpatched", unpatched), invalid("patched", patched)); err != nil {
		res.Reason = strings.ReplaceAll(err.Error(), "\n", " and ")
		return res
	}
	res.Notes = append(notes("unpatched", unpatched, patched), notes("patched", patched, unpatched)...)
	if unpatched.OOMs > 0 && patched.OOMs > 0 {
		res.Reason = fmt.Sprintf("both kernels ran out of memory (unpatched in %s, patched in %s), so the workload does not fit the guest and the comparison is mis-sized: lower --workers or --mib-per-worker, or raise --mem or --swap",
			runs(unpatched.OOMs), runs(patched.OOMs))
		return res
	}
	if patched == (Counts{}) && unusable("unpatched", unpatched) == nil {
		// The adaptive design never runs the patched kernel when the
		// unpatched one did not reproduce the race, or when the budget
		// ran out first: that is no fault of either kernel.
		notRun(&res, unpatched, opt)
		return res
	}
	if err := errors.Join(unusable("unpatched", unpatched), unusable("patched", patched)); err != nil {
		res.Reason = strings.ReplaceAll(err.Error(), "\n", " and ") +
			"; see the run details for what went wrong, fix it and rerun" + noteTail(res.Notes)
		return res
	}
	judge(&res, unpatched, patched, opt)
	res.Reason += noteTail(res.Notes)
	return res
}

// judge fills in a verdict for valid counts with time at risk on both sides.
func judge(res *Result, un, pa Counts, opt Options) {
	alpha := opt.alpha()
	x1, e1 := un.Failures, atRisk(un)
	x2, e2 := pa.Failures, atRisk(pa)
	n := x1 + x2
	// A claim that one side fails more counts that side's failed runs as
	// full runs: a run stops at its first failure, and where failures come
	// early in a run, its seconds at risk overstate that side's rate.
	f1, f2 := opt.fullRuns(un), opt.fullRuns(pa)
	pLower := binomCDF(x2, n, e2/(f1+e2))
	pHigher := binomSF(x2, n, f2/(e1+f2))
	res.UnpatchedRate, res.PatchedRate = rateOf(x1, e1), rateOf(x2, e2)
	res.UnpatchedAtRisk, res.PatchedAtRisk = e1, e2
	if x1 > 0 {
		r := ratioUpper(x1, f1, x2, e2, effectConf)
		res.RatioUpper = &r
	}
	seen := fmt.Sprintf("unpatched failed on the race %s in %s at risk (%s), patched %s in %s (%s)",
		times(x1), seconds(e1), rateText(res.UnpatchedRate), times(x2), seconds(e2), rateText(res.PatchedRate))
	test := opt.testName()
	effect := ratioText(res.RatioUpper, opt.runSeconds() > 0)

	if why, p := regressions(un, pa, pHigher, opt); len(why) > 0 {
		res.Verdict, res.PValue = Regressed, p
		res.Reason = fmt.Sprintf("%s%s: the patch made things worse: %s; look at the patched runs' crash titles and console logs",
			seen, effect, strings.Join(why, ", and "))
		return
	}
	switch {
	case n == 0:
		res.Verdict = Inconclusive
		res.Reason = seen + ": the race was not reproduced, so the patch cannot be judged; " +
			"run the unpatched kernel longer or with the race-window instrumentation"
	case x1 == 0:
		res.Verdict, res.PValue = Inconclusive, pHigher
		res.Reason = fmt.Sprintf("%s; p=%s (%s): the race was not reproduced on the unpatched kernel, and the patched kernel's %s not significantly more; run the unpatched kernel longer to judge the patch",
			seen, pval(pHigher), test, plural(x2, "failure is", "failures are"))
	case x2 > 0:
		res.Verdict, res.PValue = NotFixed, pLower
		how := "still fails, not significantly less often"
		if pLower < alpha {
			how = "fails less often but still fails"
		}
		res.Reason = fmt.Sprintf("%s; p=%s (%s)%s: the patched kernel %s, so the race is not fixed",
			seen, pval(pLower), test, effect, how)
	default:
		res.PValue = pLower
		res.NeededCleanSeconds = opt.cleanNeeded(x1, f1)
		blockers := fixBlockers(un, pa, x1, f1, e2, opt)
		if len(blockers) == 0 {
			res.Verdict = Fixed
			res.Reason = fmt.Sprintf("%s; p=%s (%s)%s: the patched kernel fails significantly less often and never failed on the race in its time at risk, so the patch fixes the race",
				seen, pval(pLower), test, effect)
			return
		}
		res.Verdict = Inconclusive
		res.Reason = fmt.Sprintf("%s; p=%s (%s)%s: the patched kernel never failed on the race, but %s",
			seen, pval(pLower), test, effect, strings.Join(blockers, ", and "))
	}
}

// notRun judges a comparison in which the patched kernel never ran.
func notRun(res *Result, un Counts, opt Options) {
	x1, e1 := un.Failures, atRisk(un)
	res.Verdict = Inconclusive
	res.UnpatchedRate, res.UnpatchedAtRisk = rateOf(x1, e1), e1
	seen := fmt.Sprintf("unpatched failed on the race %s in %s at risk (%s); the patched kernel was not run",
		times(x1), seconds(e1), rateText(res.UnpatchedRate))
	if x1 == 0 {
		res.Reason = seen + ": the race was not reproduced, so the patch cannot be judged; " +
			"give the comparison a larger budget, or run with the race-window instrumentation"
	} else {
		res.NeededCleanSeconds = opt.cleanNeeded(x1, opt.fullRuns(un))
		res.Reason = fmt.Sprintf("%s, so the patch cannot be judged yet: the patched kernel must run clean for more than %s to show a fix",
			seen, seconds(res.NeededCleanSeconds))
	}
	res.Reason += noteTail(res.Notes)
}

// atRisk is a kernel's time at risk. An OOM run was at risk until memory
// ran out and did not fail on the race, so its time counts; Compare has
// already ruled out OOMs on both sides, which would make that unfair.
func atRisk(c Counts) float64 {
	return c.Exposure + c.OOMSeconds
}
