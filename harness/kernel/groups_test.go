package kernel

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"zswaprace/harness/cache"
)

// A build-like process tree: make runs a recipe whose shell starts two
// "compilers" (sleeps) and waits for them.
const sleepyMakefile = `bzImage:
	sleep 301 & sleep 302 & wait
`

// TestMain lets the test binary play a harness that builds: with
// ZR_TEST_BUILD_OWNER set it runs make in that tree through runMake, as a
// build does, until it is killed.
func TestMain(m *testing.M) {
	if tree := os.Getenv("ZR_TEST_BUILD_OWNER"); tree != "" {
		p := &Plan{Cache: os.Getenv("ZR_TEST_BUILD_CACHE"), Jobs: 1}
		err := p.runMake(context.Background(), tree, io.Discard, nil, "bzImage")
		fmt.Fprintln(os.Stderr, "make ended:", err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// make with -C tree: run it through a plain Makefile.
func sleepyTree(t *testing.T) string {
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "Makefile"), []byte(sleepyMakefile), 0o644); err != nil {
		t.Fatal(err)
	}
	return tree
}

// sleepers are the pids of the recipe's sleeps (their command lines name
// 301 or 302 seconds) in process group pgid.
func sleepers(pgid int) []int {
	var out []int
	for _, pid := range cache.GroupMembers(pgid, 0) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		c := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.HasPrefix(c, "sleep 301") || strings.HasPrefix(c, "sleep 302") {
			out = append(out, pid)
		}
	}
	return out
}

// kill -9 of the harness during a build leaves the compilers running
// (make dies with the harness, its children do not); the next start of
// the harness (ReapBuilds) kills them and removes the record, and leaves a
// live harness's build alone.
func TestReapBuildsAfterKill(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cacheDir := t.TempDir()
	tree := sleepyTree(t)
	owner := exec.Command(os.Args[0], "-test.run=^$")
	owner.Env = append(os.Environ(), "ZR_TEST_BUILD_OWNER="+tree, "ZR_TEST_BUILD_CACHE="+cacheDir)
	owner.Stderr = os.Stderr
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	defer owner.Process.Kill()
	// make leads the build's group; wait until both compilers run.
	pgid := waitBuild(t, owner.Process.Pid)
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	if _, err := os.Stat(filepath.Join(groupsDir(cacheDir), strconv.Itoa(pgid))); err != nil {
		t.Errorf("the running build's process group is not recorded: %v", err)
	}
	// The owner is alive: its build is not touched.
	ReapBuilds(cacheDir, func(s string) { t.Log(s) })
	if n := len(sleepers(pgid)); n != 2 {
		t.Fatalf("ReapBuilds killed a live harness's build: %d compilers left of 2", n)
	}
	owner.Process.Signal(syscall.SIGKILL)
	owner.Wait()
	// make got its parent-death signal; the compilers are orphans.
	time.Sleep(300 * time.Millisecond)
	orphans := sleepers(pgid)
	if len(orphans) != 2 {
		t.Fatalf("after kill -9 of the owner, want the two orphaned compilers running (what the reaping is for), found %v", orphans)
	}
	var said []string
	ReapBuilds(cacheDir, func(s string) { said = append(said, s) })
	for _, p := range orphans {
		if _, ok := cache.OwnerOf(p); ok {
			if st, _, _ := procState(p); st != "Z" {
				t.Errorf("orphaned compiler %d still running after ReapBuilds", p)
			}
		}
	}
	if left, _ := os.ReadDir(groupsDir(cacheDir)); len(left) != 0 {
		t.Errorf("build-group record left after reaping: %v", left)
	}
	if len(said) != 1 || !strings.Contains(said[0], "killed") {
		t.Errorf("ReapBuilds said %q, want one line saying what it killed", said)
	}
}

// A build that ends normally, or is cancelled, leaves no process of its
// group and no record.
func TestRunMakeCancelKillsGroup(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cacheDir := t.TempDir()
	tree := sleepyTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	p := &Plan{Cache: cacheDir, Jobs: 1}
	go func() { errc <- p.runMake(ctx, tree, io.Discard, nil, "bzImage") }()
	pgid := waitBuild(t, os.Getpid())
	defer syscall.Kill(-pgid, syscall.SIGKILL)
	start := time.Now()
	cancel()
	select {
	case <-errc:
	case <-time.After(30 * time.Second):
		t.Fatal("runMake did not return within 30 s of the cancel")
	}
	t.Logf("runMake returned %s after the cancel", time.Since(start).Round(time.Millisecond))
	if left := cache.GroupMembers(pgid, 0); len(left) != 0 {
		t.Errorf("processes of the cancelled build still running: %v", left)
	}
	if left, _ := os.ReadDir(groupsDir(cacheDir)); len(left) != 0 {
		t.Errorf("build-group record left after the build ended: %v", left)
	}
}

// waitBuild waits for a make child of parent to have both its compilers
// running, and returns make's pid, its process group.
func waitBuild(t *testing.T, parent int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(parent), "-x", "make").Output()
		if pid, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && len(sleepers(pid)) == 2 {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no make child of %d running two compilers after 20 s", parent)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func procState(pid int) (string, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	return f[0], s, nil
}
