package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zswaprace/harness/report"
)

// Bad input gets a clear message and exit code 3 (64 for a usage error),
// never a panic trace.
func TestBadInput(t *testing.T) {
	badPatch := filepath.Join(t.TempDir(), "bad.patch")
	os.WriteFile(badPatch, []byte(`--- a/mm/zswap.c
+++ b/mm/zswap.c
@@ -1,3 +1,4 @@
 this line is not in zswap.c
 nor is this one
+added
 or this one
`), 0o644)
	notKernel := filepath.Join(t.TempDir(), "vmlinux")
	os.WriteFile(notKernel, []byte("\x7fELF not a bzImage"), 0o644)
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
		code int // 3: bad input found at run time; 64: a usage error
	}{
		{"patch neither applies nor reverses", nil, []string{"build", "--patch", badPatch}, []string{"neither applies", "mm/zswap.c", "Hunk #1 FAILED"}, 3},
		{"unknown source", nil, []string{"build", "--source", "debian:4.19"}, []string{"unknown source", "debian:6.1"}, 3},
		{"source that is not a tree", nil, []string{"build", "--source", t.TempDir()}, []string{"not a kernel source tree"}, 3},
		{"kernel that is not a kernel", nil, []string{"run", "--kernel", notKernel}, []string{"not a bootable x86 kernel image"}, 3},
		{"missing kernel", nil, []string{"run", "--kernel", "/nonexistent/bzImage"}, []string{"no such file"}, 3},
		{"qemu missing", []string{"PATH=/usr/local/go/bin"}, []string{"run", "--kernel", images.Patched.Kernel, "--duration", "10s"}, []string{"not found in PATH", "apt-get install qemu-system-x86"}, 3},
		{"bad stress parameters", nil, []string{"run", "--kernel", images.Patched.Kernel, "--workers", "-1"}, []string{"workers"}, 64},
		{"unwritable output", nil, []string{"compare", "--out", "/proc/version/out"}, []string{"output directory"}, 3},
		// --widen-at on the real source: a line outside a function, a
		// file the tree does not have.
		{"widen-at outside a function", nil, []string{"build", "--widen-at", "mm/zswap.c:1"}, []string{"mm/zswap.c:1", "not inside a function body"}, 64},
		{"widen-at missing file", nil, []string{"build", "--widen-at", "mm/nosuch.c:10"}, []string{"mm/nosuch.c", "no such file in the source tree"}, 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := harness(t, tt.env, tt.args...)
			all := stdout + stderr
			if code != tt.code {
				t.Errorf("exit %d, want %d", code, tt.code)
			}
			if strings.Contains(all, "goroutine ") || strings.Contains(all, "panic:") {
				t.Errorf("panic trace in output:\n%s", all)
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.ToLower(all), strings.ToLower(w)) {
					t.Errorf("output lacks %q:\n%s", w, all)
				}
			}
		})
	}
}

// startHarness starts the harness in the background and returns it with a
// channel of its stderr lines.
func startHarness(t *testing.T, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(harnessBin, args...)
	cmd.Dir = root
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			t.Log(sc.Text())
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	return cmd, lines
}

func waitLine(t *testing.T, lines <-chan string, substr string, timeout time.Duration) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("harness ended before printing %q", substr)
			}
			if strings.Contains(l, substr) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %s", substr, timeout)
		}
	}
}

func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return 0
	case <-time.After(timeout):
		cmd.Process.Kill()
		t.Fatalf("harness still running %s after it should have stopped", timeout)
	}
	return -1
}

