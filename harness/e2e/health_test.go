package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zswaprace/harness/report"
)

// A patched kernel that leaks zswap entries (the invalidate path never
// drops the entry's first reference), where the unpatched one comes back
// whole, is regressed, with the runs counted as leaks: the health check
// after every run finds the pages gone and zswap not empty after swapoff.
// The source already has the race fix, so neither kernel races and the
// adaptive design would spend half its budget waiting for the race; the
// fixed design's 5 runs per kernel decide on any machine, since every run
// of the leaking kernel leaks (its workers' exit frees their swap slots),
// however slow the host: 5 leaks against none is p = 0.031.
func TestPatchThatLeaksIsRegressed(t *testing.T) {
	patch := filepath.Join(root, "harness", "e2e", "testdata", "zswap-leak-on-invalidate.patch")
	args := []string{"--widen", "--patch", patch, "--runs", "5", "--duration", "30s"}
	if j := os.Getenv("ZSWAPRACE_E2E_JOBS"); j != "" {
		args = append(args, "--jobs", j) // VMs at once, on a host shared with other work
	}
	code, rep := compareReport(t, args...)
	un, pa := rep.Variants[0], rep.Variants[1]
	if pa.Leaks == 0 {
		t.Fatalf("the patched kernel never leaked: the test proves nothing (outcomes: %v)", outcomes(pa))
	}
	if un.Leaks != 0 || un.HealthFailures != 0 || un.OtherFailures != 0 {
		t.Errorf("the unpatched kernel failed: %v", outcomes(un))
	}
	if rep.Verdict != "regressed" || code != 1 {
		t.Errorf("verdict %q, exit %d; want regressed, 1 (%s)", rep.Verdict, code, rep.Reason)
	}
	for _, r := range un.RunDetails {
		h := r.Health
		if h == nil || !h.SwapoffOK || h.LostPages == nil || *h.LostPages > h.LeakTolerancePages || h.ZswapStoredPages == nil || *h.ZswapStoredPages != 0 {
			b, _ := json.Marshal(h)
			t.Errorf("unpatched run %d: %s, health %s", r.Index, r.Outcome, b)
		}
	}
	for _, r := range pa.RunDetails {
		if r.Outcome != report.OutcomeLeak {
			continue
		}
		h := r.Health
		if r.CountedAs == nil || *r.CountedAs != report.OtherFailure || h == nil || h.LostPages == nil || *h.LostPages <= h.LeakTolerancePages ||
			h.ZswapStoredPages == nil || *h.ZswapStoredPages == 0 || !slices.Contains(r.CrashTitles, report.TitleZswapNotEmpty) {
			b, _ := json.Marshal(h)
			t.Errorf("patched leak run %d counted as %v: titles %q, health %s", r.Index, r.CountedAs, r.CrashTitles, b)
		}
	}
}

// A patch that makes swapoff fail is a health failure, never clean: one
// short run of the patched kernel is enough, since swapoff fails every time.
func TestPatchThatBreaksSwapoffIsNotClean(t *testing.T) {
	kernel := buildPatched(t, "swapoff-fails.patch")
	out := t.TempDir()
	code, stdout, _ := harness(t, nil, "run", "--kernel", kernel, "--duration", "20s", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	r := readRun(t, out)
	if r.Outcome != report.OutcomeHealth || code != 1 {
		t.Fatalf("outcome %s, exit %d; want health, 1 (%s)", r.Outcome, code, r.Error)
	}
	if r.Health == nil || r.Health.SwapoffOK || !strings.Contains(r.Health.SwapoffError, "cannot allocate memory") ||
		!slices.Contains(r.CrashTitles, report.TitleSwapoff) || !strings.Contains(stdout, "health: swapoff failed") {
		t.Errorf("health %+v, titles %q", r.Health, r.CrashTitles)
	}
}

// A patch that makes swapoff hang, stuck in the kernel where not even
// SIGKILL ends it, is a health failure or a hang, never clean; and the run
// ends (the agent gives swapoff a deadline), leaving no QEMU behind.
func TestPatchThatHangsSwapoffIsNotClean(t *testing.T) {
	kernel := buildPatched(t, "swapoff-hangs.patch")
	out, tmp := t.TempDir(), t.TempDir()
	code, stdout, _ := harness(t, []string{"TMPDIR=" + tmp}, "run", "--kernel", kernel, "--duration", "20s", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	r := readRun(t, out)
	if code != 1 || (r.Outcome != report.OutcomeHealth && r.Outcome != report.OutcomeHang) {
		t.Fatalf("outcome %s, exit %d; want health or hang, 1 (%s)", r.Outcome, code, r.Error)
	}
	if r.Outcome == report.OutcomeHealth && (r.Health == nil || r.Health.SwapoffOK || !slices.Contains(r.CrashTitles, report.TitleSwapoff)) {
		t.Errorf("health %+v, titles %q: want a swapoff that did not finish", r.Health, r.CrashTitles)
	}
	if qemus := qemuProcesses(t, filepath.Join(tmp, "zr-vm-")); len(qemus) > 0 {
		t.Errorf("QEMU left running: %v", qemus)
	}
}

// buildPatched builds the widened kernel with a test patch from testdata
// and returns its bzImage.
func buildPatched(t *testing.T, name string) string {
	t.Helper()
	patch := filepath.Join(root, "harness", "e2e", "testdata", name)
	code, stdout, _ := harness(t, nil, "build", "--widen", "--patch", patch, "--json")
	if code != 0 {
		t.Fatalf("build: exit %d", code)
	}
	var built struct {
		Patched struct{ Kernel string } `json:"patched"`
	}
	if err := json.Unmarshal([]byte(stdout), &built); err != nil || built.Patched.Kernel == "" {
		t.Fatalf("build --json printed %q: %v", stdout, err)
	}
	return built.Patched.Kernel
}
