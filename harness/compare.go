package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"zswaprace/harness/fault"
	"zswaprace/harness/fsutil"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// Exit codes of 'harness compare'.
const (
	exitFixed        = 0
	exitNotFixed     = 1
	exitInconclusive = 2
)

// compareFlags are the flags of compare that choose runs and judge them.
type compareFlags struct {
	runs         int // > 0: the fixed design
	budget       time.Duration
	jobs         int
	alpha        float64
	minReduction float64
	expect       string
	signature    multiFlag
	ignore       multiFlag
}

func (c *compareFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&c.runs, "runs", 0, "fixed design: exactly N runs per kernel (default: adaptive, run until decided or --budget is spent)")
	fs.DurationVar(&c.budget, "budget", 45*time.Minute, "adaptive design: the most wall time to spend on runs")
	fs.IntVar(&c.jobs, "jobs", 0, "VMs to run at once, each a whole guest (not make's -j: that is --build-jobs; default: what the host's cores and memory fit)")
	fs.Float64Var(&c.alpha, "alpha", verdict.DefaultAlpha, "significance level of the verdict")
	fs.Float64Var(&c.minReduction, "min-reduction", 0, "fixed also needs the patched failure rate shown (95%) to be at most 1/X of the unpatched rate")
	fs.Var(&c.signature, "signature", "regexp: a crash or hang whose title or guilty function matches is the race's (repeatable; default: the titles the unpatched kernel shows)")
	fs.StringVar(&c.expect, "expect", "", "the verdict junit.xml's 'verdict' test case asks for: fixed (default), not-fixed, regressed or inconclusive (e.g. not-fixed for a known-bad patch); the exit code stays the verdict's")
	fs.Var(&c.ignore, "ignore", "regexp: kernel reports whose title matches are known and benign, not counted (repeatable)")
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return fmt.Sprint([]string(*m)) }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func compileAll(flagName string, exprs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, e := range exprs {
		re, err := regexp.Compile(e)
		if err != nil {
			return nil, fmt.Errorf("--%s %q: %v", flagName, e, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func cmdCompare(ctx context.Context, args []string) int {
	var bf buildFlags
	var rf runFlags
	var cf compareFlags
	fs := newFlags("compare", "compare [--source S] [--patch FILE] [--widen] [--kernels DIR] [--budget D | --runs N] [--duration D] [--out DIR] [--json]")
	bf.register(fs)
	rf.register(fs)
	cf.register(fs)
	out := fs.String("out", "", "output directory (default out/compare-TIME)")
	asJSON := fs.Bool("json", false, "print report.json on stdout instead of the table")
	kernels := fs.String("kernels", "", "boot the kernels in DIR ('harness build --export DIR') after checking their sha256, and build nothing")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	}
	usageErr := func(err error) int { return usageError("compare", err) }
	if err := kernelsExclusive(fs, *kernels); err != nil {
		return usageErr(err)
	}
	if err := rf.validate(); err != nil {
		return usageErr(err)
	}
	if err := bf.check(); err != nil {
		return usageErr(err)
	}
	opt := verdict.Options{Alpha: cf.alpha, MinReduction: cf.minReduction}
	if err := opt.Validate(); err != nil {
		return usageErr(err)
	}
	switch {
	case cf.runs < 0:
		return usageErr(fmt.Errorf("--runs %d: want a positive number of runs, or leave it out for the adaptive design", cf.runs))
	case cf.runs == 0 && cf.budget < rf.duration:
		return usageErr(fmt.Errorf("--budget %s is shorter than one run (--duration %s)", cf.budget, rf.duration))
	case cf.jobs < 0:
		return usageErr(fmt.Errorf("--jobs %d: want the number of VMs at once, or 0 for what the host fits", cf.jobs))
	case cf.expect != "" && !slices.Contains([]verdict.Verdict{verdict.Fixed, verdict.NotFixed, verdict.Regressed, verdict.Inconclusive}, verdict.Verdict(cf.expect)):
		return usageErr(fmt.Errorf("--expect %q: want fixed, not-fixed, regressed or inconclusive", cf.expect))
	}
	sig := report.Signature{}
	var err error
	if sig.Patterns, err = compileAll("signature", cf.signature); err != nil {
		return usageErr(err)
	}
	if sig.Ignore, err = compileAll("ignore", cf.ignore); err != nil {
		return usageErr(err)
	}
	if cf.jobs == 0 {
		cf.jobs = defaultJobs(rf.cpus, rf.mem)
	}
	dir := outDir(*out, "compare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "harness compare: output directory: %v\n", err)
		return exitError
	}
	p := newProgress()
	started := time.Now()
	b, m, err := kernelsOrBuild(ctx, &bf, *kernels, p.Say)
	boot := bootWanted(&bf, b)
	rep := &report.Report{SchemaVersion: report.SchemaVersion, Tool: "zswaprace", Source: bf.source, Widen: bf.widens(),
		Widening: wideningOf(boot, bf.kcsan, rf), Started: started, Accel: rf.resolvedAccel(), Ignore: cf.ignore,
		Alpha: opt.Alpha, SignaturePatterns: cf.signature, Guest: guestOf(rf, boot), Expect: cf.expect}
	if rep.Alpha == 0 {
		rep.Alpha = verdict.DefaultAlpha
	}
	rep.Provenance = newProvenance(rf, bf.source, b)
	if b != nil && b.patched != nil && hasPageOwner(b.patched.Config) {
		// The kernels' command line: a --debug kernel boots with page_owner=on.
		rep.Guest.Cmdline = strings.Join(bootCmdline(&rf, bootOf(b.patched)), " ")
	}
	if m != nil {
		rep.Kernels = *kernels
	}
	if cf.minReduction > 0 {
		rep.MinReduction = &cf.minReduction
	}
	if err == nil {
		rep.Patch, rep.PatchDirection, rep.PatchSHA256 = b.patch.Path, reportDirection(b.direction), sha256Hex(b.patch.Data)
		err = copyConfigs(dir, b.unpatched, b.patched)
	}
	var e *env
	if err == nil {
		e, err = newEnv(ctx, rf, cacheDir(), dir, p.Say)
	}
	if err != nil {
		printErr(err)
		rep.Verdict, rep.Reason = string(verdict.Error), err.Error()
		if ctx.Err() != nil {
			rep.Verdict, rep.Interrupted = verdictInterrupted, true
		}
		finish(dir, rep, *asJSON)
		return buildExit(err)
	}
	s := &scheduler{env: e, jobs: cf.jobs, sig: sig,
		imgs: map[string]bootImage{
			"unpatched": bootOf(b.unpatched), "patched": bootOf(b.patched)}}
	var plan verdict.Plan
	if cf.runs > 0 {
		rep.Design = "fixed"
		rep.PlannedRuns = &cf.runs
		plan = verdict.FixedDesign{Runs: cf.runs, RunSeconds: rf.duration.Seconds(), Alpha: cf.alpha, MinReduction: cf.minReduction}
		p.Say(fmt.Sprintf("fixed design: %d run(s) of each kernel, %s each, %d VM(s) at once, %s", cf.runs, rf.duration, cf.jobs, rep.Accel))
	} else {
		rep.Design = "adaptive"
		budget := cf.budget.Seconds()
		rep.BudgetSeconds = &budget
		plan = verdict.Design{Alpha: cf.alpha, RunSeconds: rf.duration.Seconds(), Budget: budget, MinReduction: cf.minReduction}
		p.Say(fmt.Sprintf("adaptive design: runs of %s until the verdict is decided or %s is spent, %d VM(s) at once, %s", rf.duration, cf.budget, cf.jobs, rep.Accel))
	}
	rep.Method = plan.Method()
	s.run(ctx, plan)
	opt = plan.Options()
	un, pa, learned := s.variants()
	rep.Signature = learned.Strings()
	res := verdict.Compare(counts(un), counts(pa), opt)
	fillVerdict(rep, res, &un, &pa)
	un.KernelSHA256, pa.KernelSHA256 = b.unpatched.SHA256, b.patched.SHA256
	rep.Variants = []report.Variant{un, pa}
	for _, r := range slices.Concat(un.RunDetails, pa.RunDetails) {
		rep.GuestCPUs = max(rep.GuestCPUs, r.GuestCPUs)
	}
	if ctx.Err() != nil {
		// An interrupted comparison has no verdict: what finished is kept,
		// but it answers nothing.
		rep.Interrupted = true
		rep.Reason = "interrupted before the comparison was decided; the runs that finished would say: " + string(res.Verdict) + ": " + res.Reason
		rep.Verdict = verdictInterrupted
	}
	if code := finish(dir, rep, *asJSON); code != 0 {
		return code
	}
	if rep.Interrupted {
		return exitError
	}
	return verdictExit(res.Verdict)
}

// verdictExit is the exit code of compare and merge for a verdict.
func verdictExit(v verdict.Verdict) int {
	switch v {
	case verdict.Fixed:
		return exitFixed
	case verdict.NotFixed, verdict.Regressed:
		return exitNotFixed
	case verdict.Inconclusive:
		return exitInconclusive
	}
	return exitError
}

// verdictInterrupted is the verdict of a comparison stopped before the end.
const verdictInterrupted = "interrupted"

// widening says in words how the race window was widened, for the report.
func widening(widen, kcsan bool, rf runFlags) string {
	return wideningOf(widenBoot(widen), kcsan, rf)
}

// wideningOf says in words how the race window of kernels that need what
// b says was widened, for the report.
func wideningOf(b kernel.Boot, kcsan bool, rf runFlags) string {
	var parts []string
	switch b.Widening {
	case kernel.WidenDelay:
		parts = append(parts, fmt.Sprintf("delay patch (%s=%d)", b.Param(), rf.delayFor(b)))
	case kernel.WidenDelayAt:
		parts = append(parts, fmt.Sprintf("delay at %s, %d us (%s)", b.WidenAt, rf.delayFor(b), b.Param()))
	case "":
	default:
		parts = append(parts, b.Widening)
	}
	if kcsan {
		ud, skip := "80 us (kernel default)", "4000 (kernel default)"
		if rf.kcsanUdelay >= 0 {
			ud = fmt.Sprintf("%d us", rf.kcsanUdelay)
		}
		if rf.kcsanSkip > 0 {
			skip = fmt.Sprint(rf.kcsanSkip)
		}
		parts = append(parts, fmt.Sprintf("KCSAN watchpoints (kcsan.udelay_task=%s, kcsan.skip_watch=%s)", ud, skip))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " + ")
}

// contendedNote says how many runs ran on a busy host (report.Run's
// Contended), "" if none did. The verdict stands, as both kernels are
// judged by what they did (and a patched kernel that stressed less is
// ruled out by the workload check), but a race shows less often on a
// busy host: an inconclusive verdict may be the host's.
func contendedNote(vs ...report.Variant) string {
	n, all := 0, 0
	for _, v := range vs {
		for _, r := range v.RunDetails {
			if r.StressSeconds > 0 {
				all++
			}
			if r.Contended {
				n++
			}
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%d of %d runs ran on a busy host (\"contended runs\"): they stressed the kernel less and a race shows less often in them; if the verdict is inconclusive, rerun on a quiet machine", n, all)
}

// fillVerdict copies the verdict and the per-side rates into the report.
func fillVerdict(rep *report.Report, res verdict.Result, un, pa *report.Variant) {
	rep.Verdict, rep.Reason, rep.Notes = string(res.Verdict), res.Reason, res.Notes
	if n := contendedNote(*un, *pa); n != "" {
		rep.Notes = append(rep.Notes, n)
	}
	if res.Method != "" {
		rep.Method = res.Method
	}
	if res.Verdict != verdict.Error {
		rep.PValue = &res.PValue
	}
	if res.NeededCleanSeconds > 0 {
		rep.NeededCleanSeconds = &res.NeededCleanSeconds
	}
	rep.RatioUpper = res.RatioUpper
	for _, side := range []struct {
		v    *report.Variant
		rate verdict.Rate
		risk float64
	}{{un, res.UnpatchedRate, res.UnpatchedAtRisk}, {pa, res.PatchedRate, res.PatchedAtRisk}} {
		if side.risk > 0 {
			risk := side.risk
			side.v.TimeAtRisk = &risk
			side.v.Rate = &report.Interval{Estimate: side.rate.PerHour, Low: side.rate.Low, High: side.rate.High}
		}
	}
}

// defaultJobs fits VMs to the host: one per guest's worth of cores, and no
// more than half the host's memory.
func defaultJobs(cpus, memMiB int) int {
	n := runtime.NumCPU() / max(cpus, 1)
	if mem := hostMemMiB(); mem > 0 {
		n = min(n, mem/2/max(memMiB+128, 1))
	}
	return max(n, 1)
}

func hostMemMiB() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	var kb int
	fmt.Sscanf(string(b), "MemTotal: %d kB", &kb)
	return kb / 1024
}

// counts is what the verdict needs of a variant.
func counts(v report.Variant) verdict.Counts {
	c := verdict.Counts{Failures: v.Failures, OtherFailures: v.OtherFailures, Exposure: v.Exposure(),
		Boots: v.Runs, BootFailures: v.BootFailures, InfraErrors: v.InfraErrors, NoWriteback: v.NoWriteback,
		OOMs: v.OOMs, OOMSeconds: v.OOMSeconds}
	if v.WrittenBackPerSec != nil {
		c.WritebackPerSec = *v.WrittenBackPerSec
	}
	for _, r := range v.RunDetails {
		if r.CountedAs != nil && (r.Outcome == report.OutcomeWarning || r.FailedAfterWorkload()) {
			c.RanOn++ // a WARNING does not stop the run, a health failure comes after it
		}
	}
	return c
}

func copyConfigs(dir string, imgs ...*kernel.Image) error {
	for _, img := range imgs {
		b, err := os.ReadFile(img.Config)
		if err != nil {
			return fault.New(fault.Infra, "kernel config", err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, img.Variant+".config"), b); err != nil {
			return fault.New(fault.Infra, "write "+dir, err)
		}
	}
	return nil
}

// finish writes the reports and prints the table (or JSON). A report that
// cannot be written is an error: nothing half-written is left behind.
func finish(dir string, rep *report.Report, asJSON bool) int {
	if rep.Finished.IsZero() { // a merged report keeps its last shard's end
		rep.Finished = time.Now()
	}
	if err := report.WriteAll(dir, rep); err != nil {
		fmt.Fprintf(os.Stderr, "harness: could not write the results: %v\n", err)
		return exitError
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		fmt.Println()
		report.Table(os.Stdout, rep)
		fmt.Printf("\nresults in %s (report.json, junit.xml, summary.md, survival.svg, console logs)\n", dir)
	}
	return 0
}

// reportDirection is report.json's patch_direction for a build direction:
// "forward" (the source lacks the patch) or "reverse", as the schema and
// docs/report-json.md say (the build calls forward "apply").
func reportDirection(d kernel.Direction) string {
	if d == kernel.Apply {
		return "forward"
	}
	return string(d)
}

// bootWanted is what the kernels b need at boot (their line, their
// widening), or what the flags ask for when there are none (a failed
// build).
func bootWanted(bf *buildFlags, b *built) kernel.Boot {
	if b != nil && b.unpatched != nil {
		boot := b.unpatched.Boot
		if bf.widen && boot.Widening == "" {
			boot.Widening = kernel.WidenDelay
		}
		return boot
	}
	return widenBoot(bf.widens())
}
