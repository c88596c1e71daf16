package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"zswaprace/harness/fsutil"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// 'harness merge' pools the runs of several comparisons (shards, one per
// CI runner) into one report, as if one comparison had made them all:
// race failures over time at risk add up exactly, so the verdict is
// recomputed from the union of the runs, never averaged from the shards'
// verdicts.

// shard is one comparison's output directory and its report.
type shard struct {
	dir string
	rep report.Report
}

func cmdMerge(ctx context.Context, args []string) int {
	fs := newFlags("merge", "merge [--out DIR] [--json] SHARD_DIR... (directories of 'compare --out', or a quoted glob)")
	out := fs.String("out", "", "output directory (default out/merge-TIME)")
	asJSON := fs.Bool("json", false, "print the merged report.json on stdout instead of the table")
	if code, ok := parseArgs(fs, args, true); !ok {
		return code
	}
	if fs.NArg() == 0 {
		return usageError("merge", fmt.Errorf("no shard directories given: name the 'compare --out' directories to pool, or a quoted glob (see 'harness merge -h')"))
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "harness merge:", err)
		return exitError
	}
	dirs, err := expandShards(fs.Args())
	if err != nil {
		return fail(err)
	}
	shards, err := readShards(dirs)
	if err != nil {
		return fail(err)
	}
	if err := checkPoolable(shards); err != nil {
		return fail(err)
	}
	rep, res, err := mergeReports(shards)
	if err != nil {
		return fail(err)
	}
	dir := outDir(*out, "merge")
	if err := copyShardConfigs(shards[0].dir, dir); err != nil {
		return fail(err)
	}
	if code := finish(dir, rep, *asJSON); code != 0 {
		return code
	}
	return verdictExit(res.Verdict)
}

// expandShards expands quoted globs (a CI step may not have a shell that
// does) and refuses an empty list.
func expandShards(args []string) ([]string, error) {
	var dirs []string
	for _, a := range args {
		if !strings.ContainsAny(a, "*?[") {
			dirs = append(dirs, a)
			continue
		}
		m, err := filepath.Glob(a)
		if err != nil || len(m) == 0 {
			return nil, fmt.Errorf("%q matches no shard directory", a)
		}
		dirs = append(dirs, m...)
	}
	if len(dirs) == 0 {
		return nil, fmt.Errorf("name the shards' output directories: harness merge OUT_1 OUT_2 ...")
	}
	return dirs, nil
}

// readShards reads each directory's report.json, refusing the same
// directory twice.
func readShards(dirs []string) ([]shard, error) {
	var shards []shard
	seen := map[string]string{}
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[abs]; ok {
			return nil, fmt.Errorf("%s and %s are the same shard: its runs would count twice", prev, d)
		}
		seen[abs] = d
		path := filepath.Join(d, report.JSONFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%v: each argument must be a directory written by 'harness compare --out'", err)
		}
		var r report.Report
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("%s: %v", path, err)
		}
		shards = append(shards, shard{dir: d, rep: r})
	}
	return shards, nil
}

// poolField is one thing every shard must agree on, by its report.json name.
type poolField struct {
	name string
	get  func(*report.Report) string
	why  string // what to do when shards differ
}

var (
	sameKernels = "run every shard from one 'harness build --export' directory ('compare --kernels DIR')"
	sameFlags   = "run every shard with the same flags"
)

