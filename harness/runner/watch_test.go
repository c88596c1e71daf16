package runner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/harness/report"
	"zswaprace/harness/vm"
	"zswaprace/stress"
)

// The watch loop's tests replay real console logs into a fake machine.
// Deadlines are milliseconds; where the loop must end by one path, the
// others are set far away, so that the wrong path shows as the wrong
// outcome rather than as a flaky test.

const (
	cleanLogName = "real-6.1-widened-patched-clean.log"
	bugLogName   = "real-6.1-widened-unpatched-zswap-bug.log"
	bugTitle     = "kernel BUG in zswap_writeback_entry"
	bugLive      = "kernel: kernel BUG at mm/zswap.c" // what the watcher says from the header alone
	farAway      = 10 * time.Second                   // a deadline that must not be the one that ends the test
)

// testSpec is a run with every deadline far away.
func testSpec(s *sayings) Spec {
	return Spec{Variant: "unpatched", Index: 1, VM: vm.Config{CPUs: 2}, HangAfter: farAway, CrashGrace: 20 * time.Millisecond,
		Stress: stress.Config{DurationSec: 60}, Say: s.say}
}

// cleanResult is a finished stress job that saw zswap write 900 pages back.
func cleanResult() stress.Report {
	before, after := counters(900)
	return stress.Report{ElapsedSec: 60, PagesVerified: 1000, FirstCorruptionSec: -1, KernelBefore: before, KernelAfter: after,
		Corruptions: map[stress.Class]uint64{}}
}

// finish hands a stress result back.
func finish(result any, rep stress.Report) error {
	*result.(*stress.Report) = rep
	return nil
}

// watchRun runs the watch loop on f and fails the test if it does not end.
func watchRun(t *testing.T, ctx context.Context, spec Spec, f *fakeMachine) report.Run {
	t.Helper()
	out := make(chan report.Run, 1)
	go func() {
		r := report.Run{Variant: spec.Variant, Index: spec.Index, Accel: "kvm", WrittenBackPages: -1, CorruptionsByClass: map[string]uint64{}}
		out <- (&watch{spec: spec, m: f, r: r}).run(ctx)
	}()
	select {
	case r := <-out:
		return r
	case <-time.After(3 * farAway):
		t.Fatal("the watch loop did not end")
	}
	panic("unreachable")
}

func checkOutcome(t *testing.T, r report.Run, want report.Outcome, s *sayings) {
	t.Helper()
	if r.Outcome != want {
		t.Fatalf("outcome %q, want %q; error: %s\nsaid:\n%s", r.Outcome, want, r.Error, s)
	}
}

func (f *fakeMachine) check(t *testing.T, commands []string, closed, killed bool) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if diff := cmp.Diff(commands, f.commands); diff != "" {
		t.Errorf("agent commands (-want +got):\n%s", diff)
	}
	if f.closed != closed || f.killed != killed {
		t.Errorf("machine closed %v, killed %v; want %v, %v", f.closed, f.killed, closed, killed)
	}
}

// A workload that reports back ends the run at once, clean, and the guest
// is shut down in order.
func TestWatchCleanRun(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(ctx, f, work, 1, 0, 0, onMsg); err != nil {
			return err
		}
		return finish(result, cleanResult())
	}
	r := watchRun(t, t.Context(), testSpec(s), f)
	checkOutcome(t, r, report.OutcomeClean, s)
	if r.WrittenBackPages != 900 || r.PagesVerified != 1000 || r.GuestCPUs != 2 || len(r.Reports) != 0 || r.FirstFailureSeconds != nil {
		t.Errorf("run %+v", r)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, true, false)
}

