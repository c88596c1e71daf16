// Package report holds a comparison's results and writes them as JSON, JUnit XML, Markdown and a terminal table.
package report

import (
	"slices"
	"time"

	"zswaprace/harness/tap"
	"zswaprace/stress"
)

// Outcome is how one run ended.
type Outcome string

// Run outcomes. Corruption, crash, hang and warning count against a kernel;
// the others are kept apart so a fixed kernel is never blamed for them.
const (
	OutcomeClean       Outcome = "clean"
	OutcomeCorruption  Outcome = "corruption"
	OutcomeCrash       Outcome = "crash"
	OutcomeHang        Outcome = "hang"
	OutcomeWarning     Outcome = "warning" // the workload finished, but the kernel printed a WARNING during it
	OutcomeBootFailure Outcome = "boot-failure"
	OutcomeInfraError  Outcome = "infra-error"
	OutcomeNoWriteback Outcome = "no-writeback" // zswap wrote nothing back: proves nothing
	OutcomeOOM         Outcome = "oom"          // guest out of memory: a mis-sized workload
	OutcomeInterrupted Outcome = "interrupted"  // stopped by the user (Ctrl-C) or a deadline
	// OutcomeWorkloadFailed: the external workload (--workload) exited
	// non-zero, or was killed by a signal, before its time was up, with no
	// crash or hang on the console. It counts as the race's failure (the
	// peer workload is the test), but it is not a corruption.
	OutcomeWorkloadFailed Outcome = "workload-failed"
)

// WorkloadResult is how an external workload (--workload) ended.
type WorkloadResult struct {
	Command  string `json:"command"`   // the program, as the guest ran it
	ExitCode int    `json:"exit_code"` // -1 when a signal ended it
	Signal   string `json:"signal,omitempty"`
	// TimedOut: the harness stopped it at --duration, which is not a failure.
	TimedOut bool `json:"timed_out"`
	// Tests are the TAP test points (kselftest's output) found in the tail
	// of its output, one per test number; TestsPlanned is its plan
	// ("1..N"), 0 if none was seen.
	Tests        []tap.Result `json:"tests,omitempty"`
	TestsPlanned int          `json:"tests_planned,omitempty"`
}

// baseClasses are the corruption classes every Variant lists, even at zero:
// the stress package's, which owns them.
var baseClasses = func() []string {
	var c []string
	for _, k := range stress.CorruptionClasses {
		c = append(c, string(k))
	}
	return c
}()

// KindDataRace is KernelReport.Kind for a KCSAN data-race report
// (console.DataRace): recorded, never counted against the kernel.
const KindDataRace = "data-race"

// KernelReport is one report the kernel printed on the console during a run.
type KernelReport struct {
	Kind     string `json:"kind"`               // crash | hang | warning | oom | data-race (console.Kind)
	Title    string `json:"title"`              // normalised, stable across runs
	Function string `json:"function,omitempty"` // the guilty function, if found
	// BeforeWorkload marks reports printed before the workload started
	// (during boot): recorded, never counted against the kernel.
	BeforeWorkload bool `json:"before_workload,omitempty"`
}

