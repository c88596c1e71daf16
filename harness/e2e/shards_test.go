package e2e

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/report/schematest"
	"zswaprace/harness/verdict"
)

// Build once, run on many machines, merge: the kernels TestMain built are
// exported once, two shards each run 'compare --kernels DIR' with their own
// output directory (at the same time, as two CI runners would), and
// 'harness merge' pools them. The merged verdict, counts and p-value must
// be those of the union of the shards' runs, computed here from the runs
// themselves with the verdict package.
func TestShardsMergeToUnionVerdict(t *testing.T) {
	start := time.Now()
	kernels := filepath.Join(t.TempDir(), "kernels")
	if code, _, stderr := harness(t, nil, "build", "--widen", "--export", kernels); code != 0 {
		t.Fatalf("build --export: exit %d\n%s", code, stderr)
	}
	shards := runShards(t, kernels, 2)
	var reps []report.Report
	for i, dir := range shards {
		r := readReport(t, dir)
		if r.Kernels != kernels || len(r.Variants) != 2 {
			t.Fatalf("shard %d: kernels %q, %d variants: not a compare of the exported kernels", i+1, r.Kernels, len(r.Variants))
		}
		reps = append(reps, r)
	}
	merged := filepath.Join(t.TempDir(), "merged")
	code, stdout, _ := harness(t, nil, append([]string{"merge", "--out", merged}, shards...)...)
	t.Logf("merge stdout:\n%s", stdout)
	got := readReport(t, merged)
	// The kernels directory carries exactly which source and config
	// fragments they were built from, and merge keeps it.
	if p := got.Provenance; p == nil || p.SourcePackageVersion == nil || p.SourceKernelVersion == nil || len(p.ConfigFragments) == 0 || len(got.Shards) != 2 || got.Shards[1].Provenance == nil {
		t.Errorf("merged provenance %+v (shards %+v): want the exact source version and config fragments from the kernels directory, and each shard's", p, got.Shards)
	}

	un, pa, sig := unionCounts(reps)
	plan := verdict.FixedDesign{Runs: 2, RunSeconds: 45}
	want := verdict.Compare(un, pa, plan.Options())
	t.Logf("union of the runs: unpatched %+v, patched %+v: %s p=%g", un, pa, want.Verdict, want.PValue)
	if un.Failures+pa.Failures == 0 {
		// The comparison below still holds, but p is 1 on both sides.
		t.Logf("no race failure in the union this time: the p-value check is the trivial one, the reason's is not")
	}
	if got.Verdict != string(want.Verdict) {
		t.Errorf("merged verdict %q (%s), union %q (%s)", got.Verdict, got.Reason, want.Verdict, want.Reason)
	}
	if got.PValue == nil || math.Abs(*got.PValue-want.PValue) > 1e-12*want.PValue {
		t.Errorf("merged p-value %v, union %g", got.PValue, want.PValue)
	}
	// The reason carries the times at risk, rates and intervals: equal even
	// when neither kernel failed, where both p-values are 1.
	if got.Reason != want.Reason {
		t.Errorf("merged reason:\n%s\nunion:\n%s", got.Reason, want.Reason)
	}
	if code != wantExit(want.Verdict) {
		t.Errorf("merge exit %d for %s, want %d", code, want.Verdict, wantExit(want.Verdict))
	}
	checkMergedCounts(t, got, un, pa, sig)
	if len(got.Shards) != 2 || got.Shards[0].Dir != shards[0] || got.Pooling == "" {
		t.Errorf("the merged report lists shards %+v, pooling %q", got.Shards, got.Pooling)
	}
	for _, f := range []string{"junit.xml", "summary.md", "unpatched.config", "patched.config"} {
		if _, err := os.Stat(filepath.Join(merged, f)); err != nil {
			t.Errorf("merge wrote no %s: %v", f, err)
		}
	}
	t.Logf("build once, two shards, merge: %s", time.Since(start).Round(time.Second))

	refuseDifferentKernels(t, shards)
	refuseDamagedKernels(t, kernels)
}

// runShards runs n one-run fixed-design comparisons of the kernels in dir
// at once, each with its own output directory, and returns those. Runs of
// 45 s: a widened unpatched run often fails within that, so the pooled
// p-value is usually not the trivial 1.
func runShards(t *testing.T, kernels string, n int) []string {
	t.Helper()
	dirs := make([]string, n)
	type result struct {
		code   int
		stderr string
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range n {
		dirs[i] = filepath.Join(t.TempDir(), "shard")
		wg.Go(func() {
			cmd := exec.Command(harnessBin, "compare", "--kernels", kernels, "--runs", "1", "--duration", "45s", "--jobs", "1", "--out", dirs[i])
			cmd.Dir = root
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			results[i] = result{cmd.ProcessState.ExitCode(), stderr.String(), err}
			if _, ok := err.(*exec.ExitError); ok {
				results[i].err = nil
			}
		})
	}
	wg.Wait()
	for i, r := range results {
		t.Logf("shard %d: exit %d\n%s", i+1, r.code, tail(r.stderr, 15))
		if r.err != nil || r.code > 2 {
			t.Fatalf("shard %d: compare --kernels failed (exit %d, %v)", i+1, r.code, r.err)
		}
		if !strings.Contains(r.stderr, "nothing to build") || strings.Contains(r.stderr, "building") {
			t.Errorf("shard %d did not take its kernels from the directory", i+1)
		}
	}
	return dirs
}

func readReport(t *testing.T, dir string) report.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%s/report.json: %v", dir, err)
	}
	if err := schematest.Validate(b); err != nil {
		t.Errorf("%s/report.json does not match docs/report.schema.json: %v", dir, err)
	}
	return r
}

