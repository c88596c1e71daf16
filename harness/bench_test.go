package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"zswaprace/harness/report"
)

func ptr[T any](v T) *T { return &v }

func TestTTFFMetricCensoring(t *testing.T) {
	rs := []report.Run{
		{Outcome: report.OutcomeCorruption, FirstFailureSeconds: ptr(42.0)},
		{Outcome: report.OutcomeClean, StressSeconds: 600},
		{Outcome: report.OutcomeNoWriteback, StressSeconds: 600, HostLoad: ptr(4.4), HostCPUs: 2, GuestCPUs: 2},
		{Outcome: report.OutcomeBootFailure},
	}
	m := ttffMetric("time to first failure: x", "tcg", 10*time.Minute, rs)
	if diff := cmp.Diff([]float64{42, 600, 600}, m.Values); diff != "" {
		t.Errorf("values (-want +got):\n%s", diff)
	}
	if m.Censored != 2 || m.Limit != 600 || m.Median != 600 {
		t.Errorf("censored %d, limit %v, median %v; want 2, 600, 600", m.Censored, m.Limit, m.Median)
	}
	for _, want := range []string{"2 of 3 runs found nothing within 10m0s", "median not reached: more than 10m0s", "1 runs left out: boot-failure",
		"1 of 3 runs on a busy host"} {
		if !strings.Contains(m.Note, want) {
			t.Errorf("note %q lacks %q", m.Note, want)
		}
	}
	// A median that was reached is not said to be missing.
	m = ttffMetric("x", "tcg", time.Minute, rs[:2])
	if strings.Contains(m.Note, "median not reached") {
		t.Errorf("1 of 2 censored: note %q says the median was not reached", m.Note)
	}
}

