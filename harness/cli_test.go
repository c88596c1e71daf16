package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

// capture runs f with os.Stdout and os.Stderr sent to files and returns
// what it printed on each.
func capture(t *testing.T, f func()) (stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	o, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = o, e
	defer func() { os.Stdout, os.Stderr = oldOut, oldErr }()
	f()
	o.Close()
	e.Close()
	bo, _ := os.ReadFile(o.Name())
	be, _ := os.ReadFile(e.Name())
	return string(bo), string(be)
}

// commands are the commands whose flags parseArgs reads.
var commands = map[string]func([]string) int{
	"compare": func(a []string) int { return cmdCompare(context.Background(), a) },
	"build":   func(a []string) int { return cmdBuild(context.Background(), a) },
	"run":     func(a []string) int { return cmdRun(context.Background(), a) },
	"bench":   func(a []string) int { return cmdBench(context.Background(), a) },
	"merge":   func(a []string) int { return cmdMerge(context.Background(), a) },
}

// Every row of the README's exit code table.
func TestExitCodeTable(t *testing.T) {
	// compare and merge: the verdict.
	for v, want := range map[verdict.Verdict]int{
		verdict.Fixed: 0, verdict.NotFixed: 1, verdict.Regressed: 1, verdict.Inconclusive: 2, verdict.Error: 3,
	} {
		if got := verdictExit(v); got != want {
			t.Errorf("verdict %s exits %d, want %d", v, got, want)
		}
	}
	// run: the outcome.
	for o, want := range map[report.Outcome]int{
		report.OutcomeClean: 0, report.OutcomeCorruption: 1, report.OutcomeCrash: 1, report.OutcomeHang: 1,
		report.OutcomeWarning: 1, report.OutcomeWorkloadFailed: 1, report.OutcomeBootFailure: 3, report.OutcomeInfraError: 3, report.OutcomeOOM: 3,
		report.OutcomeNoWriteback: 3, report.OutcomeInterrupted: 3,
	} {
		if got := runExit(report.Run{Outcome: o}); got != want {
			t.Errorf("run with outcome %s exits %d, want %d", o, got, want)
		}
	}
	if exitFixed != 0 || exitNotFixed != 1 || exitInconclusive != 2 || exitError != 3 || exitUsage != 64 {
		t.Errorf("exit codes changed: fixed %d, not fixed %d, inconclusive %d, error %d, usage %d",
			exitFixed, exitNotFixed, exitInconclusive, exitError, exitUsage)
	}
	// A panic: the error code and a message, no trace.
	var code int
	_, stderr := capture(t, func() { code = guard(exitError, func() int { var m map[string]int; m["x"]++; return 0 }) })
	if code != exitError {
		t.Errorf("a panic exits %d, want %d", code, exitError)
	}
	if !strings.Contains(stderr, "internal error: assignment to entry in nil map at ") || !strings.Contains(stderr, "cli_test.go:") {
		t.Errorf("panic message %q lacks the cause and where it happened", stderr)
	}
	if strings.Contains(stderr, "goroutine ") {
		t.Errorf("panic printed a trace:\n%s", stderr)
	}
	if code := guard(exitError, func() int { return 2 }); code != 2 {
		t.Errorf("guard changed exit code 2 to %d", code)
	}
	capture(t, func() { code = guard(bisectAbort, func() int { panic("bisect") }) })
	if code != bisectAbort {
		t.Errorf("a panic under bisect-run exits %d, want %d (abort)", code, bisectAbort)
	}
	// bisect-run keeps git bisect's contract: help is 0, bad usage 128.
	if code := cmdBisectRun(context.Background(), []string{"-h"}); code != bisectGood {
		t.Errorf("bisect-run -h exits %d, want 0", code)
	}
	if code := cmdBisectRun(context.Background(), []string{"--widen", "extra"}); code != bisectAbort {
		t.Errorf("bisect-run with a stray argument exits %d, want %d", code, bisectAbort)
	}
}

