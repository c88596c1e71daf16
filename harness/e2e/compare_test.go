package e2e

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"zswaprace/harness/report"
)

// The main job: the widened unpatched kernel corrupts pages or crashes, the
// patched one stays clean through at least 60 s of stress per run, and the
// verdict is "fixed" with exit code 0.
func TestCompareWidenedFindsFix(t *testing.T) {
	out := t.TempDir()
	code, stdout, _ := harness(t, nil, "compare", "--widen", "--runs", "3", "--duration", "60s", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("report.json does not parse: %v", err)
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
	for _, r := range pa.RunDetails {
		if r.Outcome != report.OutcomeClean || r.StressSeconds < 60 {
			t.Errorf("patched run %d: %s after %.0f s, want clean after >= 60 s (%s)", r.Index, r.Outcome, r.StressSeconds, r.Error)
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
	if left := qemuProcesses(t, "zr-vm-"); len(left) > 0 {
		t.Errorf("QEMU left running: %v", left)
	}
}
