package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zswaprace/harness/cache"
	"zswaprace/harness/report"
)

// The fault-injection tests of README "Fault injection": signals and
// SIGKILL during runs and builds, a truncated image, a non-root user with
// two first-time runs at once, and a full disk under the console log.

// startHarnessEnv is startHarness with extra environment, in dir.
func startHarnessEnv(t *testing.T, env []string, args ...string) (*exec.Cmd, <-chan string) {
	t.Helper()
	cmd := exec.Command(harnessBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 10000)
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

// vmDirs are the VM temporary directories of harness process pid.
func vmDirs(pid int) []string {
	d, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("zr-vm-%d-*", pid)))
	return d
}

// SIGTERM and SIGINT during a run: the harness stops within seconds (the
// bound below), exits 3 with the run marked interrupted, and leaves no
// QEMU and no VM directory.
func TestSignalDuringRun(t *testing.T) {
	const bound = 15 * time.Second
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			out := t.TempDir()
			cmd, lines := startHarness(t, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "2m", "--out", out)
			waitLine(t, lines, "agent up", 3*time.Minute)
			time.Sleep(2 * time.Second)
			pids := qemuChildren(cmd.Process.Pid)
			dirs := vmDirs(cmd.Process.Pid)
			if len(pids) != 1 || len(dirs) != 1 {
				t.Fatalf("want one QEMU and one VM directory, found %v and %v", pids, dirs)
			}
			start := time.Now()
			cmd.Process.Signal(sig)
			code := waitExit(t, cmd, time.Minute)
			took := time.Since(start)
			t.Logf("harness stopped %s after %s", took.Round(time.Millisecond), sig)
			if took > bound {
				t.Errorf("harness took %s to stop after %s, bound %s", took.Round(time.Millisecond), sig, bound)
			}
			if code != 3 {
				t.Errorf("exit %d after %s, want 3", code, sig)
			}
			if r := readRun(t, out); r.Outcome != report.OutcomeInterrupted {
				t.Errorf("outcome %q after %s, want interrupted", r.Outcome, sig)
			}
			for _, p := range pids {
				if alive(p) {
					t.Errorf("QEMU %d still running after %s", p, sig)
					syscall.Kill(p, syscall.SIGKILL)
				}
			}
			if _, err := os.Stat(dirs[0]); err == nil {
				t.Errorf("VM directory %s left after %s", dirs[0], sig)
			}
		})
	}
}

// SIGKILL of the harness during a run: QEMU dies with it (its parent-death
// signal), and the VM directory it could not remove (sockets and a 512 MiB
// sparse swap disk) is removed by the next start of the harness.
func TestSIGKILLDuringRun(t *testing.T) {
	cmd, lines := startHarness(t, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "2m", "--out", t.TempDir())
	waitLine(t, lines, "agent up", 3*time.Minute)
	pids := qemuChildren(cmd.Process.Pid)
	dirs := vmDirs(cmd.Process.Pid)
	if len(pids) != 1 || len(dirs) != 1 {
		t.Fatalf("want one QEMU and one VM directory, found %v and %v", pids, dirs)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pids[0]) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pids[0]) {
		t.Errorf("QEMU %d outlived the harness killed with SIGKILL by 10 s", pids[0])
		syscall.Kill(pids[0], syscall.SIGKILL)
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "swap.img")); err != nil {
		t.Fatalf("the killed harness's VM directory is not there to reap (%v): the test proves nothing", err)
	}
	// Any command's start reaps it, even one that then fails on its input.
	_, _, stderr := harness(t, nil, "run", "--kernel", "/etc/hostname")
	if _, err := os.Stat(dirs[0]); err == nil {
		t.Errorf("VM directory %s of the killed harness left after the next start", dirs[0])
		os.RemoveAll(dirs[0])
	}
	if !strings.Contains(stderr, "removed the stale VM directory "+dirs[0]) {
		t.Errorf("the next start did not say it removed %s", dirs[0])
	}
}

// debianTree is the unpacked Debian source of the main cache, which
// TestMain's build made.
func debianTree(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(cache.Dir(), "src", "debian-6.1-*", "linux-source-6.1"))
	if len(dirs) == 0 {
		t.Fatalf("no unpacked Debian 6.1 source under %s", filepath.Join(cache.Dir(), "src"))
	}
	return dirs[len(dirs)-1]
}

