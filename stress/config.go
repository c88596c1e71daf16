package stress

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Modes.
const (
	// ModeSweep makes sequential passes over the region: verify each page,
	// then write the next generation; every DontneedEvery-th sweep the whole
	// region is freed with MADV_DONTNEED.
	ModeSweep = "sweep"
	// ModeRandom mixes verifies, rewrites, MADV_PAGEOUT and MADV_DONTNEED
	// of random ranges.
	ModeRandom = "random"
	// ModeMixed runs even-numbered workers in sweep mode, odd ones in random
	// mode.
	ModeMixed = "mixed"
	// ModeCycle makes sequential passes like sweep, but swaps each batch
	// of CycleBatch pages out (MADV_PAGEOUT) right after writing it, and
	// never frees the region. Each page then goes round swap-in, rewrite
	// and swap-out to the same slot within moments, and the oldest zswap
	// entry, the one writeback takes first, is always the page the sweep
	// touches next: what a race between writeback and swap-in followed by
	// slot reuse needs on kernels whose zswap drops an entry when it is
	// loaded (6.12's exclusive loads), where a page is never both resident
	// and in zswap.
	ModeCycle = "cycle"
	// CycleBatch is the pages ModeCycle writes before it pages them out.
	CycleBatch = 16
)

// Defaults.
const (
	DefaultWorkers       = 4
	DefaultMiBPerWorker  = 96
	DefaultMode          = ModeSweep
	DefaultDontneedEvery = 3
	DefaultMaxExamples   = 8
	DefaultVmstatPath    = "/proc/vmstat"
	DefaultDebugfsDir    = "/sys/kernel/debug/zswap" // not applied by WithDefaults
	DefaultSwingPath     = "/sys/module/zswap/parameters/max_pool_percent"
	DefaultSwingLow      = 1
	DefaultSwingHigh     = 20
	// DefaultSwingPeriodMs is the period that reproduced the race; the
	// swing is off unless Swing.PeriodMs is set, so set it to this.
	DefaultSwingPeriodMs = 1000
)

// Limits checked by Validate.
const (
	MaxWorkers      = 1024
	MaxMiBPerWorker = 1 << 16 // 64 GiB
)

// Config says what Run does. The zero value plus WithDefaults is the
// workload that reproduced the race (minus the pool swing, which is off
// until Swing.PeriodMs is set, and minus kernel sampling).
type Config struct {
	Workers      int     `json:"workers"`        // default 4
	MiBPerWorker int     `json:"mib_per_worker"` // default 96
	Mode         string  `json:"mode"`           // sweep|random|mixed|cycle, default sweep
	DurationSec  float64 `json:"duration_s"`     // stop after this long; 0 = until ctx is done
	// DontneedEvery: in sweep mode, MADV_DONTNEED the whole region after
	// every DontneedEvery-th sweep. Default 3.
	DontneedEvery int `json:"dontneed_every"`
	// Seed seeds the random choices of random-mode workers (page content
	// never depends on it). 0 is a valid seed.
	Seed        int64 `json:"seed"`
	MaxExamples int   `json:"max_examples"` // examples kept per class, default 8
	// StopOnCorruption ends the run as soon as the first corruption has been
	// recorded (workers finish the page they are on).
	StopOnCorruption bool  `json:"stop_on_corruption"`
	Swing            Swing `json:"swing"` // pool controller; Swing.PeriodMs 0 = off
	// DebugfsDir is the zswap debugfs directory whose integer files are
	// sampled before and after the run; "" = don't sample (e.g. on a host).
	DebugfsDir string `json:"debugfs_dir"`
	// VmstatPath is sampled with DebugfsDir; default /proc/vmstat.
	VmstatPath string `json:"vmstat_path"`
}

