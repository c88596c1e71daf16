package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
)

// metric is one benchmark figure over repeated measurements.
type metric struct {
	Name     string    `json:"name"`
	Unit     string    `json:"unit"`
	Accel    string    `json:"accel"`
	N        int       `json:"n"`
	Median   float64   `json:"median"`
	Min      float64   `json:"min"`
	Max      float64   `json:"max"`
	Censored int       `json:"censored,omitempty"` // runs that hit the limit without the event
	Limit    float64   `json:"limit,omitempty"`    // the limit, in Unit
	Values   []float64 `json:"values"`
	Note     string    `json:"note,omitempty"`
}

func newMetric(name, unit, accel string, values []float64) metric {
	m := metric{Name: name, Unit: unit, Accel: accel, N: len(values), Values: values}
	if len(values) == 0 {
		return m
	}
	s := append([]float64(nil), values...)
	sort.Float64s(s)
	m.Min, m.Max = s[0], s[len(s)-1]
	if len(s)%2 == 1 {
		m.Median = s[len(s)/2]
	} else {
		m.Median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m
}

// workload is one thing whose time to first failure is measured.
// workload is one bench row's guest set-up: the kernel it boots and how
// the run differs from the flags.
type workload struct {
	name    string
	kernel  string        // benchWidened, benchPlain or benchKcsan
	exec    string        // host command run in the guest; "" = the stress workers
	delayUS int           // -1 = the widened default
	cpus    int           // guest CPUs; 0 = --cpus
	soakRun time.Duration // a soak's runs; 0 = 2 minutes
	tune    func(*runFlags)
}

// The kernels a bench row can boot: built with the delay patch (--widen),
// as the source has it, or with KCSAN (--kcsan). Rows that measure a
// generic mode boot benchPlain or benchKcsan: no patch written for the race.
const (
	benchWidened = "widened"
	benchPlain   = "plain"
	benchKcsan   = "kcsan"
)

// slotReuse is the workload tuned for swap-slot reuse (issue 11): a swap
// disk barely larger than what the workers push out, so that freed slots
// are handed out again at once, the pool swinging 4 times as fast, and the
// random order, so that a page comes back while its neighbours go out.
func slotReuse(f *runFlags) {
	f.swapMiB = f.workers*f.mibPerWorker - f.mem/4
	f.swingPeriod = 250 * time.Millisecond
	f.mode = "random"
}

// benchRows are the time-to-first-failure rows, each on the unpatched
// kernel; reps and limit are filled in from the flags.
func benchRows() []workload {
	return []workload{
		{name: "harness workers, unpatched widened", kernel: benchWidened, delayUS: -1},
		{name: "harness workers, unpatched widened, 2-CPU guest", kernel: benchWidened, delayUS: -1, cpus: 2},
		// Generic modes: the kernel as the source has it, no delay patch.
		// Real SMP: writeback and swap-in on two CPUs at once; with more
		// vCPUs than a 2-core host has, the host also preempts vCPUs
		// anywhere, inside kernel critical sections too.
		{name: "generic: real SMP, 2-CPU guest", kernel: benchPlain, cpus: 2},
		{name: "generic: real SMP, 4-CPU guest", kernel: benchPlain, cpus: 4},
		// KCSAN's watchpoint stalls (kcsan.udelay_task, 80 us by default)
		// widen every window in the kernel. The stall runs with interrupts
		// off, so it only helps with a second CPU running the other side.
		{name: "generic: KCSAN, 2-CPU guest", kernel: benchKcsan, cpus: 2},
		{name: "generic: KCSAN, 1 ms stalls, 2-CPU guest", kernel: benchKcsan, cpus: 2, tune: func(f *runFlags) { f.kcsanUdelay = 1000 }},
		{name: "generic: real SMP, slot-reuse workload, 2-CPU guest", kernel: benchPlain, cpus: 2, tune: slotReuse},
		{name: "stress --vm 1 --vm-bytes 300M --vm-stride 4000, unpatched widened", kernel: benchWidened, exec: "stress --vm 1 --vm-bytes 300M --vm-stride 4000", delayUS: -1},
		{name: "stress-ng --vm 4 --vm-bytes 90M --verify, unpatched widened", kernel: benchWidened, exec: "stress-ng --vm 4 --vm-bytes 90M --verify", delayUS: -1},
		{name: "stress-ng --pageswap 4 --verify, unpatched widened", kernel: benchWidened, exec: "stress-ng --pageswap 4 --verify", delayUS: -1},
	}
}

// soakRows are the false-positive soaks, one per mode, on the patched
// kernel.
func soakRows() []workload {
	return []workload{
		{name: "soak: patched widened", kernel: benchWidened, delayUS: -1},
		{name: "soak: patched not widened, 2-CPU guest", kernel: benchPlain, cpus: 2},
		{name: "soak: patched KCSAN, 2-CPU guest", kernel: benchKcsan, cpus: 2},
		// The unpatched kernel's one failure without the delay patch
		// came in the 4-CPU row (a kernel BUG in zswap_writeback_entry
		// after 510 s): the fixed kernel runs the same setting, in runs
		// as long as that row's, to show whether the fix prevents it.
		{name: "soak: patched not widened, 4-CPU guest, 10-min runs", kernel: benchPlain, cpus: 4, soakRun: 10 * time.Minute},
	}
}

func cmdBench(ctx context.Context, args []string) int {
	var bf buildFlags
	var rf runFlags
	fs := newFlags("bench", "bench [--rows REGEXP] [--reps N] [--limit D] [--soak D] [--out DIR]")
	bf.register(fs)
	rf.register(fs)
	reps := fs.Int("reps", 5, "runs per time-to-first-failure row of the widened kernel")
	peerReps := fs.Int("peer-reps", 2, "runs per peer workload row")
	genericReps := fs.Int("generic-reps", 3, "runs per generic-mode row (no delay patch: real SMP, KCSAN)")
	buildReps := fs.Int("build-reps", 1, "cold builds to time (each about 5 minutes here; 0 skips)")
	limit := fs.Duration("limit", 3*time.Minute, "give up on a time-to-first-failure run of the widened kernel after this long (reported as censored)")
	genericLimit := fs.Duration("generic-limit", 10*time.Minute, "the same for the generic-mode rows (the goal is a failure within 10 minutes)")
	soak := fs.Duration("soak", 30*time.Minute, "false-positive soak: stress on the patched kernel per mode; the modes soak at the same time, one VM each")
	verdictReps := fs.Int("verdict-reps", 1, "times to run the demo comparison (compare --widen) for its wall time to verdict (0 skips)")
	rowsRE := fs.String("rows", "", "run only the rows whose name matches this regular expression (builds and the demo comparison follow --build-reps and --verdict-reps)")
	out := fs.String("out", "", "output directory (default out/bench-TIME)")
	jsonPath := fs.String("json", "bench.json", "where to write the results")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	}
	if err := rf.validate(); err != nil {
		return usageError("bench", err)
	}
	sel, err := regexp.Compile(*rowsRE)
	if err != nil {
		return usageError("bench", fmt.Errorf("--rows: %v", err))
	}
	var rows, soaks []workload
	for _, w := range benchRows() {
		if sel.MatchString(w.name) {
			rows = append(rows, w)
		}
	}
	for _, w := range soakRows() {
		if sel.MatchString(w.name) && *soak > 0 {
			soaks = append(soaks, w)
		}
	}
	dir := outDir(*out, "bench")
	p := newProgress()
	accel := rf.resolvedAccel()
	var mu sync.Mutex
	var metrics []metric
	tag := benchTag(bf.source)
	add := func(m metric) {
		mu.Lock()
		defer mu.Unlock()
		m.Name += tag
		metrics = append(metrics, m)
		p.Say(fmt.Sprintf("bench: %s: median %.4g %s (n=%d, min %.4g, max %.4g) %s", m.Name, m.Median, m.Unit, m.N, m.Min, m.Max, m.Note))
	}
	if *buildReps > 0 {
		wf := bf
		wf.widen = true
		cold, second, err := benchBuilds(ctx, wf, *buildReps, p.Say)
		if err != nil {
			printErr(err)
			return exitError
		}
		add(newMetric("cold build, both variants (ccache off)", "s", "host", cold))
		add(newMetric("second variant, incremental (ccache off)", "s", "host", second))
	}
	// The kernels the selected rows boot, built (or found cached) first.
	kernels := map[string]*built{}
	var prov *report.Provenance
	for _, w := range append(append([]workload{}, rows...), soaks...) {
		if kernels[w.kernel] != nil {
			continue
		}
		kf := bf
		kf.widen, kf.kcsan = w.kernel == benchWidened, w.kernel == benchKcsan
		b, err := kf.buildBoth(ctx, p.Say)
		if err != nil {
			printErr(err)
			return exitError
		}
		kernels[w.kernel] = b
		if prov == nil || w.kernel == benchWidened {
			prov = newProvenance(rf, bf.source, b)
		}
	}
	envs := map[string]*env{}
	for _, w := range append(append([]workload{}, rows...), soaks...) {
		if envs[w.exec] != nil {
			continue
		}
		f := rf
		f.workload = w.exec
		if envs[w.exec], err = newEnv(ctx, f, cacheDir(), dir, p.Say); err != nil {
			printErr(err)
			return exitError
		}
	}
	var boots []float64
	run := func(name string, idx int, img *kernel.Image, w workload, d time.Duration, stopOnFailure bool) report.Run {
		e := *envs[w.exec]
		e.rf.duration, e.rf.delayUS = d, w.delayUS
		if w.cpus > 0 {
			e.rf.cpus = w.cpus
		}
		if w.tune != nil {
			w.tune(&e.rf)
		}
		if e.exec != nil {
			x := *e.exec
			x.DurationSec = d.Seconds()
			e.exec = &x
		}
		spec := e.spec(name, idx, bootOf(img), fmt.Sprintf("%s-%d", benchSlug(name), idx))
		spec.Stress.StopOnCorruption = stopOnFailure
		r := runner.Run(ctx, spec)
		// Each run's whole result beside its console log: a bench cut
		// short still has every run it finished.
		if err := writeJSONFile(filepath.Join(spec.VM.Dir, "run.json"), r); err != nil {
			p.Say(fmt.Sprintf("bench: %s run %d: run.json: %v", name, idx, err))
		}
		mu.Lock()
		if r.BootSeconds > 0 {
			boots = append(boots, r.BootSeconds)
		}
		mu.Unlock()
		p.Say(fmt.Sprintf("bench: %s run %d: %s after %.0f s%s%s", name, idx, r.Outcome, r.StressSeconds, firstTitle(r), busyNote(r)))
		return r
	}
	for _, w := range rows {
		n, lim := *reps, *limit
		switch {
		case strings.HasPrefix(w.name, "generic:"):
			n, lim = *genericReps, *genericLimit
		case w.exec != "" || w.cpus > 0:
			n = *peerReps
			if w.exec == "" {
				n++
			}
		}
		var rs []report.Run
		for i := 1; i <= n && ctx.Err() == nil; i++ {
			rs = append(rs, run(w.name, i, kernels[w.kernel].unpatched, w, lim, true))
		}
		add(ttffMetric("time to first failure: "+w.name, accel, lim, rs))
	}
	var soakMetrics [][]metric
	var wg sync.WaitGroup
	for i, w := range soaks {
		soakMetrics = append(soakMetrics, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			soakMetrics[i] = soakMode(ctx, w, *soak, len(soaks), accel, rf.leakTolerance,
				func(idx int, d time.Duration) report.Run {
					return run(w.name, idx, kernels[w.kernel].patched, w, d, false)
				})
		}()
	}
	wg.Wait()
	verdictFailed := false
	if *verdictReps > 0 && ctx.Err() == nil {
		// A comparison that fails must not take the rows measured before
		// it down with it: they are written all the same.
		m, err := benchVerdict(ctx, *verdictReps, bf.source, dir, accel, p.Say)
		if err != nil {
			printErr(err)
			verdictFailed = true
		} else {
			add(m)
		}
	}
	add(newMetric("boot to agent ready", "s", accel, boots))
	for _, ms := range soakMetrics {
		for _, m := range ms {
			add(m)
		}
	}
	res := map[string]any{"accel": accel, "source": bf.source, "date": time.Now().UTC().Format(time.RFC3339), "metrics": metrics,
		"command": "make bench (harness bench " + strings.Join(args, " ") + ")", "out": dir,
		"provenance": prov}
	if err := writeJSONFile(*jsonPath, res); err != nil {
		printErr(err)
		return exitError
	}
	printBench(metrics)
	fmt.Printf("\nwritten to %s; console logs in %s\n", *jsonPath, dir)
	if ctx.Err() != nil || verdictFailed {
		return exitError
	}
	return 0
}

