package stress

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"time"
)

// swinger is the pool controller: it writes Low and High alternately to a
// file and restores the file's original content when stopped.
type swinger struct {
	cfg      Swing
	original []byte

	stop chan struct{}
	done chan struct{}

	mu       sync.Mutex
	writes   uint64
	errs     uint64
	firstErr string
}

// newSwinger checks that the file exists and reads its original content.
func newSwinger(cfg Swing) (*swinger, error) {
	orig, err := os.ReadFile(cfg.Path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("stress: swing file %s does not exist", cfg.Path)
		}
		return nil, fmt.Errorf("stress: reading swing file %s: %w", cfg.Path, err)
	}
	return &swinger{
		cfg:      cfg,
		original: orig,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}, nil
}

func (s *swinger) write(b []byte) {
	f, err := os.OpenFile(s.cfg.Path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.Write(b)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	if err != nil {
		s.errs++
		if s.firstErr == "" {
			s.firstErr = err.Error()
		}
	}
}

// start runs the controller in its own goroutine: Low at once, then flipping
// every PeriodMs.
func (s *swinger) start() {
	go func() {
		defer close(s.done)
		vals := [2][]byte{
			[]byte(strconv.Itoa(s.cfg.Low) + "\n"),
			[]byte(strconv.Itoa(s.cfg.High) + "\n"),
		}
		t := time.NewTicker(time.Duration(s.cfg.PeriodMs) * time.Millisecond)
		defer t.Stop()
		for i := 0; ; i ^= 1 {
			s.write(vals[i])
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// finish stops the controller, restores the original content and returns
// the counts.
func (s *swinger) finish() (writes, errs uint64, firstErr string) {
	close(s.stop)
	<-s.done
	s.write(s.original)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes, s.errs, s.firstErr
}

// SwingStats counts a pool controller's writes (the final restore
// included) and failed writes; FirstError is the first failure's message.
type SwingStats struct {
	Writes     uint64 `json:"writes"`
	Errors     uint64 `json:"errors"`
	FirstError string `json:"first_error,omitempty"`
}

// SwingPool runs the pool controller on its own, for workloads other than
// Run's workers (Run has its own, configured by Config.Swing): it writes
// s.Low and s.High alternately to s.Path, flipping every s.PeriodMs, until
// ctx is done, then restores the file's original content and returns. Zero
// Path, Low and High take the Config defaults; PeriodMs <= 0 returns at once.
// Write errors are counted, not fatal; a file that does not exist or cannot
// be read is an error (nothing is written then).
func SwingPool(ctx context.Context, s Swing) (SwingStats, error) {
	s = Config{Swing: s}.WithDefaults().Swing
	if !s.Enabled() {
		return SwingStats{}, nil
	}
	sw, err := newSwinger(s)
	if err != nil {
		return SwingStats{}, err
	}
	sw.start()
	<-ctx.Done()
	w, e, first := sw.finish()
	return SwingStats{Writes: w, Errors: e, FirstError: first}, nil
}