// makeGroup returns the process group of the kernel build harness pid
// runs (make leads it), once a compiler runs in it, and the group's
// members then.
func makeGroup(t *testing.T, pid int, timeout time.Duration) (int, []int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid), "-x", "make").Output()
		if g, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			members := cache.GroupMembers(g, 0)
			cc1, _ := exec.Command("pgrep", "-g", strconv.Itoa(g), "cc1").Output()
			if len(strings.Fields(string(cc1))) > 0 {
				return g, members
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("no compiler in a make group of harness %d within %s", pid, timeout)
	return 0, nil
}

// A kernel build stopped by Ctrl-C stops within seconds with nothing of
// it left running; a build whose harness is killed with SIGKILL leaves
// its compilers running (make alone dies with the harness), and the next
// start of the harness kills them. Both build in a cache of their own
// from the Debian tree of the main cache, and are stopped at the first
// compiler of the first make (configuring builds the kconfig tools), so
// the test costs seconds, not a kernel build.
func TestSignalDuringBuild(t *testing.T) {
	src := debianTree(t)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	env := []string{"ZSWAPRACE_CACHE=" + cacheDir}
	args := []string{"build", "--source", src, "--build-jobs", "2"}
	// Real compilers, not ccache hits: they are what must not outlive the build.
	env = append(env, "CCACHE_DISABLE=1")

	// Ctrl-C: make and every compiler gone within the bound.
	const bound = 20 * time.Second
	cmd, lines := startHarnessEnv(t, env, args...)
	var stderr1 strings.Builder
	read := make(chan struct{})
	go func() {
		defer close(read)
		for l := range lines {
			stderr1.WriteString(l + "\n")
		}
	}()
	g, _ := makeGroup(t, cmd.Process.Pid, 3*time.Minute)
	start := time.Now()
	cmd.Process.Signal(os.Interrupt)
	code := waitExit(t, cmd, time.Minute)
	took := time.Since(start)
	t.Logf("build stopped %s after SIGINT", took.Round(time.Millisecond))
	if took > bound {
		t.Errorf("build took %s to stop after SIGINT, bound %s", took.Round(time.Millisecond), bound)
	}
	if code != 3 {
		t.Errorf("exit %d after SIGINT during a build, want 3", code)
	}
	select {
	case <-read:
	case <-time.After(5 * time.Second):
	}
	if strings.Contains(stderr1.String(), "build failure") || !strings.Contains(stderr1.String(), "interrupted") {
		t.Errorf("a build stopped by Ctrl-C is not reported as interrupted (a build failure would make a bisect skip the commit)")
	}
	if left := cache.GroupMembers(g, 0); len(left) > 0 {
		t.Errorf("processes of the interrupted build still running: %v", left)
		syscall.Kill(-g, syscall.SIGKILL)
	}

	// SIGKILL: the compilers outlive the harness until the next start.
	cmd, _ = startHarnessEnv(t, env, args...)
	g, members := makeGroup(t, cmd.Process.Pid, 3*time.Minute)
	defer syscall.Kill(-g, syscall.SIGKILL)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	// The compilers of the kconfig tools are short-lived: look and start
	// the next harness at once.
	orphans := cache.GroupMembers(g, 0)
	t.Logf("build group %d: %d processes before the kill, %d after", g, len(members), len(orphans))
	if len(orphans) == 0 {
		t.Log("no orphan outlived the kill this time: the reaping below is not exercised")
	}
	_, _, stderr := harness(t, env, "run", "--kernel", "/etc/hostname")
	time.Sleep(500 * time.Millisecond)
	if left := cache.GroupMembers(g, 0); len(left) > 0 {
		t.Errorf("compilers of the killed build still running after the next start: %v", left)
	}
	if len(orphans) > 0 && !strings.Contains(stderr, fmt.Sprintf("process group %d", g)) {
		t.Errorf("the next start did not say it killed the build's process group %d", g)
	}
	if recs, _ := os.ReadDir(filepath.Join(cacheDir, "build-groups")); len(recs) > 0 {
		t.Errorf("build-group records left after the next start: %d", len(recs))
	}
}

