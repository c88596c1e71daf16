package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/stress"
)

// fakeMachine stands in for a booted vm.Machine whose agent is up, as
// syzkaller's tests stand a fake pool in for VMs: its console is what the
// test writes into it (a real console log, replayed), watched by a real
// console.Watcher, and its agent answers ping from hello and runs workload
// for the stress or exec command.
type fakeMachine struct {
	watch  *console.Watcher
	exited chan struct{}
	hello  proto.Hello
	// pingErr, if set, is the agent's answer to ping.
	pingErr error
	// workload plays the stress (or exec) command: it writes the console,
	// sends messages through onMsg and returns what Command returns; the
	// result, if any, goes into result. ctx is the command's context.
	workload func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error
	// health plays the health command the same way; nil: the agent does
	// not know it.
	health func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error
	// pageOwner answers the page_owner baseline command; nil: the agent
	// does not know it.
	pageOwner func() (proto.PageOwnerSnapshot, error)

	mu       sync.Mutex
	console  []byte
	commands []string
	events   []string
	stderr   string
	closed   bool // shut down in order
	killed   bool
	stop     sync.Once
}

// newFake returns a machine that has printed boot and brought up cpus CPUs.
func newFake(boot []byte, cpus int) *fakeMachine {
	f := &fakeMachine{watch: console.NewWatcher(), exited: make(chan struct{}), hello: proto.Hello{Kernel: "6.1.192-zswaprace", PID1: true, CPUs: cpus}}
	f.write(boot)
	return f
}

// write prints on the console, as QEMU's serial port does: the log, then
// the watcher. A stopped machine prints nothing. One writer at a time.
func (f *fakeMachine) write(p []byte) {
	select {
	case <-f.exited:
		return
	default:
	}
	f.mu.Lock()
	f.console = append(f.console, p...)
	f.mu.Unlock()
	f.watch.Write(p)
}

// exit stops the machine, as QEMU exiting.
func (f *fakeMachine) exit(events ...string) {
	f.mu.Lock()
	f.events = append(f.events, events...)
	f.mu.Unlock()
	f.stop.Do(func() { close(f.exited) })
}

func (f *fakeMachine) ConsoleBytes() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]byte(nil), f.console...)
}

func (f *fakeMachine) ConsoleLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.console)
}

func (f *fakeMachine) ConsoleReports(ctx context.Context) <-chan console.Report {
	return f.watch.Stream(ctx)
}

func (f *fakeMachine) Command(ctx context.Context, name string, body any, onMsg func(proto.Message), result any) error {
	f.mu.Lock()
	f.commands = append(f.commands, name)
	f.mu.Unlock()
	select {
	case <-f.exited:
		return fmt.Errorf("%s: connection to the agent lost before a result", name)
	default:
	}
	switch name {
	case proto.CmdPing:
		if f.pingErr != nil {
			return f.pingErr
		}
		*result.(*proto.Hello) = f.hello
		return nil
	case proto.CmdStress, proto.CmdExec:
		if onMsg == nil {
			onMsg = func(proto.Message) {}
		}
		return f.workload(ctx, f, onMsg, result)
	case proto.CmdHealth:
		if f.health != nil {
			if onMsg == nil {
				onMsg = func(proto.Message) {}
			}
			return f.health(ctx, f, onMsg, result)
		}
	case proto.CmdPageOwnerBaseline:
		if f.pageOwner != nil {
			snap, err := f.pageOwner()
			if err == nil {
				*result.(*proto.PageOwnerSnapshot) = snap
			}
			return err
		}
	}
	return fmt.Errorf("fake agent: unknown command %q", name)
}

func (f *fakeMachine) Exited() <-chan struct{} { return f.exited }

// Close shuts the guest down in order: the agent says so and reboots it,
// which ends QEMU.
func (f *fakeMachine) Close() error {
	f.write([]byte(proto.ConsoleShuttingDown + "\n"))
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.exit("SHUTDOWN(guest-reset)")
	return nil
}

func (f *fakeMachine) Kill() {
	f.mu.Lock()
	f.killed = true
	f.mu.Unlock()
	f.exit("SHUTDOWN(host-signal)")
}

func (f *fakeMachine) Events() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.events...)
}

func (f *fakeMachine) Stderr() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stderr
}

func (f *fakeMachine) LogError() error { return nil }