// Run is one boot of one kernel under the stress workload.
type Run struct {
	Variant            string            `json:"variant"` // "unpatched" | "patched" | (any name)
	Index              int               `json:"index"`   // 1-based position within the variant
	Outcome            Outcome           `json:"outcome"`
	Accel              string            `json:"accel"` // kvm | tcg
	StressSeconds      float64           `json:"stress_seconds"`
	BootSeconds        float64           `json:"boot_seconds"`
	PagesVerified      uint64            `json:"pages_verified"`
	WrittenBackPages   int64             `json:"written_back_pages"` // negative: counter unavailable
	Corruptions        uint64            `json:"corruptions"`
	CorruptionsByClass map[string]uint64 `json:"corruptions_by_class"`
	Examples           []string          `json:"examples,omitempty"` // human-readable corruption examples
	CrashTitles        []string          `json:"crash_titles,omitempty"`
	// Reports are the kernel's reports, in console order, boot-time ones
	// included (marked).
	Reports []KernelReport `json:"kernel_reports,omitempty"`
	// DataRaces is the number of KCSAN data-race reports in the run's
	// console (kernels built with --kcsan), boot included. They are listed
	// in Reports with kind "data-race" and never count as a failure.
	DataRaces int `json:"data_races,omitempty"`
	// GuestCPUs is the number of CPUs online in the guest, as the agent
	// counted them; 0 if the agent never answered.
	GuestCPUs int `json:"guest_cpus,omitempty"`
	// HostLoad is the host's 1-minute load average when the workload
	// ended, and HostCPUs its logical CPUs; nil and 0 if unknown.
	HostLoad *float64 `json:"host_load,omitempty"`
	HostCPUs int      `json:"host_cpus,omitempty"`
	// FirstFailureSeconds is the stress time to the first failure, nil if none.
	FirstFailureSeconds *float64 `json:"first_failure_seconds"`
	// Error says what happened for boot-failure, infra-error and hang,
	// including the console tail.
	Error        string           `json:"error,omitempty"`
	ConsoleLog   string           `json:"console_log,omitempty"` // path
	KernelConfig string           `json:"kernel_config,omitempty"`
	Counters     map[string]int64 `json:"counters,omitempty"` // zswap + vmstat deltas
	// Workload is how the external workload ended, for runs of one that
	// finished (nil for the harness's own stress workers).
	Workload *WorkloadResult `json:"workload,omitempty"`
	// Health is what the health check after the workload found (see
	// health.go); nil when it did not run.
	Health *Health `json:"health,omitempty"`

	// Set by Aggregate. CountedAs is what the run's failure counts as in
	// the comparison ("race" or "other"; null for no failure).
	CountedAs *FailureClass `json:"counted_as"`
	// PagesPerSec and WrittenBackPerSec are the workload's strength in this
	// run, per second of stress; null when unknown.
	PagesPerSec       *float64 `json:"pages_per_sec"`
	WrittenBackPerSec *float64 `json:"written_back_per_sec"`
	// Contended marks a run that ran on a busy host, and so stressed
	// less: its pages per second fell below half its variant's median, or
	// the host's load beside its guest was high (HostBusy).
	Contended bool `json:"contended,omitempty"`
	// Shard is, in a merged report, the 1-based position in Report.Shards
	// of the shard that ran this run; ShardIndex is its index there.
	Shard      int `json:"shard,omitempty"`
	ShardIndex int `json:"shard_index,omitempty"`
}

// throughput fills PagesPerSec and WrittenBackPerSec from the run's figures.
func (r *Run) throughput() {
	r.PagesPerSec, r.WrittenBackPerSec = nil, nil
	if r.StressSeconds <= 0 {
		return
	}
	if r.PagesVerified > 0 {
		v := float64(r.PagesVerified) / r.StressSeconds
		r.PagesPerSec = &v
	}
	if r.WrittenBackPages >= 0 && r.Counters != nil {
		v := float64(r.WrittenBackPages) / r.StressSeconds
		r.WrittenBackPerSec = &v
	}
}

// HostBusy reports whether the host was busy beside this run's guest, by
// its load when the workload ended: more runnable threads than 1.5 per
// host CPU, and more than half the host's CPUs' worth of them not this
// guest's vCPUs (plus half a thread for QEMU's I/O). A guest given more
// vCPUs than the host has cores is not busy by itself: that is the
// setting asked for. The harness's own VMs, as many as the host fits,
// stay under the first bound (make demo's two 1-CPU guests on 2 cores
// ended runs at loads of 2.5 and 2.6).
func (r Run) HostBusy() bool {
	if r.HostLoad == nil || r.HostCPUs <= 0 {
		return false
	}
	load, cpus := *r.HostLoad, float64(r.HostCPUs)
	return load > 1.5*cpus && load-float64(max(r.GuestCPUs, 1)) > 0.5*cpus+0.5
}

// Failed reports whether the run is a kernel failure event: a corruption,
// crash, hang, WARNING, or a failed external workload. A run is at most one
// event.
func (r Run) Failed() bool {
	switch r.Outcome {
	case OutcomeCorruption, OutcomeCrash, OutcomeHang, OutcomeWarning, OutcomeWorkloadFailed, OutcomeHealth, OutcomeLeak:
		return true
	}
	return false
}