// The real crash of the unpatched kernel: the watcher sees the BUG's header
// while the workload runs, the loop keeps reading the console for the crash
// grace (the RIP line that names the function arrives during it), then
// stops the machine. Corrupt pages counted before the crash make it a
// corruption, with the crash among the kernel's reports.
func TestWatchCrashSeenLive(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, bugLogName))
	i := strings.Index(string(work), "kernel BUG at")
	i += strings.IndexByte(string(work[i:]), '\n') + 1
	upToHeader, rest := work[:i], work[i:]
	for _, tt := range []struct {
		name    string
		corrupt uint64
		want    report.Outcome
	}{
		{"crash", 0, report.OutcomeCrash},
		{"corruption then crash", 2, report.OutcomeCorruption},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSayings(bugLive)
			spec := testSpec(s)
			spec.CrashGrace = 100 * time.Millisecond
			f := newFake(boot, 2)
			f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
				if err := replay(ctx, f, upToHeader, 2, 0, tt.corrupt, onMsg); err != nil {
					return err
				}
				// The rest of the oops and the panic come after the
				// header; the dead guest sends no more heartbeats.
				select {
				case <-s.on(bugLive):
				case <-ctx.Done():
				}
				f.write(rest)
				return wedged(ctx)
			}
			r := watchRun(t, t.Context(), spec, f)
			end := time.Now()
			checkOutcome(t, r, tt.want, s)
			if !s.said(bugLive) || s.said("no heartbeat") {
				t.Errorf("the crash was not what ended the run; said:\n%s", s)
			}
			if grace := end.Sub(s.firedAt(bugLive)); grace < spec.CrashGrace {
				t.Errorf("stopped %s after the crash was seen, before the crash grace of %s", grace, spec.CrashGrace)
			}
			want := []report.KernelReport{{Kind: "crash", Title: bugTitle, Function: "zswap_writeback_entry"}}
			if diff := cmp.Diff(want, r.Reports); diff != "" {
				t.Errorf("reports (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{bugTitle}, r.CrashTitles); diff != "" {
				t.Errorf("crash titles (-want +got):\n%s", diff)
			}
			if tt.want == report.OutcomeCrash && r.Error != bugTitle {
				t.Errorf("error %q, want the crash's title", r.Error)
			}
			if tt.want == report.OutcomeCorruption && r.Corruptions != tt.corrupt {
				t.Errorf("corruptions %d, want %d", r.Corruptions, tt.corrupt)
			}
			if r.FirstFailureSeconds == nil || *r.FirstFailureSeconds >= farAway.Seconds() {
				t.Errorf("first failure %v", r.FirstFailureSeconds)
			}
			f.check(t, []string{proto.CmdPing, proto.CmdStress}, false, true)
		})
	}
}

// A crash or WARNING seen live is timed on the stress clock, that of the
// last heartbeat (the guest's), not by the host's clock since the
// workload started: a guest with more vCPUs than host cores runs behind
// (make bench's 4-CPU row printed a crash at 745 s of a 600-s run).
func TestWatchReportTimedOnStressClock(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, bugLogName))
	reps := console.Parse(append(append([]byte(nil), boot...), work...))
	var crash console.Report
	for _, r := range reps {
		if r.Kind == console.Crash {
			crash = r
			break
		}
	}
	if crash.Title == "" {
		t.Fatal("no crash in the corpus log")
	}
	warn := console.Report{Kind: console.Warning, Title: "WARNING in zswap_frontswap_store", Start: crash.Start}
	for _, tt := range []struct {
		name      string
		heartbeat float64
		want      float64 // seconds; -1: the host's clock
	}{
		{"slow guest", 510, 510},
		{"no heartbeat yet: the host's clock", 0, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := &watch{spec: testSpec(newSayings()), start: time.Now().Add(-745 * time.Second), offset: len(boot)}
			w.last.ElapsedSec = tt.heartbeat
			if w.seen(warn) {
				t.Error("a WARNING ended the run")
			}
			if !w.seen(crash) {
				t.Fatal("the crash did not end the run")
			}
			for what, got := range map[string]float64{"crash": w.crashAt, "warning": w.warnAt} {
				if tt.want >= 0 && got != tt.want {
					t.Errorf("%s at %v s, want %v (the last heartbeat's)", what, got, tt.want)
				}
				if tt.want < 0 && (got < 745 || got > 800) {
					t.Errorf("%s at %v s, want about 745 (the host's)", what, got)
				}
			}
		})
	}
}