// beat sends a stress heartbeat.
func beat(onMsg func(proto.Message), p stress.Progress) {
	onMsg(proto.Message{Type: proto.MsgProgress, Progress: &p})
}

// replay writes log into the console a few lines at a time, each chunk
// followed by a heartbeat whose elapsed time grows by one second of guest
// time (and whose corruption count is corrupt), waiting tick between chunks.
// It stops early, with ctx's error, if ctx ends.
func replay(ctx context.Context, f *fakeMachine, log []byte, linesPerChunk int, tick time.Duration, corrupt uint64, onMsg func(proto.Message)) error {
	lines := bytes.SplitAfter(log, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, sec := 0, 1.0; i < len(lines); i, sec = i+linesPerChunk, sec+1 {
		f.write(bytes.Join(lines[i:min(i+linesPerChunk, len(lines))], nil))
		beat(onMsg, stress.Progress{ElapsedSec: sec, PagesVerified: uint64(100 * sec), Corruptions: corrupt})
		if err := pause(ctx, tick); err != nil {
			return err
		}
	}
	return nil
}

// pause waits d, or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// wedged is a guest that answers nothing more: the command ends only when
// the host gives up on it.
func wedged(ctx context.Context) error {
	<-ctx.Done()
	return errors.New("connection to the agent lost before a result")
}

// splitAtReady cuts a real console log where the workload starts: after
// the agent's "ready" line (the harness connects, pings and starts the
// workload right after it).
func splitAtReady(t *testing.T, log []byte) (boot, work []byte) {
	t.Helper()
	i := bytes.Index(log, []byte(proto.ConsoleReady))
	if i < 0 {
		t.Fatal("no ready line in the log")
	}
	i += bytes.IndexByte(log[i:], '\n') + 1
	return log[:i], log[i:]
}

var tsRe = regexp.MustCompile(`\[\s*(\d+\.\d+)\]`)

// reportLines returns the kernel lines of a corpus log from its first
// report on, with timestamps moved so that the report starts at at seconds.
func reportLines(t *testing.T, name string, at float64) []byte {
	t.Helper()
	log := corpus(t, name)
	reps := console.Parse(log)
	if len(reps) == 0 {
		t.Fatalf("%s: no report", name)
	}
	var out []byte
	shift := 0.0
	for i, l := range bytes.SplitAfter(log[reps[0].Start:], []byte("\n")) {
		m := tsRe.FindSubmatch(l)
		if m == nil {
			continue // not the kernel's
		}
		ts, _ := strconv.ParseFloat(string(m[1]), 64)
		if i == 0 {
			shift = at - ts
		}
		out = append(out, tsRe.ReplaceAll(l, []byte(fmt.Sprintf("[%12.6f]", ts+shift)))...)
	}
	return out
}

// insertBefore puts extra into log before the line that contains marker.
func insertBefore(t *testing.T, log []byte, marker string, extra []byte) []byte {
	t.Helper()
	i := bytes.Index(log, []byte(marker))
	if i < 0 {
		t.Fatalf("no %q in the log", marker)
	}
	i = bytes.LastIndexByte(log[:i], '\n') + 1
	return append(append(append([]byte(nil), log[:i]...), extra...), log[i:]...)
}

// sayings collects what a run says (Spec.Say), and signals the first line
// that contains a given text.
type sayings struct {
	mu      sync.Mutex
	lines   []string
	signals map[string]chan struct{}
	fired   map[string]time.Time
}

func newSayings(signal ...string) *sayings {
	s := &sayings{signals: map[string]chan struct{}{}, fired: map[string]time.Time{}}
	for _, w := range signal {
		s.signals[w] = make(chan struct{})
	}
	return s
}

// on is closed when a line containing text (given to newSayings) is said.
func (s *sayings) on(text string) <-chan struct{} { return s.signals[text] }

func (s *sayings) say(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	for w, ch := range s.signals {
		if _, done := s.fired[w]; !done && strings.Contains(line, w) {
			s.fired[w] = time.Now()
			close(ch)
		}
	}
}

// firedAt is when the line containing text was said.
func (s *sayings) firedAt(text string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fired[text]
}

// said reports whether a line containing text was said.
func (s *sayings) said(text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l, text) {
			return true
		}
	}
	return false
}

func (s *sayings) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}
