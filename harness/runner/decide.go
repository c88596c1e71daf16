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
	crashAt     float64 // host seconds at the first crash line; 0 if none seen live
	qemuStderr  string
}

// decide turns what was observed into the run's outcome. Kernel failures
// (corruption, crash, hang) are only claimed on evidence; a run that cannot
// show that zswap wrote back proves nothing; OOM is a mis-sized run; what is
// left unexplained is the harness's or the host's problem.
func decide(o observed) report.Run {
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
	}

	var crashes, hangs, ooms []console.Report
	for _, rep := range console.Parse(o.log) {
		if rep.Start < o.offset {
			// Not the workload's doing: reported, not counted.
			r.CrashTitles = append(r.CrashTitles, rep.Title+" (before the workload started)")
			continue
		}
		switch rep.Kind {
		case console.OOM:
			ooms = append(ooms, rep)
		case console.Hang:
			hangs = append(hangs, rep)
		case console.Warning:
			// A WARNING is reported but does not fail the run: the kernel
			// carries on, and warnings unrelated to the race are common.
			r.CrashTitles = append(r.CrashTitles, rep.Title+" (warning, not counted)")
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
			!bytes.Contains(o.log, []byte("zh-agent: shutting down")) && !bytes.Contains(o.log, []byte("zh-agent: fatal")):
			title = "guest reset itself mid-run with no report on the console (triple fault or emergency restart)"
		}
		if title != "" {
			r.CrashTitles = append(r.CrashTitles, title)
			crashes = append(crashes, console.Report{Kind: console.Crash, Title: title})
		}
	}

	failAt := func(sec float64) {
		if r.FirstFailureSeconds == nil || sec < *r.FirstFailureSeconds {
			r.FirstFailureSeconds = &sec
		}
	}
	crashSec := o.elapsed
	if o.crashAt > 0 {
		crashSec = o.crashAt
	}
	tail := console.Tail(o.log, 40)
	switch {
	case len(crashes) > 0:
		r.Outcome = report.OutcomeCrash
		failAt(crashSec)
		r.Error = crashes[0].Title
	case len(ooms) > 0 && r.Corruptions == 0:
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
	case r.Corruptions > 0:
		r.Outcome = report.OutcomeCorruption
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
	case o.exec != nil && o.execResult.ExitCode != 0 && !o.execResult.TimedOut:
		// The definition for peer workloads: a non-zero exit is a failure.
		r.Outcome = report.OutcomeCorruption
		r.Corruptions = 1
		failAt(o.execResult.ElapsedSec)
		r.Examples = []string{fmt.Sprintf("%s exited %d %s: %s", o.exec.Argv[0], o.execResult.ExitCode, o.execResult.Signal, lastLines(o.execResult.OutputTail, 5))}
	case r.WrittenBackPages == 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = "zswap wrote back no pages: this run proves nothing (is the zpool zbud or z3fold, and did the pool fill?)"
	case r.WrittenBackPages < 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = "could not read zswap's written_back_pages before and after the run (is debugfs in the kernel?): a run that cannot show writeback proves nothing"
	default:
		r.Outcome = report.OutcomeClean
	}
	if r.Corruptions > 0 && o.exec == nil {
		if completed && o.result.FirstCorruptionSec >= 0 {
			failAt(o.result.FirstCorruptionSec)
		} else if len(o.examples) > 0 {
			failAt(o.examples[0].AtSec)
		} else {
			failAt(o.last.ElapsedSec)
		}
	}
	return r
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
	if _, ok := before["written_back_pages"]; ok {
		r.WrittenBackPages = r.Counters["written_back_pages"]
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
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
