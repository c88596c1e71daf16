package stress_test

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/stress"
)

func TestWithDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   stress.Config
		want stress.Config
	}{
		{
			name: "zero",
			in:   stress.Config{},
			want: stress.Config{
				Workers: 4, MiBPerWorker: 96, Mode: "sweep", DontneedEvery: 3, MaxExamples: 8,
				VmstatPath: "/proc/vmstat",
				Swing:      stress.Swing{Path: "/sys/module/zswap/parameters/max_pool_percent", Low: 1, High: 20},
			},
		},
		{
			name: "set fields kept",
			in: stress.Config{
				Workers: 2, MiBPerWorker: 8, Mode: "random", DurationSec: 5, DontneedEvery: 7, Seed: 9,
				MaxExamples: 3, StopOnCorruption: true, DebugfsDir: "/d", VmstatPath: "/v",
				Swing: stress.Swing{Path: "/p", Low: 2, High: 30, PeriodMs: 500},
			},
			want: stress.Config{
				Workers: 2, MiBPerWorker: 8, Mode: "random", DurationSec: 5, DontneedEvery: 7, Seed: 9,
				MaxExamples: 3, StopOnCorruption: true, DebugfsDir: "/d", VmstatPath: "/v",
				Swing: stress.Swing{Path: "/p", Low: 2, High: 30, PeriodMs: 500},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.in.WithDefaults()
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("WithDefaults (-want +got):\n%s", diff)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	ok := stress.Config{}.WithDefaults()
	tests := []struct {
		name    string
		mutate  func(*stress.Config)
		wantErr []string // substrings; none = valid
	}{
		{"defaults", func(*stress.Config) {}, nil},
		{"mixed", func(c *stress.Config) { c.Mode = "mixed" }, nil},
		{"swing on", func(c *stress.Config) { c.Swing.PeriodMs = 1000 }, nil},
		{"zero workers", func(c *stress.Config) { c.Workers = 0 }, []string{"workers must be at least 1, got 0"}},
		{"negative workers", func(c *stress.Config) { c.Workers = -2 }, []string{"workers must be at least 1, got -2"}},
		{"too many workers", func(c *stress.Config) { c.Workers = 5000 }, []string{"workers must be at most"}},
		{"negative memory", func(c *stress.Config) { c.MiBPerWorker = -1 }, []string{"mib_per_worker must be at least 1"}},
		{"huge memory", func(c *stress.Config) { c.MiBPerWorker = 1 << 30 }, []string{"mib_per_worker must be at most"}},
		{"unknown mode", func(c *stress.Config) { c.Mode = "Sweep" }, []string{`unknown mode "Sweep"`}},
		{"negative duration", func(c *stress.Config) { c.DurationSec = -1 }, []string{"duration_s"}},
		{"NaN duration", func(c *stress.Config) { c.DurationSec = math.NaN() }, []string{"duration_s"}},
		{"infinite duration", func(c *stress.Config) { c.DurationSec = math.Inf(1) }, []string{"duration_s"}},
		{"negative dontneed", func(c *stress.Config) { c.DontneedEvery = -1 }, []string{"dontneed_every must be at least 1"}},
		{"negative examples", func(c *stress.Config) { c.MaxExamples = -1 }, []string{"max_examples"}},
		{"negative period", func(c *stress.Config) { c.Swing.PeriodMs = -5 }, []string{"swing.period_ms"}},
		{"negative swing low", func(c *stress.Config) { c.Swing.PeriodMs = 10; c.Swing.Low = -1 }, []string{"swing.low"}},
		{"swing without path", func(c *stress.Config) { c.Swing.PeriodMs = 10; c.Swing.Path = "" }, []string{"swing.path"}},
		{"debugfs without vmstat", func(c *stress.Config) { c.DebugfsDir = "/x"; c.VmstatPath = "" }, []string{"vmstat_path"}},
		{"several at once", func(c *stress.Config) { c.Workers = -1; c.Mode = "x" }, []string{"workers", "unknown mode", "; "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want one mentioning %q", tc.wantErr)
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Validate error %q does not mention %q", err, s)
				}
			}
		})
	}
}

// TestJSONNames pins the wire names the host and guest depend on.
func TestJSONNames(t *testing.T) {
	keys := func(v any) []string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		return ks
	}
	sorted := cmp.Transformer("sort", func(in []string) map[string]bool {
		m := make(map[string]bool)
		for _, s := range in {
			m[s] = true
		}
		return m
	})
	tests := []struct {
		name string
		v    any
		want []string
	}{
		{"Config", stress.Config{}, []string{"workers", "mib_per_worker", "mode", "duration_s", "dontneed_every", "seed",
			"max_examples", "stop_on_corruption", "swing", "debugfs_dir", "vmstat_path"}},
		{"Swing", stress.Swing{}, []string{"path", "low", "high", "period_ms"}},
		{"Example", stress.Example{}, []string{"class", "worker", "page", "want_gen", "got_worker", "got_page", "got_gen",
			"header_ok", "offset", "at_sec"}},
		{"Progress", stress.Progress{}, []string{"elapsed_sec", "pages_verified", "pages_written", "corruptions", "sweeps"}},
		{"Report", stress.Report{KernelBefore: map[string]int64{"a": 1}, KernelAfter: map[string]int64{"a": 2}, KernelError: "x", SwingError: "y"},
			[]string{"elapsed_sec", "pages_verified", "pages_written", "sweeps", "corruptions", "examples",
				"first_corruption_sec", "madvise", "swing_writes", "swing_errors", "swing_error",
				"kernel_before", "kernel_after", "kernel_error"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, keys(tc.v), sorted); diff != "" {
				t.Errorf("JSON keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTotalCorruptions(t *testing.T) {
	r := stress.Report{Corruptions: map[stress.Class]uint64{
		stress.ClassStale: 2, stress.ClassForeign: 3, stress.ClassZeroed: 0, stress.ClassDamaged: 5,
	}}
	if got := r.TotalCorruptions(); got != 10 {
		t.Errorf("TotalCorruptions = %d, want 10", got)
	}
	if got := (stress.Report{}).TotalCorruptions(); got != 0 {
		t.Errorf("empty TotalCorruptions = %d, want 0", got)
	}
}
