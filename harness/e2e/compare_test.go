package e2e

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/report/schematest"
)

// The main job, as make demo runs it: the adaptive design runs the widened
// unpatched kernel until it has failed enough, then the patched one until
// its clean time decides, however fast this machine finds the race; the
// budget is only a backstop. The verdict is "fixed" with exit code 0.
func TestCompareWidenedFindsFix(t *testing.T) {
	out := t.TempDir()
	// Its own TMPDIR, so that the check for QEMUs left running below sees
	// only this comparison's VMs (their directories are in TMPDIR), not
	// those of other work on the host.
	tmp := t.TempDir()
	start := time.Now()
	code, stdout, _ := harness(t, []string{"TMPDIR=" + tmp}, "compare", "--widen", "--duration", "60s", "--budget", "45m", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	t.Logf("compare decided in %s", time.Since(start).Round(time.Second))
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json does not parse: %v", err)
	}
	if err := schematest.Validate(b); err != nil {
		t.Errorf("report.json does not match docs/report.schema.json: %v", err)
	}
	if p := rep.Provenance; p == nil || p.SourcePackageVersion == nil || p.PatchSHA256 == nil || *p.PatchSHA256 != rep.PatchSHA256 || len(p.ConfigFragments) == 0 || p.QEMUVersion == nil || p.AccelReason == "" {
		t.Errorf("provenance %+v: want the Debian package version, the patch's sha256, the config fragments, QEMU's version and the accel's reason", p)
	}
	if len(rep.Variants) != 2 {
		t.Fatalf("want 2 variants, got %d", len(rep.Variants))
	}
	un, pa := rep.Variants[0], rep.Variants[1]
	if un.Name != "unpatched" || pa.Name != "patched" {
		t.Fatalf("variants %q, %q", un.Name, pa.Name)
	}
	if un.Failures == 0 {
		t.Errorf("unpatched widened kernel showed no corruption or crash in %d runs (%.0f s)", un.Runs, un.StressSeconds)
	}
	if pa.Failures != 0 || pa.Corruptions != 0 || pa.Crashes != 0 {
		t.Errorf("patched kernel failed: %d failures, %d corruptions, crashes %v", pa.Failures, pa.Corruptions, pa.CrashTitles)
	}
	if rep.Design != "adaptive" || rep.Method == "" || rep.SchemaVersion != report.SchemaVersion {
		t.Errorf("report design %q, method %q, schema %d", rep.Design, rep.Method, rep.SchemaVersion)
	}
	if rep.GuestCPUs != 1 {
		t.Errorf("the guests ran with %d CPUs, want 1 (--cpus default)", rep.GuestCPUs)
	}
	if rep.RatioUpper == nil || un.Rate == nil || pa.Rate == nil {
		t.Errorf("no effect size in the report: ratio %v, rates %v %v", rep.RatioUpper, un.Rate, pa.Rate)
	}
	for _, r := range pa.RunDetails {
		if r.Outcome != report.OutcomeClean || r.StressSeconds < 50 {
			t.Errorf("patched run %d: %s after %.0f s, want clean after a full run (%s)", r.Index, r.Outcome, r.StressSeconds, r.Error)
		}
		if r.WrittenBackPages <= 0 {
			t.Errorf("patched run %d wrote back %d pages: the run proves nothing", r.Index, r.WrittenBackPages)
		}
	}
	if rep.Verdict != "fixed" || code != 0 {
		t.Errorf("verdict %q (%s), exit %d; want fixed, 0", rep.Verdict, rep.Reason, code)
	}
	if !strings.Contains(stdout, rep.Verdict) {
		t.Errorf("the table does not state the verdict")
	}
	var junit struct {
		XMLName xml.Name `xml:"testsuites"`
	}
	jb, err := os.ReadFile(filepath.Join(out, "junit.xml"))
	if err != nil || xml.Unmarshal(jb, &junit) != nil {
		t.Errorf("junit.xml missing or invalid: %v", err)
	}
	for _, f := range []string{"summary.md", "unpatched.config", "patched.config", "unpatched-1/console.log", "patched-1/console.log"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	if left := qemuProcesses(t, filepath.Join(tmp, "zr-vm-")); len(left) > 0 {
		t.Errorf("QEMU left running: %v", left)
	}
}

// qemuWrapper writes a QEMU wrapper script that changes the patched
// kernel's boots only, the way a bad patch would: every boot whose count n
// makes cond true gets extra kernel parameters.
func qemuWrapper(t *testing.T, cond, extra string) string {
	dir := t.TempDir()
	path := filepath.Join(dir, "qemu")
	script := `#!/bin/bash
args=("$@")
for i in "${!args[@]}"; do
  if [[ ${args[$i]} == -kernel && ${args[$((i+1))]} == "` + images.Patched.Kernel + `" ]]; then
    n=$(( $(cat "` + dir + `/count" 2>/dev/null || echo 0) + 1 )); echo $n > "` + dir + `/count"
    if ` + cond + `; then
      for j in "${!args[@]}"; do [[ ${args[$j]} == -append ]] && args[$((j+1))]+=" ` + extra + `"; done
    fi
  fi
done
exec qemu-system-x86_64 "${args[@]}"
`
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// compareReport runs compare with args and returns its exit code and report.
func compareReport(t *testing.T, args ...string) (int, report.Report) {
	out := t.TempDir()
	start := time.Now()
	code, stdout, _ := harness(t, nil, append([]string{"compare", "--out", out}, args...)...)
	t.Logf("stdout:\n%s\ndecided in %s", stdout, time.Since(start).Round(time.Second))
	var rep report.Report
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return code, rep
}

// A patched kernel that panics at boot every other time is never fixed,
// and the verdict says why.
func TestPatchedBootPanicIsNeverFixed(t *testing.T) {
	q := qemuWrapper(t, "(( n % 2 == 1 ))", "rdinit=/no-such-init")
	code, rep := compareReport(t, "--widen", "--duration", "60s", "--budget", "30m", "--qemu", q)
	un, pa := rep.Variants[0], rep.Variants[1]
	if un.Failures == 0 {
		t.Fatalf("the unpatched kernel never failed: the test proves nothing")
	}
	if pa.BootFailures == 0 {
		t.Fatalf("the patched kernel never failed to boot: the wrapper did not work")
	}
	if rep.Verdict == "fixed" || code == 0 {
		t.Errorf("verdict %q, exit %d, for a patched kernel that fails to boot", rep.Verdict, code)
	}
	if !strings.Contains(rep.Reason, "boot") {
		t.Errorf("the reason does not mention the boot failures: %s", rep.Reason)
	}
}

// A "fix" that stops zswap from writing back (here: zswap off in the
// patched kernel) is never fixed.
func TestFixThatStopsWritebackIsNeverFixed(t *testing.T) {
	q := qemuWrapper(t, "true", "zswap.enabled=0")
	code, rep := compareReport(t, "--widen", "--duration", "60s", "--budget", "30m", "--qemu", q)
	un, pa := rep.Variants[0], rep.Variants[1]
	if un.Failures == 0 {
		t.Fatalf("the unpatched kernel never failed: the test proves nothing")
	}
	if pa.Runs == 0 {
		t.Fatalf("the patched kernel never ran")
	}
	if rep.Verdict == "fixed" || code == 0 {
		t.Errorf("verdict %q, exit %d, for a patched kernel that does not write back", rep.Verdict, code)
	}
	if !strings.Contains(rep.Reason, "writ") {
		t.Errorf("the reason does not say the patched kernel did not write back: %s", rep.Reason)
	}
}

// The guest brings up every CPU it is given.
func TestGuestCPUs(t *testing.T) {
	for _, n := range []string{"1", "2", "4"} {
		out := t.TempDir()
		harness(t, nil, "run", "--kernel", images.Patched.Kernel, "--cpus", n, "--duration", "5s", "--out", out)
		r := readRun(t, out)
		if fmt.Sprint(r.GuestCPUs) != n {
			t.Errorf("--cpus %s: the guest had %d CPUs online (%s)", n, r.GuestCPUs, r.Error)
		}
	}
}

// A patched kernel that prints a WARNING in every run, where the unpatched
// one never does, is regressed: the warning is a kernel failure of its
// own, decided by its own test. The patch is real and built like any
// other; the source already has the race fix, so neither kernel races.
// It warns at its first writeback, seconds into the workload, so 30-s runs
// are enough on any machine that writes back at all (the health test's
// leaking kernel needs the same).
func TestPatchThatWarnsIsRegressed(t *testing.T) {
	patch := filepath.Join(root, "harness", "e2e", "testdata", "zswap-warn-in-writeback.patch")
	code, rep := compareReport(t, "--widen", "--patch", patch, "--runs", "5", "--duration", "30s")
	un, pa := rep.Variants[0], rep.Variants[1]
	if pa.Warnings == 0 {
		t.Fatalf("the patched kernel never warned: the test proves nothing (outcomes: %v)", outcomes(pa))
	}
	if un.Warnings != 0 || un.OtherFailures != 0 {
		t.Errorf("the unpatched kernel warned or failed: %v", outcomes(un))
	}
	if rep.Verdict != "regressed" || code != 1 {
		t.Errorf("verdict %q, exit %d; want regressed, 1 (%s)", rep.Verdict, code, rep.Reason)
	}
	if !strings.Contains(rep.Reason, "WARNING") && !strings.Contains(rep.Reason, "other") {
		t.Errorf("the reason does not name the warnings: %s", rep.Reason)
	}
}

func outcomes(v report.Variant) []report.Outcome {
	var o []report.Outcome
	for _, r := range v.RunDetails {
		o = append(o, r.Outcome)
	}
	return o
}
