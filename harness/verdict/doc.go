// Package verdict decides whether a patch fixed a race, from each kernel's
// race failures over its time at risk, and schedules the runs that decide it.
//
// # The test
//
// A run stops at its first failure, so each kernel yields x race failures
// over e seconds at risk. Given n = x1 + x2 failures, under equal rates the
// patched count is Binomial(n, e2/(e1+e2)), and Compare runs that exact
// conditional binomial test one-sided at alpha, in the direction of the
// claim: "patched fails less" for fixed, "patched fails more" for regressed.
//
// Seconds at risk are exact only if a run's hazard does not change with its
// age. Where failures come early in a run and late-run time is safer (a
// decreasing hazard, or runs that differ), a side that failed quickly has
// few seconds at risk and looks worse than it is, and a clean full run
// proves less than its seconds suggest. So when the runs' length R is known
// (Options.Design), the side a claim says fails more has each run that
// stopped on a failure (the race's or another) counted as a full run: its
// time at risk becomes e + (x + other)·R, at least its number of runs at
// risk times R. The test is then conservative for any hazard shape within a
// run, as long as runs are alike and independent (the proof below). It
// costs patched runs when failures come early: three failures in 23 s of
// 120 s runs ask for 6 clean patched runs, not 1. Without a design, Compare
// falls back to seconds at risk; the simulation in the tests shows how far
// that can go wrong (about 20% false regressed at alpha 0.05).
//
// # Verdicts
//
//   - error: invalid options or counts, a kernel with no time at risk (only
//     boot failures, infra errors or runs without writeback), or both kernels
//     out of memory (the workload does not fit the guest). Interruptions are
//     the caller's to report.
//   - regressed: the patched kernel fails significantly more often (p <
//     alpha) on the race, on other failures (other crashes, hangs, WARNINGs,
//     health checks: the same test over the same time at risk), or in boots
//     (one-sided Fisher exact test on boot failures over boot attempts).
//   - inconclusive: the race was not reproduced on the unpatched kernel
//     (whatever the patched one did, unless significant), or the patched
//     kernel never failed on the race but a fix is not shown: its clean time
//     is too short (NeededCleanSeconds says how long it must be), the rate
//     ratio bound misses MinReduction, it failed to boot where the unpatched
//     never did, it alone ran out of memory, it alone wrote nothing back in
//     some runs, or its workload was weaker (it wrote back less than a
//     quarter as many pages per second as the unpatched; see weakFactor).
//   - fixed: the unpatched kernel failed on the race, the patched kernel never
//     did in its time at risk, the drop is significant, and none of the above
//     holds. That is "significantly lower", not "impossible".
//   - not-fixed: both kernels failed on the race and the patched one not
//     significantly more often; a patch must remove the race, not make it
//     rarer.
//
// Every run counts: boot failures, infra errors, runs without writeback,
// OOMs and other failures are in Result.Notes and in the Reason. An OOM run
// was at risk until memory ran out and did not fail on the race, so when
// only one kernel ran out of memory its OOM time is time at risk.
//
// # The adaptive design
//
// Design is two-stage inverse sampling. Stage 1 runs the unpatched kernel
// until it has Target race failures, or until half the budget is spent.
// Stage 2 runs the patched kernel in full runs until its clean time e2
// exceeds c(x1)·f1, where f1 is the unpatched time at risk with failed runs
// counted in full and c(j) = alpha^(-1/j) - 1 is the multiple at which the
// test's p-value (f1/(f1+e2))^x1 reaches alpha. It stops at once when the
// patched kernel fails on the race or can no longer be called fixed, and
// when the budget is spent. Compare on all the data then says fixed exactly
// when stage 2 reached its target clean, because both use one rule
// (Options.cleanEnough), MinReduction included.
//
// Why one look at the end is exact. Under a constant hazard λ, the time at
// risk to the Target-th failure is e1 ~ Gamma(Target, λ), and
// P(patched clean for c·e1) = E[exp(-λ·c·e1)] = (1+c)^-Target = alpha. For
// any hazard shape within a run, let p be a run's chance to fail and
// μ = -ln(1-p): k clean full runs have probability exp(-μk), stage 1 needs
// N runs, a sum of Target geometric counts each stochastically larger than
// an Exp(μ) time, and f1 >= N·R. So P(fixed) <= E[exp(-μ·c·N)] <=
// (1+c)^-Target = alpha. With several VMs, runs in flight when stage 1
// reaches Target are waited for and counted; they only add runs, and the
// level alpha^(x1/Target) used when they add failures keeps the multiple at
// c(Target), so the bound holds.
//
// When stage 1 ends on the budget with 0 < x1 < Target, stage 2 uses c(x1)
// at alpha. In the Poisson model with u = λ·(stage-1 time), P(fixed)/alpha =
// P(Poisson(u·alpha^(-1/T)) >= T) + Σ_{j<T} Poisson(j; u·alpha^(-1/j)) for
// T = Target, which stays below 1 for every u and every T up to 20 (it
// tends to 1 as u grows): the truncated branch needs no smaller alpha. The
// seeded simulation in the tests checks all this, with budgets and VMs.
//
// # Driving a design
//
// For each free VM slot, call Next with the finished runs' Counts, the
// runs in flight and Spent, and start what it says; on Wait, leave the slot
// idle until a run finishes and ask again; on Stop, nothing is in flight:
// call Compare with the design's Options. Spent is best the elapsed wall
// time since the comparison started, boots included, so that Budget is a
// deadline whatever the number of VMs; a run is started only if it can end
// (RunSeconds of stress) by then, so boots may overrun it by one boot.
//
// FixedDesign runs a set number of runs per kernel instead (--runs).
package verdict
