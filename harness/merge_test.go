package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

const testRunSeconds = 60.0

// testRun is a run that ended with outcome after stress seconds, having
// written back wb pages per second.
func testRun(variant string, outcome report.Outcome, stress, wb float64) report.Run {
	r := report.Run{Variant: variant, Outcome: outcome, Accel: "tcg", StressSeconds: stress, BootSeconds: 2,
		PagesVerified: uint64(stress * 1000), WrittenBackPages: int64(stress * wb), Counters: map[string]int64{"written_back_pages": 1},
		CorruptionsByClass: map[string]uint64{}, GuestCPUs: 1}
	switch outcome {
	case report.OutcomeCorruption:
		r.Corruptions, r.CorruptionsByClass["stale"] = 3, 3
		f := stress
		r.FirstFailureSeconds = &f
	case report.OutcomeWarning:
		r.Reports = []report.KernelReport{{Kind: "warning", Title: "WARNING in zswap_writeback_entry"}}
	case report.OutcomeBootFailure:
		r.StressSeconds, r.PagesVerified, r.WrittenBackPages, r.Counters = 0, 0, -1, nil
	}
	return r
}

// testShard is a fixed-design shard's report over the given runs, as
// compare writes it (aggregation, signature, verdict).
func testShard(t *testing.T, dir string, started time.Time, un, pa []report.Run) shard {
	t.Helper()
	for i := range un {
		un[i].Index = i + 1
	}
	for i := range pa {
		pa[i].Index = i + 1
	}
	runs := max(len(un), len(pa))
	rf := defaultRunFlags()
	rf.duration = time.Duration(testRunSeconds) * time.Second
	sig := report.Signature{}.Learn(un)
	u := report.Aggregate("unpatched", "/a/unpatched/bzImage", un, sig)
	p := report.Aggregate("patched", "/a/patched/bzImage", pa, sig)
	plan := verdict.FixedDesign{Runs: runs, RunSeconds: testRunSeconds}
	res := verdict.Compare(counts(u), counts(p), plan.Options())
	rep := report.Report{SchemaVersion: report.SchemaVersion, Tool: "zswaprace", Source: "debian:6.1", Patch: "/a/fix.patch",
		PatchDirection: "reverse", PatchSHA256: strings.Repeat("ab", 32), Widen: true, Widening: widening(true, false, rf),
		Accel: "tcg", Alpha: verdict.DefaultAlpha, PlannedRuns: &runs, Guest: guestOf(rf, widenBoot(true)), Design: "fixed",
		Method: plan.Method(), Started: started, Finished: started.Add(time.Hour), Signature: sig.Strings(),
		Provenance: &report.Provenance{Source: "debian:6.1", SourcePackageVersion: report.Nullable("6.1.192-2"),
			SourceKernelVersion: report.Nullable("6.1.192"), HostLogicalCores: 2, Accel: "tcg", AccelReason: "no /dev/kvm"}}
	fillVerdict(&rep, res, &u, &p)
	u.KernelSHA256, p.KernelSHA256 = strings.Repeat("01", 32), strings.Repeat("02", 32)
	rep.Variants = []report.Variant{u, p}
	return shard{dir: dir, rep: rep}
}

// twoShards are two fixed-design shards with every kind of run that counts
// differently: race failures, a WARNING (another failure that runs on),
// boot failures, a run without writeback.
func twoShards(t *testing.T) []shard {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	s1 := testShard(t, "out/shard-1", t0,
		[]report.Run{testRun("unpatched", report.OutcomeCorruption, 21, 20), testRun("unpatched", report.OutcomeClean, 60, 18), testRun("unpatched", report.OutcomeCorruption, 33, 17)},
		[]report.Run{testRun("patched", report.OutcomeClean, 60, 16), testRun("patched", report.OutcomeClean, 60, 15), testRun("patched", report.OutcomeWarning, 60, 15)})
	s2 := testShard(t, "out/shard-2", t0.Add(time.Minute),
		[]report.Run{testRun("unpatched", report.OutcomeCorruption, 12, 19), testRun("unpatched", report.OutcomeBootFailure, 0, 0), testRun("unpatched", report.OutcomeCorruption, 45, 21)},
		[]report.Run{testRun("patched", report.OutcomeClean, 60, 14), testRun("patched", report.OutcomeNoWriteback, 60, 0), testRun("patched", report.OutcomeClean, 60, 17)})
	return []shard{s1, s2}
}

