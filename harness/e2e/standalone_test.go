package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/report"
)

// TestStandaloneBinary builds bin/harness as 'make build' does, copies it
// to a fresh directory and runs it from another one with PATH=/usr/bin:/bin
// and a bare environment: no Go (it lives in /usr/local/go), no checkout
// above the binary or the working directory, no ZSWAPRACE_ROOT. It must
// find the kernels TestMain built from its embedded kconfigs/ and patches/
// (the same cache keys, so the same bzImages) and run one with its
// embedded guest agent.
func TestStandaloneBinary(t *testing.T) {
	start := time.Now()
	base := t.TempDir()
	built := filepath.Join(base, "build", "harness")
	mk := exec.Command("make", "-s", "build", "HARNESS="+built)
	mk.Dir = root
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	t.Logf("make build: %s", time.Since(start).Round(time.Second))
	fresh := filepath.Join(base, "fresh")
	elsewhere := filepath.Join(base, "elsewhere")
	for _, d := range []string{fresh, elsewhere} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(fresh, "harness")
	if out, err := exec.Command("cp", built, bin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	env := []string{"PATH=/usr/bin:/bin"}
	for _, kv := range os.Environ() {
		for _, keep := range []string{"HOME=", "USER=", "LOGNAME=", "ZSWAPRACE_CACHE=", "XDG_CACHE_HOME="} {
			if strings.HasPrefix(kv, keep) {
				env = append(env, kv)
			}
		}
	}
	for _, d := range []string{"/usr/bin", "/bin"} {
		if _, err := os.Stat(filepath.Join(d, "go")); err == nil {
			t.Logf("note: %s/go exists, so this machine cannot show that the binary needs no Go", d)
		}
	}
	run := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir, cmd.Env = elsewhere, env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("run %s: %v", bin, err)
		}
		t.Logf("%s %s: exit %d\nstderr:\n%s", bin, strings.Join(args, " "), code, tail(stderr.String(), 20))
		return code, stdout.String(), stderr.String()
	}

	// kconfigs/ and patches/ from the binary: the same kernels as the
	// checkout's, found in the cache.
	code, stdout, _ := run("build", "--widen", "--json")
	var got struct {
		Unpatched struct{ Kernel string } `json:"unpatched"`
		Patched   struct{ Kernel string } `json:"patched"`
	}
	if code != 0 {
		t.Fatalf("build --widen --json away from the checkout: exit %d, want 0", code)
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("build --json printed %q: %v", stdout, err)
	}
	if got.Unpatched.Kernel != images.Unpatched.Kernel || got.Patched.Kernel != images.Patched.Kernel {
		t.Errorf("away from the checkout, build names %s and %s, want the checkout's %s and %s: the embedded kconfigs or patches differ",
			got.Unpatched.Kernel, got.Patched.Kernel, images.Unpatched.Kernel, images.Patched.Kernel)
	}

	// The guest agent from the binary: a run with no Go on PATH.
	out := filepath.Join(base, "out")
	code, stdout, stderr := run("run", "--kernel", images.Patched.Kernel, "--duration", "20s", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	if code != 0 {
		t.Errorf("run with PATH=/usr/bin:/bin from %s: exit %d, want 0 (clean)", elsewhere, code)
	}
	for _, bad := range []string{"go: not found", "executable file not found", "checkout"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr mentions %q", bad)
		}
	}
	if r := readRun(t, out); r.Outcome != report.OutcomeClean || r.StressSeconds < 15 {
		t.Errorf("outcome %q after %.0f s (%s), want clean after ~20 s", r.Outcome, r.StressSeconds, r.Error)
	}
	t.Logf("standalone binary: %s in all", time.Since(start).Round(time.Second))
}