// Exposure is the stress time of r that counts toward its kernel's failure
// rate: all of it for clean and failed runs (a run that failed early counts
// up to where it stopped), an interrupted run's time only if zswap had
// written something back, and none for runs that prove nothing (no
// writeback, out of memory, boot failure, infra error, unknown outcome).
func (r Run) Exposure() float64 {
	switch r.Outcome {
	case OutcomeClean, OutcomeCorruption, OutcomeCrash, OutcomeHang, OutcomeWarning, OutcomeWorkloadFailed, OutcomeHealth, OutcomeLeak:
		return r.StressSeconds
	case OutcomeInterrupted:
		if r.WrittenBackPages > 0 {
			return r.StressSeconds
		}
	}
	return 0
}

// Variant sums the runs of one kernel.
type Variant struct {
	Name   string `json:"name"`
	Kernel string `json:"kernel"`
	// KernelSHA256 is the bzImage's sha256, recorded when it was built:
	// what 'harness merge' checks to know that shards ran the same kernels.
	KernelSHA256     string  `json:"kernel_sha256,omitempty"`
	Runs             int     `json:"runs"`
	StressSeconds    float64 `json:"stress_seconds"` // all runs; see Exposure for what counts
	PagesVerified    uint64  `json:"pages_verified"`
	WrittenBackPages int64   `json:"written_back_pages"`
	Corruptions      uint64  `json:"corruptions"`
	// CorruptionsByClass always has the stale, foreign, zeroed and damaged keys.
	CorruptionsByClass  map[string]uint64 `json:"corruptions_by_class"`
	Crashes             int               `json:"crashes"`
	CrashTitles         []string          `json:"crash_titles"`
	Hangs               int               `json:"hangs"`
	BootFailures        int               `json:"boot_failures"`
	InfraErrors         int               `json:"infra_errors"`
	NoWriteback         int               `json:"no_writeback_runs"`
	OOMs                int               `json:"ooms"`
	FirstFailureSeconds *float64          `json:"first_failure_seconds"`
	// Failures counts the race's failures: runs with a corruption, or a
	// crash or hang matching the signature. OtherFailures counts the other
	// kernel failures (other crashes and hangs, WARNINGs).
	Failures      int `json:"failures"`
	OtherFailures int `json:"other_failures"`
	// DataRaces counts KCSAN data-race reports over all runs and
	// DataRaceTitles names them (--kcsan); recorded, never counted as
	// failures.
	DataRaces      int      `json:"data_races,omitempty"`
	DataRaceTitles []string `json:"data_race_titles,omitempty"`
	Warnings       int      `json:"warning_runs"`
	// WorkloadFailures counts runs whose external workload failed (race
	// failures, in Failures too).
	WorkloadFailures int `json:"workload_failed_runs"`
	// HealthFailures and Leaks count runs that failed the health check
	// after the workload (outcomes health and leak).
	HealthFailures int `json:"health_failures"`
	Leaks          int `json:"leak_runs"`
	// OOMSeconds is the stress time of the OOM runs (not in Exposure).
	OOMSeconds float64 `json:"oom_seconds"`
	// PagesPerSec and WrittenBackPerSec are medians over the runs that
	// have them; null when none has.
	PagesPerSec       *float64 `json:"pages_per_sec"`
	WrittenBackPerSec *float64 `json:"written_back_per_sec"`
	// TimeAtRisk is the stress time the verdict counted, OOM time included
	// where the verdict counts it; Rate is race failures per hour over it,
	// with a 95% interval. Null when the verdict did not get that far.
	TimeAtRisk *float64  `json:"time_at_risk_seconds"`
	Rate       *Interval `json:"rate_per_hour"`
	RunDetails []Run     `json:"run_details"`
}

// Interval is an estimate with its 95% interval.
type Interval struct {
	Estimate float64 `json:"estimate"`
	Low      float64 `json:"low"`
	High     float64 `json:"high"`
}

