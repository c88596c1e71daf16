// Package e2e runs the harness as a user would: real kernels built from the
// Debian source, real QEMU, the real agent over SSH. It runs only with
// ZSWAPRACE_E2E=1 (make test sets it) and then fails, never skips, when
// something it needs is missing.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
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
	start := time.Now()
	if images, err = buildKernels("--widen"); err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("e2e: kernels ready in %s\n", time.Since(start).Round(time.Second))
	return m.Run()
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