// qemuChildren returns the pids of QEMU processes started by pid.
func qemuChildren(pid int) []int {
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid), "qemu-system").Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	return pids
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func readRun(t *testing.T, dir string) report.Run {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		t.Fatalf("run.json: %v", err)
	}
	var r report.Run
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// QEMU killed from outside mid-run: an infrastructure error, exit 3, nothing left.
func TestQEMUKilledMidRun(t *testing.T) {
	out := t.TempDir()
	cmd, lines := startHarness(t, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "2m", "--out", out)
	waitLine(t, lines, "agent up", 3*time.Minute)
	time.Sleep(5 * time.Second)
	pids := qemuChildren(cmd.Process.Pid)
	if len(pids) != 1 {
		t.Fatalf("want one QEMU child, found %v", pids)
	}
	syscall.Kill(pids[0], syscall.SIGKILL)
	if code := waitExit(t, cmd, time.Minute); code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	r := readRun(t, out)
	if r.Outcome != report.OutcomeInfraError {
		t.Errorf("outcome %q (%s), want infra-error", r.Outcome, r.Error)
	}
}

// A guest that stops answering (QEMU frozen with SIGSTOP) is a hang within
// the deadline, and the frozen QEMU is killed.
func TestFrozenGuestIsHang(t *testing.T) {
	out := t.TempDir()
	cmd, lines := startHarness(t, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "3m", "--hang-after", "20s", "--out", out)
	waitLine(t, lines, "agent up", 3*time.Minute)
	time.Sleep(3 * time.Second)
	pids := qemuChildren(cmd.Process.Pid)
	if len(pids) != 1 {
		t.Fatalf("want one QEMU child, found %v", pids)
	}
	frozen := time.Now()
	syscall.Kill(pids[0], syscall.SIGSTOP)
	code := waitExit(t, cmd, 2*time.Minute)
	if took := time.Since(frozen); took > 60*time.Second {
		t.Errorf("hang reported after %s, deadline was 20 s", took)
	}
	if code != 1 {
		t.Errorf("exit %d, want 1 (a hang is a kernel failure)", code)
	}
	if r := readRun(t, out); r.Outcome != report.OutcomeHang {
		t.Errorf("outcome %q, want hang", r.Outcome)
	}
	if alive(pids[0]) {
		t.Errorf("frozen QEMU %d left behind", pids[0])
		syscall.Kill(pids[0], syscall.SIGKILL)
	}
}

// A kernel that panics during boot is a boot failure with the panic in the report.
func TestBootPanic(t *testing.T) {
	out := t.TempDir()
	code, stdout, _ := harness(t, nil, "run", "--kernel", images.Patched.Kernel, "--cmdline", "rdinit=/no-such-init", "--out", out)
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	r := readRun(t, out)
	if r.Outcome != report.OutcomeBootFailure {
		t.Errorf("outcome %q, want boot-failure", r.Outcome)
	}
	if !strings.Contains(r.Error, "panic") || !strings.Contains(stdout, "panic") {
		t.Errorf("the panic is not in the report: %q", r.Error)
	}
}

// Ctrl-C in the middle of a compare: every VM stops within seconds, what
// finished is kept, and the report says it was interrupted.
func TestInterruptCompare(t *testing.T) {
	out := t.TempDir()
	cmd, lines := startHarness(t, "compare", "--widen", "--runs", "2", "--duration", "2m", "--out", out)
	waitLine(t, lines, "agent up", 5*time.Minute)
	time.Sleep(5 * time.Second)
	pids := qemuChildren(cmd.Process.Pid)
	cmd.Process.Signal(os.Interrupt)
	stopped := time.Now()
	code := waitExit(t, cmd, time.Minute)
	t.Logf("stopped %s after SIGINT", time.Since(stopped))
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("QEMU %d still running after Ctrl-C", p)
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json after Ctrl-C: %v", err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted {
		t.Errorf("report does not say it was interrupted")
	}
	if rep.Verdict != "interrupted" {
		t.Errorf("an interrupted compare claims %q, want interrupted", rep.Verdict)
	}
}

