package console

import (
	"context"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

func pending(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case r := <-w.First():
		t.Fatalf("report too early: %+v", r)
	case <-w.Found():
		t.Fatal("Found closed too early")
	default:
	}
	if _, ok := w.Report(); ok {
		t.Fatal("Report() too early")
	}
}

func receive(t *testing.T, w *Watcher) Report {
	t.Helper()
	select {
	case r := <-w.First():
		select {
		case <-w.Found():
		default:
			t.Fatal("First delivered but Found not closed")
		}
		r2, ok := w.Report()
		if !ok || r2 != r {
			t.Fatalf("Report() = %+v, %v; First gave %+v", r2, ok, r)
		}
		return r
	case <-time.After(time.Second):
		t.Fatal("no report")
	}
	panic("unreachable")
}

func TestWatcherSplitHeader(t *testing.T) {
	w := NewWatcher()
	written := 0
	write := func(s string) {
		n, err := io.WriteString(w, s)
		if n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		written += n
	}
	pre := "[    2.0] Run /init as init process\r\nzr-agent: started\r\n"
	write(pre)
	pending(t, w)
	// The first half alone would already match "BUG: ..." with a wrong title.
	write("[   37.120443][   T58] BUG: kernel NULL poin")
	pending(t, w)
	write("ter dereference, address: 0000000000000008\r")
	pending(t, w)
	write("\n[   37.121210][   T58] #PF: supervisor write access in kernel mode\r\n")
	r := receive(t, w)
	if r.Kind != Crash || r.Title != "BUG: kernel NULL pointer dereference" || r.Start != len(pre) {
		t.Errorf("got %+v", r)
	}
	if want := "BUG: kernel NULL pointer dereference, address: 0000000000000008\n"; r.Text != want {
		t.Errorf("Text = %q, want %q", r.Text, want)
	}
	// Only once.
	write("[   38.0] BUG: kernel NULL pointer dereference, address: 0000000000000010\n")
	select {
	case r := <-w.First():
		t.Errorf("second report delivered: %+v", r)
	default:
	}
	if got := w.Written(); got != written {
		t.Errorf("Written() = %d, want %d", got, written)
	}
}

func TestWatcherByteAtATime(t *testing.T) {
	log := "[    1.0] ok\n[   25.891102] ------------[ cut here ]------------\n" +
		"[   25.891734] kernel BUG at mm/zswap.c:1005!\n[   25.892381] invalid opcode: 0000 [#1] PREEMPT SMP NOPTI\n"
	var w Watcher // the zero value works
	for i := 0; i < len(log); i++ {
		w.Write([]byte{log[i]})
		if i < strings.Index(log, "!\n")+1 {
			pending(t, &w)
		}
	}
	r := receive(t, &w)
	// Provisional: no RIP yet, so the file stands in for the function.
	if r.Title != "kernel BUG at mm/zswap.c" || r.Start != strings.Index(log, "[   25.891102]") {
		t.Errorf("got %+v", r)
	}
	if p := Parse([]byte(log)); len(p) != 1 || p[0].Start != r.Start {
		t.Errorf("Parse = %+v", p)
	}
}

func TestWatcherKinds(t *testing.T) {
	oom := "[   10.0] stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"[   10.1] Out of memory: Killed process 1 (init) total-vm:1kB\n" +
		"[   10.2] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000009\n"
	w := NewWatcher(Crash, Hang)
	io.WriteString(w, oom)
	pending(t, w)
	io.WriteString(w, "[   11.0] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [stress:244]\n")
	if r := receive(t, w); r.Kind != Hang || r.Title != "BUG: soft lockup" || r.Start != len(oom) {
		t.Errorf("got %+v", r)
	}

	all := NewWatcher()
	io.WriteString(all, oom)
	if r := receive(t, all); r.Kind != OOM || r.Title != "out of memory" || r.Start != 0 {
		t.Errorf("got %+v", r)
	}
}

func TestWatcherFlush(t *testing.T) {
	w := NewWatcher()
	io.WriteString(w, "[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)")
	pending(t, w)
	w.Flush()
	if r := receive(t, w); r.Title != "kernel panic: VFS: Unable to mount root fs on unknown-block(0,0)" {
		t.Errorf("got %+v", r)
	}
}

func TestWatcherLongClean(t *testing.T) {
	w := NewWatcher()
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(w, "[%5d.%06d] zswap: line %d\n", i/100, i%100, i)
	}
	pending(t, w)
	if n := len(w.p.lines); n > 2*watcherKeep {
		t.Errorf("watcher keeps %d lines", n)
	}
	io.WriteString(w, strings.Repeat("x", maxLine+10))
	if len(w.pending) >= maxLine {
		t.Errorf("pending grew to %d", len(w.pending))
	}
	fmt.Fprintf(w, "\n[  200.000000] INFO: task stress:243 blocked for more than 122 seconds.\n")
	if r := receive(t, w); r.Kind != Hang {
		t.Errorf("got %+v", r)
	}
}