// poolFields are what makes runs of one comparison alike: the kernels, the
// patch, the widening and the guest. Runs that differ in any of them have
// different failure rates, and pooling them would answer no question.
var poolFields = []poolField{
	{"schema_version", func(r *report.Report) string { return fmt.Sprint(r.SchemaVersion) }, "run every shard with the same harness version"},
	{"variants[0].kernel_sha256 (the unpatched kernel)", func(r *report.Report) string { return r.Variants[0].KernelSHA256 }, sameKernels},
	{"variants[1].kernel_sha256 (the patched kernel)", func(r *report.Report) string { return r.Variants[1].KernelSHA256 }, sameKernels},
	{"patch_sha256", func(r *report.Report) string { return r.PatchSHA256 }, sameKernels},
	{"patch_direction", func(r *report.Report) string { return r.PatchDirection }, sameKernels},
	{"widening", func(r *report.Report) string { return r.Widening }, sameKernels + " and the same --delay-us"},
	{"accel", func(r *report.Report) string { return r.Accel }, "run every shard on the same kind of runner: a TCG guest is many times slower than a KVM one, so their failure rates are not one rate"},
	{"guest.cpus", func(r *report.Report) string { return fmt.Sprint(r.Guest.CPUs) }, sameFlags + " (--cpus)"},
	{"guest.mem_mib", func(r *report.Report) string { return fmt.Sprint(r.Guest.MemMiB) }, sameFlags + " (--mem)"},
	{"guest.swap_mib", func(r *report.Report) string { return fmt.Sprint(r.Guest.SwapMiB) }, sameFlags + " (--swap)"},
	{"guest.run_seconds", func(r *report.Report) string { return fmt.Sprint(r.Guest.RunSeconds) }, sameFlags + " (--duration)"},
	{"guest.workload", func(r *report.Report) string { return r.Guest.Workload }, sameFlags + " (--workers, --mib-per-worker, --mode, --swing-*, --workload)"},
	{"guest.cmdline", func(r *report.Report) string { return r.Guest.Cmdline }, sameFlags + " (--zpool, --compressor, --max-pool-percent, --delay-us, --cmdline)"},
	{"guest.hang_after_seconds", func(r *report.Report) string { return fmt.Sprint(r.Guest.HangAfterSeconds) }, sameFlags + " (--hang-after)"},
	{"guest.health", func(r *report.Report) string { return r.Guest.Health }, sameFlags + " (--health, --leak-tolerance): a run that is a leak in one shard must be one in all"},
	{"design", func(r *report.Report) string { return r.Design }, sameFlags + " (all --runs N, or all adaptive)"},
	{"alpha", func(r *report.Report) string { return fmt.Sprint(r.Alpha) }, sameFlags + " (--alpha)"},
	{"min_reduction", func(r *report.Report) string { return floatOrNone(r.MinReduction) }, sameFlags + " (--min-reduction)"},
	{"signature_patterns", func(r *report.Report) string { return strings.Join(r.SignaturePatterns, "\x00") }, sameFlags + " (--signature)"},
	{"ignore", func(r *report.Report) string { return strings.Join(r.Ignore, "\x00") }, sameFlags + " (--ignore)"},
	// The kernels' sha256 already pins the source; these say why they differ.
	{"provenance.source_package_version", func(r *report.Report) string { return deref(r.Provenance.SourcePackageVersion) }, sameKernels},
	{"provenance.source_kernel_version", func(r *report.Report) string { return deref(r.Provenance.SourceKernelVersion) }, sameKernels},
	{"provenance.source_commit", func(r *report.Report) string { return deref(r.Provenance.SourceCommit) }, sameKernels},
	{"provenance.config_fragments (sha256)", func(r *report.Report) string { return fragmentSums(r.Provenance.ConfigFragments) }, sameKernels},
}

func floatOrNone(f *float64) string {
	if f == nil {
		return "none"
	}
	return fmt.Sprint(*f)
}

// checkPoolable refuses shards that are not runs of one comparison, naming
// the first field that differs and both values.
func checkPoolable(shards []shard) error {
	for _, s := range shards {
		if err := completeShard(s); err != nil {
			return err
		}
	}
	first := shards[0]
	started := map[time.Time]string{first.rep.Started: first.dir}
	for _, s := range shards[1:] {
		if prev, ok := started[s.rep.Started]; ok {
			return fmt.Errorf("%s and %s hold the same comparison (both started %s): its runs would count twice", prev, s.dir, s.rep.Started.Format(time.RFC3339Nano))
		}
		started[s.rep.Started] = s.dir
		for _, f := range poolFields {
			if a, b := f.get(&first.rep), f.get(&s.rep); a != b {
				return fmt.Errorf("cannot pool %s with %s: %s differs (%s against %s); %s",
					s.dir, first.dir, f.name, shown(a), shown(b), f.why)
			}
		}
	}
	return nil
}

// completeShard refuses a report that has no runs to pool or lacks what
// the pooling check needs.
func completeShard(s shard) error {
	r := s.rep
	switch {
	case r.Tool != "zswaprace":
		return fmt.Errorf("%s: report.json is not a zswaprace report (tool %q)", s.dir, r.Tool)
	case len(r.Shards) > 0:
		return fmt.Errorf("%s is itself a merged report: merge the original shards instead, so that no run counts twice", s.dir)
	case r.Interrupted:
		return fmt.Errorf("%s was interrupted before its comparison was decided: rerun that shard, or leave it out of the merge", s.dir)
	case len(r.Variants) != 2 || r.Variants[0].Name != "unpatched" || r.Variants[1].Name != "patched":
		return fmt.Errorf("%s has no runs of both kernels (verdict %s: %s): fix what it says and rerun that shard", s.dir, r.Verdict, r.Reason)
	case r.Guest == nil || r.Provenance == nil || r.PatchSHA256 == "" || r.Variants[0].KernelSHA256 == "" || r.Variants[1].KernelSHA256 == "":
		return fmt.Errorf("%s does not record its kernels' and guest's identity (an older harness wrote it): rerun that shard with this harness", s.dir)
	}
	return nil
}