// Swing configures the pool controller, which writes Low and High
// alternately to Path, flipping every PeriodMs milliseconds, and restores the
// file's original content at the end of the run.
type Swing struct {
	Path     string `json:"path"`      // default /sys/module/zswap/parameters/max_pool_percent
	Low      int    `json:"low"`       // default 1
	High     int    `json:"high"`      // default 20
	PeriodMs int    `json:"period_ms"` // 0 = controller off
}

// Enabled says whether the pool controller runs.
func (s Swing) Enabled() bool { return s.PeriodMs > 0 }

// WithDefaults returns c with zero fields set to their defaults. It leaves
// DurationSec, Seed, StopOnCorruption, DebugfsDir and Swing.PeriodMs alone:
// their zero values mean "no limit", seed 0, false, "don't sample" and
// "no swing". Negative values are left for Validate to reject.
func (c Config) WithDefaults() Config {
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.MiBPerWorker == 0 {
		c.MiBPerWorker = DefaultMiBPerWorker
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.DontneedEvery == 0 {
		c.DontneedEvery = DefaultDontneedEvery
	}
	if c.MaxExamples == 0 {
		c.MaxExamples = DefaultMaxExamples
	}
	if c.VmstatPath == "" {
		c.VmstatPath = DefaultVmstatPath
	}
	if c.Swing.Path == "" {
		c.Swing.Path = DefaultSwingPath
	}
	if c.Swing.Low == 0 {
		c.Swing.Low = DefaultSwingLow
	}
	if c.Swing.High == 0 {
		c.Swing.High = DefaultSwingHigh
	}
	return c
}

// Validate reports every bad parameter of c, which should already have had
// WithDefaults applied (Run does that).
func (c Config) Validate() error {
	var errs []string
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Workers < 1:
		bad("workers must be at least 1, got %d", c.Workers)
	case c.Workers > MaxWorkers:
		bad("workers must be at most %d, got %d", MaxWorkers, c.Workers)
	}
	switch {
	case c.MiBPerWorker < 1:
		bad("mib_per_worker must be at least 1, got %d", c.MiBPerWorker)
	case c.MiBPerWorker > MaxMiBPerWorker:
		bad("mib_per_worker must be at most %d, got %d", MaxMiBPerWorker, c.MiBPerWorker)
	}
	switch c.Mode {
	case ModeSweep, ModeRandom, ModeMixed, ModeCycle:
	default:
		bad("unknown mode %q (want %s, %s, %s or %s)", c.Mode, ModeSweep, ModeRandom, ModeMixed, ModeCycle)
	}
	if math.IsNaN(c.DurationSec) || math.IsInf(c.DurationSec, 0) || c.DurationSec < 0 {
		bad("duration_s must be a finite number >= 0 (0 = until cancelled), got %v", c.DurationSec)
	} else if c.DurationSec > 0 && c.DurationSec*1e9 > math.MaxInt64 {
		bad("duration_s %v is too large", c.DurationSec)
	}
	if c.DontneedEvery < 1 {
		bad("dontneed_every must be at least 1, got %d", c.DontneedEvery)
	}
	if c.MaxExamples < 0 {
		bad("max_examples must not be negative, got %d", c.MaxExamples)
	}
	if c.Swing.PeriodMs < 0 {
		bad("swing.period_ms must not be negative (0 = off), got %d", c.Swing.PeriodMs)
	}
	if c.Swing.Enabled() {
		if c.Swing.Path == "" {
			bad("swing.path must be set when swing.period_ms > 0")
		}
		if c.Swing.Low < 0 {
			bad("swing.low must not be negative, got %d", c.Swing.Low)
		}
		if c.Swing.High < 0 {
			bad("swing.high must not be negative, got %d", c.Swing.High)
		}
	}
	if c.DebugfsDir != "" && c.VmstatPath == "" {
		bad("vmstat_path must be set when debugfs_dir is")
	}
	if len(errs) > 0 {
		return errors.New("stress: bad config: " + strings.Join(errs, "; "))
	}
	return nil
}
