// Package runner boots one kernel, runs one stress job (or external
// workload) in it, watches the console and the agent's heartbeat, and says
// what happened as a report.Run.
package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
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
	// Health, if set, runs the health check after a workload that
	// finished (README, "Kernel health").
	Health *HealthSpec
	// PageOwner: the kernel boots with page_owner=on. With Health, the
	// agent reads page_owner before the workload (CmdPageOwnerBaseline)
	// and again in the health check, each read within
	// proto.PageOwnerDeadlineSec, and the check names the stacks that grew.
	PageOwner bool
	// OnStart, if set, is called with the machine once the agent is up (tests
	// use it to kill QEMU or freeze the guest mid-run).
	OnStart func(*vm.Machine)
	// Writeback names the counter of pages zswap wrote back and where it
	// lives (the kernel line's profile); zero is 6.1's debugfs
	// written_back_pages.
	Writeback Counter
}

// Counter is a kernel counter as the guest's sample names it, and where
// it lives, for messages.
type Counter struct {
	Name string // "written_back_pages", "zswpwb"
	// Hint says where it lives, for a run that could not read it.
	Hint string
	// Zpools are the zpools that can write back, for the message of a run
	// that wrote back nothing.
	Zpools []string
}

// DefaultWriteback is 6.1's counter of pages written back.
var DefaultWriteback = Counter{Name: "written_back_pages", Hint: "is debugfs in the kernel?", Zpools: []string{"zbud", "z3fold"}}

func (c Counter) orDefault() Counter {
	if c.Name == "" {
		return DefaultWriteback
	}
	return c
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
		r = failed(ctx, r, err)
		// What the kernel reported while it failed to boot (the panic
		// that stopped it, if any); no workload ever started.
		for _, rep := range console.Parse(m.ConsoleBytes()) {
			r.Reports = append(r.Reports, kernelReport(rep, true))
		}
		return r
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
	m    machine
	r    report.Run

	mu        sync.Mutex // guards last, byClass and examples, which onMsg writes
	last      stress.Progress
	byClass   map[stress.Class]uint64
	examples  []stress.Example
	start     time.Time
	offset    int  // console bytes before the workload started
	bootSaid  bool // a report from before the workload was mentioned
	raceSaid  bool // a KCSAN data race was mentioned
	hung      bool
	overdue   bool
	load      *float64 // the host's load when the workload ended (hostLoad)
	crashSeen bool     // a crash, hang or OOM report arrived during the workload
	crashAt   float64  // when, on the stress clock (stressNow)
	warnAt    float64  // the first WARNING during the workload, likewise; 0 if none
	rep       stress.Report
	exec      proto.ExecResult
	cmdErr    error
	finished  bool
	// The health check after the workload: started, finished with its
	// result or error, or hung (no heartbeat, or past its limit).
	healthStarted  bool
	healthFinished bool
	healthHung     bool
	healthErr      error
	health         proto.HealthResult
	pageOwnerErr   error // the page_owner baseline failed
}

