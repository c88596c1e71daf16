// Package runner boots one kernel, runs one stress job (or external
// workload) in it, watches the console and the agent's heartbeat, and says
// what happened as a report.Run.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/harness/fault"
	"zswaprace/harness/initramfs"
	"zswaprace/harness/report"
	"zswaprace/harness/vm"
	"zswaprace/stress"
)

// Spec is one run.
type Spec struct {
	Variant string
	Index   int
	Config  string // the kernel's .config, for the report
	VM      vm.Config
	Keys    *initramfs.Keys
	Stress  stress.Config
	Exec    *proto.ExecRequest // an external workload instead of the stress workers
	// HangAfter is how long the agent may stay silent before the run is a
	// hang; 0 means 30 s scaled for the accelerator.
	HangAfter time.Duration
	// CrashGrace is how long to keep reading the console after the first
	// crash line, so the whole oops is captured.
	CrashGrace time.Duration
	Say        func(string)
	// OnStart, if set, is called with the machine once the agent is up (tests
	// use it to kill QEMU or freeze the guest mid-run).
	OnStart func(*vm.Machine)
}

func (s *Spec) say(format string, args ...any) {
	if s.Say != nil {
		s.Say(fmt.Sprintf("%s run %d: ", s.Variant, s.Index) + fmt.Sprintf(format, args...))
	}
}

// Run boots the kernel and runs the workload once. It never returns an
// error: what went wrong is in the Run's Outcome and Error.
func Run(ctx context.Context, spec Spec) report.Run {
	r := report.Run{Variant: spec.Variant, Index: spec.Index, KernelConfig: spec.Config, WrittenBackPages: -1,
		CorruptionsByClass: map[string]uint64{}}
	m, err := vm.Start(ctx, spec.VM)
	if err != nil {
		return failed(ctx, r, err)
	}
	defer m.Close()
	r.Accel, r.ConsoleLog = m.Accel, m.LogPath
	spec.say("booting (%s)", m.Accel)
	if err := m.ConnectAgent(ctx, spec.Keys); err != nil {
		return failed(ctx, r, err)
	}
	r.BootSeconds = m.Booted.Seconds()
	spec.say("agent up after %.1f s", r.BootSeconds)
	if spec.OnStart != nil {
		spec.OnStart(m)
	}
	return (&watch{spec: spec, m: m, r: r}).run(ctx)
}

func failed(ctx context.Context, r report.Run, err error) report.Run {
	switch {
	case ctx.Err() != nil:
		r.Outcome = report.OutcomeInterrupted
	case fault.KindOf(err) == fault.Boot:
		r.Outcome = report.OutcomeBootFailure
	default:
		r.Outcome = report.OutcomeInfraError
	}
	r.Error = err.Error()
	if d := fault.DetailOf(err); d != "" {
		r.Error += "\n" + d
	}
	return r
}

// watch follows one workload: heartbeat, console, result.
type watch struct {
	spec Spec
	m    *vm.Machine
	r    report.Run

	mu       sync.Mutex // guards last, byClass and examples, which onMsg writes
	last     stress.Progress
	byClass  map[stress.Class]uint64
	examples []stress.Example
	start    time.Time
	offset   int // console bytes before the workload started
	hung     bool
	overdue  bool
	crashAt  time.Duration
	rep      stress.Report
	exec     proto.ExecResult
	cmdErr   error
	finished bool
}