// benchTag is what the rows of a bench on source carry after their names:
// nothing on the default line's Debian source, else the source, so that
// make bench's two lines' rows are never taken for each other.
func benchTag(source string) string {
	if source == "debian:"+kernel.DefaultLine {
		return ""
	}
	return " [" + source + "]"
}

// benchSlug is a row name as a directory name.
func benchSlug(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, name)
}

// ttffMetric is a time-to-first-failure row from its runs: a run that
// found nothing within limit is counted at the limit and named censored;
// a run that measured nothing (boot failure, infra error, OOM) is left out
// and named.
func ttffMetric(name, accel string, limit time.Duration, rs []report.Run) metric {
	var vals []float64
	censored := 0
	var lost []string
	for _, r := range rs {
		switch {
		case r.FirstFailureSeconds != nil:
			vals = append(vals, *r.FirstFailureSeconds)
		case r.Outcome == report.OutcomeClean || r.Outcome == report.OutcomeNoWriteback:
			vals = append(vals, limit.Seconds())
			censored++
		default:
			lost = append(lost, string(r.Outcome))
		}
	}
	m := newMetric(name, "s", accel, vals)
	m.Censored, m.Limit = censored, limit.Seconds()
	var notes []string
	if censored > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d runs found nothing within %s (counted at the limit)", censored, len(vals), limit))
	}
	if censored > len(vals)/2 {
		notes = append(notes, fmt.Sprintf("median not reached: more than %s", limit))
	}
	if len(lost) > 0 {
		notes = append(notes, fmt.Sprintf("%d runs left out: %s", len(lost), strings.Join(lost, ", ")))
	}
	if n := busyRuns(rs); n > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d runs on a busy host (report.Run.HostBusy)", n, len(vals)))
	}
	m.Note = strings.Join(notes, "; ")
	return m
}

