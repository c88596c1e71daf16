package stress

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func noCorruption(t *testing.T, rep Report) {
	t.Helper()
	if n := rep.TotalCorruptions(); n != 0 {
		t.Errorf("%d corruptions on the host: %v, examples %+v", n, rep.Corruptions, rep.Examples)
	}
	if rep.FirstCorruptionSec != -1 {
		t.Errorf("FirstCorruptionSec = %v, want -1", rep.FirstCorruptionSec)
	}
}

// TestRunModes runs every mode on the host, where nothing may go wrong.
func TestRunModes(t *testing.T) {
	for _, mode := range []string{ModeSweep, ModeRandom, ModeMixed, ModeCycle} {
		t.Run(mode, func(t *testing.T) {
			var calls []Progress
			rep, err := Run(context.Background(), Config{
				Workers: 2, MiBPerWorker: 8, Mode: mode, DurationSec: 1.2, Seed: 42,
			}, func(p Progress) { calls = append(calls, p) })
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			noCorruption(t, rep)
			t.Logf("%s: %.2fs, %d verified, %d written, %d sweeps, madvise %v",
				mode, rep.ElapsedSec, rep.PagesVerified, rep.PagesWritten, rep.Sweeps, rep.Madvise)
			if rep.PagesVerified == 0 || rep.PagesWritten == 0 {
				t.Errorf("verified %d, written %d pages; want both > 0", rep.PagesVerified, rep.PagesWritten)
			}
			if rep.ElapsedSec < 1.2 || rep.ElapsedSec > 5 {
				t.Errorf("ElapsedSec = %v, want about 1.2", rep.ElapsedSec)
			}
			// Cycle mode never frees its region: it keeps every page
			// going round swap.
			if (rep.Madvise["dontneed"] == 0) != (mode == ModeCycle) {
				t.Errorf("MADV_DONTNEED in mode %s: %v", mode, rep.Madvise)
			}
			if mode == ModeCycle {
				// One MADV_PAGEOUT per CycleBatch pages written, less
				// the batch each of the 2 workers may have been
				// writing when the time ran out.
				const workers = 2
				if po := rep.Madvise["pageout"] + rep.Madvise["pageout_unsupported"]; po+workers < rep.PagesWritten/CycleBatch {
					t.Errorf("%d MADV_PAGEOUTs for %d pages written, want one per %d", po, rep.PagesWritten, CycleBatch)
				}
			}
			if mode != ModeSweep && rep.Madvise["pageout"]+rep.Madvise["pageout_unsupported"] == 0 {
				t.Errorf("no MADV_PAGEOUT: %v", rep.Madvise)
			}
			if mode != ModeRandom && rep.Sweeps == 0 {
				t.Error("no sweep completed")
			}
			if diff := cmp.Diff(map[Class]uint64{ClassStale: 0, ClassForeign: 0, ClassZeroed: 0, ClassDamaged: 0}, rep.Corruptions); diff != "" {
				t.Errorf("Corruptions (-want +got):\n%s", diff)
			}
			// One tick at ~1 s, one final call.
			if len(calls) < 2 || len(calls) > 3 {
				t.Errorf("progress called %d times, want 2: %+v", len(calls), calls)
			} else {
				last := calls[len(calls)-1]
				want := Progress{ElapsedSec: rep.ElapsedSec, PagesVerified: rep.PagesVerified,
					PagesWritten: rep.PagesWritten, Sweeps: rep.Sweeps}
				if diff := cmp.Diff(want, last); diff != "" {
					t.Errorf("final progress (-want +got):\n%s", diff)
				}
				if calls[0].PagesVerified == 0 || calls[0].PagesVerified > last.PagesVerified {
					t.Errorf("first progress %+v, last %+v", calls[0], last)
				}
			}
		})
	}
}

// TestRandomExactTracking drives random-mode workers op by op over small
// regions, where ranges hit the region's edges often, and checks that the
// expected state always matches the memory.
func TestRandomExactTracking(t *testing.T) {
	for _, pages := range []int{1, 2, 7, 64} {
		t.Run(fmt.Sprintf("%dpages", pages), func(t *testing.T) {
			sh := &shared{start: time.Now(), rec: newRecorder(8)}
			var st workerStats
			w, err := newWorker(1, false, 0, pages, 3, int64(pages), sh, &st, hooks{})
			if err != nil {
				t.Fatal(err)
			}
			defer w.close()
			for range 5000 {
				if err := w.randomOp(); err != nil {
					t.Fatal(err)
				}
			}
			zeros := 0
			for p := range pages {
				w.verify(p)
				if w.gens[p] == 0 {
					zeros++
				}
			}
			rep := Report{}
			sh.rec.fill(&rep)
			noCorruption(t, rep)
			m := sh.madviseCounts()
			t.Logf("%d pages: %d verified, %d written, %d zero at the end, madvise %v",
				pages, st.verified.Load(), st.written.Load(), zeros, m)
			if m["dontneed"] == 0 || m["pageout"]+m["pageout_unsupported"] == 0 || st.written.Load() == 0 {
				t.Errorf("not every operation ran: madvise %v, %d written", m, st.written.Load())
			}
		})
	}
}