// -h and --help print the help on stdout and exit 0, for every command and
// for the harness itself; --version prints the version and exits 0.
func TestHelpExitsZero(t *testing.T) {
	for name, cmd := range commands {
		for _, h := range []string{"-h", "--help"} {
			var code int
			stdout, _ := capture(t, func() { code = cmd([]string{h}) })
			if code != 0 {
				t.Errorf("%s %s exits %d, want 0", name, h, code)
			}
			if !strings.HasPrefix(stdout, "usage: harness "+name) {
				t.Errorf("%s %s: help not on stdout: %q", name, h, stdout)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}, {"--version"}} {
		var code int
		stdout, _ := capture(t, func() { code = harnessMain(args) })
		if code != 0 || stdout == "" {
			t.Errorf("harness %s exits %d with stdout %q, want 0 and text", args[0], code, stdout)
		}
	}
	stdout, _ := capture(t, func() { harnessMain([]string{"--version"}) })
	if !regexp.MustCompile(`^harness zswaprace \S+, revision `).MatchString(stdout) {
		t.Errorf("--version printed %q, want the module version and the revision", stdout)
	}
}

// Stray arguments, unknown flags and bad values are usage errors (64),
// with a message that names them, and nothing starts.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		want string
	}{
		{"compare", []string{"my-fix.patch"}, `unexpected argument "my-fix.patch": compare takes flags only; the patch under test goes in --patch FILE`},
		{"compare", []string{"--widen", "--", "--runs", "3"}, `unexpected argument "--runs"`},
		{"compare", []string{"--bogus"}, "flag provided but not defined: -bogus"},
		{"compare", []string{"--runs"}, "flag needs an argument: -runs"},
		{"compare", []string{"--runs", "-1"}, "--runs -1"},
		{"compare", []string{"--jobs", "-2"}, "--jobs -2"},
		{"compare", []string{"--expect", "fixd"}, `--expect "fixd": want fixed, not-fixed, regressed or inconclusive`},
		{"run", []string{"--kernel", "/nonexistent/bzImage", "extra", "--duration", "10s"}, `unexpected argument "extra": run takes flags only, and the 2 argument(s) after it would have been ignored`},
		{"run", nil, "--kernel is required"},
		{"run", []string{"--kernel", "k", "--workers", "-1"}, "--workers -1"},
		{"run", []string{"--kernel", "k", "--leak-tolerance", "-5"}, "--leak-tolerance -5: must not be negative"},
		{"compare", []string{"--leak-tolerance", "lots"}, `invalid value "lots" for flag -leak-tolerance`},
		{"build", []string{"fix.patch"}, `unexpected argument "fix.patch"`},
		{"bench", []string{"x"}, `unexpected argument "x"`},
		{"bench", []string{"--cpus", "99"}, "--cpus 99"},
		{"bench", []string{"--rows", "("}, "--rows"},
		{"merge", nil, "no shard directories"},
		{"merge", []string{"--bogus", "d"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			var code int
			stdout, stderr := capture(t, func() { code = commands[tt.cmd](tt.args) })
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			if !strings.HasPrefix(stderr, "harness "+tt.cmd+": ") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line naming the command, got %q", stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	for _, args := range [][]string{nil, {"nonsense"}} {
		var code int
		capture(t, func() { code = harnessMain(args) })
		if code != exitUsage {
			t.Errorf("harness %v exits %d, want %d", args, code, exitUsage)
		}
	}
}

// The help is grouped by topic, spells flags --long, explains --jobs
// against --build-jobs, and prints no sentinel defaults.
func TestHelpGrouped(t *testing.T) {
	stdout, _ := capture(t, func() { cmdCompare(context.Background(), []string{"--help"}) })
	last := -1
	for _, g := range []string{"Source and patch:", "Widening", "Guest sizing:", "Workload:", "Runs and verdict:", "Output:"} {
		i := strings.Index(stdout, "\n"+g)
		if i < 0 || i < last {
			t.Errorf("group %q missing or out of order in:\n%s", g, stdout)
		}
		last = i
	}
	if strings.Contains(stdout, "\nOther:") {
		t.Errorf("compare has flags outside the groups:\n%s", stdout)
	}
	for _, w := range []string{"\n  --source SPEC\n", "\n  --widen\n", "\n  --jobs N\n", "\n  --build-jobs N\n", "\n  -h, --help\n"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("help lacks %q", w)
		}
	}
	if !regexp.MustCompile(`--jobs N\n\s+VMs to run at once[^-]*not make's -j: that is\s+--build-jobs`).MatchString(stdout) {
		t.Errorf("--jobs is not explained against --build-jobs:\n%s", stdout)
	}
	if !regexp.MustCompile(`--build-jobs N\n\s+make -j for the kernel builds \(not VMs at once: that is --jobs\)`).MatchString(stdout) {
		t.Errorf("--build-jobs is not explained against --jobs:\n%s", stdout)
	}
	for _, bad := range []string{"(default -1)", "(default 0)", "(default false)", "(default \"\")", "\n  -source", "(default 0s)"} {
		if strings.Contains(stdout, bad) {
			t.Errorf("help contains %q", bad)
		}
	}
	// Every command's flags are in a group.
	for name, cmd := range commands {
		stdout, _ := capture(t, func() { cmd([]string{"-h"}) })
		if strings.Contains(stdout, "\nOther:") {
			t.Errorf("%s has flags outside the groups:\n%s", name, stdout)
		}
	}
}

// The built binary: the exit code reaches the shell, -h goes to stdout.
func TestBinaryExitCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "harness")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0},
		{[]string{"--version"}, 0},
		{[]string{"compare", "-h"}, 0},
		{[]string{"bisect-run", "--help"}, 0},
		{[]string{"bisect-summary", "-h"}, 0},
		{[]string{"bisect-summary", "--out", "o", "extra"}, exitUsage},
		// The help comes before the input is checked.
		{[]string{"compare", "--patch", "/nonexistent.patch", "-h"}, 0},
		{[]string{"compare", "--patch", "/nonexistent.patch"}, exitError},
		{nil, exitUsage},
		{[]string{"frobnicate"}, exitUsage},
		{[]string{"compare", "my-fix.patch"}, exitUsage},
		{[]string{"run", "--kernel", "/nonexistent", "extra"}, exitError}, // the missing kernel is found first
		{[]string{"merge"}, exitUsage},
		{[]string{"bisect-run", "extra"}, bisectAbort},
	} {
		cmd := exec.Command(bin, tt.args...)
		// A cache and a temporary directory of its own: start-up reaps
		// what killed harnesses left there, never anyone else's.
		cmd.Env = append(os.Environ(), "ZSWAPRACE_CACHE="+filepath.Join(dir, "cache"), "TMPDIR="+dir)
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != tt.code {
			t.Errorf("harness %s exits %d, want %d\n%s", strings.Join(tt.args, " "), got, tt.code, out)
		}
		if strings.Contains(string(out), "goroutine ") {
			t.Errorf("harness %s printed a trace:\n%s", strings.Join(tt.args, " "), out)
		}
	}
}
