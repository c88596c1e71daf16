package runner

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/harness/report"
	"zswaprace/harness/tap"
	"zswaprace/harness/vm"
	"zswaprace/stress"
)

// observed is everything a run's outcome is decided from.
type observed struct {
	run         report.Run // identity, accel, boot time, paths
	log         []byte     // the whole console
	offset      int        // console bytes before the workload started
	events      []string   // QMP events, as vm.Machine.Events gives them
	exec        *proto.ExecRequest
	finished    bool  // the command returned
	cmdErr      error // what it returned
	result      stress.Report
	execResult  proto.ExecResult
	last        stress.Progress // the last heartbeat
	byClass     map[stress.Class]uint64
	examples    []stress.Example
	hung        bool // no heartbeat within the deadline
	overdue     bool // heartbeats, but the workload never finished
	interrupted bool
	elapsed     float64 // host seconds since the workload started
	crashAt     float64 // stress seconds (watch.stressNow) at the first crash line; 0 if none seen live
	warnAt      float64 // stress seconds at the first WARNING; 0 if none seen live
	qemuStderr  string
	// The health check after the workload (see health.go).
	healthStarted bool
	healthHung    bool                // no heartbeat, or past its limit
	health        *proto.HealthResult // its result, if it finished
	healthErr     error               // or why it did not
	tolerance     int64               // leak tolerance, pages
	pageOwnerErr  error               // the page_owner baseline failed
	// writeback is the counter of pages written back (zero: 6.1's).
	writeback Counter
}