// shown quotes a value for an error message, abbreviating hashes.
func shown(v string) string {
	if v == "" {
		return "none"
	}
	if len(v) == 64 && strings.Trim(v, "0123456789abcdef") == "" {
		return v[:16] + "…"
	}
	return fmt.Sprintf("%q", strings.ReplaceAll(v, "\x00", ", "))
}

// mergeReports pools the shards' runs and judges the union exactly as one
// comparison judges its runs: the same aggregation, signature, counts and
// test. The shards must have passed checkPoolable.
func mergeReports(shards []shard) (*report.Report, verdict.Result, error) {
	first := shards[0].rep
	rep := &report.Report{SchemaVersion: report.SchemaVersion, Tool: first.Tool, Source: first.Source,
		Patch: first.Patch, PatchDirection: first.PatchDirection, PatchSHA256: first.PatchSHA256,
		Widen: first.Widen, Widening: first.Widening, Accel: first.Accel, Ignore: first.Ignore,
		Alpha: first.Alpha, MinReduction: first.MinReduction, SignaturePatterns: first.SignaturePatterns,
		Guest: first.Guest, Kernels: first.Kernels, Design: first.Design, Expect: first.Expect,
		Started: first.Started, Finished: first.Finished, Provenance: first.Provenance}
	runs := map[string][]report.Run{}
	for i, s := range shards {
		rep.Shards = append(rep.Shards, shardSummary(s))
		rep.Started = minTime(rep.Started, s.rep.Started)
		if s.rep.Finished.After(rep.Finished) {
			rep.Finished = s.rep.Finished
		}
		for _, v := range s.rep.Variants {
			for _, r := range v.RunDetails {
				r.Shard, r.ShardIndex = i+1, r.Index
				r.Index = len(runs[v.Name]) + 1
				r.ConsoleLog = shardConsoleLog(s.dir, v.Name, r)
				runs[v.Name] = append(runs[v.Name], r)
			}
		}
	}
	sig, err := mergedSignature(first)
	if err != nil {
		return nil, verdict.Result{}, err
	}
	if len(sig.Patterns) == 0 {
		sig = sig.Learn(runs["unpatched"])
	}
	rep.Signature = sig.Strings()
	un := report.Aggregate("unpatched", first.Variants[0].Kernel, runs["unpatched"], sig)
	pa := report.Aggregate("patched", first.Variants[1].Kernel, runs["patched"], sig)
	plan := pooledPlan(shards, un.Runs, pa.Runs)
	res := verdict.Compare(counts(un), counts(pa), plan.Options())
	fillVerdict(rep, res, &un, &pa)
	rep.Notes = append(rep.Notes, provenanceNotes(shards)...)
	un.KernelSHA256, pa.KernelSHA256 = first.Variants[0].KernelSHA256, first.Variants[1].KernelSHA256
	rep.Variants = []report.Variant{un, pa}
	for _, r := range slices.Concat(un.RunDetails, pa.RunDetails) {
		rep.GuestCPUs = max(rep.GuestCPUs, r.GuestCPUs)
	}
	if n := plannedRuns(shards); n > 0 {
		rep.PlannedRuns = &n
	}
	rep.Method, rep.Pooling = pooledMethod(plan, len(shards), first.Design)
	return rep, res, nil
}

// pooledPlan is the design the union of the shards' runs is judged under:
// a fixed design of the runs the shards planned (fixed shards) or made
// (adaptive shards: see pooledMethod), with their run length, alpha and
// minimum reduction. Only the run length, alpha and minimum reduction
// enter the test; the number of runs only names the design.
func pooledPlan(shards []shard, unRuns, paRuns int) verdict.FixedDesign {
	first := shards[0].rep
	return pooledDesign(max(plannedRuns(shards), unRuns, paRuns, 1), first.Guest.RunSeconds, first.Alpha, first.MinReduction)
}

// pooledDesign is the fixed design pooled runs are judged under; the
// simulation in merge_sim_test.go judges its pools with it too.
func pooledDesign(runs int, runSeconds, alpha float64, minReduction *float64) verdict.FixedDesign {
	d := verdict.FixedDesign{Runs: runs, RunSeconds: runSeconds, Alpha: alpha}
	if minReduction != nil {
		d.MinReduction = *minReduction
	}
	return d
}