// Exposure is the stress time in seconds that counts toward the variant's
// failure rate: the sum of Run.Exposure over RunDetails. Feed it, with
// Failures, BootFailures, InfraErrors, NoWriteback and OOMs, to the verdict.
func (v Variant) Exposure() float64 {
	sum := 0.0
	for _, r := range v.RunDetails {
		sum += r.Exposure()
	}
	return sum
}

// SchemaVersion is the version of report.json's layout (see
// docs/report-json.md); it changes when a field changes meaning or goes.
const SchemaVersion = 3

// Report is everything one comparison found.
type Report struct {
	SchemaVersion      int      `json:"schema_version"`
	Tool               string   `json:"tool"`
	Verdict            string   `json:"verdict"`
	Reason             string   `json:"reason"`
	Notes              []string `json:"notes,omitempty"`
	PValue             *float64 `json:"p_value"`
	NeededCleanSeconds *float64 `json:"needed_clean_seconds"`
	// RatioUpper is the 95% upper bound on patched/unpatched race failure
	// rate; null without an unpatched race failure.
	RatioUpper *float64 `json:"rate_ratio_upper"`
	// Design is "adaptive" (runs until decided or the budget is spent) or
	// "fixed" (--runs); Method names the statistical method.
	Design         string    `json:"design"`
	Method         string    `json:"method"`
	BudgetSeconds  *float64  `json:"budget_seconds"`
	MinReduction   *float64  `json:"min_reduction"`
	Signature      []string  `json:"signature"`
	Ignore         []string  `json:"ignore,omitempty"`
	Widening       string    `json:"widening"` // "none" or what widened the race window
	GuestCPUs      int       `json:"guest_cpus"`
	Source         string    `json:"source"`
	Patch          string    `json:"patch"`
	PatchDirection string    `json:"patch_direction"`
	Widen          bool      `json:"widen"`
	Accel          string    `json:"accel"`
	Started        time.Time `json:"started"`
	Finished       time.Time `json:"finished"`
	Interrupted    bool      `json:"interrupted"`
	Variants       []Variant `json:"variants"`

	// What 'harness merge' needs to tell whether shards may be pooled.
	// PatchSHA256 is the patch file's sha256; Kernels the directory the
	// kernels came from (compare --kernels), if any; Alpha the
	// significance level; PlannedRuns --runs for the fixed design;
	// SignaturePatterns the --signature expressions as given; Guest how
	// every guest was set up.
	PatchSHA256       string   `json:"patch_sha256,omitempty"`
	Kernels           string   `json:"kernels,omitempty"`
	Alpha             float64  `json:"alpha,omitempty"`
	PlannedRuns       *int     `json:"planned_runs,omitempty"`
	SignaturePatterns []string `json:"signature_patterns,omitempty"`
	Guest             *Guest   `json:"guest,omitempty"`
	// Shards lists, in a merged report, the comparisons whose runs were
	// pooled, and Pooling says how they were judged together.
	Shards  []Shard `json:"shards,omitempty"`
	Pooling string  `json:"pooling,omitempty"`
	// Expect is the verdict junit.xml's "verdict" test case asks for
	// (compare --expect); empty means fixed.
	Expect string `json:"expect,omitempty"`
	// Provenance is what the report was made with (in a merged report,
	// the first shard's; each shard keeps its own in Shards).
	Provenance *Provenance `json:"provenance"`
}

// Guest is how every guest of a comparison was set up: runs pooled from
// several machines must agree on all of it.
type Guest struct {
	CPUs       int     `json:"cpus"`
	MemMiB     int     `json:"mem_mib"`
	SwapMiB    int     `json:"swap_mib"`
	RunSeconds float64 `json:"run_seconds"`
	// Workload is the stress set-up in words (workers, memory, mode, pool
	// swing), or the external workload's command line.
	Workload string `json:"workload"`
	// Cmdline is the kernel parameters the harness adds at boot.
	Cmdline          string  `json:"cmdline"`
	HangAfterSeconds float64 `json:"hang_after_seconds"`
	// Health is the health check after every run: "off", or the leak
	// tolerance it judged with (absent from an older harness's reports).
	Health string `json:"health,omitempty"`
}