// TestRunDetectsInjectedCorruption corrupts worker 0's pages between sweeps
// and checks that exactly those corruptions are reported, in full detail.
func TestRunDetectsInjectedCorruption(t *testing.T) {
	pg := func(mem []byte, p int) []byte { return mem[p*PageSize : (p+1)*PageSize] }
	var (
		mu         sync.Mutex
		injectedAt = map[int]bool{}
	)
	h := hooks{afterPass: func(worker, pass int, mem []byte) {
		if worker != 0 {
			return
		}
		switch pass {
		case 2: // every page holds generation 2
			FillPage(pg(mem, 10), 0, 10, 1)              // stale
			copy(pg(mem, 11), pg(mem, 12))               // foreign: other page
			FillPage(pg(mem, 13), 1, 13, 2)              // foreign: other worker
			clear(pg(mem, 14))                           // zeroed
			pg(mem, 15)[1000] ^= 0x20                    // damaged body
			pg(mem, 16)[17] ^= 0x01                      // damaged header (generation)
			copy(pg(mem, 17)[2048:], pg(mem, 18)[2048:]) // damaged: torn
		case 3: // third sweep ended with MADV_DONTNEED: zeros expected
			FillPage(pg(mem, 20), 0, 20, 3) // stale, where zeros are expected
			FillPage(pg(mem, 21), 0, 22, 3) // foreign
			pg(mem, 22)[4095] = 1           // damaged
		default:
			return
		}
		mu.Lock()
		injectedAt[pass] = true
		mu.Unlock()
	}}
	var streamed []Example
	var lastProgress Progress
	rep, err := run(context.Background(), Config{
		Workers: 2, MiBPerWorker: 1, DurationSec: 0.5, DontneedEvery: 3, MaxExamples: 3,
	}, func(p Progress) {
		streamed = append(streamed, p.NewExamples...)
		lastProgress = p
	}, h)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// Progress carries every example once, so a run whose kernel dies
	// before the final report still has them.
	if diff := cmp.Diff(rep.Examples, streamed); diff != "" {
		t.Errorf("examples streamed in progress (-report +streamed):\n%s", diff)
	}
	if diff := cmp.Diff(rep.Corruptions, lastProgress.ByClass); diff != "" {
		t.Errorf("progress ByClass (-report +progress):\n%s", diff)
	}
	if !injectedAt[2] || !injectedAt[3] || rep.Sweeps < 8 {
		t.Fatalf("run too short: injected %v, %d sweeps", injectedAt, rep.Sweeps)
	}
	wantCounts := map[Class]uint64{ClassStale: 2, ClassForeign: 3, ClassZeroed: 1, ClassDamaged: 4}
	if diff := cmp.Diff(wantCounts, rep.Corruptions); diff != "" {
		t.Errorf("Corruptions (-want +got):\n%s", diff)
	}
	if rep.TotalCorruptions() != 10 {
		t.Errorf("TotalCorruptions = %d, want 10", rep.TotalCorruptions())
	}
	// Offsets of the torn page: first byte where generation 2 of pages 17
	// and 18 differ after 2048.
	a, b := make([]byte, PageSize), make([]byte, PageSize)
	FillPage(a, 0, 17, 2)
	FillPage(b, 0, 18, 2)
	tornOff := 2048
	for a[tornOff] == b[tornOff] {
		tornOff++
	}
	// MaxExamples 3: the fourth damaged page is counted, not kept.
	want := []Example{
		{Class: ClassStale, Worker: 0, Page: 10, WantGen: 2, GotWorker: 0, GotPage: 10, GotGen: 1, HeaderOK: true, Offset: 16},
		{Class: ClassForeign, Worker: 0, Page: 11, WantGen: 2, GotWorker: 0, GotPage: 12, GotGen: 2, HeaderOK: true, Offset: 8},
		{Class: ClassForeign, Worker: 0, Page: 13, WantGen: 2, GotWorker: 1, GotPage: 13, GotGen: 2, HeaderOK: true, Offset: 12},
		{Class: ClassZeroed, Worker: 0, Page: 14, WantGen: 2, Offset: 0},
		{Class: ClassDamaged, Worker: 0, Page: 15, WantGen: 2, GotWorker: 0, GotPage: 15, GotGen: 2, HeaderOK: true, Offset: 1000},
		{Class: ClassDamaged, Worker: 0, Page: 16, WantGen: 2, GotWorker: 0, GotPage: 16, GotGen: 2 ^ 0x100, HeaderOK: false, Offset: 17},
		{Class: ClassDamaged, Worker: 0, Page: 17, WantGen: 2, GotWorker: 0, GotPage: 17, GotGen: 2, HeaderOK: true, Offset: tornOff},
		{Class: ClassStale, Worker: 0, Page: 20, WantGen: 0, GotWorker: 0, GotPage: 20, GotGen: 3, HeaderOK: true, Offset: 0},
		{Class: ClassForeign, Worker: 0, Page: 21, WantGen: 0, GotWorker: 0, GotPage: 22, GotGen: 3, HeaderOK: true, Offset: 0},
	}
	if diff := cmp.Diff(want, rep.Examples, cmpopts.IgnoreFields(Example{}, "AtSec")); diff != "" {
		t.Errorf("Examples (-want +got):\n%s", diff)
	}
	last := 0.0
	for _, e := range rep.Examples {
		if e.AtSec < last || e.AtSec > rep.ElapsedSec {
			t.Errorf("example times out of order or range: %+v", rep.Examples)
			break
		}
		last = e.AtSec
	}
	if rep.FirstCorruptionSec != rep.Examples[0].AtSec || rep.FirstCorruptionSec <= 0 {
		t.Errorf("FirstCorruptionSec = %v, first example at %v", rep.FirstCorruptionSec, rep.Examples[0].AtSec)
	}
}

