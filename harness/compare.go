package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/harness/fault"
	"zswaprace/harness/fsutil"
	"zswaprace/harness/initramfs"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
	"zswaprace/harness/verdict"
)

// Exit codes of 'harness compare'.
const (
	exitFixed        = 0
	exitNotFixed     = 1
	exitInconclusive = 2
)

func cmdCompare(ctx context.Context, args []string) int {
	var bf buildFlags
	var rf runFlags
	fs := newFlags("compare", "compare [--source S] [--patch FILE] [--widen] [--runs N] [--duration D] [--out DIR] [--json]")
	bf.register(fs)
	rf.register(fs)
	runs := fs.Int("runs", 3, "runs per kernel (a failing run stops at its first failure)")
	jobs := fs.Int("jobs", 0, "VMs at once (default: what the host's cores and memory fit)")
	out := fs.String("out", "", "output directory (default out/compare-TIME)")
	alpha := fs.Float64("alpha", verdict.DefaultAlpha, "significance level of the verdict")
	asJSON := fs.Bool("json", false, "print report.json on stdout instead of the table")
	if err := fs.Parse(args); err != nil {
		return exitError
	}
	if err := rf.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "harness compare:", err)
		return exitError
	}
	opt := verdict.Options{Alpha: *alpha}
	if err := opt.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "harness compare:", err)
		return exitError
	}
	if *runs < 1 {
		fmt.Fprintln(os.Stderr, "harness compare: --runs must be at least 1")
		return exitError
	}
	if *jobs <= 0 {
		*jobs = defaultJobs(rf.cpus, rf.mem)
	}
	dir := outDir(*out, "compare")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "harness compare: output directory: %v\n", err)
		return exitError
	}
	p := newProgress()
	rep := &report.Report{Tool: "zswaprace", Source: bf.source, Widen: bf.widen, Started: time.Now(), Accel: rf.resolvedAccel()}
	b, err := bf.buildBoth(ctx, p.Say)
	if err == nil {
		rep.Patch, rep.PatchDirection = b.patch.Path, string(b.direction)
		err = copyConfigs(dir, b.unpatched, b.patched)
	}
	var initrd string
	var c compareRun
	if err == nil {
		initrd, c.keys, c.exec, err = rf.initramfs(ctx)
	}
	if err != nil {
		printErr(err)
		rep.Verdict, rep.Reason = string(verdict.Error), err.Error()
		rep.Interrupted = ctx.Err() != nil
		finish(dir, rep, *asJSON)
		return exitError
	}
	p.Say(fmt.Sprintf("running %d run(s) of each kernel, %s each, %d VM(s) at once, %s", *runs, rf.duration, *jobs, rep.Accel))
	c.rf, c.initrd, c.dir, c.say, c.widen, c.opt = &rf, initrd, dir, p.Say, bf.widen, opt
	un, pa := c.run(ctx, b, *runs, *jobs)
	rep.Variants = []report.Variant{
		report.Aggregate("unpatched", b.unpatched.Kernel, un),
		report.Aggregate("patched", b.patched.Kernel, pa),
	}
	res := verdict.Compare(counts(rep.Variants[0]), counts(rep.Variants[1]), opt)
	rep.Verdict, rep.Reason, rep.PValue, rep.NeededCleanSeconds = string(res.Verdict), res.Reason, res.PValue, res.NeededCleanSeconds
	if ctx.Err() != nil {
		rep.Interrupted = true
		rep.Reason = "interrupted before all runs finished; " + rep.Reason
	}
	if code := finish(dir, rep, *asJSON); code != 0 {
		return code
	}
	if rep.Interrupted {
		return exitError
	}
	switch res.Verdict {
	case verdict.Fixed:
		return exitFixed
	case verdict.NotFixed, verdict.Regressed:
		return exitNotFixed
	case verdict.Inconclusive:
		return exitInconclusive
	}
	return exitError
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

func counts(v report.Variant) verdict.Counts {
	return verdict.Counts{Failures: v.Failures, Exposure: v.Exposure(), BootFailures: v.BootFailures,
		InfraErrors: v.InfraErrors, NoWriteback: v.NoWriteback, OOMs: v.OOMs}
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
	rep.Finished = time.Now()
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
		fmt.Printf("\nresults in %s (report.json, junit.xml, summary.md, console logs)\n", dir)
	}
	return 0
}

// compareRun schedules the runs of both kernels.
type compareRun struct {
	rf     *runFlags
	initrd string
	keys   *initramfs.Keys
	exec   *proto.ExecRequest
	dir    string
	widen  bool
	opt    verdict.Options
	say    func(string)
}

// run runs the unpatched kernel first, then the patched one, jobs VMs at a
// time. Runs stop at their first failure. Before each patched run starts
// (once a VM is free, so with what has finished so far) the verdict is
// checked: the patched runs stop early once it cannot change any more.
func (c *compareRun) run(ctx context.Context, b *built, runs, jobs int) (un, pa []report.Run) {
	var mu sync.Mutex
	results := map[string][]report.Run{}
	slots := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	start := func(variant string, index int, img *kernel.Image) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			spec := c.rf.spec(variant, index, img.Kernel, img.Config, c.initrd, c.keys, c.widen,
				filepath.Join(c.dir, fmt.Sprintf("%s-%d", variant, index)), c.exec, c.say)
			spec.Stress.StopOnCorruption = true
			r := runner.Run(ctx, spec)
			c.say(fmt.Sprintf("%s run %d: %s after %.0f s of stress%s", variant, index, r.Outcome, r.StressSeconds, firstTitle(r)))
			mu.Lock()
			results[variant] = append(results[variant], r)
			mu.Unlock()
		}()
	}
	decided := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if len(results["unpatched"]) < runs {
			return false
		}
		u := counts(report.Aggregate("unpatched", "", results["unpatched"]))
		p := counts(report.Aggregate("patched", "", results["patched"]))
		return verdict.Decided(u, p, float64(runs)*c.rf.duration.Seconds(), c.opt)
	}
	for i := 1; i <= runs && ctx.Err() == nil; i++ {
		slots <- struct{}{}
		start("unpatched", i, b.unpatched)
	}
	for i := 1; i <= runs && ctx.Err() == nil; i++ {
		slots <- struct{}{}
		if decided() {
			<-slots
			c.say("the verdict cannot change any more: skipping the remaining patched runs")
			break
		}
		start("patched", i, b.patched)
	}
	wg.Wait()
	byIndex := func(a, b report.Run) int { return a.Index - b.Index }
	slices.SortFunc(results["unpatched"], byIndex)
	slices.SortFunc(results["patched"], byIndex)
	return results["unpatched"], results["patched"]
}

func firstTitle(r report.Run) string {
	switch {
	case len(r.CrashTitles) > 0:
		return ": " + r.CrashTitles[0]
	case r.Corruptions > 0:
		return fmt.Sprintf(": %d corrupt pages", r.Corruptions)
	}
	return ""
}