// A full disk while writing results: an error naming it, exit 3, and no
// report that parses as a success.
func TestDiskFull(t *testing.T) {
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	defer exec.Command("umount", mnt).Run()
	code, stdout, stderr := harness(t, nil, "compare", "--widen", "--runs", "1", "--duration", "15s", "--out", mnt)
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	if !strings.Contains(stdout+stderr, "no space left on device") {
		t.Errorf("output does not say the disk is full:\n%s\n%s", stdout, tail(stderr, 20))
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "report.json")); err == nil {
		var rep report.Report
		if json.Unmarshal(b, &rep) == nil && rep.Verdict == "fixed" {
			t.Errorf("a report.json claiming %q was left on the full disk", rep.Verdict)
		}
	}
}

// An external, dynamically linked program runs in the guest through
// --workload, with its exit status reported.
func TestExternalWorkload(t *testing.T) {
	out := t.TempDir()
	// 2 x 160 MiB in a 256 MiB guest must swap, however slow the machine.
	code, stdout, _ := harness(t, nil, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "60s",
		"--workload", "stress-ng --vm 2 --vm-bytes 160M --verify", "--out", out)
	t.Logf("stdout:\n%s", stdout)
	if code != 0 {
		t.Errorf("exit %d, want 0 (clean)", code)
	}
	r := readRun(t, out)
	if r.Outcome != report.OutcomeClean || r.StressSeconds < 50 {
		t.Errorf("outcome %q after %.0f s (%s), want clean after ~60 s", r.Outcome, r.StressSeconds, r.Error)
	}
	if r.Counters["zswpout"] <= 0 {
		t.Errorf("the workload did not drive zswap: counters %v", r.Counters)
	}
	// A failing program is a failure of its own class (not a corruption),
	// with its exit status and its TAP results, one per test number:
	// printf prints a kselftest-like TAP stream with test 1 twice, then
	// fails on its last conversion and exits 1.
	out = t.TempDir()
	tapOut := `TAP\x20version\x2013\n1..3\nok\x201\x20first\nok\x201\x20first\nnot\x20ok\x202\x20second\nok\x203\x20third\x20#\x20SKIP\x20no\x20swap\n%d abc`
	code, stdout, _ = harness(t, nil, "run", "--kernel", images.Patched.Kernel, "--duration", "20s",
		"--workload", "printf "+tapOut, "--out", out)
	t.Logf("stdout:\n%s", stdout)
	if code != 1 {
		t.Errorf("a workload exiting non-zero gave exit %d, want 1", code)
	}
	r = readRun(t, out)
	if r.Outcome != report.OutcomeWorkloadFailed || r.Corruptions != 0 || r.Workload == nil || r.Workload.ExitCode != 1 {
		t.Fatalf("outcome %q, %d corrupt pages, workload %+v; want workload-failed, exit 1, no corruption", r.Outcome, r.Corruptions, r.Workload)
	}
	var got []string
	for _, tp := range r.Workload.Tests {
		got = append(got, tp.String())
	}
	if want := []string{"ok 1 first", "not ok 2 second", "ok 3 third # SKIP no swap"}; strings.Join(got, "|") != strings.Join(want, "|") || r.Workload.TestsPlanned != 3 {
		t.Errorf("TAP results %q (plan %d), want %q (plan 3)", got, r.Workload.TestsPlanned, want)
	}
	if !strings.Contains(r.Error, "exited 1: not ok 2 second") {
		t.Errorf("error %q does not name the exit status and the failed test", r.Error)
	}
	// A workload the guest cannot see is refused before any VM starts.
	hidden := filepath.Join(t.TempDir(), "true")
	if b, err := os.ReadFile("/bin/true"); err != nil || os.WriteFile(hidden, b, 0o755) != nil {
		t.Fatalf("copy /bin/true: %v", err)
	}
	if strings.HasPrefix(hidden, "/tmp/") {
		code, _, stderr := harness(t, nil, "run", "--kernel", images.Patched.Kernel, "--workload", hidden, "--out", t.TempDir())
		if code < 3 || !strings.Contains(stderr, "is under /tmp") {
			t.Errorf("a workload under /tmp: exit %d, want an error (3 or more) with \"is under /tmp\"", code)
		}
	}
}
