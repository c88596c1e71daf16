package main

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zswaprace/harness/fault"
	"zswaprace/harness/report"
	"zswaprace/harness/verdict"
)

func crashRun(outcome report.Outcome, title, fn string) report.Run {
	kind := string(outcome)
	return report.Run{Outcome: outcome, CrashTitles: []string{title}, Reports: []report.KernelReport{{Kind: kind, Title: title, Function: fn}}}
}

func TestStepExit(t *testing.T) {
	run := func(outcome report.Outcome) report.Run { return report.Run{Outcome: outcome} }
	zswapBug := crashRun(report.OutcomeCrash, "kernel BUG in zswap_writeback_entry", "zswap_writeback_entry")
	anyRule, _ := parseBadRule("any", nil, nil)
	learned := anyRule
	learned.sig = learned.sig.Learn([]report.Run{zswapBug})
	corruptionOnly, _ := parseBadRule("corruption", nil, nil)
	pattern, _ := parseBadRule("any", []string{"zswap_"}, nil)
	ignoring, _ := parseBadRule("any", nil, []string{"zswaprace test"})
	bootWarning := report.Run{Outcome: report.OutcomeClean, Reports: []report.KernelReport{{Kind: "warning", Title: "WARNING in zswaprace test noise", BeforeWorkload: true}}}
	// The demo race corrupts a page and then crashes: a run that does both.
	corruptThenCrash := crashRun(report.OutcomeCrash, "kernel BUG in zswap_writeback_entry", "zswap_writeback_entry")
	corruptThenCrash.Corruptions = 3
	tests := []struct {
		name string
		runs []report.Run
		rule badRule
		want int
		why  string
	}{
		{"all clean", []report.Run{run("clean"), run("clean")}, learned, bisectGood, ""},
		{"corruption", []report.Run{run("clean"), run("corruption")}, learned, bisectBad, "run 2: 1 corrupt pages"},
		{"the bad end's crash", []report.Run{zswapBug}, learned, bisectBad, "kernel BUG in zswap_writeback_entry"},
		{"same guilty function, other title", []report.Run{crashRun("crash", "general protection fault in zswap_writeback_entry", "zswap_writeback_entry")}, learned, bisectBad, ""},
		{"an unrelated crash is a skip", []report.Run{crashRun("crash", "general protection fault in ext4_fill_super", "ext4_fill_super")}, learned, bisectSkip, "not the bisected failure"},
		{"a crash with nothing learned is a skip", []report.Run{zswapBug}, anyRule, bisectSkip, "not the bisected failure"},
		{"a crash matching --crash-pattern", []report.Run{zswapBug}, pattern, bisectBad, ""},
		{"an unrelated hang is a skip", []report.Run{run("hang")}, learned, bisectSkip, "hang"},
		{"a warning is a skip", []report.Run{crashRun("warning", "WARNING in ext4_write", "ext4_write")}, learned, bisectSkip, "warning"},
		{"corrupt then crash counts under --bad-on corruption", []report.Run{corruptThenCrash}, corruptionOnly, bisectBad, "3 corrupt pages"},
		{"a matching crash when only corruption counts", []report.Run{zswapBug}, func() badRule { r := corruptionOnly; r.sig = learned.sig; return r }(), bisectSkip, ""},
		{"a report at boot is a skip", []report.Run{run("clean"), bootWarning}, learned, bisectSkip, `run 2: the kernel reports "WARNING in zswaprace test noise" at boot`},
		{"an ignored report at boot is clean", []report.Run{bootWarning}, ignoring, bisectGood, ""},
		{"boot failure", []report.Run{run("boot-failure")}, learned, bisectSkip, "proves nothing"},
		{"no writeback proves nothing", []report.Run{run("clean"), run("no-writeback")}, learned, bisectSkip, "no-writeback"},
		{"a failing --workload is the race's", []report.Run{run("clean"), run("workload-failed")}, learned, bisectBad, "run 2: workload-failed"},
		{"oom is a mis-sized run", []report.Run{run("oom")}, learned, bisectSkip, "oom"},
		{"infrastructure error aborts", []report.Run{run("infra-error")}, learned, bisectAbort, ""},
		{"interrupted aborts", []report.Run{run("interrupted")}, learned, bisectAbort, ""},
		{"the first skip decides", []report.Run{run("clean"), run("hang"), run("oom")}, learned, bisectSkip, "run 2: hang"},
		{"a host failure wins over a skip", []report.Run{run("hang"), run("infra-error")}, learned, bisectAbort, "run 2: infra-error"},
		{"bad wins over an earlier skip or abort", []report.Run{run("infra-error"), run("hang"), run("corruption")}, learned, bisectBad, "run 3:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := stepExit(tt.runs, tt.rule)
			if got != tt.want {
				t.Errorf("stepExit = %d (%s), want %d", got, why, tt.want)
			}
			if !strings.Contains(why, tt.why) {
				t.Errorf("reason %q does not say %q", why, tt.why)
			}
			if got != bisectGood && why == "" {
				t.Error("a step that is not good must say why")
			}
		})
	}
}

