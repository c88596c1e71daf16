package verdict

import "fmt"

// regressions lists what the patched kernel does significantly worse, with
// the p-value of the first: race failures, other failures, boot failures.
func regressions(un, pa Counts, pRace float64, opt Options) (why []string, p float64) {
	alpha := opt.alpha()
	e1, e2 := atRisk(un), atRisk(pa)
	p = 1
	add := func(pv float64, s string) {
		if len(why) == 0 {
			p = pv
		}
		why = append(why, fmt.Sprintf("%s (p=%s)", s, pval(pv)))
	}
	if pa.Failures > 0 && pRace < alpha {
		add(pRace, "it fails on the race significantly more often")
	}
	// Other failures are tested like the race's, over the same time at
	// risk and with the same full-run counting.
	if o1, o2 := un.OtherFailures, pa.OtherFailures; o2 > 0 {
		f2 := opt.fullRuns(pa)
		if po := binomSF(o2, o1+o2, f2/(e1+f2)); po < alpha {
			add(po, fmt.Sprintf("it fails other than by the race significantly more often (%s in %s against %s in %s)",
				runs(o2), seconds(e2), runs(o1), seconds(e1)))
		}
	}
	if pa.BootFailures > 0 {
		if pb := fisherGreater(un.BootFailures, un.Boots, pa.BootFailures, pa.Boots); pb < alpha {
			add(pb, fmt.Sprintf("it fails to boot significantly more often (%d of %d boots against %d of %d, one-sided Fisher exact test)",
				pa.BootFailures, pa.Boots, un.BootFailures, un.Boots))
		}
	}
	return why, p
}

// fixBlockers lists why a patched kernel that never failed on the race is
// still not shown to be fixed; f1 is the unpatched time at risk with failed
// runs counted in full.
func fixBlockers(un, pa Counts, x1 int, f1, e2 float64, opt Options) []string {
	var why []string
	if !opt.cleanEnough(x1, f1, e2) {
		need := opt.cleanNeeded(x1, f1)
		why = append(why, fmt.Sprintf("its %s at risk are short of the %s that would show a fix (%s): run the patched kernel clean for %s more",
			seconds(e2), seconds(need), needWhy(x1, opt), seconds(max(need-e2, 0))))
	}
	return append(why, ruledOut(un, pa)...)
}

// ruledOut lists what rules a fix out whatever more clean patched runs
// show, given final unpatched counts; cannotFix is its cheap twin for the
// design's hot path.
func ruledOut(un, pa Counts) []string {
	var why []string
	if pa.BootFailures > 0 && un.BootFailures == 0 {
		why = append(why, fmt.Sprintf("the patched kernel failed to boot %s where the unpatched never did (%d of %d boots; p=%s, one-sided Fisher exact test, not significant), so it is not shown to be a working fix",
			times(pa.BootFailures), pa.BootFailures, pa.Boots, pval(fisherGreater(un.BootFailures, un.Boots, pa.BootFailures, pa.Boots))))
	}
	switch {
	case pa.OOMs > 0 && un.OOMs == 0:
		why = append(why, fmt.Sprintf("the patched kernel ran out of memory in %s where the unpatched did not, so it may have dodged the race by not reaching it", runs(pa.OOMs)))
	case pa.OOMs > 0:
		why = append(why, "both kernels ran out of memory, so the comparison is mis-sized")
	}
	if pa.NoWriteback > 0 && un.NoWriteback == 0 {
		why = append(why, fmt.Sprintf("zswap wrote nothing back in %s of the patched kernel where the unpatched always did: a patch that stops writeback hides the race instead of fixing it", runs(pa.NoWriteback)))
	}
	if weak, s := weakWorkload(un, pa); weak {
		why = append(why, s)
	}
	return why
}

func cannotFix(un, pa Counts) bool {
	return pa.BootFailures > 0 && un.BootFailures == 0 ||
		pa.OOMs > 0 ||
		pa.NoWriteback > 0 && un.NoWriteback == 0 ||
		weaker(un, pa)
}

// weakFactor is how much less the patched kernel must write back per
// second before its clean runs count as a weaker workload. Not 2: the
// unpatched runs stop at their first failure, 10 to 20 s in, when writeback
// runs faster than over a full run, and in 6 demos here
// (compare --widen, 60-s and 120-s runs) the patched kernel wrote back 0.49
// to 0.90 times the unpatched rate with the same workload. A patch that
// stops writeback gives 0, or no-writeback runs.
const weakFactor = 4

func weaker(un, pa Counts) bool {
	return un.WritebackPerSec > 0 && pa.WritebackPerSec > 0 && pa.WritebackPerSec < un.WritebackPerSec/weakFactor
}

// needWhy says what sets the clean time a fix needs.
func needWhy(x1 int, opt Options) string {
	s := fmt.Sprintf("p below %.2g", opt.level(x1))
	if lv := opt.level(x1); lv != opt.alpha() {
		s = fmt.Sprintf("p below %.2g, the level the adaptive design set after %s", lv, times(x1))
	}
	if opt.MinReduction > 0 {
		s += fmt.Sprintf(" and a rate ratio bound of at most 1/%g", opt.MinReduction)
	}
	return s
}

// weakWorkload reports whether the patched kernel saw a much weaker
// workload: its clean runs then say little about the race.
func weakWorkload(un, pa Counts) (bool, string) {
	if weaker(un, pa) {
		return true, fmt.Sprintf("the patched kernel wrote back %s pages/s against %s for the unpatched: the workload did not stress the patched kernel as hard, so its clean runs prove little",
			num(pa.WritebackPerSec), num(un.WritebackPerSec))
	}
	return false, ""
}