// unionCounts counts a kernel's runs from scratch, the way the verdict
// package defines its counts, without the harness's aggregation.
func unionCounts(shards []shard, variant int) verdict.Counts {
	var c verdict.Counts
	var wb []float64
	for _, s := range shards {
		for _, r := range s.rep.Variants[variant].RunDetails {
			c.Boots++
			switch r.Outcome {
			case report.OutcomeCorruption:
				c.Failures++
				c.Exposure += r.StressSeconds
			case report.OutcomeWarning:
				c.OtherFailures++
				c.RanOn++
				c.Exposure += r.StressSeconds
			case report.OutcomeClean:
				c.Exposure += r.StressSeconds
			case report.OutcomeBootFailure:
				c.BootFailures++
			case report.OutcomeNoWriteback:
				c.NoWriteback++
			}
			if r.Outcome != report.OutcomeBootFailure {
				wb = append(wb, float64(r.WrittenBackPages)/r.StressSeconds)
			}
		}
	}
	slices.Sort(wb)
	if n := len(wb); n > 0 {
		c.WritebackPerSec = (wb[(n-1)/2] + wb[n/2]) / 2
	}
	return c
}

// Merging two shards gives the verdict, p-value and counts that the union
// of their runs gives as one fixed design of all their runs.
func TestMergeEqualsUnionOfRuns(t *testing.T) {
	shards := twoShards(t)
	rep, res, err := mergeReports(shards)
	if err != nil {
		t.Fatal(err)
	}
	un, pa := unionCounts(shards, 0), unionCounts(shards, 1)
	want := verdict.Compare(un, pa, verdict.FixedDesign{Runs: 6, RunSeconds: testRunSeconds}.Options())
	if res.Verdict != want.Verdict || res.PValue != want.PValue || res.Reason != want.Reason {
		t.Errorf("merged %s p=%v (%s)\nunion  %s p=%v (%s)", res.Verdict, res.PValue, res.Reason, want.Verdict, want.PValue, want.Reason)
	}
	if rep.Verdict != string(want.Verdict) || rep.PValue == nil || *rep.PValue != want.PValue {
		t.Errorf("report verdict %s p=%v, want %s p=%v", rep.Verdict, rep.PValue, want.Verdict, want.PValue)
	}
	if got := counts(rep.Variants[0]); got != un {
		t.Errorf("merged unpatched counts %+v\nwant %+v", got, un)
	}
	if got := counts(rep.Variants[1]); got != pa {
		t.Errorf("merged patched counts %+v\nwant %+v", got, pa)
	}
	if rep.Design != "fixed" || rep.PlannedRuns == nil || *rep.PlannedRuns != 6 || !strings.Contains(rep.Method, "6 runs per kernel") {
		t.Errorf("design %q, planned %v, method %q: want one fixed design of 6 runs", rep.Design, rep.PlannedRuns, rep.Method)
	}
	if len(rep.Shards) != 2 || rep.Shards[1].Dir != "out/shard-2" || !slices.Equal(rep.Shards[0].Runs, []int{3, 3}) {
		t.Errorf("shards %+v", rep.Shards)
	}
	// Runs are numbered anew and say where they came from.
	for i, r := range rep.Variants[1].RunDetails {
		if r.Index != i+1 || r.Shard != i/3+1 || r.ShardIndex != i%3+1 {
			t.Errorf("patched run %d: index %d, shard %d, shard index %d", i+1, r.Index, r.Shard, r.ShardIndex)
		}
	}
	if !rep.Started.Equal(shards[0].rep.Started) || !rep.Finished.Equal(shards[1].rep.Finished) {
		t.Errorf("merged span %s to %s", rep.Started, rep.Finished)
	}
}

// The shards' own verdicts do not decide: two shards that are each too
// short to show a fix are, pooled, enough.
func TestMergePoolsPower(t *testing.T) {
	t0 := time.Now()
	mk := func(dir string, at time.Time) shard {
		return testShard(t, dir, at,
			[]report.Run{testRun("unpatched", report.OutcomeCorruption, 20, 20), testRun("unpatched", report.OutcomeCorruption, 20, 20)},
			[]report.Run{testRun("patched", report.OutcomeClean, 60, 20), testRun("patched", report.OutcomeClean, 60, 20)})
	}
	shards := []shard{mk("a", t0), mk("b", t0.Add(time.Second)), mk("c", t0.Add(2*time.Second))}
	for _, s := range shards {
		if s.rep.Verdict == "fixed" {
			t.Fatalf("a shard alone is fixed (%s): the test proves nothing", s.rep.Reason)
		}
	}
	_, res, err := mergeReports(shards)
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict != verdict.Fixed {
		t.Errorf("pooled: %s (%s), want fixed", res.Verdict, res.Reason)
	}
}