func TestRunStopOnCorruption(t *testing.T) {
	h := hooks{afterPass: func(worker, pass int, mem []byte) {
		if worker == 1 && pass == 1 {
			mem[5*PageSize+100] ^= 0x80
		}
	}}
	start := time.Now()
	rep, err := run(context.Background(), Config{
		Workers: 2, MiBPerWorker: 4, DurationSec: 30, StopOnCorruption: true,
	}, nil, h)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("run took %v after a corruption at %v s", d, rep.FirstCorruptionSec)
	}
	want := map[Class]uint64{ClassStale: 0, ClassForeign: 0, ClassZeroed: 0, ClassDamaged: 1}
	if diff := cmp.Diff(want, rep.Corruptions); diff != "" {
		t.Errorf("Corruptions (-want +got):\n%s", diff)
	}
}

func TestRunContextCancel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err := Run(ctx, Config{Workers: 2, MiBPerWorker: 2, Mode: ModeMixed}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	noCorruption(t, rep)
	if rep.ElapsedSec < 0.25 || rep.ElapsedSec > 3 || rep.PagesVerified == 0 {
		t.Errorf("elapsed %v s, %d verified", rep.ElapsedSec, rep.PagesVerified)
	}
}

func TestRunSwing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "max_pool_percent")
	if err := os.WriteFile(path, []byte("7\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if b, err := os.ReadFile(path); err == nil {
				seen[string(b)] = true
			}
		}
	})
	rep, err := Run(context.Background(), Config{
		Workers: 1, MiBPerWorker: 2, DurationSec: 0.6,
		Swing: Swing{Path: path, Low: 3, High: 40, PeriodMs: 50},
	}, nil)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	noCorruption(t, rep)
	if !seen["3\n"] || !seen["40\n"] {
		t.Errorf("file took values %v, want 3 and 40", seen)
	}
	if b, _ := os.ReadFile(path); string(b) != "7\n" {
		t.Errorf("file holds %q after the run, want the original %q", b, "7\n")
	}
	if rep.SwingWrites < 6 || rep.SwingErrors != 0 || rep.SwingError != "" {
		t.Errorf("swing writes %d, errors %d (%q); want >= 6 writes and no error",
			rep.SwingWrites, rep.SwingErrors, rep.SwingError)
	}
}

func TestRunSwingFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no", "max_pool_percent")
	_, err := Run(context.Background(), Config{
		Workers: 1, MiBPerWorker: 1, DurationSec: 0.1, Swing: Swing{Path: path, PeriodMs: 10},
	}, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("Run error = %v, want one naming %s", err, path)
	}
}

// TestRunSwingWriteErrors uses a file that reads but rejects writes, even
// from root: errors are counted, not fatal.
func TestRunSwingWriteErrors(t *testing.T) {
	const path = "/proc/version"
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		_, werr := f.Write([]byte("1\n"))
		f.Close()
		if werr == nil {
			t.Skip(path + " accepts writes here")
		}
	}
	rep, err := Run(context.Background(), Config{
		Workers: 1, MiBPerWorker: 1, DurationSec: 0.3, Swing: Swing{Path: path, PeriodMs: 50},
	}, nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.SwingErrors == 0 || rep.SwingErrors != rep.SwingWrites || rep.SwingError == "" {
		t.Errorf("swing writes %d, errors %d (%q); want every write to fail",
			rep.SwingWrites, rep.SwingErrors, rep.SwingError)
	}
}

