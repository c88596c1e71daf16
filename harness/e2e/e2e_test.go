// Package e2e runs the harness as a user would: real kernels built from the
// Debian source, real QEMU, the real agent over SSH. It runs only with
// ZSWAPRACE_E2E=1 (make test sets it) and then fails, never skips, when
// something it needs is missing.
package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"zswaprace/harness/cache"
)

// builtKernels is what 'harness build --json' says of the two kernels.
type builtKernels struct {
	Unpatched struct{ Kernel, Config string } `json:"unpatched"`
	Patched   struct{ Kernel, Config string } `json:"patched"`
}

var (
	harnessBin string       // the harness, built once
	root       string       // the checkout
	images     builtKernels // the default line's, built --widen by TestMain
)

// buildKernels runs 'harness build --json' with args (its progress to
// stderr) and returns the kernels it names.
func buildKernels(args ...string) (builtKernels, error) {
	var b builtKernels
	cmd := exec.Command(harnessBin, append([]string{"build", "--json"}, args...)...)
	cmd.Dir, cmd.Stderr = root, os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return b, fmt.Errorf("harness build %s: %v", strings.Join(args, " "), err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		return b, fmt.Errorf("harness build --json printed %q: %v", out, err)
	}
	return b, nil
}

func TestMain(m *testing.M) {
	if os.Getenv("ZSWAPRACE_E2E") == "" {
		fmt.Println("e2e: set ZSWAPRACE_E2E=1 (make test does) to run the end-to-end tests")
		os.Exit(0)
	}
	os.Exit(setup(m))
}

func setup(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	root = filepath.Join(filepath.Dir(file), "..", "..")
	dir, err := os.MkdirTemp("", "zswaprace-e2e-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	harnessBin = filepath.Join(dir, "harness")
	build := exec.Command("go", "build", "-o", harnessBin, "./harness")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Printf("build harness: %v\n%s", err, out)
		return 1
	}
	flag.Parse()
	if willRun("TestDebian612BuildsAndRuns") {
		if bg612, err = startBuild(cache.Dir()+"-e2e-6.12", "--source", "debian:6.12"); err != nil {
			fmt.Println(err)
			return 1
		}
		defer bg612.stop()
	}
	start := time.Now()
	if images, err = buildKernels("--widen"); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("e2e: kernels ready in %s\n", time.Since(start).Round(time.Second))
	return m.Run()
}

// willRun says whether the -run and -skip flags let the test of this name
// run.
func willRun(name string) bool {
	for flagName, want := range map[string]bool{"test.run": true, "test.skip": false} {
		f := flag.Lookup(flagName)
		if f == nil || f.Value.String() == "" {
			continue
		}
		re, err := regexp.Compile(f.Value.String())
		if err == nil && re.MatchString(name) != want {
			return false
		}
	}
	return true
}

// bg612 is the 6.12 kernels' build. TestMain starts it first, at the
// lowest CPU priority, so that it uses what the 6.1 build and tests leave
// idle (2 VMs of one CPU each, incremental builds, boots and health
// checks leave gaps), and TestDebian612BuildsAndRuns waits for the rest:
// a cold 6.12 build run last added about 9 minutes to make test. It
// builds in a cache of its own, as the cache's lock would hold every 6.1
// build up until it finished.
var bg612 *bgBuild

type bgBuild struct {
	cmd      *exec.Cmd
	out, log bytes.Buffer
	done     chan struct{}
	err      error
	start    time.Time
	took     time.Duration
}

func startBuild(cacheDir string, args ...string) (*bgBuild, error) {
	b := &bgBuild{done: make(chan struct{}), start: time.Now()}
	// nice execs the harness, so the pid is the harness's, which stops
	// its make on SIGTERM.
	b.cmd = exec.Command("nice", append([]string{"-n", "19", harnessBin, "build", "--json"}, args...)...)
	b.cmd.Dir = root
	b.cmd.Env = append(os.Environ(), "ZSWAPRACE_CACHE="+cacheDir)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.log
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start harness build %s: %v", strings.Join(args, " "), err)
	}
	fmt.Printf("e2e: building %s in the background (nice 19, cache %s)\n", strings.Join(args, " "), cacheDir)
	go func() {
		b.err = b.cmd.Wait()
		b.took = time.Since(b.start)
		close(b.done)
	}()
	return b, nil
}

// wait waits for the build and returns its kernels.
func (b *bgBuild) wait(t *testing.T) builtKernels {
	t.Helper()
	waitStart := time.Now()
	<-b.done
	t.Logf("background build: %s from TestMain's start, %s of it waited for here", b.took.Round(time.Second), time.Since(waitStart).Round(time.Second))
	var k builtKernels
	if b.err != nil {
		t.Fatalf("harness %s: %v\n%s", strings.Join(b.cmd.Args[3:], " "), b.err, tail(b.log.String(), 40))
	}
	if err := json.Unmarshal(b.out.Bytes(), &k); err != nil {
		t.Fatalf("harness build --json printed %q: %v", b.out.String(), err)
	}
	return k
}

// stop ends a build still running when the tests are over (a filtered or
// failed run): nothing is left behind.
func (b *bgBuild) stop() {
	select {
	case <-b.done:
		return
	default:
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(time.Minute):
		b.cmd.Process.Kill()
		<-b.done
	}
}

// harness runs the harness binary from the checkout and returns its exit
// code, stdout and stderr.
func harness(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(harnessBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run harness: %v", err)
	}
	t.Logf("harness %s: exit %d\nstderr:\n%s", strings.Join(args, " "), code, tail(stderr.String(), 40))
	return code, stdout.String(), stderr.String()
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// qemuProcesses lists running QEMU processes whose command line mentions
// the given path.
func qemuProcesses(t *testing.T, mention string) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", "qemu-system").Output()
	var found []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, mention) {
			found = append(found, l)
		}
	}
	return found
}