// Merge refuses shards that are not runs of one comparison, and names
// what differs.
func TestMergeRefusesDifferentShards(t *testing.T) {
	for _, c := range []struct {
		field  string
		change func(r *report.Report)
	}{
		{"variants[0].kernel_sha256", func(r *report.Report) { r.Variants[0].KernelSHA256 = strings.Repeat("ff", 32) }},
		{"variants[1].kernel_sha256", func(r *report.Report) { r.Variants[1].KernelSHA256 = strings.Repeat("ff", 32) }},
		{"patch_sha256", func(r *report.Report) { r.PatchSHA256 = strings.Repeat("cd", 32) }},
		{"patch_direction", func(r *report.Report) { r.PatchDirection = "forward" }},
		{"widening", func(r *report.Report) { r.Widening = "none" }},
		{"accel", func(r *report.Report) { r.Accel = "kvm" }},
		{"guest.cpus", func(r *report.Report) { r.Guest.CPUs = 2 }},
		{"guest.mem_mib", func(r *report.Report) { r.Guest.MemMiB = 1024 }},
		{"guest.swap_mib", func(r *report.Report) { r.Guest.SwapMiB = 64 }},
		{"guest.run_seconds", func(r *report.Report) { r.Guest.RunSeconds = 120 }},
		{"guest.workload", func(r *report.Report) { r.Guest.Workload = "external: stress --vm 1" }},
		{"guest.cmdline", func(r *report.Report) { r.Guest.Cmdline += " zswap.zpool=z3fold" }},
		{"guest.health", func(r *report.Report) { r.Guest.Health = "after every run, leak tolerance 4096 pages" }},
		{"design", func(r *report.Report) { r.Design = "adaptive" }},
		{"alpha", func(r *report.Report) { r.Alpha = 0.01 }},
		{"min_reduction", func(r *report.Report) { m := 10.0; r.MinReduction = &m }},
		{"signature_patterns", func(r *report.Report) { r.SignaturePatterns = []string{"zswap"} }},
		{"ignore", func(r *report.Report) { r.Ignore = []string{"benign"} }},
		{"provenance.source_package_version", func(r *report.Report) { r.Provenance.SourcePackageVersion = report.Nullable("6.1.191-1") }},
		{"provenance.source_kernel_version", func(r *report.Report) { r.Provenance.SourceKernelVersion = nil }},
		{"provenance.source_commit", func(r *report.Report) { r.Provenance.SourceCommit = report.Nullable("abc") }},
		{"provenance.config_fragments (sha256)", func(r *report.Report) {
			r.Provenance.ConfigFragments = []report.ConfigFragment{{Path: "kconfigs/base.config", SHA256: strings.Repeat("ee", 32)}}
		}},
	} {
		t.Run(c.field, func(t *testing.T) {
			shards := twoShards(t)
			g := *shards[1].rep.Guest
			shards[1].rep.Guest = &g
			c.change(&shards[1].rep)
			err := checkPoolable(shards)
			if err == nil || !strings.Contains(err.Error(), c.field+" ") || !strings.Contains(err.Error(), "out/shard-2") {
				t.Errorf("error %v, want one naming %s and the shard", err, c.field)
			}
		})
	}
	if err := checkPoolable(twoShards(t)); err != nil {
		t.Errorf("shards of one comparison refused: %v", err)
	}
}