func TestSoakModeCountsFailuresAndStops(t *testing.T) {
	runs := []report.Run{
		{Outcome: report.OutcomeClean, StressSeconds: 120, PagesVerified: 1200, WrittenBackPages: 240, Health: &report.Health{LostPages: ptr[int64](300), Seconds: 0.5}},
		{Outcome: report.OutcomeLeak, StressSeconds: 120, WrittenBackPages: 10, Health: &report.Health{LostPages: ptr[int64](5000), Seconds: 0.6}},
		{Outcome: report.OutcomeInfraError},
		{Outcome: report.OutcomeClean, StressSeconds: 120},
	}
	var asked []time.Duration
	ms := soakMode(context.Background(), workload{name: "soak: patched widened"}, 10*time.Minute, 2, "tcg", 1024,
		func(i int, d time.Duration) report.Run { asked = append(asked, d); return runs[i-1] })
	if len(asked) != 3 || asked[0] != 2*time.Minute {
		t.Fatalf("runs asked for %v, want 3 runs of 2m (the infra error stops the soak)", asked)
	}
	f := ms[0]
	if f.Name != "false-positive soak: patched widened" || f.Median != 1 {
		t.Errorf("soak row %q = %v failures, want 1 (the leak; an infra error is no kernel failure)", f.Name, f.Median)
	}
	for _, want := range []string{"3 runs, 240 s of stress", "2 with writeback", "2 soaks ran at once", "run 2: leak", "stopped"} {
		if !strings.Contains(f.Note, want) {
			t.Errorf("note %q lacks %q", f.Note, want)
		}
	}
	if diff := cmp.Diff([]float64{10}, ms[1].Values); diff != "" {
		t.Errorf("pages verified per second (clean runs only) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]float64{300, 5000}, ms[3].Values); diff != "" {
		t.Errorf("pages lost (-want +got):\n%s", diff)
	}
}

func TestSlotReuseWorkloadFitsSwap(t *testing.T) {
	rf := defaultRunFlags()
	slotReuse(&rf)
	ws := rf.workers * rf.mibPerWorker
	if rf.swapMiB >= ws || rf.swapMiB < ws-rf.mem/2 {
		t.Errorf("swap %d MiB for a %d MiB working set in %d MiB of RAM: want just above what is pushed out", rf.swapMiB, ws, rf.mem)
	}
	if err := rf.validate(); err != nil {
		t.Errorf("slot-reuse flags do not validate: %v", err)
	}
}

func TestBenchRowsSelectAndName(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range append(benchRows(), soakRows()...) {
		if seen[w.name] {
			t.Errorf("row %q twice", w.name)
		}
		seen[w.name] = true
		if w.kernel != benchWidened && w.kernel != benchPlain && w.kernel != benchKcsan {
			t.Errorf("row %q boots kernel %q", w.name, w.kernel)
		}
		if strings.HasPrefix(w.name, "generic:") && w.kernel == benchWidened {
			t.Errorf("generic row %q boots the widened kernel", w.name)
		}
		if strings.Contains(w.name, "/") {
			t.Errorf("row %q: its slug is a directory name", w.name)
		}
	}
	if got := benchSlug("generic: KCSAN, 1 ms stalls"); got != "generic__KCSAN__1_ms_stalls" {
		t.Errorf("slug %q", got)
	}
}

func TestBenchTagNamesOtherLines(t *testing.T) {
	for source, want := range map[string]string{
		"debian:6.1":          "",
		"debian:6.12":         " [debian:6.12]",
		"git:/src/linux@v6.6": " [git:/src/linux@v6.6]",
	} {
		if got := benchTag(source); got != want {
			t.Errorf("benchTag(%q) = %q, want %q", source, got, want)
		}
	}
}

// A demo comparison that fails (here: it prints no report) does not lose the rows measured before it:
// bench.json is written, and the exit code says something failed.
func TestBenchWritesResultsWhenVerdictFails(t *testing.T) {
	// A "harness" that prints nothing, never this test binary: run with
	// 'compare', it would run every test of the package again.
	saved := benchExecutable
	benchExecutable = func() (string, error) { return "/bin/true", nil }
	t.Cleanup(func() { benchExecutable = saved })
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "bench.json")
	code := cmdBench(context.Background(), []string{"--rows", "^no row has this name$", "--build-reps", "0", "--soak", "0",
		"--verdict-reps", "1", "--out", filepath.Join(dir, "out"), "--json", jsonPath})
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatalf("no bench.json after a failed demo comparison: %v", err)
	}
	var res struct{ Metrics []metric }
	if err := json.Unmarshal(b, &res); err != nil || len(res.Metrics) == 0 {
		t.Errorf("bench.json %s: %v", b, err)
	}
}

// A soak runs in 2-minute runs unless its row says otherwise, and adds
// runs until it has its total of stress.
func TestSoakRunLength(t *testing.T) {
	for _, tt := range []struct {
		w    workload
		want []time.Duration
	}{
		{workload{name: "soak: x"}, []time.Duration{2 * time.Minute, 2 * time.Minute, 2 * time.Minute}},
		{workload{name: "soak: x", soakRun: 10 * time.Minute}, []time.Duration{6 * time.Minute}},
	} {
		var got []time.Duration
		ms := soakMode(context.Background(), tt.w, 6*time.Minute, 1, "tcg", 1024, func(_ int, d time.Duration) report.Run {
			got = append(got, d)
			return report.Run{Outcome: report.OutcomeClean, StressSeconds: d.Seconds(), WrittenBackPages: 10, PagesVerified: 100}
		})
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%+v: runs (-want +got):\n%s", tt.w, diff)
		}
		if len(ms) == 0 || ms[0].Median != 0 {
			t.Errorf("%+v: rows %+v, want a failures row of 0", tt.w, ms)
		}
	}
	for _, w := range soakRows() {
		if strings.Contains(w.name, "4-CPU") && (w.cpus != 4 || w.soakRun != 10*time.Minute) {
			t.Errorf("row %q: %d CPUs, runs of %s; want 4 and the 10 minutes of the unpatched 4-CPU row", w.name, w.cpus, w.soakRun)
		}
	}
}
