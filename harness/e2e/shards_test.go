package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"zswaprace/harness/ciexample"
	"zswaprace/harness/report"
	"zswaprace/harness/report/schematest"
	"zswaprace/harness/verdict"
)

// Build once, run on many machines, merge, as the CI examples do it: the
// build, compare and merge steps of examples/ci/github-actions.yml and
// gitlab-ci.yml run here as written (ciexample.PlanOf), with bash, from a
// fresh working directory with bin/harness in it, and with only the
// variables in ciexample.TestOverrides changed (one 45-s run per kernel and
// shard, TCG, one VM per shard). The kernels are exported once; each
// example's compare step is one shard, and the shards run at the same
// time, as two CI runners would; each example's merge step pools them (the
// GitHub one from shards/shard-N, where its download step puts them, and
// with a $GITHUB_STEP_SUMMARY to append to). The merged verdict, counts and
// p-value must be those of the union of the shards' runs, computed here
// from the runs themselves with the verdict package.
func TestShardsMergeToUnionVerdict(t *testing.T) {
	start := time.Now()
	examples, err := ciexample.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ciexample.PlanOf(examples)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	if err := os.Mkdir(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(harnessBin, filepath.Join(work, "bin", "harness")); err != nil {
		t.Fatal(err)
	}
	if code, out := runStep(t, work, plan.Build, 1, nil); code != 0 {
		t.Fatalf("%s build step: exit %d\n%s", plan.Build.File, code, tail(out, 30))
	}
	kernels := filepath.Join(work, "kernels")
	if _, err := os.Stat(filepath.Join(kernels, "kernels.json")); err != nil {
		t.Fatalf("the build step exported no kernels where the compare steps look: %v", err)
	}
	shards := runShards(t, work, plan.Shards)
	var reps []report.Report
	for i, dir := range shards {
		r := readReport(t, dir)
		if r.Kernels == "" || len(r.Variants) != 2 {
			t.Fatalf("shard %d: kernels %q, %d variants: not a compare of the exported kernels", i+1, r.Kernels, len(r.Variants))
		}
		reps = append(reps, r)
	}

	un, pa, sig := unionCounts(reps)
	runs, err := strconv.Atoi(ciexample.TestOverrides["RUNS"])
	if err != nil {
		t.Fatal(err)
	}
	dur, err := time.ParseDuration(ciexample.TestOverrides["DURATION"])
	if err != nil {
		t.Fatal(err)
	}
	design := verdict.FixedDesign{Runs: runs * len(shards), RunSeconds: dur.Seconds()}
	want := verdict.Compare(un, pa, design.Options())
	t.Logf("union of the runs: unpatched %+v, patched %+v: %s p=%g", un, pa, want.Verdict, want.PValue)
	if un.Failures+pa.Failures == 0 {
		// The comparison below still holds, but p is 1 on both sides.
		t.Logf("no race failure in the union this time: the p-value check is the trivial one, the reason's is not")
	}
	for _, m := range plan.Merges {
		dir, env := work, []string(nil)
		if m.Engine == "github" {
			// Where actions/download-artifact puts the shard-N artifacts.
			dir = t.TempDir()
			for _, d := range []string{"bin", "shards"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(harnessBin, filepath.Join(dir, "bin", "harness")); err != nil {
				t.Fatal(err)
			}
			for i, s := range shards {
				if out, err := exec.Command("cp", "-r", s, filepath.Join(dir, "shards", fmt.Sprintf("shard-%d", i+1))).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
			}
			env = []string{"GITHUB_STEP_SUMMARY=" + filepath.Join(dir, "step-summary.md")}
		}
		code, out := runStep(t, dir, m, 1, env)
		t.Logf("%s merge step: exit %d\n%s", m.File, code, tail(out, 40))
		merged := filepath.Join(dir, m.Out(1, nil))
		got := readReport(t, merged)
		checkMerged(t, m.File, got, want, un, pa, sig, len(shards))
		// The kernels directory carries exactly which source and config
		// fragments they were built from, and merge keeps it.
		if p := got.Provenance; p == nil || p.SourcePackageVersion == nil || p.SourceKernelVersion == nil || len(p.ConfigFragments) == 0 || len(got.Shards) != len(shards) || got.Shards[len(shards)-1].Provenance == nil {
			t.Errorf("%s: merged provenance %+v (shards %+v): want the exact source version and config fragments from the kernels directory, and each shard's", m.File, p, got.Shards)
		}
		if code != wantExit(want.Verdict) {
			t.Errorf("%s merge step: exit %d for %s, want %d", m.File, code, want.Verdict, wantExit(want.Verdict))
		}
		for _, f := range []string{"junit.xml", "summary.md", "survival.svg", "unpatched.config", "patched.config"} {
			if _, err := os.Stat(filepath.Join(merged, f)); err != nil {
				t.Errorf("%s: merge wrote no %s: %v", m.File, f, err)
			}
		}
		summary, _ := os.ReadFile(filepath.Join(merged, "summary.md"))
		switch m.Engine {
		case "github":
			b, err := os.ReadFile(filepath.Join(dir, "step-summary.md"))
			if err != nil || len(summary) == 0 || !strings.Contains(string(b), string(summary)) {
				t.Errorf("the GitHub merge step did not append summary.md to $GITHUB_STEP_SUMMARY: %v", err)
			}
		case "gitlab":
			if len(summary) == 0 || !strings.Contains(out, strings.SplitN(string(summary), "\n", 2)[0]) {
				t.Errorf("the GitLab merge step did not print summary.md to the job log")
			}
		}
	}
	t.Logf("build once, %d shards, %d merges: %s", len(shards), len(plan.Merges), time.Since(start).Round(time.Second))

	refuseDifferentKernels(t, shards)
	refuseDamagedKernels(t, kernels)
}

// checkMerged compares a merged report with the union of the shards' runs.
func checkMerged(t *testing.T, file string, got report.Report, want verdict.Result, un, pa verdict.Counts, sig report.Signature, shards int) {
	t.Helper()
	if got.Verdict != string(want.Verdict) {
		t.Errorf("%s: merged verdict %q (%s), union %q (%s)", file, got.Verdict, got.Reason, want.Verdict, want.Reason)
	}
	if got.PValue == nil || math.Abs(*got.PValue-want.PValue) > 1e-12*want.PValue {
		t.Errorf("%s: merged p-value %v, union %g", file, got.PValue, want.PValue)
	}
	// The reason carries the times at risk, rates and intervals: equal even
	// when neither kernel failed, where both p-values are 1.
	if got.Reason != want.Reason {
		t.Errorf("%s: merged reason:\n%s\nunion:\n%s", file, got.Reason, want.Reason)
	}
	checkMergedCounts(t, got, un, pa, sig)
	if len(got.Shards) != shards || got.Pooling == "" {
		t.Errorf("%s: the merged report lists shards %+v, pooling %q", file, got.Shards, got.Pooling)
	}
	for i, s := range got.Shards {
		if filepath.Base(s.Dir) != fmt.Sprintf("shard-%d", i+1) {
			t.Errorf("%s: merged shard %d is %s", file, i+1, s.Dir)
		}
	}
}

// runStep runs one CI step's script with bash -e, as the engines do, in
// dir, for shard, with ciexample.TestOverrides and env in its environment,
// and returns its exit code and output.
func runStep(t *testing.T, dir string, s ciexample.Script, shard int, env []string) (int, string) {
	t.Helper()
	return run(t, stepCommand(t, dir, s, shard, env))
}

func stepCommand(t *testing.T, dir string, s ciexample.Script, shard int, env []string) *exec.Cmd {
	t.Helper()
	script, err := s.Shell(shard)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-e", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ZSWAPRACE_ROOT="+root)
	for k, v := range ciexample.TestOverrides {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(append(cmd.Env, s.Env(shard)...), env...)
	t.Logf("%s, job %s, shard %d: %s", s.File, s.Job, shard, script)
	return cmd
}

// run runs cmd and returns its exit code (-1 if it could not start) and
// output; it may run outside the test's goroutine.
func run(t *testing.T, cmd *exec.Cmd) (int, string) {
	out, err := cmd.CombinedOutput()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Errorf("%s: %v", cmd, err)
		return -1, string(out)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// runShards runs the examples' compare steps at once, step i as shard
// i+1, in work, and returns their output directories. With the test's
// overrides each is a one-run fixed-design comparison of 45-s runs: a
// widened unpatched run often fails within that, so the pooled p-value is
// usually not the trivial 1.
func runShards(t *testing.T, work string, steps []ciexample.Script) []string {
	t.Helper()
	dirs := make([]string, len(steps))
	type result struct {
		code int
		out  string
	}
	results := make([]result, len(steps))
	var wg sync.WaitGroup
	for i, s := range steps {
		dirs[i] = filepath.Join(work, s.Out(i+1, ciexample.TestOverrides))
		cmd := stepCommand(t, work, s, i+1, nil)
		wg.Go(func() {
			code, out := run(t, cmd)
			results[i] = result{code, out}
		})
	}
	wg.Wait()
	for i, r := range results {
		t.Logf("shard %d (%s): exit %d\n%s", i+1, steps[i].File, r.code, tail(r.out, 15))
		if r.code != 0 {
			t.Fatalf("shard %d: the %s compare step failed (exit %d)", i+1, steps[i].File, r.code)
		}
		if !strings.Contains(r.out, "nothing to build") || strings.Contains(r.out, "building") {
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