// decide turns what was observed into the run's outcome. Kernel failures
// (corruption, crash, hang, warning) are only claimed on evidence; a run
// that cannot show that zswap wrote back proves nothing; OOM is a mis-sized
// run; what is left unexplained is the harness's or the host's problem.
//
// Corruption comes first: the workload counts corrupt pages while the
// kernel lives, so a corruption is always older than the crash or hang that
// may follow it, and it is the race's own evidence. Then a crash, an OOM
// (never the kernel's failure), a hang, and a WARNING printed during the
// workload, the only one of them after which the workload can finish.
func decide(o observed) report.Run {
	wb := o.writeback.orDefault()
	r := o.run
	r.WrittenBackPages = -1
	r.CorruptionsByClass = map[string]uint64{}
	r.StressSeconds = o.elapsed
	if o.last.ElapsedSec > 0 {
		r.StressSeconds = o.last.ElapsedSec
	}
	// Until a final report replaces them, the figures are those the last
	// heartbeat carried.
	r.PagesVerified, r.Corruptions = o.last.PagesVerified, o.last.Corruptions
	for c, n := range o.byClass {
		r.CorruptionsByClass[string(c)] = n
	}
	for _, e := range o.examples {
		r.Examples = append(r.Examples, describe(e))
	}
	completed := o.finished && o.cmdErr == nil
	if completed {
		fillResult(&r, o)
		if o.exec != nil {
			r.Workload = workloadResult(o)
		}
	}

	var crashes, hangs, ooms, warnings []console.Report
	for _, rep := range console.Parse(o.log) {
		before := rep.Start < o.offset
		r.Reports = append(r.Reports, kernelReport(rep, before))
		switch {
		case rep.Kind == console.DataRace:
			// Recorded in Reports, counted apart (Run.DataRaces), never a
			// failure of the kernel under test.
			r.DataRaces++
			continue
		case before:
			// Not the workload's doing: reported, not counted.
			r.CrashTitles = append(r.CrashTitles, rep.Title+beforeWorkload)
			continue
		case rep.Kind == console.OOM:
			ooms = append(ooms, rep)
		case rep.Kind == console.Hang:
			hangs = append(hangs, rep)
		case rep.Kind == console.Warning:
			warnings = append(warnings, rep)
			r.CrashTitles = append(r.CrashTitles, rep.Title+" (warning)")
			continue
		default:
			crashes = append(crashes, rep)
		}
		r.CrashTitles = append(r.CrashTitles, rep.Title)
	}
	if len(crashes)+len(hangs)+len(ooms) == 0 {
		// Evidence of a dead kernel that left nothing on the console (it
		// may have been cut off): pvpanic, or a reset nobody asked for.
		title := ""
		switch {
		case slices.Contains(o.events, "GUEST_PANICKED"):
			title = "kernel panic (pvpanic; no report on the console)"
		case !o.finished && slices.Contains(o.events, "SHUTDOWN(guest-reset)") &&
			!bytes.Contains(o.log, []byte(proto.ConsoleShuttingDown)) && !bytes.Contains(o.log, []byte(proto.ConsoleFatal)):
			title = "guest reset itself mid-run with no report on the console (triple fault or emergency restart)"
		}
		if title != "" {
			// Recorded as a report too, so that every crash has one.
			rep := console.Report{Kind: console.Crash, Title: title}
			r.Reports = append(r.Reports, kernelReport(rep, false))
			r.CrashTitles = append(r.CrashTitles, title)
			crashes = append(crashes, rep)
		}
	}

	failAt := func(sec float64) {
		if r.FirstFailureSeconds == nil || sec < *r.FirstFailureSeconds {
			r.FirstFailureSeconds = &sec
		}
	}
	// Seen live if it was, else the kernel died at the latest when the
	// run ended: both on the stress clock, the guest's where it spoke.
	crashSec, warnSec := r.StressSeconds, r.StressSeconds
	if o.crashAt > 0 {
		crashSec = o.crashAt
	}
	if o.warnAt > 0 {
		warnSec = o.warnAt
	}
	tail := console.Tail(o.log, 40)
	switch {
	case r.Corruptions > 0 && o.exec == nil:
		r.Outcome = report.OutcomeCorruption
		if completed && o.result.FirstCorruptionSec >= 0 {
			failAt(o.result.FirstCorruptionSec)
		} else if len(o.examples) > 0 {
			failAt(o.examples[0].AtSec)
		} else {
			failAt(o.last.ElapsedSec)
		}
	case len(crashes) > 0:
		r.Outcome = report.OutcomeCrash
		failAt(crashSec)
		r.Error = crashes[0].Title
	case len(ooms) > 0:
		// Out of memory is a mis-sized run, never a failure of the kernel.
		r.Outcome = report.OutcomeOOM
		r.Error = "guest ran out of memory: lower --workers/--mib-per-worker or raise --mem/--swap\n" + tail
	case len(hangs) > 0 || o.hung:
		r.Outcome = report.OutcomeHang
		failAt(crashSec)
		r.Error = "no progress from the guest"
		if o.overdue {
			r.Error = "the workload did not finish in time"
		}
		if len(hangs) > 0 {
			r.Error = hangs[0].Title
		}
		r.Error += "\n" + tail
	case completed && o.exec != nil && o.execResult.ExitCode != 0 && !o.execResult.TimedOut:
		// A peer workload's non-zero exit is a failure: its own class,
		// with its exit status and failed tests, never a corruption.
		r.Outcome = report.OutcomeWorkloadFailed
		failAt(o.execResult.ElapsedSec)
		r.Error = workloadFailure(r.Workload, o.execResult.OutputTail)
	case len(warnings) > 0:
		r.Outcome = report.OutcomeWarning
		failAt(warnSec)
		r.Error = warnings[0].Title
	case o.interrupted:
		r.Outcome = report.OutcomeInterrupted
	case !completed:
		var ae *vm.AgentError
		r.Outcome = report.OutcomeInfraError
		if errors.As(o.cmdErr, &ae) {
			r.Error = ae.Error()
			break
		}
		r.Error = fmt.Sprintf("lost the guest mid-run with no crash on the console (%v); QMP events %v", o.cmdErr, o.events)
		if o.qemuStderr != "" {
			r.Error += "; qemu said: " + o.qemuStderr
		}
	case r.WrittenBackPages == 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = fmt.Sprintf("zswap wrote back no pages: this run proves nothing (is the zpool %s, and did the pool fill?)", orList(wb.Zpools))
	case r.WrittenBackPages < 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = fmt.Sprintf("could not read zswap's %s before and after the run (%s): a run that cannot show writeback proves nothing", wb.Name, wb.Hint)
	default:
		r.Outcome = report.OutcomeClean
	}
	applyHealth(&r, o)
	return r
}

// applyHealth records the health check and, for a run that was otherwise
// clean (or only proved nothing about the race), makes its failure the
// run's outcome: a kernel that did not come back whole failed. A run that
// already failed, ran out of memory or was interrupted keeps its outcome.
func applyHealth(r *report.Run, o observed) {
	if !o.healthStarted {
		return
	}
	open := r.Outcome == report.OutcomeClean || r.Outcome == report.OutcomeNoWriteback
	fail := func(out report.Outcome, titles []string, msg string) {
		if !open {
			return
		}
		r.Outcome, r.Error = out, msg
		r.CrashTitles = append(r.CrashTitles, titles...)
		at := r.StressSeconds
		r.FirstFailureSeconds = &at
	}
	switch {
	case o.health != nil:
		h, out, titles, msg := judgeHealth(*o.health, o.tolerance)
		if h.PageOwner == nil && o.pageOwnerErr != nil {
			h.PageOwner = &report.PageOwner{Error: "no baseline: " + o.pageOwnerErr.Error()}
		}
		r.Health = h
		if out != "" {
			fail(out, titles, msg)
		}
	case o.healthHung:
		r.Health = &report.Health{LeakTolerancePages: o.tolerance, Error: "did not finish"}
		fail(report.OutcomeHang, []string{report.TitleSwapoffHang},
			"the health check after the workload (swapoff, then the stuck-task scan) did not finish in time\n"+console.Tail(o.log, 40))
	case o.healthErr != nil:
		r.Health = &report.Health{LeakTolerancePages: o.tolerance, Error: o.healthErr.Error()}
		var ae *vm.AgentError
		if open && !errors.As(o.healthErr, &ae) && !o.interrupted {
			// Not the agent refusing: the guest went away during the check
			// with nothing on the console.
			r.Outcome = report.OutcomeInfraError
			r.Error = fmt.Sprintf("lost the guest during the health check with no crash on the console (%v); QMP events %v", o.healthErr, o.events)
		}
	}
}

