package stress

import (
	"sync"
	"sync/atomic"
)

// Class is the verdict on one page read back.
type Class string

// Classes. See Classify.
const (
	ClassOK      Class = "ok"
	ClassStale   Class = "stale"
	ClassForeign Class = "foreign"
	ClassZeroed  Class = "zeroed"
	ClassDamaged Class = "damaged"
)

// CorruptionClasses are the classes that count as corruption, in report order.
var CorruptionClasses = []Class{ClassStale, ClassForeign, ClassZeroed, ClassDamaged}

// Example is one corrupt page, in full detail.
type Example struct {
	Class     Class  `json:"class"`
	Worker    int    `json:"worker"`
	Page      int    `json:"page"`
	WantGen   uint64 `json:"want_gen"` // 0 = zeros expected
	GotWorker int    `json:"got_worker"`
	GotPage   int    `json:"got_page"`
	GotGen    uint64 `json:"got_gen"`
	// HeaderOK says the header read back was valid, i.e. GotWorker,
	// GotPage and GotGen name a real page; otherwise they are the raw
	// decoded header bytes.
	HeaderOK bool `json:"header_ok"`
	// Offset is the first differing byte within the page (see Detail).
	Offset int     `json:"offset"`
	AtSec  float64 `json:"at_sec"` // time since the run started
}

// Progress is a snapshot of a running Run.
type Progress struct {
	ElapsedSec    float64 `json:"elapsed_sec"`
	PagesVerified uint64  `json:"pages_verified"`
	PagesWritten  uint64  `json:"pages_written"`
	Corruptions   uint64  `json:"corruptions"`
	Sweeps        uint64  `json:"sweeps"` // full sweeps completed by sweep-mode workers
	// ByClass and NewExamples are set once there are corruptions, so that a
	// run whose kernel dies before the final report still has the detail.
	// NewExamples holds the examples recorded since the previous Progress.
	ByClass     map[Class]uint64 `json:"by_class,omitempty"`
	NewExamples []Example        `json:"new_examples,omitempty"`
}

// Report is the result of a Run.
type Report struct {
	ElapsedSec    float64 `json:"elapsed_sec"`
	PagesVerified uint64  `json:"pages_verified"`
	PagesWritten  uint64  `json:"pages_written"`
	Sweeps        uint64  `json:"sweeps"`
	// Corruptions counts corrupt pages by class; it always has the four
	// non-ok classes as keys (zero counts included) and never "ok".
	Corruptions map[Class]uint64 `json:"corruptions"`
	// Examples holds the first MaxExamples examples of each class, in the
	// order they were found.
	Examples           []Example `json:"examples"`
	FirstCorruptionSec float64   `json:"first_corruption_sec"` // -1 if none
	// Madvise counts successful madvise calls: "dontneed", "pageout", and
	// the failed MADV_PAGEOUT calls: "pageout_unsupported" (EINVAL, kernel
	// without MADV_PAGEOUT), "pageout_error" (any other error).
	Madvise map[string]uint64 `json:"madvise"`
	// SwingWrites and SwingErrors count the pool controller's writes
	// (the final restore included) and failed writes; SwingError is the
	// first failure's message.
	SwingWrites uint64 `json:"swing_writes"`
	SwingErrors uint64 `json:"swing_errors"`
	SwingError  string `json:"swing_error,omitempty"`
	// KernelBefore and KernelAfter are SampleKernel results; nil when
	// sampling is off. KernelError is set when the sample after the run
	// failed (a failing sample before the run makes Run fail instead).
	KernelBefore map[string]int64 `json:"kernel_before,omitempty"`
	KernelAfter  map[string]int64 `json:"kernel_after,omitempty"`
	KernelError  string           `json:"kernel_error,omitempty"`
}

// TotalCorruptions is the number of corrupt pages of every class.
func (r Report) TotalCorruptions() uint64 {
	var n uint64
	for c, v := range r.Corruptions {
		if c != ClassOK {
			n += v
		}
	}
	return n
}

// recorder collects corruptions from all workers.
type recorder struct {
	max   int
	total atomic.Uint64
	first chan struct{} // closed at the first corruption

	mu        sync.Mutex
	counts    map[Class]uint64
	perClass  map[Class]int
	examples  []Example
	firstSec  float64
	firstSeen bool
	sent      int // examples already handed out by news
}

func newRecorder(maxExamples int) *recorder {
	return &recorder{
		max:      maxExamples,
		first:    make(chan struct{}),
		counts:   make(map[Class]uint64),
		perClass: make(map[Class]int),
		firstSec: -1,
	}
}

func (r *recorder) add(e Example) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counts[e.Class]++
	if r.perClass[e.Class] < r.max {
		r.perClass[e.Class]++
		r.examples = append(r.examples, e)
	}
	r.total.Add(1)
	if !r.firstSeen {
		r.firstSeen = true
		r.firstSec = e.AtSec
		close(r.first)
	}
}

// news returns the counts by class and the examples not yet returned by an
// earlier call. Only the progress goroutine calls it.
func (r *recorder) news() (map[Class]uint64, []Example) {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := make(map[Class]uint64, len(r.counts))
	for c, n := range r.counts {
		counts[c] = n
	}
	fresh := append([]Example(nil), r.examples[r.sent:]...)
	r.sent = len(r.examples)
	return counts, fresh
}

// fill copies the recorder's results into rep.
func (r *recorder) fill(rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Corruptions = make(map[Class]uint64, len(CorruptionClasses))
	for _, c := range CorruptionClasses {
		rep.Corruptions[c] = r.counts[c]
	}
	rep.Examples = append(make([]Example, 0, len(r.examples)), r.examples...)
	rep.FirstCorruptionSec = r.firstSec
}