// One writer, several readers (run with -race).
func TestWatcherConcurrent(t *testing.T) {
	w := NewWatcher()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				w.Report()
				w.Written()
				select {
				case <-w.Found():
					if _, ok := w.Report(); !ok {
						t.Error("Found closed but no Report")
					}
					return
				default:
				}
			}
		}()
	}
	for i := 0; i < 200; i++ {
		fmt.Fprintf(w, "[%5d.000000] line %d\n", i, i)
	}
	io.WriteString(w, "[  300.000000] general protection fault, probably for non-canonical address 0xdffffc0000000003: 0000 [#1] SMP\n")
	wg.Wait()
	if r := <-w.First(); r.Title != "general protection fault" {
		t.Errorf("got %+v", r)
	}
}

// A report printed during boot must not blind the Watcher: the crash that
// comes later is signalled too, in order, and the first stays the first.
func TestWatcherKeepsWatchingAfterAReport(t *testing.T) {
	boot := "[    0.500000] smp: Brought up 1 node, 1 CPU\n" +
		"[    0.900000] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [swapper/0:1]\n" +
		"[    0.900100] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.192-zswaprace #1\n" +
		"zh-agent: ready on /dev/vport1p1\n"
	bug := "[   52.043614] ------------[ cut here ]------------\n" +
		"[   52.043812] kernel BUG at mm/zswap.c:1031!\n" +
		"[   52.044195] invalid opcode: 0000 [#1] SMP\n" +
		"[   52.044928] RIP: 0010:zswap_writeback_entry+0x2d8/0x3bc\n" +
		"[   52.048721] Kernel panic - not syncing: Fatal exception\n"
	w := NewWatcher(Crash, Hang, OOM)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream := w.Stream(ctx)
	io.WriteString(w, boot)
	first := <-stream
	if first.Kind != Hang || first.Title != "BUG: soft lockup" || first.Start != strings.Index(boot, "[    0.900000]") {
		t.Fatalf("first report %+v", first)
	}
	io.WriteString(w, "[   10.000000] clocksource: Switched to clocksource tsc\n")
	select {
	case r := <-stream:
		t.Fatalf("a clean line gave a report: %+v", r)
	default:
	}
	io.WriteString(w, bug)
	second := <-stream
	// One report: the invalid opcode and the panic belong to the BUG.
	if second.Kind != Crash || second.Title != "kernel BUG at mm/zswap.c" || second.Start != len(boot)+len("[   10.000000] clocksource: Switched to clocksource tsc\n") {
		t.Errorf("second report %+v", second)
	}
	if got := w.Reports(); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("Reports() = %+v", got)
	}
	if r, ok := w.Report(); !ok || r != first {
		t.Errorf("Report() = %+v, %v; want the first", r, ok)
	}
	if r := <-w.First(); r != first {
		t.Errorf("First() gave %+v", r)
	}
	select {
	case r := <-w.First():
		t.Errorf("First() gave a second report: %+v", r)
	default:
	}
	// A late subscriber gets everything from the start.
	late := w.Stream(ctx)
	if a, b := <-late, <-late; a != first || b != second {
		t.Errorf("late Stream gave %+v, %+v", a, b)
	}
	cancel()
	for range stream { // closed once ctx ends
	}
	for range late {
	}
}

// However the log is cut into writes, the Watcher finds every report Parse
// finds, at the same offset and of the same kind, in the same order.
func TestWatcherFindsWhatParseFinds(t *testing.T) {
	rnd := rand.New(rand.NewSource(2))
	for _, path := range corpusFiles(t) {
		f, err := readCorpus(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, kinds := range [][]Kind{nil, {Crash, Hang, OOM}} {
			var want []string
			for _, r := range Parse(f.body) {
				if kinds == nil || r.Kind != Warning {
					want = append(want, fmt.Sprintf("%s@%d", r.Kind, r.Start))
				}
			}
			w := NewWatcher(kinds...)
			for p := f.body; len(p) > 0; {
				n := min(1+rnd.Intn(300), len(p))
				w.Write(p[:n])
				p = p[n:]
			}
			w.Flush()
			var got []string
			for _, r := range w.Reports() {
				got = append(got, fmt.Sprintf("%s@%d", r.Kind, r.Start))
			}
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s %v: watcher found %v, Parse %v", path, kinds, got, want)
			}
		}
	}
}

// Stream's goroutine neither blocks Write nor outlives its context.
func TestWatcherStreamDoesNotBlockWrite(t *testing.T) {
	w := NewWatcher()
	ctx, cancel := context.WithCancel(context.Background())
	stream := w.Stream(ctx)
	for i := 0; i < 50; i++ { // nobody reads the stream meanwhile
		fmt.Fprintf(w, "[%5d.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008\n", i)
	}
	if n := len(w.Reports()); n != 50 {
		t.Errorf("%d reports, want 50", n)
	}
	for i := 0; i < 50; i++ {
		if r := <-stream; r.Kind != Crash {
			t.Fatalf("report %d: %+v", i, r)
		}
	}
	cancel()
	if _, ok := <-stream; ok {
		t.Error("stream delivered after its context ended")
	}
}
