// Package stress runs memory workers whose every page read back is verified.
//
// Each worker owns an anonymous mapping outside the Go heap and writes pages
// whose whole content is a function of (worker, page, generation) (see
// FillPage). It tracks exactly what every page must hold, including the
// zeros left by MADV_DONTNEED, and classifies every page it reads back (see
// Classify). Under zswap with a small swap device this races zswap writeback
// against swap-in and swap-slot reuse; any page that comes back wrong is
// counted by class and the first few are kept in full detail.
package stress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Run runs the workers described by cfg (after WithDefaults) until
// cfg.DurationSec has passed, ctx is done, or (with StopOnCorruption) the
// first corruption has been found, and returns what they saw.
//
// A run that ends because of ctx or the duration is a normal run: Run
// returns the report so far and a nil error. Run returns an error, with
// an empty report, for a bad config, a system page size other than 4096, a
// swing file that does not exist or cannot be read, or a failing kernel
// sample before the run; and, with the report so far, if mapping memory or
// MADV_DONTNEED fails (the expected state is then unknown, so the run stops).
// Corruptions are never errors: they are in the report.
//
// progress, if not nil, is called about once a second and once at the end,
// always from the goroutine that called Run.
func Run(ctx context.Context, cfg Config, progress func(Progress)) (Report, error) {
	return run(ctx, cfg, progress, hooks{})
}

func run(ctx context.Context, cfg Config, progress func(Progress), h hooks) (Report, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if ps := os.Getpagesize(); ps != PageSize {
		return Report{}, fmt.Errorf("stress: system page size is %d, only %d is supported", ps, PageSize)
	}

	var sw *swinger
	if cfg.Swing.Enabled() {
		var err error
		if sw, err = newSwinger(cfg.Swing); err != nil {
			return Report{}, err
		}
	}
	var rep Report
	if cfg.DebugfsDir != "" {
		before, err := SampleKernel(cfg.DebugfsDir, cfg.VmstatPath)
		if err != nil {
			return Report{}, err
		}
		rep.KernelBefore = before
	}

	sh := &shared{start: time.Now(), rec: newRecorder(cfg.MaxExamples)}
	stats := make([]workerStats, cfg.Workers)
	pages := cfg.MiBPerWorker << 20 / PageSize
	workers := make([]*worker, 0, cfg.Workers)
	defer func() {
		for _, w := range workers {
			w.close()
		}
	}()
	var runErr error
	for i := range cfg.Workers {
		sweep := cfg.Mode == ModeSweep || cfg.Mode == ModeCycle || (cfg.Mode == ModeMixed && i%2 == 0)
		cycle := 0
		if cfg.Mode == ModeCycle {
			cycle = CycleBatch
		}
		w, err := newWorker(i, sweep, cycle, pages, cfg.DontneedEvery, cfg.Seed, sh, &stats[i], h)
		if err != nil {
			runErr = err
			break
		}
		workers = append(workers, w)
	}

	snapshot := func() Progress {
		var p Progress
		for i := range stats {
			p.PagesVerified += stats[i].verified.Load()
			p.PagesWritten += stats[i].written.Load()
			p.Sweeps += stats[i].sweeps.Load()
		}
		p.Corruptions = sh.rec.total.Load()
		if p.Corruptions > 0 {
			p.ByClass, p.NewExamples = sh.rec.news()
		}
		p.ElapsedSec = time.Since(sh.start).Seconds()
		return p
	}

	var elapsed float64
	swingStarted := false
	if runErr == nil {
		sh.start = time.Now()
		if sw != nil {
			sw.start()
			swingStarted = true
		}
		errc := make(chan error, len(workers))
		var wg sync.WaitGroup
		for _, w := range workers {
			wg.Go(func() { errc <- w.loop() })
		}
		runErr = wait(ctx, cfg, sh, errc, snapshot, progress)
		sh.stop.Store(true)
		wg.Wait()
		elapsed = time.Since(sh.start).Seconds()
		close(errc)
		for err := range errc {
			if runErr == nil && err != nil {
				runErr = err
			}
		}
	}

	if swingStarted {
		rep.SwingWrites, rep.SwingErrors, rep.SwingError = sw.finish()
	}
	if cfg.DebugfsDir != "" {
		after, err := SampleKernel(cfg.DebugfsDir, cfg.VmstatPath)
		rep.KernelAfter = after
		if err != nil {
			rep.KernelError = err.Error()
		}
	}
	for _, w := range workers {
		if err := w.close(); err != nil && runErr == nil {
			runErr = fmt.Errorf("stress: worker %d: munmap: %w", w.id, err)
		}
	}

	final := snapshot()
	final.ElapsedSec = elapsed
	if progress != nil {
		progress(final)
	}
	rep.ElapsedSec = elapsed
	rep.PagesVerified = final.PagesVerified
	rep.PagesWritten = final.PagesWritten
	rep.Sweeps = final.Sweeps
	sh.rec.fill(&rep)
	rep.Madvise = sh.madviseCounts()
	return rep, runErr
}

// wait blocks until the run should stop and returns the first worker error,
// if that is why.
func wait(ctx context.Context, cfg Config, sh *shared, errc <-chan error, snapshot func() Progress, progress func(Progress)) error {
	var deadline <-chan time.Time
	if cfg.DurationSec > 0 {
		t := time.NewTimer(time.Duration(cfg.DurationSec * float64(time.Second)))
		defer t.Stop()
		deadline = t.C
	}
	var corrupt <-chan struct{}
	if cfg.StopOnCorruption {
		corrupt = sh.rec.first
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-deadline:
			return nil
		case <-corrupt:
			return nil
		case err := <-errc:
			if err == nil {
				// Workers only return nil once stopped.
				err = errors.New("stress: worker stopped unexpectedly")
			}
			return err
		case <-tick.C:
			if progress != nil {
				progress(snapshot())
			}
		}
	}
}