// outputTailMax is the size of the output tail the agent keeps
// (guest/agent/exec.go): a tail this long was cut.
const outputTailMax = 8 << 10

// workloadResult is how the external workload ended, with the TAP test
// points in its output.
func workloadResult(o observed) *report.WorkloadResult {
	res := o.execResult
	w := &report.WorkloadResult{Command: o.exec.Argv[0], ExitCode: res.ExitCode, Signal: res.Signal, TimedOut: res.TimedOut}
	w.Tests, w.TestsPlanned = tap.Parse(res.OutputTail, len(res.OutputTail) >= outputTailMax)
	return w
}

// workloadFailure says how the workload failed, in one line: its exit
// status, then its failed TAP tests, else the end of its output.
func workloadFailure(w *report.WorkloadResult, output string) string {
	msg := fmt.Sprintf("workload %s exited %d", w.Command, w.ExitCode)
	if w.Signal != "" {
		msg = fmt.Sprintf("workload %s was killed by %s", w.Command, w.Signal)
	}
	var failed []string
	for _, t := range w.Tests {
		if !t.Passed() {
			failed = append(failed, t.String())
		}
	}
	if n := len(w.Tests); w.TestsPlanned > n {
		failed = append(failed, fmt.Sprintf("%d of %d planned tests not reported", w.TestsPlanned-n, w.TestsPlanned))
	}
	if len(failed) > 0 {
		return msg + ": " + strings.Join(failed, "; ")
	}
	if out := console.Tail([]byte(strings.TrimRight(output, "\n")), 5); strings.TrimSpace(out) != "" {
		msg += ": " + strings.ReplaceAll(out, "\n", " | ")
	}
	return msg
}

// beforeWorkload marks, in CrashTitles, a report printed before the
// workload started.
const beforeWorkload = " (before the workload started)"

// kernelReport is a console report as a run records it.
func kernelReport(rep console.Report, before bool) report.KernelReport {
	return report.KernelReport{Kind: string(rep.Kind), Title: rep.Title, Function: rep.Function, BeforeWorkload: before}
}

// fillResult copies a finished job's figures into the run.
func fillResult(r *report.Run, o observed) {
	before, after := o.result.KernelBefore, o.result.KernelAfter
	if o.exec != nil {
		before, after = o.execResult.KernelBefore, o.execResult.KernelAfter
		r.StressSeconds = o.execResult.ElapsedSec
	} else {
		if o.result.ElapsedSec > 0 {
			r.StressSeconds = o.result.ElapsedSec
		}
		r.PagesVerified = o.result.PagesVerified
		r.Corruptions = o.result.TotalCorruptions()
		for c, n := range o.result.Corruptions {
			r.CorruptionsByClass[string(c)] = n
		}
		r.Examples = nil
		for _, e := range o.result.Examples {
			r.Examples = append(r.Examples, describe(e))
		}
	}
	if after == nil {
		return
	}
	r.Counters = map[string]int64{}
	keys := make([]string, 0, len(after))
	for k := range after {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.Counters[k] = after[k] - before[k]
	}
	// Without a "before" figure the delta would be a count since boot.
	wb := o.writeback.orDefault()
	if _, ok := before[wb.Name]; ok {
		r.WrittenBackPages = r.Counters[wb.Name]
	}
}

// describe says what a corrupt page held, in a kernel developer's words.
func describe(e stress.Example) string {
	got := fmt.Sprintf("worker %d page %d generation %d", e.GotWorker, e.GotPage, e.GotGen)
	if !e.HeaderOK {
		got = "no valid page header"
	}
	return fmt.Sprintf("%s at %.1f s: worker %d page %d wanted generation %d, read %s; first bad byte at offset %d",
		e.Class, e.AtSec, e.Worker, e.Page, e.WantGen, got, e.Offset)
}

// orList is "a", "a or b", "a, b or c".
func orList(l []string) string {
	if len(l) < 2 {
		return strings.Join(l, "")
	}
	return strings.Join(l[:len(l)-1], ", ") + " or " + l[len(l)-1]
}