// A hang that left no report at the bad end must not make every silent
// hang bad: a starved VM on a busy host looks the same.
func TestSilentHangIsNotLearned(t *testing.T) {
	rule, _ := parseBadRule("any", nil, nil)
	silent := report.Run{Outcome: report.OutcomeHang}
	stall := crashRun(report.OutcomeHang, "INFO: rcu detected stall in swap_readpage", "swap_readpage")
	lockup := crashRun(report.OutcomeHang, "BUG: soft lockup in zswap_frontswap_store", "zswap_frontswap_store")
	learned := rule.learn([]report.Run{silent, stall, lockup, crashRun(report.OutcomeCrash, "kernel BUG in zswap_writeback_entry", "zswap_writeback_entry")})
	if len(learned.sig.Titles) != 1 {
		t.Errorf("learned %q, want only the zswap BUG", learned.sig.Titles)
	}
	if code, why := learned.judge(silent); code != bisectSkip {
		t.Errorf("a silent hang at a step gave %s (%s), want skip", exitWord(code), why)
	}
}

func TestErrorExit(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fault.New(fault.Build, "make", errors.New("error: x")), bisectSkip},
		{fault.New(fault.Boot, "boot", errors.New("panic")), bisectSkip},
		{fault.New(fault.Infra, "qemu", errors.New("died")), bisectAbort},
		{fault.New(fault.Usage, "tree", errors.New("not a commit")), bisectAbort},
		{errors.New("untyped"), bisectAbort},
	}
	for _, tt := range tests {
		if got := errorExit(tt.err); got != tt.want {
			t.Errorf("errorExit(%v) = %d, want %d", tt.err, got, tt.want)
		}
		if got := errorExit(tt.err); got > 127 && got != bisectAbort || got == 2 {
			t.Errorf("exit %d is outside git bisect's contract", got)
		}
	}
}

func TestParseBadRule(t *testing.T) {
	if _, err := parseBadRule("crashes", nil, nil); err == nil {
		t.Error("accepted --bad-on crashes")
	}
	if _, err := parseBadRule("any", []string{"("}, nil); err == nil {
		t.Error("accepted a bad regexp")
	}
	r, err := parseBadRule("corruption,hang", nil, nil)
	if err != nil || !r.on["corruption"] || !r.on["hang"] || r.on["crash"] {
		t.Errorf("got %+v, %v", r.on, err)
	}
}

// A measurement taken with other run flags holds for another failure rate:
// a step must refuse it rather than trust it.
func TestBadEndFromOtherFlagsRefused(t *testing.T) {
	dir := t.TempDir()
	var f bisectFlags
	f.rf.duration, f.rf.cpus = 60e9, 1
	other := f.rf
	other.cpus = 2
	path := filepath.Join(dir, "bad-end.json")
	if err := writeJSONFile(path, badEndFile{Config: (&bisectFlags{rf: other, widen: true}).config(), BadEnd: verdict.BadEnd{Failures: 3, Exposure: 100}}); err != nil {
		t.Fatal(err)
	}
	f.badEnd, f.widen = path, true
	b := &bisector{f: f, p: newProgress()}
	if be, code := b.loadBadEnd(t.Context()); be != nil || code != bisectAbort {
		t.Errorf("a measurement with --cpus 2 was used for a --cpus 1 step (code %d)", code)
	}
	f.rf.cpus = 2
	b.f = f
	if be, _ := b.loadBadEnd(t.Context()); be == nil || be.Failures != 3 {
		t.Errorf("the matching measurement was refused")
	}
}