func (w *watch) run(ctx context.Context) report.Run {
	scale := vm.Scale(w.m.Accel)
	hangAfter := w.spec.HangAfter
	if hangAfter == 0 {
		hangAfter = 30 * time.Second * scale
	}
	grace := w.spec.CrashGrace
	if grace == 0 {
		grace = 5 * time.Second
	}
	cmdCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	beat := make(chan struct{}, 1)
	done := make(chan error, 1)
	w.start = time.Now()
	w.offset = w.m.Console.Len()
	go func() {
		onMsg := func(msg proto.Message) {
			if p := msg.Progress; p != nil {
				w.mu.Lock()
				w.last = *p
				if p.ByClass != nil {
					w.byClass = p.ByClass
				}
				w.examples = append(w.examples, p.NewExamples...)
				w.mu.Unlock()
			}
			select {
			case beat <- struct{}{}:
			default:
			}
		}
		if w.spec.Exec != nil {
			done <- w.m.Command(cmdCtx, proto.CmdExec, w.spec.Exec, onMsg, &w.exec)
		} else {
			done <- w.m.Command(cmdCtx, proto.CmdStress, proto.StressRequest{Config: w.spec.Stress}, onMsg, &w.rep)
		}
	}()
	hang := time.NewTimer(hangAfter)
	defer hang.Stop()
	// A workload that keeps sending heartbeats but never ends is stuck too.
	limit := time.Duration(w.duration()*float64(time.Second)) + 2*hangAfter
	overdue := time.NewTimer(limit)
	defer overdue.Stop()
	lastSay := time.Now()
	var graceC <-chan time.Time
	crashC := w.m.Watch.First()
	exitedC := w.m.Exited()
	for waiting := true; waiting; {
		select {
		case <-beat:
			hang.Reset(hangAfter)
			if time.Since(lastSay) > 15*time.Second {
				lastSay = time.Now()
				w.sayProgress()
			}
		case err := <-done:
			w.cmdErr, w.finished = err, true
			if graceC == nil && err != nil {
				// The command broke: most likely the kernel died. Let the
				// console catch up before reading it.
				graceC = time.After(grace)
				continue
			}
			waiting = false
		case rep := <-crashC:
			crashC = nil
			w.crashAt = time.Since(w.start)
			w.spec.say("kernel: %s", rep.Title)
			hang.Stop()
			graceC = time.After(grace)
		case <-graceC:
			waiting = false
		case <-hang.C:
			w.hung = true
			w.spec.say("no heartbeat from the agent for %s: hang", hangAfter)
			waiting = false
		case <-overdue.C:
			w.hung, w.overdue = true, true
			w.spec.say("the workload has not finished %s after it was started: hang", limit)
			waiting = false
		case <-exitedC:
			exitedC = nil
			if graceC == nil {
				graceC = time.After(grace)
			}
		case <-ctx.Done():
			waiting = false
		}
	}
	cancel()
	// Stop the guest (in order after a clean finish: the agent reboots it,
	// which ends QEMU), so the console is complete, and let the command
	// goroutine finish before its results are read.
	if w.finished && w.cmdErr == nil {
		w.m.Close()
	} else {
		w.m.Kill()
	}
	<-w.m.Exited()
	if !w.finished {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	r := w.classify(ctx)
	if err := w.m.LogError(); err != nil && r.Outcome != report.OutcomeInterrupted {
		// The kernel's verdict may stand, but the evidence is incomplete.
		r.Error = strings.TrimSpace(r.Error + "\nconsole log incomplete: " + err.Error())
		if !r.Failed() {
			r.Outcome = report.OutcomeInfraError
		}
	}
	return r
}

// duration is how long the workload was asked to run.
func (w *watch) duration() float64 {
	if w.spec.Exec != nil {
		return w.spec.Exec.DurationSec
	}
	return w.spec.Stress.DurationSec
}

func (w *watch) sayProgress() {
	w.mu.Lock()
	p := w.last
	w.mu.Unlock()
	el := time.Duration(p.ElapsedSec * float64(time.Second)).Round(time.Second)
	if w.spec.Exec != nil {
		w.spec.say("%s of %s", el, w.spec.Exec.Argv[0])
		return
	}
	w.spec.say("%s of stress, %d pages verified, %d corrupt", el, p.PagesVerified, p.Corruptions)
}

func (w *watch) classify(ctx context.Context) report.Run {
	r := w.r
	log := w.m.Console.Bytes()
	reports := console.Parse(log)
	w.mu.Lock()
	last := w.last
	w.mu.Unlock()
	r.StressSeconds = time.Since(w.start).Seconds()
	if w.finished && w.cmdErr == nil && w.rep.ElapsedSec > 0 {
		r.StressSeconds = w.rep.ElapsedSec
	} else if last.ElapsedSec > 0 {
		r.StressSeconds = last.ElapsedSec
	}
	// Until the final report (if any) replaces them, the figures are those
	// the last progress message carried.
	w.mu.Lock()
	r.PagesVerified = last.PagesVerified
	r.Corruptions = last.Corruptions
	for c, n := range w.byClass {
		r.CorruptionsByClass[string(c)] = n
	}
	for _, e := range w.examples {
		r.Examples = append(r.Examples, describe(e))
	}
	w.mu.Unlock()
	if w.finished && w.cmdErr == nil {
		w.fillResult(&r)
	}
	var crashes, hangs, ooms []console.Report
	for _, rep := range reports {
		if rep.Start < w.offset {
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
	failAt := func(sec float64) {
		if r.FirstFailureSeconds == nil || sec < *r.FirstFailureSeconds {
			r.FirstFailureSeconds = &sec
		}
	}
	tail := console.Tail(log, 40)
	events := w.m.Events()
	if len(crashes)+len(hangs)+len(ooms) == 0 {
		// Evidence of a dead kernel that left nothing on the console (it
		// may have been cut off): pvpanic, or a reset nobody asked for.
		title := ""
		switch {
		case slices.Contains(events, "GUEST_PANICKED"):
			title = "kernel panic (pvpanic; no report on the console)"
		case !w.finished && slices.Contains(events, "SHUTDOWN(guest-reset)") && !bytes.Contains(log, []byte("zh-agent: shutting down")) && !bytes.Contains(log, []byte("zh-agent: fatal")):
			title = "guest reset itself mid-run with no report on the console (triple fault or emergency restart)"
		}
		if title != "" {
			r.CrashTitles = append(r.CrashTitles, title)
			crashes = append(crashes, console.Report{Kind: console.Crash, Title: title})
		}
	}
	switch {
	case len(crashes) > 0:
		r.Outcome = report.OutcomeCrash
		failAt(w.crashSeconds())
		r.Error = crashes[0].Title
	case len(ooms) > 0 && r.Corruptions == 0:
		// Out of memory is a mis-sized run, never a failure of the kernel.
		r.Outcome = report.OutcomeOOM
		r.Error = "guest ran out of memory: lower --workers/--mib-per-worker or raise --mem/--swap\n" + tail
	case len(hangs) > 0 || w.hung:
		r.Outcome = report.OutcomeHang
		failAt(w.crashSeconds())
		r.Error = "no progress from the guest"
		if w.overdue {
			r.Error = "the workload did not finish in time"
		}
		if len(hangs) > 0 {
			r.Error = hangs[0].Title
		}
		r.Error += "\n" + tail
	case r.Corruptions > 0:
		r.Outcome = report.OutcomeCorruption
	case ctx.Err() != nil:
		r.Outcome = report.OutcomeInterrupted
	case !w.finished || w.cmdErr != nil:
		var ae *vm.AgentError
		if errors.As(w.cmdErr, &ae) {
			r.Outcome, r.Error = report.OutcomeInfraError, ae.Error()
			break
		}
		r.Outcome = report.OutcomeInfraError
		r.Error = fmt.Sprintf("lost the guest mid-run with no crash on the console (%v); QMP events %v", w.cmdErr, w.m.Events())
		if s := w.m.Stderr(); s != "" {
			r.Error += "; qemu said: " + s
		}
	case w.spec.Exec != nil && w.exec.ExitCode != 0 && !w.exec.TimedOut:
		r.Outcome = report.OutcomeCorruption
		r.Corruptions = 1
		failAt(w.exec.ElapsedSec)
		r.Examples = []string{fmt.Sprintf("%s exited %d %s: %s", w.spec.Exec.Argv[0], w.exec.ExitCode, w.exec.Signal, lastLines(w.exec.OutputTail, 5))}
	case r.WrittenBackPages == 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = "zswap wrote back no pages: this run proves nothing (is the zpool zbud or z3fold, and did the pool fill?)"
	case r.WrittenBackPages < 0:
		r.Outcome = report.OutcomeNoWriteback
		r.Error = "could not read zswap's written_back_pages before and after the run (is debugfs in the kernel?): a run that cannot show writeback proves nothing"
	default:
		r.Outcome = report.OutcomeClean
	}
	if r.Corruptions > 0 && w.spec.Exec == nil && w.finished && w.cmdErr == nil && w.rep.FirstCorruptionSec >= 0 {
		failAt(w.rep.FirstCorruptionSec)
	} else if r.Corruptions > 0 && w.spec.Exec == nil {
		failAt(last.ElapsedSec)
	}
	return r
}

func (w *watch) crashSeconds() float64 {
	if w.crashAt > 0 {
		return w.crashAt.Seconds()
	}
	return time.Since(w.start).Seconds()
}

// fillResult copies a finished job's figures into the run.
func (w *watch) fillResult(r *report.Run) {
	before, after := w.rep.KernelBefore, w.rep.KernelAfter
	if w.spec.Exec != nil {
		before, after = w.exec.KernelBefore, w.exec.KernelAfter
		r.StressSeconds = w.exec.ElapsedSec
	} else {
		r.PagesVerified = w.rep.PagesVerified
		r.Corruptions = w.rep.TotalCorruptions()
		for c, n := range w.rep.Corruptions {
			r.CorruptionsByClass[string(c)] = n
		}
		r.Examples = nil
		for _, e := range w.rep.Examples {
			r.Examples = append(r.Examples, describe(e))
		}
	}
	if after != nil {
		r.Counters = map[string]int64{}
		keys := make([]string, 0, len(after))
		for k := range after {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			r.Counters[k] = after[k] - before[k]
		}
		if _, ok := before["written_back_pages"]; ok {
			r.WrittenBackPages = r.Counters["written_back_pages"]
		}
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