// busyRuns counts the runs that measured something on a busy host.
func busyRuns(rs []report.Run) int {
	n := 0
	for _, r := range rs {
		if r.HostBusy() && r.StressSeconds > 0 {
			n++
		}
	}
	return n
}

// soakMode runs the patched kernel of one mode for total seconds of stress
// in runs of at most 2 minutes (w.soakRun if set), and returns its rows: failures, pages
// verified and written back per second, pages lost after each run and the
// health check's time. vms is how many soaks ran at once (one VM each).
func soakMode(ctx context.Context, w workload, total time.Duration, vms int, accel string, tolerance int64, run func(int, time.Duration) report.Run) []metric {
	per := 2 * time.Minute
	if w.soakRun > 0 {
		per = w.soakRun
	}
	per = min(per, total)
	var verified, written, lost, healthSec []float64
	var seconds float64
	failures, runs, writebackRuns := 0, 0, 0
	var failed []string
	var all []report.Run
	for i := 1; seconds < total.Seconds()-1 && ctx.Err() == nil; i++ {
		r := run(i, per)
		all = append(all, r)
		runs++
		if r.Failed() {
			failures++
			failed = append(failed, fmt.Sprintf("run %d: %s%s", i, r.Outcome, firstTitle(r)))
		}
		seconds += r.StressSeconds
		if h := r.Health; h != nil && h.LostPages != nil {
			// The spread the leak tolerance is calibrated from.
			lost = append(lost, float64(*h.LostPages))
			healthSec = append(healthSec, h.Seconds)
		}
		if r.WrittenBackPages > 0 {
			writebackRuns++
		}
		if r.StressSeconds > 0 && r.Outcome == report.OutcomeClean {
			verified = append(verified, float64(r.PagesVerified)/r.StressSeconds)
			written = append(written, float64(r.WrittenBackPages)/r.StressSeconds)
		}
		if r.Outcome == report.OutcomeInfraError || r.Outcome == report.OutcomeBootFailure {
			failed = append(failed, "stopped: the runs cannot go on")
			break
		}
	}
	if runs == 0 {
		return nil // interrupted before its first run: nothing measured
	}
	mode := strings.TrimPrefix(w.name, "soak: ")
	beside := ""
	if vms > 1 {
		beside = fmt.Sprintf("; %d soaks ran at once, one VM each", vms)
	}
	f := newMetric("false-positive soak: "+mode, "failures", accel, []float64{float64(failures)})
	f.Note = fmt.Sprintf("%d runs, %.0f s of stress, %d with a kernel failure (corruption, crash, hang, WARNING, failed health check or leak), %d with writeback%s", runs, seconds, failures, writebackRuns, beside)
	if n := busyRuns(all); n > 0 {
		f.Note += fmt.Sprintf("; %d runs on a busy host", n)
	}
	if len(failed) > 0 {
		f.Note += ": " + strings.Join(failed, "; ")
	}
	l := newMetric("pages lost after a run (health check): "+mode, "pages", accel, lost)
	l.Note = fmt.Sprintf("--leak-tolerance is %d pages", tolerance)
	return []metric{f,
		newMetric("guest pages verified per second: "+mode, "pages/s", accel, verified),
		newMetric("zswap pages written back per second: "+mode, "pages/s", accel, written),
		l,
		newMetric("health check after a run, in the guest: "+mode, "s", accel, healthSec),
	}
}