// Merge refuses what it cannot pool without counting runs twice or
// guessing: an interrupted shard, a merged report, an older report, the
// same comparison twice, a shard with no runs.
func TestMergeRefusesUnpoolable(t *testing.T) {
	for _, c := range []struct {
		name, want string
		change     func(s []shard)
	}{
		{"interrupted", "interrupted", func(s []shard) { s[1].rep.Interrupted = true }},
		{"merged", "merged report", func(s []shard) { s[1].rep.Shards = []report.Shard{{Dir: "x"}} }},
		{"older harness", "older harness", func(s []shard) { s[1].rep.Guest = nil }},
		{"no kernel hash", "older harness", func(s []shard) { s[0].rep.Variants[1].KernelSHA256 = "" }},
		{"no provenance", "older harness", func(s []shard) { s[1].rep.Provenance = nil }},
		{"same comparison", "same comparison", func(s []shard) { s[1].rep.Started = s[0].rep.Started }},
		{"no runs", "no runs of both kernels", func(s []shard) { s[1].rep.Variants = nil }},
	} {
		t.Run(c.name, func(t *testing.T) {
			shards := twoShards(t)
			c.change(shards)
			if err := checkPoolable(shards); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// writeShard writes s's report.json into a new directory under root.
func writeShard(t *testing.T, root string, s shard) string {
	t.Helper()
	dir := filepath.Join(root, filepath.Base(s.dir))
	if err := writeJSONFile(filepath.Join(dir, report.JSONFile), s.rep); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The command writes what compare writes and exits with the verdict's
// code; shards that differ, or the same shard twice, exit 3 (error).
func TestCmdMerge(t *testing.T) {
	root := t.TempDir()
	shards := twoShards(t)
	d1, d2 := writeShard(t, root, shards[0]), writeShard(t, root, shards[1])
	out := filepath.Join(root, "merged")
	code := cmdMerge(context.Background(), []string{"--out", out, filepath.Join(root, "shard-*")})
	_, res, _ := mergeReports(shards)
	if want := verdictExit(res.Verdict); code != want {
		t.Errorf("exit %d, want %d for %s", code, want, res.Verdict)
	}
	for _, f := range []string{report.JSONFile, report.JUnitFile, report.MarkdownFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("merge wrote no %s: %v", f, err)
		}
	}
	var rep report.Report
	b, _ := os.ReadFile(filepath.Join(out, report.JSONFile))
	if err := json.Unmarshal(b, &rep); err != nil || len(rep.Shards) != 2 || rep.Pooling == "" {
		t.Errorf("merged report.json: %v, %d shards, pooling %q", err, len(rep.Shards), rep.Pooling)
	}
	md, _ := os.ReadFile(filepath.Join(out, report.MarkdownFile))
	if !strings.Contains(string(md), "## Shards") || !strings.Contains(string(md), d2) {
		t.Errorf("summary.md does not list the shards:\n%s", md)
	}
	if code := cmdMerge(context.Background(), []string{"--out", filepath.Join(root, "m2"), d1, d1}); code != exitError {
		t.Errorf("the same shard twice: exit %d, want %d", code, exitError)
	}
	shards[1].rep.Variants[1].KernelSHA256 = strings.Repeat("ee", 32)
	d3 := writeShard(t, filepath.Join(root, "other"), shards[1])
	if code := cmdMerge(context.Background(), []string{"--out", filepath.Join(root, "m3"), d1, d3}); code != exitError {
		t.Errorf("shards of different kernels: exit %d, want %d", code, exitError)
	}
	if code := cmdMerge(context.Background(), nil); code != exitUsage {
		t.Errorf("no shards: exit %d, want %d (usage)", code, exitUsage)
	}
}

// TestMergeListsProvenance: shards run on different hosts pool, the merged
// report keeps every shard's provenance and notes what differs, and
// nothing is noted when the shards agree.
func TestMergeListsProvenance(t *testing.T) {
	shards := twoShards(t)
	shards[0].rep.Provenance.HostCPUModel = report.Nullable("AMD EPYC")
	shards[1].rep.Provenance.HostCPUModel = report.Nullable("Intel Xeon")
	shards[1].rep.Provenance.QEMUVersion = report.Nullable("QEMU emulator version 8.2.2")
	if err := checkPoolable(shards); err != nil {
		t.Fatalf("shards that differ only in their hosts refused: %v", err)
	}
	rep, _, err := mergeReports(shards)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Provenance != shards[0].rep.Provenance {
		t.Errorf("merged provenance %+v, want the first shard's", rep.Provenance)
	}
	for i, sh := range rep.Shards {
		if sh.Provenance != shards[i].rep.Provenance {
			t.Errorf("shards[%d].provenance %+v, want that shard's", i, sh.Provenance)
		}
	}
	var noted []string
	for _, n := range rep.Notes {
		if strings.Contains(n, "provenance.") {
			noted = append(noted, n)
		}
	}
	if len(noted) != 2 || !strings.Contains(noted[0], "qemu_version") || !strings.Contains(noted[1], `"Intel Xeon"`) {
		t.Errorf("provenance notes %q, want qemu_version and host_cpu_model with both values", noted)
	}
	if n := provenanceNotes(twoShards(t)); len(n) != 0 {
		t.Errorf("shards that agree got notes %q", n)
	}
}