func TestBisectSummary(t *testing.T) {
	out := t.TempDir()
	sha := func(c byte) string { return strings.Repeat(string(c), 40) }
	good, bad, s1, s2, s3 := sha('0'), sha('f'), sha('5'), sha('3'), sha('4')
	step := func(commit string, v map[string]any) {
		if err := writeJSONFile(filepath.Join(out, "step-"+commit[:12], "step.json"), v); err != nil {
			t.Fatal(err)
		}
	}
	step(bad, map[string]any{"verdict": "bad", "runs": 6, "failures": 4, "stress_seconds": 150.0, "subject": "tip"})
	step(good, map[string]any{"verdict": "good", "runs": 3, "clean_seconds": 180.0, "subject": "base", "chance_bad_called_good": 0.008})
	step(s1, map[string]any{"verdict": "skip", "runs": 1, "reason": "run 1: the kernel reports \"WARNING in x\" at boot", "subject": "noise"})
	step(s2, map[string]any{"verdict": "good", "runs": 3, "clean_seconds": 180.0, "subject": "docs", "step_miss": 0.02})
	step(s3, map[string]any{"verdict": "bad", "runs": 1, "failures": 1, "reason": "run 1: 2 corrupt pages", "subject": "mm: the culprit"})
	log := "git bisect start 'f' '0'\n# skip: [" + s1 + "] noise\ngit bisect skip " + s1 + "\n# good: [" + s2 + "] docs\ngit bisect good " + s2 + "\ngit bisect bad " + s3 + "\n# first bad commit: [" + s3 + "]\n"
	be := &badEndFile{BadEnd: verdict.BadEnd{Failures: 4, Exposure: 150}, StepMiss: 0.01}
	s, err := summarize(out, good, bad, s3, "", strings.NewReader(log), be)
	if err != nil {
		t.Fatal(err)
	}
	// The good end and two judged steps: three verdicts, one of them run
	// with --miss 0.02.
	if s.Verdicts != 3 || math.Abs(s.WrongBound-0.04) > 1e-12 || len(s.Skipped) != 1 || s.Subject != "mm: the culprit" {
		t.Errorf("got %d verdicts, bound %v, %d skipped, subject %q", s.Verdicts, s.WrongBound, len(s.Skipped), s.Subject)
	}
	var b strings.Builder
	s.print(&b)
	for _, want := range []string{"culprit: " + s3, "at boot", "at most 0.040", "skip"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the table does not say %q:\n%s", want, b.String())
		}
	}
	// A step that git recorded otherwise than it said is an error, not a
	// table that lies.
	os.WriteFile(filepath.Join(out, "step-"+s2[:12], "step.json"), []byte(`{"verdict":"bad"}`), 0o644)
	if _, err := summarize(out, good, bad, s3, "", strings.NewReader(log), be); err == nil {
		t.Error("a step whose verdict differs from git's log was accepted")
	}
}

func TestBuildReasonNamesTheError(t *testing.T) {
	err := fault.New(fault.Build, "make bzImage", errors.New("exit status 2; first errors:\n  mm/page_io.c:560:2: error: #error \"zswaprace test: this commit does not build\"\n  make[3]: *** [x] Error 1"))
	if got := buildReason(err); !strings.Contains(got, "does not build\"") || strings.Contains(got, "\n") {
		t.Errorf("buildReason = %q", got)
	}
}

// At the culprit the race may first show as a crash the bad end never
// showed: that rules out good, but the step must go on looking for the
// race. A commit that cannot be judged at all ends the step at once.
func TestEndsStep(t *testing.T) {
	rule, _ := parseBadRule("any", nil, nil) // the bad end showed corruption only
	bootWarning := report.Run{Outcome: report.OutcomeClean, Reports: []report.KernelReport{{Kind: "warning", Title: "WARNING in x", BeforeWorkload: true}}}
	for _, tt := range []struct {
		name string
		r    report.Run
		ends bool
	}{
		{"clean", report.Run{Outcome: report.OutcomeClean}, false},
		{"the race", report.Run{Outcome: report.OutcomeCorruption, Corruptions: 1}, true},
		{"a crash the bad end never showed", crashRun(report.OutcomeCrash, "kernel BUG in zswap_writeback_entry", "zswap_writeback_entry"), false},
		{"an unrelated hang", report.Run{Outcome: report.OutcomeHang}, false},
		{"a report at boot", bootWarning, true},
		{"boot failure", report.Run{Outcome: report.OutcomeBootFailure}, true},
		{"no writeback", report.Run{Outcome: report.OutcomeNoWriteback}, true},
		{"infra error", report.Run{Outcome: report.OutcomeInfraError}, true},
	} {
		code, _ := rule.judge(tt.r)
		if got := endsStep(code, tt.r); got != tt.ends {
			t.Errorf("%s: endsStep = %v, want %v", tt.name, got, tt.ends)
		}
	}
}

// By hand, inside git bisect, a step finds the bad end's measurement that
// an earlier step kept in the cache, by refs/bisect/bad; outside a bisect,
// with no --bad-end, it says what to do and aborts.
func TestBadEndFoundByHand(t *testing.T) {
	t.Setenv("ZSWAPRACE_CACHE", t.TempDir())
	tree := t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", tree, "-c", "user.name=t", "-c", "user.email=t@example.invalid"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("commit", "-q", "--allow-empty", "-m", "bad")
	bad := git("rev-parse", "HEAD")
	var f bisectFlags
	f.tree, f.widen = tree, true
	f.rf.duration, f.rf.cpus = 60e9, 1
	b := &bisector{f: f, p: newProgress()}
	if be, code := b.loadBadEnd(t.Context()); be != nil || code != bisectAbort {
		t.Fatalf("outside a bisect, with no --bad-end: %v, %d; want abort", be, code)
	}
	git("update-ref", "refs/bisect/bad", bad)
	if err := writeJSONFile(badEndPath(tree, bad), badEndFile{Commit: bad, Config: f.config(), BadEnd: verdict.BadEnd{Failures: 4, Exposure: 118}, StepMiss: 0.01}); err != nil {
		t.Fatal(err)
	}
	be, _ := b.loadBadEnd(t.Context())
	if be == nil || be.Commit != bad || be.Failures != 4 {
		t.Errorf("the kept measurement was not found: %+v", be)
	}
}
