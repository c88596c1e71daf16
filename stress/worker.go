package stress

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// madvPageout is MADV_PAGEOUT (Linux 5.4+).
const madvPageout = 21

// workerStats are one worker's counters, on their own cache lines.
type workerStats struct {
	verified atomic.Uint64
	written  atomic.Uint64
	sweeps   atomic.Uint64
	_        [40]byte
}

// shared is the state all workers of a run share.
type shared struct {
	start time.Time
	stop  atomic.Bool
	rec   *recorder

	dontneed           atomic.Uint64
	pageout            atomic.Uint64
	pageoutUnsupported atomic.Uint64
	pageoutError       atomic.Uint64
}

func (s *shared) madviseCounts() map[string]uint64 {
	return map[string]uint64{
		"dontneed":            s.dontneed.Load(),
		"pageout":             s.pageout.Load(),
		"pageout_unsupported": s.pageoutUnsupported.Load(),
		"pageout_error":       s.pageoutError.Load(),
	}
}

// hooks let internal tests act on a worker's memory between passes.
type hooks struct {
	// afterPass is called by the worker goroutine after each complete
	// pass (a sweep, or one random operation), after any MADV_DONTNEED
	// that ends it. mem is the worker's whole region.
	afterPass func(worker, pass int, mem []byte)
}

// worker owns one anonymous mapping and the exact expected state of every
// page in it.
type worker struct {
	id    int
	sweep bool
	mem   []byte
	// gens[p] is the generation page p must hold; 0 = all zeros.
	gens []uint64
	// gen is the last generation used. Generations come from this
	// per-worker counter only, so a page never sees the same generation
	// twice and its generations only grow.
	gen           uint64
	dontneedEvery int
	// cycle > 0 (ModeCycle): a sweep pages out every cycle pages right
	// after writing them, and never frees the region.
	cycle int
	rng   *rand.Rand
	st    *workerStats
	sh    *shared
	hooks hooks
}

func newWorker(id int, sweep bool, cycle, pages, dontneedEvery int, seed int64, sh *shared, st *workerStats, h hooks) (*worker, error) {
	mem, err := unix.Mmap(-1, 0, pages*PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("stress: worker %d: mmap %d MiB: %w", id, pages*PageSize>>20, err)
	}
	// Huge pages would take the region out of zswap's reach (6.1 stores
	// only 4 KiB pages); kernels without THP return EINVAL, ignore it.
	_ = unix.Madvise(mem, unix.MADV_NOHUGEPAGE)
	return &worker{
		id:            id,
		sweep:         sweep,
		cycle:         cycle,
		mem:           mem,
		gens:          make([]uint64, pages),
		dontneedEvery: dontneedEvery,
		rng:           rand.New(rand.NewPCG(uint64(seed), uint64(id)+0x9e3779b97f4a7c15)),
		st:            st,
		sh:            sh,
		hooks:         h,
	}, nil
}

func (w *worker) close() error {
	if w.mem == nil {
		return nil
	}
	err := unix.Munmap(w.mem)
	w.mem = nil
	return err
}

func (w *worker) page(p int) []byte {
	return w.mem[p*PageSize : (p+1)*PageSize : (p+1)*PageSize]
}

func (w *worker) nextGen() uint64 {
	w.gen++
	return w.gen
}

// verify checks page p against its expected state and records a
// corruption. It reports whether the page was ok.
func (w *worker) verify(p int) bool {
	c, d := Classify(w.page(p), w.id, p, w.gens[p])
	w.st.verified.Add(1)
	if c == ClassOK {
		return true
	}
	w.sh.rec.add(Example{
		Class:     c,
		Worker:    w.id,
		Page:      p,
		WantGen:   w.gens[p],
		GotWorker: d.GotWorker,
		GotPage:   d.GotPage,
		GotGen:    d.GotGen,
		HeaderOK:  d.HeaderOK,
		Offset:    d.Offset,
		AtSec:     time.Since(w.sh.start).Seconds(),
	})
	return false
}

func (w *worker) write(p int, gen uint64) {
	FillPage(w.page(p), w.id, p, gen)
	w.gens[p] = gen
	w.st.written.Add(1)
}

// dontneed frees pages [a, b); afterwards they must read as zeros. A failure
// leaves the expected state unknown, so it ends the run with an error.
func (w *worker) dontneed(a, b int) error {
	if err := unix.Madvise(w.mem[a*PageSize:b*PageSize], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("stress: worker %d: madvise(MADV_DONTNEED) of pages [%d,%d): %w", w.id, a, b, err)
	}
	clear(w.gens[a:b])
	w.sh.dontneed.Add(1)
	return nil
}

// pageout asks the kernel to swap pages [a, b) out now. Contents are
// unchanged whatever happens.
func (w *worker) pageout(a, b int) {
	err := unix.Madvise(w.mem[a*PageSize:b*PageSize], madvPageout)
	switch {
	case err == nil:
		w.sh.pageout.Add(1)
	case errors.Is(err, unix.EINVAL):
		w.sh.pageoutUnsupported.Add(1)
	default:
		w.sh.pageoutError.Add(1)
	}
}

// loop runs passes until the run stops.
func (w *worker) loop() error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for pass := 1; !w.sh.stop.Load(); pass++ {
		var err error
		if w.sweep {
			err = w.sweepPass()
		} else {
			err = w.randomOp()
		}
		if err != nil {
			return err
		}
		if w.hooks.afterPass != nil && !w.sh.stop.Load() {
			w.hooks.afterPass(w.id, pass, w.mem)
		}
	}
	return nil
}

// sweepPass verifies each page then writes it with a new generation, and
// after every dontneedEvery-th complete sweep frees the whole region.
func (w *worker) sweepPass() error {
	gen := w.nextGen()
	for p := range w.gens {
		if w.sh.stop.Load() {
			return nil
		}
		w.verify(p)
		w.write(p, gen)
		if w.cycle > 0 && ((p+1)%w.cycle == 0 || p == len(w.gens)-1) {
			w.pageout(p-p%w.cycle, p+1)
		}
	}
	n := w.st.sweeps.Add(1)
	if w.cycle == 0 && n%uint64(w.dontneedEvery) == 0 {
		return w.dontneed(0, len(w.gens))
	}
	return nil
}

// randomRange picks a random range of 1 to max(1, pages/8) pages.
func (w *worker) randomRange() (int, int) {
	n := len(w.gens)
	a := w.rng.IntN(n)
	l := 1 + w.rng.IntN(min(max(1, n/8), n-a))
	return a, a + l
}

// randomOp does one random operation on a random range: verify (30%),
// verify and rewrite with a new generation (40%), MADV_PAGEOUT (20%),
// MADV_DONTNEED (10%).
func (w *worker) randomOp() error {
	a, b := w.randomRange()
	switch r := w.rng.IntN(10); {
	case r < 3:
		for p := a; p < b && !w.sh.stop.Load(); p++ {
			if !w.verify(p) {
				// Repair so that one corruption is reported once.
				w.write(p, w.nextGen())
			}
		}
	case r < 7:
		gen := w.nextGen()
		for p := a; p < b && !w.sh.stop.Load(); p++ {
			w.verify(p)
			w.write(p, gen)
		}
	case r < 9:
		w.pageout(a, b)
	default:
		return w.dontneed(a, b)
	}
	return nil
}
