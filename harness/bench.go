package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"

	"fmt"
	"os"
	"sort"
	"strings"
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
type workload struct {
	name    string
	exec    string // host command run in the guest; "" = the stress workers
	delayUS int    // -1 = the widened default
	cpus    int    // guest CPUs; 0 = --cpus
}

func cmdBench(ctx context.Context, args []string) int {
	var bf buildFlags
	var rf runFlags
	fs := newFlags("bench", "bench [--reps N] [--limit D] [--soak D] [--out DIR]")
	bf.register(fs)
	rf.register(fs)
	reps := fs.Int("reps", 5, "runs per time-to-first-failure measurement of the stress workers")
	peerReps := fs.Int("peer-reps", 2, "runs per peer workload and for the unwidened kernel")
	buildReps := fs.Int("build-reps", 1, "cold builds to time (each about 5 minutes here; 0 skips)")
	limit := fs.Duration("limit", 3*time.Minute, "give up on a time-to-first-failure run after this long (reported as censored)")
	soak := fs.Duration("soak", 10*time.Minute, "false-positive soak: total stress on the patched widened kernel")
	verdictReps := fs.Int("verdict-reps", 1, "times to run the demo comparison (compare --widen) for its wall time to verdict (0 skips)")
	out := fs.String("out", "", "output directory (default out/bench-TIME)")
	jsonPath := fs.String("json", "bench.json", "where to write the results")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	}
	bf.widen = true
	if err := rf.validate(); err != nil {
		return usageError("bench", err)
	}
	dir := outDir(*out, "bench")
	p := newProgress()
	accel := rf.resolvedAccel()
	var metrics []metric
	add := func(m metric) {
		metrics = append(metrics, m)
		p.Say(fmt.Sprintf("bench: %s: median %.4g %s (n=%d, min %.4g, max %.4g)", m.Name, m.Median, m.Unit, m.N, m.Min, m.Max))
	}
	if *buildReps > 0 {
		cold, second, err := benchBuilds(ctx, bf, *buildReps, p.Say)
		if err != nil {
			printErr(err)
			return exitError
		}
		add(newMetric("cold build, both variants (ccache off)", "s", "host", cold))
		add(newMetric("second variant, incremental (ccache off)", "s", "host", second))
	}
	b, err := bf.buildBoth(ctx, p.Say)
	if err != nil {
		printErr(err)
		return exitError
	}
	envs := map[string]*env{}
	for _, w := range []string{"", "stress --vm 1 --vm-bytes 300M --vm-stride 4000",
		"stress-ng --vm 4 --vm-bytes 90M --verify", "stress-ng --pageswap 4 --verify"} {
		f := rf
		f.workload = w
		if envs[w], err = newEnv(ctx, f, cacheDir(), dir, p.Say); err != nil {
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
		if e.exec != nil {
			x := *e.exec
			x.DurationSec = d.Seconds()
			e.exec = &x
		}
		spec := e.spec(name, idx, bootOf(img), fmt.Sprintf("%s-%d", strings.ReplaceAll(name, " ", "_"), idx))
		spec.Stress.StopOnCorruption = stopOnFailure
		r := runner.Run(ctx, spec)
		if r.BootSeconds > 0 {
			boots = append(boots, r.BootSeconds)
		}
		p.Say(fmt.Sprintf("bench: %s run %d: %s after %.0f s%s", name, idx, r.Outcome, r.StressSeconds, firstTitle(r)))
		return r
	}
	ttff := func(w workload, n int) metric {
		var vals []float64
		censored := 0
		var lost []string // runs that measured nothing: boot failures, infra errors, OOMs
		for i := 1; i <= n && ctx.Err() == nil; i++ {
			r := run(w.name, i, b.unpatched, w, *limit, true)
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
		m := newMetric("time to first failure: "+w.name, "s", accel, vals)
		m.Censored, m.Limit = censored, limit.Seconds()
		var notes []string
		if censored > 0 {
			notes = append(notes, fmt.Sprintf("%d of %d runs found nothing within %s (counted at the limit)", censored, len(vals), limit))
		}
		if len(lost) > 0 {
			notes = append(notes, fmt.Sprintf("%d runs left out: %s", len(lost), strings.Join(lost, ", ")))
		}
		m.Note = strings.Join(notes, "; ")
		return m
	}
	add(ttff(workload{name: "harness workers, unpatched widened", delayUS: -1}, *reps))
	add(ttff(workload{name: "harness workers, unpatched not widened", delayUS: 0}, *peerReps))
	// Real SMP: one guest with 2 CPUs (writeback and swap-in on two CPUs at
	// once), and one with more vCPUs than a 2-core host has, so that the
	// host preempts vCPUs anywhere, inside kernel critical sections too.
	add(ttff(workload{name: "harness workers, unpatched widened, 2-CPU guest", delayUS: -1, cpus: 2}, *peerReps+1))
	add(ttff(workload{name: "harness workers, unpatched not widened, 2-CPU guest", delayUS: 0, cpus: 2}, *peerReps))
	add(ttff(workload{name: "harness workers, unpatched not widened, 4-CPU guest", delayUS: 0, cpus: 4}, *peerReps))
	for _, peer := range []string{"stress --vm 1 --vm-bytes 300M --vm-stride 4000", "stress-ng --vm 4 --vm-bytes 90M --verify", "stress-ng --pageswap 4 --verify"} {
		add(ttff(workload{name: peer + ", unpatched widened", exec: peer, delayUS: -1}, *peerReps))
	}
	// Soak: clean runs of the patched kernel give the throughput figures too.
	per := min(2*time.Minute, *soak)
	var verified, written, lost, healthSec []float64
	var soakSeconds float64
	soakFailures, soakRuns := 0, 0
	for i := 1; soakSeconds < soak.Seconds()-1 && ctx.Err() == nil; i++ {
		r := run("patched soak", i, b.patched, workload{delayUS: -1}, per, false)
		soakRuns++
		if r.Failed() {
			soakFailures++
		}
		soakSeconds += r.StressSeconds
		if h := r.Health; h != nil && h.LostPages != nil {
			// The spread the leak tolerance is calibrated from.
			lost = append(lost, float64(*h.LostPages))
			healthSec = append(healthSec, h.Seconds)
		}
		if r.StressSeconds > 0 && r.Outcome == report.OutcomeClean {
			verified = append(verified, float64(r.PagesVerified)/r.StressSeconds)
			written = append(written, float64(r.WrittenBackPages)/r.StressSeconds)
		}
		if r.Outcome == report.OutcomeInfraError || r.Outcome == report.OutcomeBootFailure {
			break
		}
	}
	if *verdictReps > 0 {
		m, err := benchVerdict(ctx, *verdictReps, dir, accel, p.Say)
		if err != nil {
			printErr(err)
			return exitError
		}
		add(m)
	}
	add(newMetric("boot to agent ready", "s", accel, boots))
	add(newMetric("guest pages verified per second (4 workers)", "pages/s", accel, verified))
	add(newMetric("zswap pages written back per second (widened, patched)", "pages/s", accel, written))
	lostMetric := newMetric("pages lost after a run, patched widened kernel (health check)", "pages", accel, lost)
	lostMetric.Note = fmt.Sprintf("--leak-tolerance is %d pages", rf.leakTolerance)
	add(lostMetric)
	add(newMetric("health check after a run, in the guest", "s", accel, healthSec))
	soakMetric := newMetric("false-positive soak: patched widened kernel", "failures", accel, []float64{float64(soakFailures)})
	soakMetric.Note = fmt.Sprintf("%d runs, %.0f s of stress in total, %d with a kernel failure (corruption, crash, hang, WARNING, failed health check or leak)", soakRuns, soakSeconds, soakFailures)
	add(soakMetric)
	res := map[string]any{"accel": accel, "date": time.Now().UTC().Format(time.RFC3339), "metrics": metrics,
		"command": "make bench (harness bench " + strings.Join(args, " ") + ")", "out": dir,
		"provenance": newProvenance(rf, bf.source, b)}
	if err := writeJSONFile(*jsonPath, res); err != nil {
		printErr(err)
		return exitError
	}
	printBench(metrics)
	fmt.Printf("\nwritten to %s; console logs in %s\n", *jsonPath, dir)
	if ctx.Err() != nil {
		return exitError
	}
	return 0
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

// benchVerdict times the demo comparison (compare --widen with its
// defaults) from start to verdict, kernels already built.
func benchVerdict(ctx context.Context, reps int, dir, accel string, say func(string)) (metric, error) {
	self, err := os.Executable()
	if err != nil {
		return metric{}, err
	}
	var secs []float64
	verdicts := map[string]int{}
	for i := 1; i <= reps && ctx.Err() == nil; i++ {
		out := filepath.Join(dir, fmt.Sprintf("verdict-%d", i))
		start := time.Now()
		cmd := exec.CommandContext(ctx, self, "compare", "--widen", "--out", out, "--json")
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