func TestRunBadConfig(t *testing.T) {
	_, err := Run(context.Background(), Config{Workers: -1}, nil)
	if err == nil || !strings.Contains(err.Error(), "workers") {
		t.Errorf("Run error = %v, want a bad config error about workers", err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSampleKernel(t *testing.T) {
	dir := t.TempDir()
	debugfs := filepath.Join(dir, "zswap")
	writeFiles(t, dir, map[string]string{
		"zswap/written_back_pages":  "42\n",
		"zswap/pool_total_size":     "1228800\n",
		"zswap/duplicate_entry":     "0\n",
		"zswap/huge":                "18446744073709551615\n",
		"zswap/not_a_number":        "abc\n",
		"zswap/sub/reject_kmemfail": "5\n",
		"vmstat": "nr_free_pages 1000\nzswpin 5\nzswpout 17\npswpin 3\npswpout 4\nzswpin_x 9\n" +
			"pgfault 123\n",
	})
	got, err := SampleKernel(debugfs, filepath.Join(dir, "vmstat"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"written_back_pages": 42, "pool_total_size": 1228800, "duplicate_entry": 0, "huge": 1<<63 - 1,
		"zswpin": 5, "zswpout": 17, "pswpin": 3, "pswpout": 4,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SampleKernel (-want +got):\n%s", diff)
	}

	if _, err := SampleKernel(filepath.Join(dir, "missing"), ""); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing debugfs dir: error %v", err)
	}
	if _, err := SampleKernel("", filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing vmstat: error %v", err)
	}
	if got, err := SampleKernel("", ""); err != nil || len(got) != 0 {
		t.Errorf("nothing to sample: %v, %v", got, err)
	}
}

func TestRunSamplesKernel(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"zswap/written_back_pages": "42\n",
		"vmstat":                   "zswpin 5\n",
	})
	rep, err := Run(context.Background(), Config{
		Workers: 1, MiBPerWorker: 1, DurationSec: 0.1,
		DebugfsDir: filepath.Join(dir, "zswap"), VmstatPath: filepath.Join(dir, "vmstat"),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"written_back_pages": 42, "zswpin": 5}
	if diff := cmp.Diff(want, rep.KernelBefore); diff != "" {
		t.Errorf("KernelBefore (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, rep.KernelAfter); diff != "" {
		t.Errorf("KernelAfter (-want +got):\n%s", diff)
	}

	_, err = Run(context.Background(), Config{
		Workers: 1, MiBPerWorker: 1, DurationSec: 0.1, DebugfsDir: filepath.Join(dir, "missing"),
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Run with a missing debugfs dir: error %v", err)
	}
}

// TestRunSwingOff checks that a zero Swing and DebugfsDir do nothing.
func TestRunSwingOff(t *testing.T) {
	rep, err := Run(context.Background(), Config{Workers: 1, MiBPerWorker: 1, DurationSec: 0.1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SwingWrites != 0 || rep.KernelBefore != nil || rep.KernelAfter != nil {
		t.Errorf("swing writes %d, kernel samples %v %v; want none", rep.SwingWrites, rep.KernelBefore, rep.KernelAfter)
	}
	if _, ok := rep.Madvise["pageout_unsupported"]; !ok {
		t.Errorf("Madvise %v lacks pageout_unsupported", rep.Madvise)
	}
}

func TestSwingPool(t *testing.T) {
	path := filepath.Join(t.TempDir(), "max_pool_percent")
	if err := os.WriteFile(path, []byte("20\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	st, err := SwingPool(ctx, Swing{Path: path, PeriodMs: 20})
	if err != nil {
		t.Fatal(err)
	}
	if st.Writes < 4 || st.Errors != 0 {
		t.Errorf("SwingPool stats %+v, want >= 4 writes and no errors", st)
	}
	if b, _ := os.ReadFile(path); string(b) != "20\n" {
		t.Errorf("file holds %q after SwingPool, want %q", b, "20\n")
	}
	if _, err := SwingPool(context.Background(), Swing{Path: path + ".missing", PeriodMs: 20}); err == nil {
		t.Error("SwingPool on a missing file: no error")
	}
	if st, err := SwingPool(context.Background(), Swing{Path: path}); err != nil || st != (SwingStats{}) {
		t.Errorf("SwingPool with period 0: %+v, %v; want nothing done", st, err)
	}
}