func printBench(ms []metric) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nmeasure\taccel\tn\tmedian\tmin\tmax\tunit\tnote")
	for _, m := range ms {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.4g\t%.4g\t%.4g\t%s\t%s\n", m.Name, m.Accel, m.N, m.Median, m.Min, m.Max, m.Unit, m.Note)
	}
	tw.Flush()
}

// benchBuilds times cold builds of both variants in a throw-away cache with
// ccache off, and the second variant's incremental build.
func benchBuilds(ctx context.Context, bf buildFlags, reps int, say func(string)) (cold, second []float64, err error) {
	// ccache would make the second rep warm; the make it runs inherits this.
	os.Setenv("CCACHE_DISABLE", "1")
	defer os.Unsetenv("CCACHE_DISABLE")
	for i := 0; i < reps; i++ {
		tmp, err := os.MkdirTemp("", "zswaprace-bench-cache-")
		if err != nil {
			return nil, nil, err
		}
		bf.cache = tmp
		start := time.Now()
		b, err := bf.buildBoth(ctx, say)
		os.RemoveAll(tmp)
		if err != nil {
			return nil, nil, err
		}
		cold = append(cold, time.Since(start).Seconds())
		second = append(second, b.patched.Seconds)
	}
	return cold, second, nil
}

// benchExecutable is the harness that runs the demo comparison: this one
// (a test puts another in its place).
var benchExecutable = os.Executable

