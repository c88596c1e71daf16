package console

import (
	"bytes"
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

// Watcher watches a console log as it is written and signals the first
// report header, so that a VM runner can react without waiting for the run
// to end. It is an io.Writer meant to sit behind an io.MultiWriter on
// QEMU's serial output; it keeps only a few lines, not the log.
//
// The Report it gives is provisional: it is built from the header alone
// (Start is final; End, Text and often Function are not, and the title may
// be less specific, e.g. "kernel BUG at mm/zswap.c" until the RIP line
// arrives). Keep reading the console for a few seconds, then call Parse on
// the whole log for the final reports; Parse's first report of an accepted
// kind starts at the same offset.
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
	first   *Report
	ch      chan Report
	found   chan struct{}
}

// NewWatcher returns a Watcher that signals the first report of one of the
// given kinds, or of any kind if none is given. An OOM report's panic never
// counts as a crash: NewWatcher(Crash, Hang) ignores an OOM that ends the
// machine.
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
	})
}

// Write scans the complete lines in p; a line split across calls is scanned
// once its newline arrives. It never fails.
func (w *Watcher) Write(p []byte) (int, error) {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 && w.first == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.pending = append(w.pending, p...)
			p = nil
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
	w.off += len(p) // bytes after the first report are not scanned
	return n, nil
}

// Flush scans a last line that has no newline, as Parse would.
func (w *Watcher) Flush() {
	w.init()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.pending) > 0 && w.first == nil {
		w.feed(w.pending)
		w.pending = w.pending[:0]
	}
}

// feed scans one line; w.mu is held.
func (w *Watcher) feed(raw []byte) {
	l := makeLine(raw, w.off)
	w.off += len(raw)
	if d := w.p.add(l); d != nil && (w.kinds == nil || w.kinds[d.kind]) {
		r := w.p.report(d)
		w.first = &r
		w.ch <- r // buffered, sent once: never blocks
		close(w.found)
		w.p = parser{}
		return
	}
	// Keep the last few lines and the last report, which is all the state
	// machine looks at.
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
// should receive from it (others can wait on Found).
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
	if w.first == nil {
		return Report{}, false
	}
	return *w.first, true
}

// Written returns how many bytes have been written so far.
func (w *Watcher) Written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off + len(w.pending)
}