func (w *watch) run(ctx context.Context) report.Run {
	scale := vm.Scale(w.r.Accel)
	hangAfter := w.spec.HangAfter
	if hangAfter == 0 {
		hangAfter = 30 * time.Second * scale
	}
	grace := w.spec.CrashGrace
	if grace == 0 {
		grace = 5 * time.Second
	}
	if r, ok := w.checkGuest(ctx, hangAfter); !ok {
		return r
	}
	w.pageOwnerBaseline(ctx)
	cmdCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	beat := make(chan struct{}, 1)
	done := make(chan error, 1)
	healthDone := make(chan error, 1)
	w.start = time.Now()
	w.offset = w.m.ConsoleLen()
	reports := w.m.ConsoleReports(cmdCtx)
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
	lastElapsed, saidSlow := -1.0, false
	var graceC <-chan time.Time
	exitedC := w.m.Exited()
	for waiting := true; waiting; {
		select {
		case <-beat:
			hang.Reset(hangAfter)
			if !w.healthStarted && time.Since(lastSay) > 15*time.Second {
				lastSay = time.Now()
				w.sayProgress()
			}
		case err := <-done:
			w.cmdErr, w.finished = err, true
			w.load = hostLoad()
			if graceC == nil && err != nil {
				// The command broke: most likely the kernel died. Let the
				// console catch up before reading it.
				graceC = time.After(grace)
				continue
			}
			if err == nil && graceC == nil && w.spec.Health != nil && ctx.Err() == nil {
				// The workload is over and the kernel lives: did it come
				// back whole? The console is still watched.
				w.healthStarted = true
				go w.runHealth(cmdCtx, w.spec.Health.request(scale), beat, healthDone)
				hang.Reset(hangAfter)
				swapMiB := w.spec.VM.SwapMiB
				if swapMiB <= 0 {
					swapMiB = vm.DefaultSwapMiB
				}
				limit = w.spec.Health.limit(scale, swapMiB, 2*hangAfter+w.pageOwnerRead())
				overdue.Reset(limit)
				continue
			}
			waiting = false
		case err := <-healthDone:
			w.healthErr, w.healthFinished = err, true
			if graceC == nil && err != nil {
				graceC = time.After(grace)
				continue
			}
			waiting = false
		case rep, ok := <-reports:
			if !ok {
				reports = nil // ctx ended: the next turn sees it
				continue
			}
			if w.seen(rep) {
				// Keep reading the console for the rest of the report.
				hang.Stop()
				graceC = time.After(grace)
			}
		case <-graceC:
			waiting = false
		case <-hang.C:
			if w.healthStarted {
				w.healthHung = true
				w.spec.say("no heartbeat from the agent for %s during the health check: hang", hangAfter)
			} else {
				w.hung = true
				w.spec.say("no heartbeat from the agent for %s: hang", hangAfter)
			}
			waiting = false
		case <-overdue.C:
			if !w.healthStarted && w.slowNotStuck(limit, &lastElapsed, &saidSlow) {
				overdue.Reset(hangAfter)
				continue
			}
			if w.healthStarted {
				w.healthHung = true
				w.spec.say("the health check has not finished %s after it was started: hang", limit)
			} else {
				w.hung, w.overdue = true, true
				w.spec.say("the workload has not finished %s after it was started: hang", limit)
			}
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
	if w.finished && w.cmdErr == nil && (!w.healthStarted || w.healthFinished && w.healthErr == nil) {
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
	if w.healthStarted && !w.healthFinished {
		select {
		case <-healthDone:
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

// seen takes a kernel report as the console watcher saw it, and says
// whether it ends the run (after the crash grace). Only the first crash,
// hang or OOM during the workload does: a report printed before the
// workload started (during boot) is not the workload's doing, and after a
// WARNING the kernel carries on. All of them are read back from the whole
// console at the end.
func (w *watch) seen(rep console.Report) bool {
	switch {
	case rep.Kind == console.DataRace:
		// --kcsan: KCSAN reports data races all the time; recorded, and
		// never the end of a run.
		if !w.raceSaid {
			w.raceSaid = true
			w.spec.say("KCSAN: %s (recorded, not counted; the workload goes on)", rep.Title)
		}
		return false
	case rep.Start < w.offset:
		if !w.bootSaid {
			w.bootSaid = true
			w.spec.say("kernel, before the workload started (not counted): %s", rep.Title)
		}
		return false
	case rep.Kind == console.Warning:
		if w.warnAt == 0 {
			w.warnAt = max(w.stressNow(), 1e-9)
			w.spec.say("kernel: %s (the workload goes on)", rep.Title)
		}
		return false
	case w.crashSeen:
		return false
	}
	w.crashSeen, w.crashAt = true, w.stressNow()
	w.spec.say("kernel: %s", rep.Title)
	return true
}

// stressNow is the stress clock, in seconds: the guest's, as of the last
// heartbeat (they come every second), or the host's since the workload
// started while none has come. Failures are timed on it, as a corruption
// and the run's stress seconds are: a guest with more vCPUs than host
// cores runs behind the host's clock.
func (w *watch) stressNow() float64 {
	w.mu.Lock()
	el := w.last.ElapsedSec
	w.mu.Unlock()
	if el > 0 {
		return el
	}
	return time.Since(w.start).Seconds()
}

// checkGuest asks the agent what the guest looks like before the workload
// starts. A guest that brought up fewer CPUs than asked for would not run
// the race the user asked for: that run is an infrastructure error, and
// the workload is not started.
func (w *watch) checkGuest(ctx context.Context, timeout time.Duration) (report.Run, bool) {
	var hello proto.Hello
	pctx, cancel := context.WithTimeout(ctx, timeout)
	err := w.m.Command(pctx, proto.CmdPing, nil, nil, &hello)
	timedOut := ctx.Err() == nil && pctx.Err() != nil
	cancel()
	if err != nil {
		if timedOut {
			err = fmt.Errorf("no answer in %s", timeout)
		}
		return w.abort(ctx, fmt.Sprintf("the guest agent did not answer %s: %v", proto.CmdPing, err)), false
	}
	w.r.GuestCPUs = hello.CPUs
	asked := w.spec.VM.CPUs
	if asked <= 0 {
		asked = vm.DefaultCPUs
	}
	if hello.CPUs < asked {
		msg := fmt.Sprintf("the guest brought up %d CPU(s) of the %d asked for (--cpus %d): the kernel did not see them all (check CONFIG_SMP/NR_CPUS and QEMU's -smp topology)", hello.CPUs, asked, asked)
		if line, _ := bootedCPUs(w.m.ConsoleBytes()); line != "" {
			msg += "\nthe console says: " + line
		}
		return w.abort(ctx, msg), false
	}
	return report.Run{}, true
}

// abort ends a run before its workload started: an infrastructure error
// (or an interrupted run), with what the kernel reported during boot.
func (w *watch) abort(ctx context.Context, msg string) report.Run {
	w.m.Close()
	r := w.r
	r.WrittenBackPages = -1
	r.CorruptionsByClass = map[string]uint64{}
	log := w.m.ConsoleBytes()
	for _, rep := range console.Parse(log) {
		r.Reports = append(r.Reports, kernelReport(rep, true))
		r.CrashTitles = append(r.CrashTitles, rep.Title+beforeWorkload)
	}
	r.Outcome, r.Error = report.OutcomeInfraError, msg
	if ctx.Err() != nil {
		r.Outcome = report.OutcomeInterrupted
	}
	return r
}

// pageOwnerRead is how long one read of page_owner may take in the guest
// (0 without page_owner), with a margin: the agent reads it before the
// workload starts and again in the health check.
func (w *watch) pageOwnerRead() time.Duration {
	if !w.spec.PageOwner || w.spec.Health == nil {
		return 0
	}
	return proto.PageOwnerDeadlineSec*time.Second + 10*time.Second
}

// pageOwnerBaseline has the agent read page_owner before the workload
// starts, for the health check to compare with after it. A failure is
// recorded in the run's health (no stacks are compared) and the run goes
// on.
func (w *watch) pageOwnerBaseline(ctx context.Context) {
	if w.pageOwnerRead() == 0 {
		return
	}
	pctx, cancel := context.WithTimeout(ctx, w.pageOwnerRead())
	defer cancel()
	var snap proto.PageOwnerSnapshot
	if err := w.m.Command(pctx, proto.CmdPageOwnerBaseline, nil, nil, &snap); err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			err = fmt.Errorf("no answer in %s", w.pageOwnerRead())
		}
		w.pageOwnerErr = err
		w.spec.say("page_owner baseline failed (no stacks will be compared): %v", err)
		return
	}
	w.spec.say("page_owner baseline: %d pages in %d stacks, %.1f MiB read in %.1f s", snap.Pages, snap.Stacks, float64(snap.Bytes)/(1<<20), snap.Seconds)
}

// duration is how long the workload was asked to run.
// slowNotStuck says whether a workload past its wall-clock limit is only
// slow: its own clock (the guest's) is still short of the run's duration
// and moved since the last look, and the wall clock is within twice the
// limit. A guest's clock falls behind the host's when the host has more
// vCPUs to run than cores (make bench saw 9 min of a 10-min run in 14 min
// of wall time); calling that a hang would count a kernel failure that is
// the host's load.
func (w *watch) slowNotStuck(limit time.Duration, lastElapsed *float64, said *bool) bool {
	w.mu.Lock()
	el := w.last.ElapsedSec
	w.mu.Unlock()
	wall := time.Since(w.start)
	if el >= w.duration() || el <= *lastElapsed || wall >= 2*limit {
		return false
	}
	*lastElapsed = el
	if !*said {
		*said = true
		w.spec.say("the workload is at %s of %s after %s: the guest runs slow (its clock behind the host's), not stuck; waiting for it, up to %s",
			time.Duration(el*float64(time.Second)).Round(time.Second), time.Duration(w.duration()*float64(time.Second)).Round(time.Second),
			wall.Round(time.Second), (2 * limit).Round(time.Second))
	}
	return true
}

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
	w.mu.Lock()
	defer w.mu.Unlock()
	o := observed{
		run: w.r, log: w.m.ConsoleBytes(), offset: w.offset, events: w.m.Events(),
		exec: w.spec.Exec, finished: w.finished, cmdErr: w.cmdErr, result: w.rep, execResult: w.exec,
		last: w.last, byClass: w.byClass, examples: w.examples,
		hung: w.hung, overdue: w.overdue, interrupted: ctx.Err() != nil,
		elapsed: time.Since(w.start).Seconds(), qemuStderr: w.m.Stderr(),
		healthStarted: w.healthStarted, healthHung: w.healthHung && !w.healthFinished,
		pageOwnerErr: w.pageOwnerErr,
		writeback:    w.spec.Writeback.orDefault(),
	}
	if w.healthStarted && !w.healthFinished && !w.healthHung {
		o.healthErr = errors.New("the run ended during the health check")
	}
	if w.healthStarted && w.healthFinished {
		if w.healthErr != nil {
			o.healthErr = w.healthErr
		} else {
			h := w.health
			o.health = &h
		}
	}
	if w.spec.Health != nil {
		o.tolerance = w.spec.Health.LeakTolerancePages
	}
	if w.crashSeen {
		o.crashAt = max(w.crashAt, 1e-9)
	}
	o.warnAt = w.warnAt
	r := decide(o)
	// How busy the host was beside this guest (report.Run.HostBusy).
	if r.HostLoad = w.load; r.HostLoad == nil && r.StressSeconds > 0 {
		r.HostLoad = hostLoad()
	}
	r.HostCPUs = runtime.NumCPU()
	return r
}

// hostLoad is the host's 1-minute load average, nil if unreadable.
func hostLoad() *float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	return parseLoadavg(string(b))
}

// parseLoadavg reads the first field of /proc/loadavg.
func parseLoadavg(s string) *float64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil || v < 0 {
		return nil
	}
	return &v
}

// runHealth runs the health check; its heartbeats feed the hang timer.
func (w *watch) runHealth(ctx context.Context, req proto.HealthRequest, beat chan<- struct{}, done chan<- error) {
	w.spec.say("health check: swapoff, zswap, memory, stuck tasks")
	var res proto.HealthResult
	err := w.m.Command(ctx, proto.CmdHealth, req, func(proto.Message) {
		select {
		case beat <- struct{}{}:
		default:
		}
	}, &res)
	w.mu.Lock()
	w.health = res
	w.mu.Unlock()
	done <- err
}
