package console

import (
	"bytes"
	"context"
	"sync"
)

const (
	// watcherKeep is how many recent lines the Watcher keeps: enough to
	// look back for a "cut here" line.
	watcherKeep = 2 * lookbackLines
	// maxLine bounds a line without a newline (binary noise on the serial
	// port): past it the bytes are taken as a line of their own.
	maxLine = 64 << 10
)

// Watcher watches a console log as it is written and signals every report
// header as it arrives, so that a VM runner can react without waiting for
// the run to end. It is an io.Writer meant to sit behind an io.MultiWriter
// on QEMU's serial output; it keeps only a few lines of the log, and the
// reports it found.
//
// It keeps watching after a report: a report printed during boot must not
// hide a crash that comes later. Reports lists them all, Stream delivers
// them one by one, and First, Found and Report give the first one.
//
// The Reports it gives are provisional: each is built from its header alone
// (Start and Kind are final; End, Text and often Function are not, and the
// title may be less specific, e.g. "kernel BUG at mm/zswap.c" until the RIP
// line arrives). Keep reading the console for a few seconds, then call
// Parse on the whole log for the final reports; Parse's reports of the
// accepted kinds start at the same offsets, in the same order.
//
// Write must be called from one goroutine at a time; the other methods
// may be called from any goroutine. The zero Watcher accepts every kind.
type Watcher struct {
	once    sync.Once
	mu      sync.Mutex
	kinds   map[Kind]bool // nil: all
	p       parser
	pending []byte // an unterminated line
	off     int    // offset in the stream of pending[0]
	reports []Report
	changed chan struct{} // closed, and replaced, when a report is added
	ch      chan Report   // the first report, once
	found   chan struct{} // closed at the first report
}

// NewWatcher returns a Watcher that signals the reports of the given kinds,
// or of any kind if none is given. An OOM report's panic never counts as a
// crash: NewWatcher(Crash, Hang) ignores an OOM that ends the machine.
func NewWatcher(kinds ...Kind) *Watcher {
	w := &Watcher{}
	if len(kinds) > 0 {
		w.kinds = make(map[Kind]bool)
		for _, k := range kinds {
			w.kinds[k] = true
		}
	}
	return w
}

func (w *Watcher) init() {
	w.once.Do(func() {
		w.ch = make(chan Report, 1)
		w.found = make(chan struct{})
		w.changed = make(chan struct{})
	})
}

// Write scans the complete lines in p; a line split across calls is scanned
// once its newline arrives. It never fails.
func (w *Watcher) Write(p []byte) (int, error) {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			if len(w.pending) >= maxLine {
				w.feed(w.pending)
				w.pending = w.pending[:0]
			}
			break
		}
		raw := p[:i+1]
		if len(w.pending) > 0 {
			w.pending = append(w.pending, raw...)
			raw = w.pending
		}
		w.feed(raw)
		w.pending = w.pending[:0]
		p = p[i+1:]
	}
	return n, nil
}

// Flush scans a last line that has no newline, as Parse would.
func (w *Watcher) Flush() {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 {
		w.feed(w.pending)
		w.pending = w.pending[:0]
	}
}

// feed scans one line; w.mu is held.
func (w *Watcher) feed(raw []byte) {
	l := makeLine(raw, w.off)
	w.off += len(raw)
	if d := w.p.add(l); d != nil && (w.kinds == nil || w.kinds[d.kind]) {
		// The parser goes on with its state: the lines that continue this
		// report (the "invalid opcode" after "kernel BUG at", the panic
		// after an oops) must not open reports of their own.
		r := w.p.report(d)
		w.reports = append(w.reports, r)
		if len(w.reports) == 1 {
			w.ch <- r // buffered, sent once: never blocks
			close(w.found)
		}
		close(w.changed)
		w.changed = make(chan struct{})
	}
	// Keep the last few lines and the last report, which is all the state
	// machine looks at (a report is built as soon as its header is seen).
	if len(w.p.lines) >= 2*watcherKeep {
		drop := len(w.p.lines) - watcherKeep
		w.p.lines = append(w.p.lines[:0], w.p.lines[drop:]...)
		w.p.base += drop
	}
	if len(w.p.drafts) > 1 {
		w.p.drafts = append(w.p.drafts[:0], w.p.drafts[len(w.p.drafts)-1])
	}
}

// First returns a channel that receives the first report once, as soon as
// its header line is complete. It is never closed; only one goroutine
// should receive from it (others can wait on Found, or use Stream).
func (w *Watcher) First() <-chan Report {
	w.init()
	return w.ch
}

// Found returns a channel that is closed when the first report is seen.
func (w *Watcher) Found() <-chan struct{} {
	w.init()
	return w.found
}

// Report returns the first report, if one has been seen.
func (w *Watcher) Report() (Report, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.reports) == 0 {
		return Report{}, false
	}
	return w.reports[0], true
}

// Reports returns every report seen so far, in the order of the log.
func (w *Watcher) Reports() []Report {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Report(nil), w.reports...)
}

// since returns the reports after the first n and a channel closed when
// another one arrives.
func (w *Watcher) since(n int) ([]Report, <-chan struct{}) {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Report(nil), w.reports[n:]...), w.changed
}

// Stream returns a channel that receives every report in the order of the
// log, from the first one on (reports seen before Stream was called
// included), each as soon as its header line is complete. Each caller gets
// its own channel. It is closed when ctx ends; until then a report waits
// for its receiver (the Watcher keeps them all, so nothing is lost and
// Write never blocks).
func (w *Watcher) Stream(ctx context.Context) <-chan Report {
	out := make(chan Report)
	go func() {
		defer close(out)
		for n := 0; ; {
			reps, more := w.since(n)
			for _, r := range reps {
				select {
				case out <- r:
				case <-ctx.Done():
					return
				}
			}
			n += len(reps)
			select {
			case <-more:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// Written returns how many bytes have been written so far.
func (w *Watcher) Written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off + len(w.pending)
}