// A truncated bzImage (an interrupted copy) boots into nothing: the run
// is a boot failure that says the kernel did not boot, with the console
// tail and the truncation, not an SSH error.
func TestTruncatedImage(t *testing.T) {
	full, err := os.ReadFile(images.Patched.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "bzImage")
	os.WriteFile(img, full[:len(full)/2], 0o644)
	out := t.TempDir()
	code, stdout, stderr := harness(t, nil, "run", "--kernel", img, "--out", out)
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	r := readRun(t, out)
	if r.Outcome != report.OutcomeBootFailure {
		t.Errorf("outcome %q, want boot-failure", r.Outcome)
	}
	if !strings.HasPrefix(r.Error, "the kernel did not boot") {
		t.Errorf("error %q, want it to start with \"the kernel did not boot\"", firstLine(r.Error))
	}
	for _, w := range []string{"console", "truncated"} {
		if !strings.Contains(r.Error, w) || !strings.Contains(stdout, w) {
			t.Errorf("report and output do not mention %q:\n%s", w, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "panic:") {
		t.Errorf("panic trace:\n%s", stderr)
	}
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

// A user other than root, with no HOME, runs two first-time runs at once:
// both succeed, in a private cache of the user's own (0700) in the
// temporary directory, with one set of keys, and the initramfs holding the
// host key is private. Needs root to become the user (nobody).
func TestNonRootConcurrentFirstRuns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the harness as another user (nobody); as that user, 'make test' runs the unit tests of the cache instead")
	}
	const uid = 65534
	base, err := os.MkdirTemp("", "zswaprace-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	userCache := filepath.Join(os.TempDir(), fmt.Sprintf("zswaprace-%d", uid))
	os.RemoveAll(userCache)
	defer os.RemoveAll(userCache)
	// What the user needs: the harness, the kernel, and the agent's source
	// with its modules vendored (root's module and build caches are
	// private); root's build cache is copied so the agent builds in seconds.
	copyOut := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	repo := filepath.Join(base, "repo")
	os.Mkdir(repo, 0o755)
	for _, f := range []string{"go.mod", "go.sum", "guest", "stress"} {
		copyOut("cp", "-r", filepath.Join(root, f), repo)
	}
	vendor := exec.Command("go", "mod", "vendor")
	vendor.Dir = repo
	if out, err := vendor.CombinedOutput(); err != nil {
		t.Fatalf("go mod vendor: %v\n%s", err, out)
	}
	warm := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", os.DevNull, "./guest")
	warm.Dir, warm.Env = root, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	warm.Run()
	gocache, _ := exec.Command("go", "env", "GOCACHE").Output()
	copyOut("cp", "-r", strings.TrimSpace(string(gocache)), filepath.Join(base, "gocache"))
	copyOut("cp", harnessBin, images.Patched.Kernel, base)
	copyOut("chown", "-R", fmt.Sprint(uid), base)

	env := []string{"PATH=" + os.Getenv("PATH"), "ZSWAPRACE_ROOT=" + repo, "GOFLAGS=-mod=vendor",
		"GOCACHE=" + filepath.Join(base, "gocache"), "GOPATH=" + filepath.Join(base, "gopath")}
	type result struct {
		code   int
		stdout string
		err    error
	}
	results := make(chan result, 2)
	for i := 0; i < 2; i++ {
		out := filepath.Join(base, fmt.Sprintf("out%d", i))
		go func() {
			cmd := exec.Command(filepath.Join(base, "harness"), "run", "--kernel", filepath.Join(base, "bzImage"), "--widen", "--duration", "10s", "--out", out)
			cmd.Dir, cmd.Env = base, env
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
			var so, se strings.Builder
			cmd.Stdout, cmd.Stderr = &so, &se
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code, err = ee.ExitCode(), nil
			}
			t.Logf("run %d as uid %d: exit %d\nstdout:\n%s\nstderr:\n%s", i, uid, code, so.String(), tail(se.String(), 20))
			results <- result{code, so.String(), err}
		}()
	}
	for i := 0; i < 2; i++ {
		r := <-results
		if r.err != nil {
			t.Fatalf("run as uid %d: %v", uid, r.err)
		}
		if r.code != 0 {
			t.Errorf("a first-time run as uid %d beside another exited %d, want 0 (clean)", uid, r.code)
		}
	}
	st, err := os.Stat(userCache)
	if err != nil {
		t.Fatalf("no cache at %s, the fallback for a user without HOME: %v", userCache, err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != uid || st.Mode().Perm() != 0o700 {
		t.Errorf("cache %s: owner %d mode %04o, want %d and 0700", userCache, sys.Uid, st.Mode().Perm(), uid)
	}
	cpios, _ := filepath.Glob(filepath.Join(userCache, "initramfs", "*.cpio"))
	if len(cpios) != 1 {
		t.Errorf("initramfs files %v: want one (both runs share the keys)", cpios)
	}
	for _, c := range cpios {
		if st, _ := os.Stat(c); st.Mode().Perm() != 0o600 {
			t.Errorf("%s holds the host private key with mode %04o, want 0600", c, st.Mode().Perm())
		}
	}
}

// A full disk under a run's output: the console log cannot be written
// from the first KiB's on, the run says so ("console log incomplete"),
// is not counted as clean, and the harness exits 3 naming the full disk.
// It mounts a 8-KiB tmpfs in a mount namespace of its own (a user
// namespace too when not root), so it needs no root.
func TestDiskFullConsoleLog(t *testing.T) {
	if err := exec.Command("unshare", "--user", "--map-root-user", "--mount", "true").Run(); err != nil {
		t.Skipf("cannot make a user and mount namespace here (unshare --user --map-root-user --mount: %v): the full-disk test needs one to mount a small tmpfs", err)
	}
	mnt := t.TempDir()
	script := `mount -t tmpfs -o size=8k tmpfs "$1" && shift && exec "$@"`
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", mnt,
		harnessBin, "run", "--kernel", images.Patched.Kernel, "--widen", "--duration", "15s", "--out", filepath.Join(mnt, "run"))
	cmd.Dir = root
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s", code, so.String(), tail(se.String(), 20))
	all := so.String() + se.String()
	if code != 3 {
		t.Errorf("exit %d, want 3", code)
	}
	if !strings.Contains(all, "console log incomplete") {
		t.Errorf("the run does not say its console log is incomplete")
	}
	if !strings.Contains(all, "no space left on device") {
		t.Errorf("the output does not say the disk is full")
	}
	if strings.Contains(so.String(), "outcome: clean") {
		t.Errorf("a run without its console log counted as clean")
	}
	if strings.Contains(all, "panic:") {
		t.Errorf("panic trace in output")
	}
}

// Bad input fails before anything slow or with side effects: a patch that
// is not one, or a kernel that is not a bzImage, is rejected before apt
// installs a Debian source, before QEMU is started (to probe KVM or boot)
// and before the guest agent is built. Stand-ins for apt-get, QEMU and go
// first in PATH record any call.
func TestBadInputFailsFirst(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	for _, name := range []string{"apt-get", "qemu-system-x86_64", "go"} {
		script := fmt.Sprintf("#!/bin/sh\necho %s >> %s\nexit 1\n", name, calls)
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	notPatch := filepath.Join(t.TempDir(), "fix.patch")
	os.WriteFile(notPatch, []byte("Subject: [PATCH] a mail without its diff\n"), 0o644)
	escape := filepath.Join(t.TempDir(), "escape.patch")
	os.WriteFile(escape, []byte("--- a/../../etc/passwd\n+++ b/../../etc/passwd\n@@ -1 +1 @@\n-root\n+toor\n"), 0o644)
	env := []string{"PATH=" + bin + ":" + os.Getenv("PATH")}
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		// debian:6.12 is not installed here: reading it would run apt-get.
		{"compare, not a patch, uninstalled source", []string{"compare", "--source", "debian:6.12", "--patch", notPatch, "--out", t.TempDir()}, "no unified diff"},
		{"build, patch leaving the tree", []string{"build", "--source", "debian:6.12", "--patch", escape}, "outside the source tree"},
		{"run, not a kernel", []string{"run", "--kernel", "/etc/hostname"}, "not a bootable x86 kernel image"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(calls)
			start := time.Now()
			code, stdout, stderr := harness(t, env, tt.args...)
			took := time.Since(start)
			if code != 3 {
				t.Errorf("exit %d, want 3", code)
			}
			if !strings.Contains(stdout+stderr, tt.want) {
				t.Errorf("output lacks %q", tt.want)
			}
			if b, err := os.ReadFile(calls); err == nil {
				t.Errorf("ran %s before rejecting the input", strings.Join(strings.Fields(string(b)), ", "))
			}
			if took > 5*time.Second {
				t.Errorf("took %s to reject the input", took.Round(time.Millisecond))
			}
		})
	}
}
