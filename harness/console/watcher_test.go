package console

import (
	"fmt"
	"io"
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