// Heartbeats stop and nothing shows on the console: a hang, HangAfter
// after the last heartbeat.
func TestWatchHang(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	spec := testSpec(s)
	spec.HangAfter = 50 * time.Millisecond
	f := newFake(boot, 2)
	var lastBeat time.Time
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(ctx, f, work, 1, 0, 0, onMsg); err != nil {
			return err
		}
		lastBeat = time.Now()
		return wedged(ctx)
	}
	r := watchRun(t, t.Context(), spec, f)
	end := time.Now()
	checkOutcome(t, r, report.OutcomeHang, s)
	if !strings.HasPrefix(r.Error, "no progress from the guest\n") || !s.said("no heartbeat from the agent for 50ms: hang") {
		t.Errorf("error %q; said:\n%s", r.Error, s)
	}
	if d := end.Sub(lastBeat); d < spec.HangAfter {
		t.Errorf("hang declared %s after the last heartbeat, before HangAfter (%s)", d, spec.HangAfter)
	}
	if r.FirstFailureSeconds == nil || r.StressSeconds != 3 {
		t.Errorf("first failure %v, stress seconds %v (the last heartbeat's)", r.FirstFailureSeconds, r.StressSeconds)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, false, true)
}

// Heartbeats go on but no result comes: the workload is overdue after its
// duration and twice HangAfter, a hang.
func TestWatchOverdue(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	spec := testSpec(s)
	spec.HangAfter = 400 * time.Millisecond // heartbeats come every 2 ms
	spec.Stress.DurationSec = 0.05
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		f.write(work)
		for sec := 1.0; ; sec++ {
			beat(onMsg, stress.Progress{ElapsedSec: sec})
			if err := pause(ctx, 2*time.Millisecond); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	r := watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeHang, s)
	if !strings.HasPrefix(r.Error, "the workload did not finish in time\n") || !s.said("the workload has not finished 850ms after it was started: hang") || s.said("no heartbeat") {
		t.Errorf("error %q; said:\n%s", r.Error, s)
	}
	if d := time.Since(start); d < 850*time.Millisecond {
		t.Errorf("overdue after %s", d)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, false, true)
}

// A guest whose clock runs slow (a host with more vCPUs than cores: the
// guest's stress clock made 9 min of a 10-min run in 14 min of wall time,
// seen in make bench) keeps beating and keeps making progress: it is slow,
// not stuck, and ends clean instead of being called a hang at the wall
// clock's limit.
func TestWatchSlowGuestClockIsNotOverdue(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	spec := testSpec(s)
	spec.HangAfter = 200 * time.Millisecond // heartbeats come every 2 ms
	spec.Stress.DurationSec = 0.5           // wall limit 0.9 s; the guest needs 1 s
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		f.write(work)
		start := time.Now()
		for {
			// The guest's clock runs at half the host's.
			el := time.Since(start).Seconds() / 2
			if el >= spec.Stress.DurationSec {
				return finish(result, cleanResult())
			}
			beat(onMsg, stress.Progress{ElapsedSec: el})
			if err := pause(ctx, 2*time.Millisecond); err != nil {
				return err
			}
		}
	}
	r := watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeClean, s)
	if !s.said("runs slow") {
		t.Errorf("the wait past the limit was not said:\n%s", s)
	}
}

// Progress that never reaches the run's duration is still a hang, at
// twice the wall clock's limit.
func TestWatchSlowGuestThatNeverEndsIsOverdue(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	spec := testSpec(s)
	spec.HangAfter = 400 * time.Millisecond
	spec.Stress.DurationSec = 0.05 // wall limit 850 ms, at most twice that
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		f.write(work)
		start := time.Now()
		for {
			// Ever slower: never reaches the duration.
			el := 0.05 * (1 - 1/(1+time.Since(start).Seconds()))
			beat(onMsg, stress.Progress{ElapsedSec: el})
			if err := pause(ctx, 2*time.Millisecond); err != nil {
				return err
			}
		}
	}
	start := time.Now()
	r := watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeHang, s)
	if d := time.Since(start); d < 1700*time.Millisecond || d > 5*time.Second {
		t.Errorf("overdue after %s, want twice the 850 ms limit", d)
	}
}

// QEMU dies mid-run with nothing on the console: the harness's problem,
// with what QEMU said.
func TestWatchQEMUExitsMidRun(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(ctx, f, work, 1, 0, 0, onMsg); err != nil {
			return err
		}
		f.mu.Lock()
		f.stderr = "qemu-system-x86_64: terminating on signal 9 from pid 4242"
		f.mu.Unlock()
		f.exit()
		return errors.New("stress: connection to the agent lost before a result")
	}
	r := watchRun(t, t.Context(), testSpec(s), f)
	checkOutcome(t, r, report.OutcomeInfraError, s)
	for _, want := range []string{"lost the guest mid-run with no crash on the console (stress: connection to the agent lost before a result)", "qemu said: qemu-system-x86_64: terminating on signal 9"} {
		if !strings.Contains(r.Error, want) {
			t.Errorf("error %q lacks %q", r.Error, want)
		}
	}
	if r.StressSeconds != 3 || r.FirstFailureSeconds != nil {
		t.Errorf("run %+v", r)
	}
}