// benchVerdict times the demo comparison (compare --widen with its
// defaults, on source) from start to verdict, kernels already built.
func benchVerdict(ctx context.Context, reps int, source, dir, accel string, say func(string)) (metric, error) {
	self, err := benchExecutable()
	if err != nil {
		return metric{}, err
	}
	var secs []float64
	verdicts := map[string]int{}
	for i := 1; i <= reps && ctx.Err() == nil; i++ {
		out := filepath.Join(dir, fmt.Sprintf("verdict-%d", i))
		start := time.Now()
		cmd := exec.CommandContext(ctx, self, "compare", "--source", source, "--widen", "--out", out, "--json")
		b, _ := cmd.Output() // the verdict's exit code is not an error here
		var rep struct{ Verdict string }
		if err := json.Unmarshal(b, &rep); err != nil {
			return metric{}, fmt.Errorf("compare --widen printed no report: %v", err)
		}
		secs = append(secs, time.Since(start).Seconds())
		verdicts[rep.Verdict]++
		say(fmt.Sprintf("bench: demo comparison %d: %s after %s", i, rep.Verdict, time.Since(start).Round(time.Second)))
	}
	m := newMetric("time to verdict, compare --widen (wall, kernels built)", "s", accel, secs)
	m.Note = fmt.Sprintf("verdicts: %v", verdicts)
	return m, nil
}