// Shard is one comparison pooled into a merged report.
type Shard struct {
	Dir      string    `json:"dir"`
	Verdict  string    `json:"verdict"`
	PValue   *float64  `json:"p_value"`
	Runs     []int     `json:"runs"` // per variant, unpatched first
	Accel    string    `json:"accel"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Provenance is the shard's own.
	Provenance *Provenance `json:"provenance,omitempty"`
}

// Aggregate sums runs into a Variant, classifying each run's failure with
// sig (race or other). A run whose outcome is corruption, crash, hang or
// warning is at most one failure; boot failures, infra errors, runs without
// writeback and OOMs are counted apart and are not failures. A run with an
// unknown outcome is counted as an infra error, since the harness could not
// say what happened. Crash titles are deduplicated in order of appearance;
// FirstFailureSeconds is the earliest over the failed runs. Negative
// WrittenBackPages (counter unavailable) are left out of the sum.
func Aggregate(name, kernel string, runs []Run, sig Signature) Variant {
	v := Variant{
		Name:               name,
		Kernel:             kernel,
		Runs:               len(runs),
		CorruptionsByClass: make(map[string]uint64),
		CrashTitles:        []string{},
		RunDetails:         append([]Run{}, runs...),
	}
	for _, c := range baseClasses {
		v.CorruptionsByClass[c] = 0
	}
	var pps, wbps []float64
	for i := range v.RunDetails {
		r := &v.RunDetails[i]
		r.throughput()
		if r.PagesPerSec != nil {
			pps = append(pps, *r.PagesPerSec)
		}
		if r.WrittenBackPerSec != nil {
			wbps = append(wbps, *r.WrittenBackPerSec)
		}
	}
	v.PagesPerSec, v.WrittenBackPerSec = median(pps), median(wbps)
	for i := range v.RunDetails {
		r := &v.RunDetails[i]
		r.Contended = r.PagesPerSec != nil && v.PagesPerSec != nil && *r.PagesPerSec < *v.PagesPerSec/2 || r.HostBusy()
		r.CountedAs = nil
		if c := sig.Classify(*r); c != "" {
			r.CountedAs = &c
		}
	}
	for _, r := range v.RunDetails {
		v.StressSeconds += r.StressSeconds
		v.PagesVerified += r.PagesVerified
		v.WrittenBackPages += max(r.WrittenBackPages, 0)
		v.Corruptions += r.Corruptions
		for c, n := range r.CorruptionsByClass {
			v.CorruptionsByClass[c] += n
		}
		for _, t := range r.CrashTitles {
			if !slices.Contains(v.CrashTitles, t) {
				v.CrashTitles = append(v.CrashTitles, t)
			}
		}
		v.DataRaces += r.DataRaces
		for _, k := range r.Reports {
			if k.Kind == KindDataRace && !slices.Contains(v.DataRaceTitles, k.Title) {
				v.DataRaceTitles = append(v.DataRaceTitles, k.Title)
			}
		}
		switch r.Outcome {
		case OutcomeCorruption:
		case OutcomeCrash:
			v.Crashes++
		case OutcomeHang:
			v.Hangs++
		case OutcomeBootFailure:
			v.BootFailures++
		case OutcomeInfraError:
			v.InfraErrors++
		case OutcomeNoWriteback:
			v.NoWriteback++
		case OutcomeOOM:
			v.OOMs++
			v.OOMSeconds += r.StressSeconds
		case OutcomeWarning:
			v.Warnings++
		case OutcomeWorkloadFailed:
			v.WorkloadFailures++
		case OutcomeHealth:
			v.HealthFailures++
		case OutcomeLeak:
			v.Leaks++
		case OutcomeClean, OutcomeInterrupted:
		default:
			v.InfraErrors++
		}
		if r.CountedAs == nil {
			continue
		}
		if *r.CountedAs == OtherFailure {
			v.OtherFailures++
			continue
		}
		v.Failures++
		if f := r.FirstFailureSeconds; f != nil && (v.FirstFailureSeconds == nil || *f < *v.FirstFailureSeconds) {
			first := *f
			v.FirstFailureSeconds = &first
		}
	}
	return v
}

// median of xs, nil when there are none.
func median(xs []float64) *float64 {
	if len(xs) == 0 {
		return nil
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return &m
}