// Ctrl-C mid-run: interrupted, the machine killed at once.
func TestWatchInterrupted(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	f := newFake(boot, 2)
	f.workload = func(cmdCtx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(cmdCtx, f, work, 1, 0, 0, onMsg); err != nil {
			return err
		}
		cancel() // the user's Ctrl-C
		<-cmdCtx.Done()
		return cmdCtx.Err()
	}
	r := watchRun(t, ctx, testSpec(s), f)
	checkOutcome(t, r, report.OutcomeInterrupted, s)
	if r.Error != "" || r.FirstFailureSeconds != nil {
		t.Errorf("run %+v", r)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, false, true)
}

// bootWithStall is the clean boot with an RCU stall (a hang report, as a
// slow TCG boot can print) before init starts.
func bootWithStall(t *testing.T, boot []byte) []byte {
	return insertBefore(t, boot, "Run /init as init process", reportLines(t, "synthetic-rcu-stall-self.log", 0.65))
}

const stallTitle = "INFO: rcu detected stall in zswap_writeback_entry"

// A report printed during boot is recorded, but neither ends nor fails
// the run that follows. (The watch loop used to take the watcher's first
// report, printed during boot, for the workload's crash: it stopped the
// run a crash grace into the workload and called it an infrastructure
// error.)
func TestWatchBootReportDoesNotEndRun(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	spec := testSpec(s)
	f := newFake(bootWithStall(t, boot), 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		// The workload lasts several crash graces.
		if err := replay(ctx, f, work, 1, spec.CrashGrace, 0, onMsg); err != nil {
			return err
		}
		for i := 0; i < 5; i++ {
			beat(onMsg, stress.Progress{ElapsedSec: float64(4 + i)})
			if err := pause(ctx, spec.CrashGrace); err != nil {
				return err
			}
		}
		return finish(result, cleanResult())
	}
	r := watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeClean, s)
	want := []report.KernelReport{{Kind: "hang", Title: stallTitle, Function: "zswap_writeback_entry", BeforeWorkload: true}}
	if diff := cmp.Diff(want, r.Reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{stallTitle + " (before the workload started)"}, r.CrashTitles); diff != "" {
		t.Errorf("crash titles (-want +got):\n%s", diff)
	}
	if !s.said("before the workload started (not counted): INFO: rcu detected stall") {
		t.Errorf("said:\n%s", s)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, true, false)
}

// The watcher goes on after a boot-time report: the crash that comes
// during the workload is still seen live.
func TestWatchBootReportThenCrash(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, bugLogName))
	s := newSayings(bugLive)
	f := newFake(bootWithStall(t, boot), 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(ctx, f, work, 2, 0, 0, onMsg); err != nil {
			return err
		}
		return wedged(ctx)
	}
	r := watchRun(t, t.Context(), testSpec(s), f)
	checkOutcome(t, r, report.OutcomeCrash, s)
	if !s.said(bugLive) {
		t.Errorf("the crash was not seen live; said:\n%s", s)
	}
	want := []report.KernelReport{
		{Kind: "hang", Title: stallTitle, Function: "zswap_writeback_entry", BeforeWorkload: true},
		{Kind: "crash", Title: bugTitle, Function: "zswap_writeback_entry"},
	}
	if diff := cmp.Diff(want, r.Reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
}