// unionCounts counts each kernel's runs over all shards from scratch: race
// failures by the race's signature learned from all the unpatched runs,
// time at risk, boots, and the median writeback rate.
func unionCounts(reps []report.Report) (un, pa verdict.Counts, sig report.Signature) {
	var runs [2][]report.Run
	for _, r := range reps {
		for i := range 2 {
			runs[i] = append(runs[i], r.Variants[i].RunDetails...)
		}
	}
	sig = report.Signature{}.Learn(runs[0])
	return countRuns(runs[0], sig), countRuns(runs[1], sig), sig
}

func countRuns(runs []report.Run, sig report.Signature) verdict.Counts {
	var c verdict.Counts
	var wb []float64
	for _, r := range runs {
		c.Boots++
		c.Exposure += r.Exposure()
		switch sig.Classify(r) {
		case report.RaceFailure:
			c.Failures++
		case report.OtherFailure:
			c.OtherFailures++
		}
		if r.Outcome == report.OutcomeWarning && sig.Classify(r) != "" {
			c.RanOn++
		}
		switch r.Outcome {
		case report.OutcomeBootFailure:
			c.BootFailures++
		case report.OutcomeInfraError:
			c.InfraErrors++
		case report.OutcomeNoWriteback:
			c.NoWriteback++
		case report.OutcomeOOM:
			c.OOMs++
			c.OOMSeconds += r.StressSeconds
		}
		if r.StressSeconds > 0 && r.WrittenBackPages >= 0 && r.Counters != nil {
			wb = append(wb, float64(r.WrittenBackPages)/r.StressSeconds)
		}
	}
	slices.Sort(wb)
	if n := len(wb); n > 0 {
		c.WritebackPerSec = (wb[(n-1)/2] + wb[n/2]) / 2
	}
	return c
}

// checkMergedCounts compares the merged report's per-kernel figures with
// the union's.
func checkMergedCounts(t *testing.T, got report.Report, un, pa verdict.Counts, sig report.Signature) {
	t.Helper()
	for i, c := range []verdict.Counts{un, pa} {
		v := got.Variants[i]
		if v.Runs != c.Boots || v.Failures != c.Failures || v.OtherFailures != c.OtherFailures || v.BootFailures != c.BootFailures {
			t.Errorf("%s: merged runs %d, race failures %d, other %d, boot failures %d; union %d, %d, %d, %d",
				v.Name, v.Runs, v.Failures, v.OtherFailures, v.BootFailures, c.Boots, c.Failures, c.OtherFailures, c.BootFailures)
		}
		if math.Abs(v.Exposure()-c.Exposure) > 1e-9 {
			t.Errorf("%s: merged time at risk %g s, union %g s", v.Name, v.Exposure(), c.Exposure)
		}
	}
	if !slices.Equal(got.Signature, sig.Strings()) {
		t.Errorf("merged signature %q, union %q", got.Signature, sig.Strings())
	}
}

func wantExit(v verdict.Verdict) int {
	switch v {
	case verdict.Fixed:
		return 0
	case verdict.NotFixed, verdict.Regressed:
		return 1
	case verdict.Inconclusive:
		return 2
	}
	return 3
}

// A shard whose report says it ran other kernels is refused, by name.
func refuseDifferentKernels(t *testing.T, shards []string) {
	t.Helper()
	other := filepath.Join(t.TempDir(), "other-kernels")
	b, err := os.ReadFile(filepath.Join(shards[1], "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["variants"].([]any)[1].(map[string]any)["kernel_sha256"] = strings.Repeat("0", 64)
	b, _ = json.Marshal(doc)
	if err := os.MkdirAll(other, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(other, "report.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := harness(t, nil, "merge", "--out", filepath.Join(t.TempDir(), "m"), shards[0], other)
	if code != 3 || !strings.Contains(stderr, "variants[1].kernel_sha256") || !strings.Contains(stderr, other) {
		t.Errorf("merge of shards with different patched kernels: exit %d, stderr %q; want exit 3 naming the field and the shard", code, stderr)
	}
}

// A kernels directory whose bzImage changed on the way is refused before
// anything boots, naming the file.
func refuseDamagedKernels(t *testing.T, kernels string) {
	t.Helper()
	bad := filepath.Join(t.TempDir(), "kernels")
	if out, err := exec.Command("cp", "-r", kernels, bad).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	f, err := os.OpenFile(filepath.Join(bad, "patched", "bzImage"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0})
	f.Close()
	code, _, stderr := harness(t, nil, "compare", "--kernels", bad, "--runs", "1", "--out", filepath.Join(t.TempDir(), "c"))
	if code != 3 || !strings.Contains(stderr, filepath.Join(bad, "patched", "bzImage")) || !strings.Contains(stderr, "sha256") {
		t.Errorf("compare --kernels with a changed bzImage: exit %d, stderr %q; want exit 3 naming the file", code, stderr)
	}
	if left := qemuProcesses(t, bad); len(left) > 0 {
		t.Errorf("a damaged kernel was booted: %v", left)
	}
}