// plannedRuns is the fixed design's runs per kernel over all shards, 0 for
// adaptive shards.
func plannedRuns(shards []shard) int {
	n := 0
	for _, s := range shards {
		if s.rep.PlannedRuns != nil {
			n += *s.rep.PlannedRuns
		}
	}
	return n
}

// pooledMethod names the method and says, honestly, how shards were pooled.
func pooledMethod(plan verdict.FixedDesign, n int, design string) (method, pooling string) {
	if design == "fixed" {
		return plan.Method(), fmt.Sprintf("the union of the runs of %d fixed-design shards, judged as one fixed design of %d runs per kernel. "+
			"Each shard planned its runs in advance and skipped its remaining patched runs only once a fix was ruled out for it, as one comparison does, "+
			"so the pooled test is the one a single comparison of all these runs would make", n, plan.Runs)
	}
	method = fmt.Sprintf("adaptive shards pooled as a fixed design: exact conditional binomial with failed runs counted in full, one-sided alpha %g", plan.Options().Alpha)
	if plan.MinReduction > 0 {
		method += fmt.Sprintf(", fixed only if the 95%% upper bound on the rate ratio is at most 1/%g", plan.MinReduction)
	}
	return method, fmt.Sprintf("the union of the runs of %d adaptive (two-stage) shards, judged as if it were one fixed design: "+
		"each shard stopped by its own two-stage rule, which the pooled test does not model, so its p-value is the fixed-design one on the pooled counts, "+
		"not the exact level of a single two-stage design; a seeded simulation (harness/merge_sim_test.go) measured false fixed and false regressed rates of this pooling under alpha (see the README, Running on many machines)", n)
}

// mergedSignature is the --signature and --ignore the shards ran with.
func mergedSignature(r report.Report) (report.Signature, error) {
	var sig report.Signature
	var err error
	if sig.Patterns, err = compileAll("signature", r.SignaturePatterns); err != nil {
		return sig, err
	}
	sig.Ignore, err = compileAll("ignore", r.Ignore)
	return sig, err
}

// shardSummary is a shard's line in the merged report.
func shardSummary(s shard) report.Shard {
	sh := report.Shard{Dir: s.dir, Verdict: s.rep.Verdict, PValue: s.rep.PValue, Accel: s.rep.Accel,
		Started: s.rep.Started, Finished: s.rep.Finished, Provenance: s.rep.Provenance}
	for _, v := range s.rep.Variants {
		sh.Runs = append(sh.Runs, v.Runs)
	}
	return sh
}

// shardConsoleLog points a run's console log into the shard directory as
// the merge job sees it (the shard wrote the runner's own path).
func shardConsoleLog(dir, variant string, r report.Run) string {
	if r.ConsoleLog == "" {
		return ""
	}
	p := filepath.Join(dir, fmt.Sprintf("%s-%d", variant, r.ShardIndex), filepath.Base(r.ConsoleLog))
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return r.ConsoleLog
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// copyShardConfigs copies the kernels' .config files from a shard (all
// shards booted the same kernels) beside the merged report.
func copyShardConfigs(from, to string) error {
	for _, name := range []string{"unpatched.config", "patched.config"} {
		b, err := os.ReadFile(filepath.Join(from, name))
		if err != nil {
			continue // the report says which kernels; the configs are a courtesy
		}
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(to, name), b); err != nil {
			return err
		}
	}
	return nil
}

// guestOf records how the flags set up every guest, for merge to check.
// boot is what the kernels need at boot (their line, their widening).
func guestOf(rf runFlags, boot kernel.Boot) *report.Guest {
	g := &report.Guest{CPUs: rf.cpus, MemMiB: rf.mem, SwapMiB: rf.swapMiB, RunSeconds: rf.duration.Seconds(),
		Cmdline: strings.Join(rf.cmdlineFor(boot), " "), HangAfterSeconds: rf.hangAfter.Seconds(), Health: "off"}
	if rf.health {
		g.Health = fmt.Sprintf("after every run, leak tolerance %d pages", rf.leakTolerance)
	}
	if rf.workload != "" {
		g.Workload = "external: " + rf.workload
	} else {
		c := rf.stressConfigFor(boot)
		g.Workload = fmt.Sprintf("stress workers: %d x %d MiB, mode %s, pool swing %d-%d%% every %d ms",
			c.Workers, c.MiBPerWorker, c.Mode, c.Swing.Low, c.Swing.High, c.Swing.PeriodMs)
	}
	return g
}