// A WARNING during the workload does not stop it; the finished run is a
// warning, a kernel failure.
func TestWatchWarning(t *testing.T) {
	boot, work := splitAtReady(t, corpus(t, cleanLogName))
	warning := reportLines(t, "synthetic-warning.log", 30)
	const warnLive = "kernel: WARNING"
	s := newSayings(warnLive)
	f := newFake(boot, 2)
	f.workload = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		if err := replay(ctx, f, append(append([]byte(nil), work...), warning...), 4, 0, 0, onMsg); err != nil {
			return err
		}
		// The workload goes on after the warning was seen.
		select {
		case <-s.on(warnLive):
		case <-ctx.Done():
			return ctx.Err()
		}
		beat(onMsg, stress.Progress{ElapsedSec: 59})
		return finish(result, cleanResult())
	}
	r := watchRun(t, t.Context(), testSpec(s), f)
	checkOutcome(t, r, report.OutcomeWarning, s)
	want := []report.KernelReport{{Kind: "warning", Title: "WARNING in zswap_frontswap_store", Function: "zswap_frontswap_store"}}
	if diff := cmp.Diff(want, r.Reports); diff != "" {
		t.Errorf("reports (-want +got):\n%s", diff)
	}
	if r.Error != want[0].Title || r.FirstFailureSeconds == nil || r.WrittenBackPages != 900 || r.StressSeconds != 60 {
		t.Errorf("run %+v", r)
	}
	if !s.said("kernel: WARNING in zswap_frontswap_store (the workload goes on)") {
		t.Errorf("said:\n%s", s)
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress}, true, false)
}

// A guest that brought up fewer CPUs than asked for does not run the
// workload.
func TestWatchTooFewCPUs(t *testing.T) {
	boot, _ := splitAtReady(t, corpus(t, cleanLogName)) // says "smp: Brought up 1 node, 1 CPU"
	for _, asked := range []int{2} {
		s := newSayings()
		spec := testSpec(s)
		spec.VM.CPUs = asked
		f := newFake(boot, 1)
		f.workload = func(context.Context, *fakeMachine, func(proto.Message), any) error {
			t.Error("the workload ran")
			return nil
		}
		r := watchRun(t, t.Context(), spec, f)
		checkOutcome(t, r, report.OutcomeInfraError, s)
		want := "the guest brought up 1 CPU(s) of the 2 asked for (--cpus 2): the kernel did not see them all (check CONFIG_SMP/NR_CPUS and QEMU's -smp topology)\n" +
			"the console says: smp: Brought up 1 node, 1 CPU"
		if r.Error != want || r.GuestCPUs != 1 {
			t.Errorf("--cpus %d: error %q, guest CPUs %d", asked, r.Error, r.GuestCPUs)
		}
		f.check(t, []string{proto.CmdPing}, true, false)
	}
}

// An agent that does not answer ping: the harness's problem; no workload.
func TestWatchPingFails(t *testing.T) {
	boot, _ := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	f := newFake(boot, 2)
	f.pingErr = errors.New("ssh session: EOF")
	r := watchRun(t, t.Context(), testSpec(s), f)
	checkOutcome(t, r, report.OutcomeInfraError, s)
	if r.Error != "the guest agent did not answer ping: ssh session: EOF" || r.GuestCPUs != 0 {
		t.Errorf("run %+v", r)
	}
	f.check(t, []string{proto.CmdPing}, true, false)
}

func TestBootedCPUs(t *testing.T) {
	for _, name := range []string{cleanLogName, bugLogName, "real-6.1-boot-panic-no-init.log"} {
		if line, n := bootedCPUs(corpus(t, name)); n != 1 || line != "smp: Brought up 1 node, 1 CPU" {
			t.Errorf("%s: %q, %d", name, line, n)
		}
	}
	if line, n := bootedCPUs([]byte("[    0.38] smp: Brought up 1 node, 2 CPUs\r\n")); n != 2 || line != "smp: Brought up 1 node, 2 CPUs" {
		t.Errorf("%q, %d", line, n)
	}
	if line, n := bootedCPUs([]byte("[    0.38] Linux version 6.1\n")); n != 0 || line != "" {
		t.Errorf("%q, %d", line, n)
	}
}

func TestParseLoadavg(t *testing.T) {
	for in, want := range map[string]float64{"4.31 3.02 1.50 5/300 1234\n": 4.31, "0.00 0.01 0.05 1/100 7": 0} {
		if got := parseLoadavg(in); got == nil || *got != want {
			t.Errorf("parseLoadavg(%q) = %v, want %v", in, got, want)
		}
	}
	for _, in := range []string{"", "x 1 2", "-1 0 0"} {
		if got := parseLoadavg(in); got != nil {
			t.Errorf("parseLoadavg(%q) = %v, want nil", in, *got)
		}
	}
}
