package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"zswaprace/harness/fault"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
	"zswaprace/harness/verdict"
)

// git bisect run's contract.
const (
	bisectGood  = 0
	bisectBad   = 1
	bisectSkip  = 125
	bisectAbort = 128
)

// badRule says which failures make a commit bad: the race's own, as
// compare tells them (report.Signature): a corruption, or a crash or hang
// whose title or guilty function matches one the bad end showed, or
// --crash-pattern. Any other kernel failure makes the step a skip.
type badRule struct {
	on  map[report.Outcome]bool // outcomes that may count: corruption, crash, hang, warning
	sig report.Signature
}

func parseBadRule(on string, patterns, ignore []string) (badRule, error) {
	r := badRule{on: map[report.Outcome]bool{}}
	for _, o := range strings.Split(on, ",") {
		switch o := report.Outcome(strings.TrimSpace(o)); o {
		case "any":
			r.on[report.OutcomeCorruption], r.on[report.OutcomeCrash], r.on[report.OutcomeHang] = true, true, true
			r.on[report.OutcomeWorkloadFailed] = true
		case report.OutcomeCorruption, report.OutcomeCrash, report.OutcomeHang, report.OutcomeWarning, report.OutcomeWorkloadFailed:
			r.on[o] = true
		default:
			return r, fmt.Errorf("--bad-on %q: want any (corruption, crash, hang, workload-failed), or a list of corruption, crash, hang, warning, workload-failed", o)
		}
	}
	var err error
	if r.sig.Patterns, err = compileAll("crash-pattern", patterns); err != nil {
		return r, err
	}
	r.sig.Ignore, err = compileAll("ignore", ignore)
	return r, err
}

// judge says what one run shows: bad when it failed the way being
// bisected; skip, with the reason, when it failed another way or proved
// nothing; abort when the host or the harness failed; good when clean.
func (b badRule) judge(r report.Run) (int, string) {
	if r.Corruptions > 0 || r.Outcome == report.OutcomeCorruption {
		// Corruption is the race's own evidence, even when a crash followed.
		if b.on[report.OutcomeCorruption] {
			return bisectBad, fmt.Sprintf("%d corrupt pages", max(r.Corruptions, 1))
		}
		return bisectSkip, "corrupt pages, but --bad-on leaves corruption out"
	}
	switch r.Outcome {
	case report.OutcomeInfraError, report.OutcomeInterrupted:
		return bisectAbort, fmt.Sprintf("%s: %s", r.Outcome, firstLine(r.Error))
	case report.OutcomeBootFailure, report.OutcomeNoWriteback, report.OutcomeOOM:
		return bisectSkip, fmt.Sprintf("%s proves nothing: %s", r.Outcome, firstLine(r.Error))
	}
	if r.Failed() {
		title := strings.TrimPrefix(firstTitle(r), ": ")
		if b.sig.Classify(r) == report.RaceFailure && b.on[r.Outcome] {
			return bisectBad, fmt.Sprintf("%s: %s", r.Outcome, title)
		}
		if b.sig.Classify(r) == "" {
			return bisectGood, "" // only --ignore'd reports
		}
		return bisectSkip, fmt.Sprintf("%s %q is not the bisected failure (its signature: %s)", r.Outcome, title, b.describe())
	}
	for _, k := range r.Reports {
		if k.BeforeWorkload && k.Kind != "oom" && !b.ignored(k.Title) {
			return bisectSkip, fmt.Sprintf("the kernel reports %q at boot, before the workload: a commit with another bug cannot be judged", k.Title)
		}
	}
	return bisectGood, ""
}

// learn adds the titles of the bad end's crashes and hangs to the
// signature, but not those a starved VM on a busy host gives as well: a
// hang or panic that left no report (its title says nothing about where
// the kernel was), RCU stalls, lockups and hung tasks. Learned, they would
// make a good commit bad on a bad afternoon. --crash-pattern can still
// name them.
func (b badRule) learn(runs []report.Run) badRule {
	b.sig = b.sig.Learn(runs)
	titles := b.sig.Titles[:0:0]
	for _, t := range b.sig.Titles {
		if !hostLoadTitle(t) {
			titles = append(titles, t)
		}
	}
	b.sig.Titles = titles
	return b
}

func hostLoadTitle(t string) bool {
	l := strings.ToLower(t)
	for _, w := range []string{"no report on the console", "stall", "lockup", "hung task", "blocked for more than", "task hung"} {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

func (b badRule) ignored(title string) bool {
	for _, p := range b.sig.Ignore {
		if p.MatchString(title) {
			return true
		}
	}
	return false
}

func (b badRule) describe() string {
	s := b.sig.Strings()
	if len(s) == 0 {
		return "corrupt pages only"
	}
	return "corrupt pages, " + strings.Join(s, ", ")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// stepExit is the step's exit from its runs: bad if any run failed the
// way being bisected (that is evidence, whatever else happened); else
// abort if the host or harness failed; else the first run that is not
// clean makes it a skip; all clean is good.
func stepExit(runs []report.Run, rule badRule) (int, string) {
	for i, r := range runs {
		if code, why := rule.judge(r); code == bisectBad {
			return code, fmt.Sprintf("run %d: %s", runNumber(r, i), why)
		}
	}
	for i, r := range runs {
		if code, why := rule.judge(r); code == bisectAbort {
			return code, fmt.Sprintf("run %d: %s", runNumber(r, i), why)
		}
	}
	for i, r := range runs {
		if code, why := rule.judge(r); code != bisectGood {
			return code, fmt.Sprintf("run %d: %s", runNumber(r, i), why)
		}
	}
	return bisectGood, ""
}

// endsStep says whether a run judged code ends its step at once: the race's
// failure, a host failure, or a run that shows the commit cannot be judged.
// Another kernel failure during the workload does not: the race may still
// show in the runs that follow.
func endsStep(code int, r report.Run) bool {
	return code != bisectGood && !(code == bisectSkip && r.Failed())
}

// runNumber is r's number as its directory shows it (runs finish out of
// order when several run at once).
func runNumber(r report.Run, i int) int {
	if r.Index > 0 {
		return r.Index
	}
	return i + 1
}

// bisectChildEnv marks the bisect-run process that does the work.
const bisectChildEnv = "ZSWAPRACE_BISECT_CHILD"

// bisectAsChild runs bisect-run again as a child and keeps git bisect's
// contract whatever happens to it: 0, 1 and 125 pass through; anything
// else (a Go crash exits 2, a usage error 64, a kill by signal) becomes
// 128, abort. git bisect run, started by hand, has no other wrapper.
func bisectAsChild(argv []string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	cmd := exec.Command(exe, argv...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), bisectChildEnv+"=1")
	// If this process is killed, the child is told to stop too (the
	// signal goes when the starting thread dies: keep it alive).
	runtime.LockOSThread()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	// Ctrl-C reaches the child by itself (same process group), and it
	// cleans up and exits: this process only waits. A SIGTERM sent to this
	// process alone is passed on. (Caught rather than ignored: an ignored
	// signal would stay ignored in the child.)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGTERM {
				cmd.Process.Signal(sig)
			}
		}
	}()
	err = cmd.Wait()
	if cmd.ProcessState == nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	code := cmd.ProcessState.ExitCode()
	switch code {
	case bisectGood, bisectBad, bisectSkip, bisectAbort:
		return code
	}
	fmt.Fprintf(os.Stderr, "harness bisect-run: the step ended with exit %d (%s): aborting the bisection rather than calling the commit bad\n", code, cmd.ProcessState)
	return bisectAbort
}

// errorExit maps an error before any run to git bisect's exit code: a
// kernel that does not build (or a patch that does not apply at this
// commit) is skipped; anything else aborts the bisection.
func errorExit(err error) int {
	switch fault.KindOf(err) {
	case fault.Build, fault.Boot:
		return bisectSkip
	}
	return bisectAbort
}

// badEndFile is what bisect-run --measure found at the bad end: every step
// of the bisection reads it, to know how long to stay clean before calling
// a commit good, and which crashes are the race's.
type badEndFile struct {
	Commit string `json:"commit"`
	Tree   string `json:"tree"`
	// Config is the run flags it was measured with: a step with other
	// flags fails at another rate, so it may not use this measurement.
	Config string `json:"config"`
	Widen  bool   `json:"widen"`
	verdict.BadEnd
	Runs          int      `json:"runs"`
	OtherFailures int      `json:"other_failures"`
	BudgetSpent   bool     `json:"budget_spent"`
	Signature     []string `json:"signature"`
	// The bisection's wrong-culprit target, the verdicts it allows for, and
	// so the miss chance each step is given.
	Wrong      float64 `json:"wrong_culprit_target"`
	Candidates int     `json:"candidates"`
	Steps      int     `json:"steps"`
	StepMiss   float64 `json:"step_miss"`
	CleanSec   float64 `json:"clean_seconds_per_good_step"`
}

func readBadEnd(path string) (*badEndFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var be badEndFile
	if err := json.Unmarshal(b, &be); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return &be, nil
}

// runConfig is what a failure rate depends on: the run flags, and what
// counts as a failure.
func runConfig(rf runFlags, widen bool) string {
	rf.qemu, rf.hangAfter = "", 0
	if rf.zpool == "" {
		// --zpool's default became the kernel line's; spelled as the
		// default line's, measurements recorded before still match.
		rf.zpool = kernel.DefaultProfile().DefaultZpool
	}
	return fmt.Sprintf("%+v widen=%v", rf, widen)
}

// config is runConfig with the step's failure definition.
func (f *bisectFlags) config() string {
	return fmt.Sprintf("%s bad-on=%s crash-pattern=%q ignore=%q", runConfig(f.rf, f.widen), f.badOn, []string(f.patterns), []string(f.ignore))
}

type bisectFlags struct {
	rf              runFlags
	tree, rev, out  string
	widen           bool
	badOn           string
	patterns        multiFlag
	ignore          multiFlag
	badEnd          string
	good            multiFlag
	wrong, miss     float64
	measure         bool
	runs            int
	measureFailures int
	measureBudget   time.Duration
	jobs            int
}

func cmdBisectRun(ctx context.Context, args []string) (code int) {
	defer func() {
		// A Go panic exits 2, which git bisect would take for "bad".
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "harness bisect-run: internal error: %v\n", r)
			code = bisectAbort
		}
	}()
	var f bisectFlags
	fs := newFlags("bisect-run", "bisect-run [--tree DIR] [--rev REV] [--widen] [--bad-end FILE | --measure] [--wrong P]\n\n"+
		"Run by 'git bisect run' (make bisect does that in its own clone), or by hand from inside\n"+
		"the tree: 'git bisect start BAD GOOD; git bisect run /path/to/bin/harness bisect-run --widen'.\n"+
		"The first step measures the bad end (refs/bisect/bad) until it has failed --measure-failures\n"+
		"times; every step then runs until the race fails (bad) or its clean stress leaves less than\n"+
		"the step's miss chance that a bad commit would look this clean (good). Other kernel failures,\n"+
		"and commits that do not build or boot, are skipped with the reason.")
	f.rf.register(fs)
	fs.StringVar(&f.tree, "tree", ".", "kernel git tree (git bisect runs the step in it)")
	fs.StringVar(&f.rev, "rev", "HEAD", "commit to test")
	fs.BoolVar(&f.widen, "widen", false, "apply the kernel line's delay patch from patches/ at every step ("+kernel.PatchHelp(func(p *kernel.Profile) string { return p.WidenPatch })+")")
	fs.StringVar(&f.badOn, "bad-on", "any", "which of the race's failures make a commit bad: any (corruption, crash, hang, workload-failed), or a list of those and warning")
	fs.Var(&f.patterns, "crash-pattern", "regexp: a crash or hang whose title or guilty function matches is the race's, besides the titles the bad end shows (repeatable)")
	fs.Var(&f.ignore, "ignore", "regexp: kernel reports whose title matches are known and benign (repeatable)")
	fs.StringVar(&f.badEnd, "bad-end", "", "the bad end's measurement (bisect-run --measure writes it; default: measured on the first step of a bisection by hand and kept in the cache)")
	fs.Var(&f.good, "good", "with --measure: the good end (repeatable), to count the commits the bisection will judge")
	fs.Float64Var(&f.wrong, "wrong", 0.05, "with --measure: the chance of naming a wrong culprit the whole bisection may take")
	fs.Float64Var(&f.miss, "miss", 0, "chance that this step calls a bad commit good (default: the measurement's per-step share of --wrong)")
	fs.BoolVar(&f.measure, "measure", false, "this commit is the bad end: run until it has failed --measure-failures times (or for --runs runs) and write --bad-end")
	fs.IntVar(&f.runs, "runs", 0, "with --measure: a fixed number of runs instead")
	fs.IntVar(&f.measureFailures, "measure-failures", 4, "with --measure: failures to see at the bad end (more make every good step shorter)")
	fs.DurationVar(&f.measureBudget, "measure-budget", 20*time.Minute, "with --measure: give up after this much wall time")
	fs.IntVar(&f.jobs, "jobs", 0, "VMs at once within a step (default: what the host's cores and memory fit)")
	fs.StringVar(&f.out, "out", "", "output directory; each step logs to a subdirectory named by commit (default: beside the harness's clone of the tree, in its cache)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return bisectGood
		}
		return bisectAbort
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "harness bisect-run: unexpected argument %q (flags go before nothing else; see -h)\n", fs.Arg(0))
		return bisectAbort
	}
	rule, err := parseBadRule(f.badOn, f.patterns, f.ignore)
	if err == nil {
		err = f.rf.validate()
	}
	if err == nil {
		err = f.check()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	if f.tree, err = filepath.Abs(f.tree); err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	if f.out == "" {
		// Never in the tree (git bisect runs the step there), and not in
		// the checkout, which a copied bin/harness does not have.
		f.out = cloneDir(f.tree) + ".logs"
	}
	if f.jobs == 0 {
		f.jobs = defaultJobs(f.rf.cpus, f.rf.mem)
	}
	b := &bisector{f: f, rule: rule, p: newProgress()}
	if f.measure {
		code, _ = b.measureBadEnd(ctx, f.rev, f.badEnd)
		return code
	}
	be, code := b.loadBadEnd(ctx)
	if be == nil {
		return code
	}
	return b.step(ctx, be)
}

func (f *bisectFlags) check() error {
	switch {
	case f.wrong <= 0 || f.wrong >= 1:
		return fmt.Errorf("--wrong %g: want a chance between 0 and 1", f.wrong)
	case f.miss < 0 || f.miss >= 1:
		return fmt.Errorf("--miss %g: want a chance between 0 and 1 (0: from the measurement)", f.miss)
	case f.measureFailures < 1:
		return fmt.Errorf("--measure-failures %d: at least 1", f.measureFailures)
	case f.runs < 0:
		return fmt.Errorf("--runs %d: must not be negative", f.runs)
	case f.jobs < 0:
		return fmt.Errorf("--jobs %d: want the number of VMs at once, or 0 for what the host fits", f.jobs)
	case f.measureBudget <= 0:
		return fmt.Errorf("--measure-budget must be positive")
	case f.measure && f.runs == 0 && f.measureBudget < f.rf.duration:
		return fmt.Errorf("--measure-budget %s is shorter than one run (--duration %s)", f.measureBudget, f.rf.duration)
	case !f.measure && (f.runs > 0 || len(f.good) > 0):
		return fmt.Errorf("--runs and --good only go with --measure: a step runs until it can say good or bad")
	}
	return nil
}

type bisector struct {
	f    bisectFlags
	rule badRule
	p    *progress
}

// loadBadEnd reads the bad end's measurement, or, by hand inside a git
// bisect, measures refs/bisect/bad first and keeps the result in the
// cache for the steps that follow.
func (b *bisector) loadBadEnd(ctx context.Context) (*badEndFile, int) {
	path := b.f.badEnd
	if path != "" {
		be, err := readBadEnd(path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "harness bisect-run: --bad-end: %v (bisect-run --measure at the bad end writes it)\n", err)
			return nil, bisectAbort
		}
		if be.Config != b.f.config() {
			fmt.Fprintf(os.Stderr, "harness bisect-run: %s was measured with other run flags, and a failure rate holds only for the flags it was measured with:\n  measured: %s\n  this step: %s\n", path, be.Config, b.f.config())
			return nil, bisectAbort
		}
		return be, 0
	}
	bad, err := gitOut(ctx, b.f.tree, "rev-parse", "--verify", "-q", "refs/bisect/bad")
	if err != nil {
		fmt.Fprintf(os.Stderr, "harness bisect-run: no measurement of the bad end: pass --bad-end FILE (bisect-run --measure writes it), or run inside 'git bisect' (no refs/bisect/bad in %s)\n", b.f.tree)
		return nil, bisectAbort
	}
	path = badEndPath(b.f.tree, bad)
	if be, err := readBadEnd(path); err == nil && be.Config == b.f.config() {
		return be, 0
	}
	goods, _ := gitOut(ctx, b.f.tree, "for-each-ref", "--format=%(objectname)", "refs/bisect/good-*")
	b.f.good = strings.Fields(goods)
	b.p.Say(fmt.Sprintf("first step of this bisection: measuring the bad end %.12s", bad))
	code, be := b.measureBadEnd(ctx, bad, path)
	if be == nil || code != bisectBad {
		fmt.Fprintf(os.Stderr, "harness bisect-run: the bad end %.12s did not fail (%s): nothing to bisect\n", bad, exitWord(code))
		return nil, bisectAbort
	}
	return be, 0
}

// measureBadEnd runs the bad end until it has failed measureFailures
// times (however slow this machine is) or the budget is spent, learns the
// race's signature from its crashes, and writes the measurement to path.
func (b *bisector) measureBadEnd(ctx context.Context, rev, path string) (int, *badEndFile) {
	f := b.f
	commit, img, err := buildStep(ctx, f.tree, rev, f.widen, b.p.Say)
	dir := b.stepDir(commit)
	if err != nil {
		return b.buildFailed(commit, rev, dir, err), nil
	}
	if path == "" {
		path = badEndPath(f.tree, commit)
	}
	e, err := newEnv(ctx, f.rf, cacheDir(), dir, b.p.Say)
	if err != nil {
		printErr(err)
		return bisectAbort, nil
	}
	begin := time.Now()
	var runs []report.Run
	failures := func() (n int) {
		rule := b.rule.learn(runs)
		for _, r := range runs {
			if c, _ := rule.judge(r); c == bisectBad {
				n++
			}
		}
		return n
	}
	// Every run started counts, so runs in flight when the last failure
	// comes are waited for.
	start := func(done []report.Run, inFlight int) bool {
		if f.runs > 0 {
			return len(done)+inFlight < f.runs
		}
		exposure := 0.0
		for _, r := range done {
			exposure += r.Exposure()
		}
		if len(done) >= 3 && exposure == 0 {
			return false // it does not boot, or proves nothing: no use spending the budget
		}
		return failures() < f.measureFailures && time.Since(begin)+f.rf.duration < f.measureBudget
	}
	runs = b.pool(ctx, e, commit, img, start, func(r report.Run) bool {
		return r.Outcome == report.OutcomeInfraError
	}, func(r report.Run, done []report.Run) {
		runs = done
		b.p.Say(fmt.Sprintf("bad end %.12s run %d: %s after %.0f s%s (%d of %d failures)", commit, r.Index, r.Outcome, r.StressSeconds, firstTitle(r), failures(), f.measureFailures))
	})
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run: interrupted")
		return bisectAbort, nil
	}
	rule := b.rule.learn(runs)
	be := &badEndFile{Commit: commit, Tree: f.tree, Config: f.config(), Widen: f.widen, Runs: len(runs),
		Signature: rule.sig.Strings(), Wrong: f.wrong}
	code, why := bisectGood, ""
	for i, r := range runs {
		c, w := rule.judge(r)
		switch {
		case c == bisectBad:
			be.Failures++
			code = bisectBad
		case r.Failed():
			be.OtherFailures++
		}
		if c == bisectAbort || (c == bisectSkip && code == bisectGood) {
			code, why = c, fmt.Sprintf("run %d: %s", runNumber(r, i), w)
		}
		be.Exposure += r.Exposure()
	}
	if code == bisectAbort {
		fmt.Fprintf(os.Stderr, "harness bisect-run: %s\n", why)
		return bisectAbort, nil
	}
	be.BudgetSpent = f.runs == 0 && be.Failures < f.measureFailures
	be.Candidates = b.candidates(ctx, commit)
	be.Steps = verdict.BisectSteps(be.Candidates)
	be.StepMiss = verdict.StepMiss(f.wrong, be.Steps)
	be.CleanSec = be.CleanNeeded(be.StepMiss)
	step := map[string]any{"commit": commit, "subject": subject(ctx, f.tree, commit), "rev": rev, "role": "bad end",
		"exit": code, "verdict": exitWord(code), "reason": why, "runs": len(runs), "failures": be.Failures,
		"stress_seconds": be.Exposure, "run_details": runs}
	err = writeJSONFile(filepath.Join(dir, "step.json"), step)
	if err == nil && be.Failures > 0 {
		err = writeJSONFile(path, be)
		if err == nil && path != badEndPath(f.tree, commit) {
			// By hand, a bisection of the same tree finds it here too.
			err = writeJSONFile(badEndPath(f.tree, commit), be)
		}
	}
	if err != nil {
		printErr(err)
		return bisectAbort, nil
	}
	msg := fmt.Sprintf("bad end %.12s: %d race failures in %.0f s of stress over %d runs", commit, be.Failures, be.Exposure, len(runs))
	if be.OtherFailures > 0 {
		msg += fmt.Sprintf(" (%d other failures, not counted)", be.OtherFailures)
	}
	if be.Failures > 0 {
		msg += fmt.Sprintf("; signature: %s; %d commits to judge, so each step may miss with chance %.3g (%.2g in all): a good step needs %.0f s of clean stress",
			rule.describe(), be.Candidates, be.StepMiss, f.wrong, be.CleanSec)
		if be.BudgetSpent {
			msg += fmt.Sprintf(" (the budget ran out before %d failures: a longer --measure-budget shortens every good step)", f.measureFailures)
		}
	} else if why != "" {
		msg += "; " + why
	}
	fmt.Fprintln(os.Stderr, msg+"; log in "+dir)
	return code, be
}

// step is one bisection step: runs until the race fails (bad), another
// failure or a run that proves nothing makes it a skip, or its clean stress
// makes a bad commit this clean unlikely enough (good).
func (b *bisector) step(ctx context.Context, be *badEndFile) int {
	f := b.f
	if be.Failures < 1 {
		fmt.Fprintln(os.Stderr, "harness bisect-run: the bad end's measurement has no failure: nothing to bisect")
		return bisectAbort
	}
	miss := f.miss
	if miss == 0 {
		miss = be.StepMiss
	}
	need := be.CleanNeeded(miss)
	rule := b.rule
	rule.sig.Titles = nil
	for _, s := range be.Signature {
		if !strings.HasPrefix(s, "/") {
			rule.sig.Titles = append(rule.sig.Titles, s)
		}
	}
	commit, img, err := buildStep(ctx, f.tree, f.rev, f.widen, b.p.Say)
	dir := b.stepDir(commit)
	if err != nil {
		return b.buildFailed(commit, f.rev, dir, err)
	}
	e, err := newEnv(ctx, f.rf, cacheDir(), dir, b.p.Say)
	if err != nil {
		printErr(err)
		return bisectAbort
	}
	clean := 0.0
	// Start runs while the stress so far, counting the runs in flight as
	// if they stay clean, is short of what a good verdict needs. The race's
	// failure ends the step (bad), and so does a run that makes the commit
	// impossible to judge (it does not boot, reports at boot, never writes
	// back). Another kernel failure during the workload rules out good but
	// not bad: the step goes on looking for the race until its time is up,
	// then skips. At the culprit, the race may show itself first as a crash
	// the bad end happened not to show.
	start := func(done []report.Run, inFlight int) bool {
		return be.MissChance(clean+float64(inFlight)*f.rf.duration.Seconds()) > miss
	}
	decisive := func(r report.Run) bool {
		code, _ := rule.judge(r)
		return endsStep(code, r)
	}
	runs := b.pool(ctx, e, commit, img, start, decisive, func(r report.Run, done []report.Run) {
		code, why := rule.judge(r)
		if decisive(r) {
			b.p.Say(fmt.Sprintf("step %.12s run %d: %s: %s", commit, r.Index, exitWord(code), why))
			return
		}
		state := fmt.Sprintf("clean for %.0f s", r.Exposure())
		if code != bisectGood {
			// A full run's time, so that a commit that fails early every
			// time ends as a skip after as many runs as a good step.
			clean += f.rf.duration.Seconds() - r.Exposure()
			state = why + "; not good, still looking for the race"
		}
		clean += r.Exposure()
		b.p.Say(fmt.Sprintf("step %.12s run %d: %s; %.0f of %.0f s of stress (a bad commit would look this clean with chance %.3f)",
			commit, r.Index, state, clean, need, be.MissChance(clean)))
	})
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run: interrupted")
		return bisectAbort
	}
	code, why := stepExit(runs, rule)
	failures := 0
	if code == bisectBad {
		failures = 1
	}
	step := map[string]any{"commit": commit, "subject": subject(ctx, f.tree, commit), "rev": f.rev, "exit": code, "verdict": exitWord(code),
		"reason": why, "runs": len(runs), "failures": failures, "clean_seconds": clean, "clean_needed": need,
		"step_miss": miss, "run_details": runs}
	if code == bisectGood {
		step["chance_bad_called_good"] = be.MissChance(clean)
	}
	if err := writeJSONFile(filepath.Join(dir, "step.json"), step); err != nil {
		printErr(err)
		return bisectAbort
	}
	msg := fmt.Sprintf("bisect step %.12s: %s (%d runs, %.0f s clean", commit, exitWord(code), len(runs), clean)
	switch code {
	case bisectGood:
		msg += fmt.Sprintf("; a bad commit would look this clean with chance %.3f, at most %.3g", be.MissChance(clean), miss)
	default:
		msg += "; " + why
	}
	fmt.Fprintln(os.Stderr, msg+"); log in "+dir)
	return code
}

// pool runs one commit's runs, up to --jobs VMs at once: start says whether
// to start another, given the runs finished and how many are in flight;
// onDone sees each finished run, with all finished so far; a decisive run
// stops the others. Those are cut short by the harness, not the kernel, so
// they are not counted. Runs are returned in the order they finished.
func (b *bisector) pool(ctx context.Context, e *env, commit string, img *kernel.Image,
	start func(done []report.Run, inFlight int) bool, decisive func(report.Run) bool, onDone func(report.Run, []report.Run)) []report.Run {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make(chan report.Run)
	var done []report.Run
	inFlight, next, stopped := 0, 1, false
	for {
		for !stopped && ctx.Err() == nil && inFlight < b.f.jobs && start(done, inFlight) {
			i := next
			next++
			inFlight++
			go func() { results <- b.run(runCtx, e, commit, i, img) }()
		}
		if inFlight == 0 {
			return done
		}
		r := <-results
		inFlight--
		if stopped && ctx.Err() == nil && r.Outcome == report.OutcomeInterrupted {
			continue
		}
		done = append(done, r)
		onDone(r, done)
		if decisive(r) && !stopped {
			stopped = true
			cancel()
		}
	}
}

func (b *bisector) run(ctx context.Context, e *env, commit string, i int, img *kernel.Image) report.Run {
	spec := e.spec("commit-"+commit[:12], i, bootOf(img), fmt.Sprintf("run-%d", i))
	spec.Stress.StopOnCorruption = true
	return runner.Run(ctx, spec)
}

func (b *bisector) stepDir(commit string) string {
	if commit == "" {
		return b.f.out
	}
	return filepath.Join(b.f.out, "step-"+commit[:12])
}

// buildFailed records a step whose kernel did not build (skip: git bisect
// tries a neighbour) or whose tree or host failed (abort).
func (b *bisector) buildFailed(commit, rev, dir string, err error) int {
	printErr(err)
	code := errorExit(err)
	why := "the kernel does not build here: " + buildReason(err)
	if code != bisectSkip {
		why = "the step could not start: " + firstLine(err.Error())
	}
	step := map[string]any{"commit": commit, "rev": rev, "exit": code, "verdict": exitWord(code),
		"reason": why, "build_error": err.Error()}
	if commit != "" {
		step["subject"] = subject(context.Background(), b.f.tree, commit)
	}
	writeJSONFile(filepath.Join(dir, "step.json"), step)
	fmt.Fprintf(os.Stderr, "bisect step %.12s: %s (%s)\n", commit, exitWord(code), step["reason"])
	return code
}

// buildReason is the build error in one line: its first line, and the
// compiler's first error when the first line only says make failed.
func buildReason(err error) string {
	msg := err.Error()
	first := firstLine(msg)
	for _, l := range strings.Split(msg, "\n") {
		if strings.Contains(l, "error:") || strings.Contains(l, "Error ") {
			return first + " " + strings.TrimSpace(l)
		}
	}
	return first
}

// candidates is how many commits the bisection will judge: those after
// every good end up to the bad one.
func (b *bisector) candidates(ctx context.Context, bad string) int {
	args := []string{"rev-list", "--count", bad}
	for _, g := range b.f.good {
		args = append(args, "^"+g)
	}
	if len(b.f.good) == 0 {
		return 1
	}
	out, err := gitOut(ctx, b.f.tree, args...)
	n := 0
	if err == nil {
		fmt.Sscan(out, &n)
	}
	return max(n, 1)
}

func gitOut(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", append([]string{"-C", dir}, args...)...).Output()
	return strings.TrimSpace(string(out)), err
}

func subject(ctx context.Context, tree, commit string) string {
	s, _ := gitOut(ctx, tree, "log", "-1", "--format=%s", commit)
	return s
}

func exitWord(code int) string {
	switch code {
	case bisectGood:
		return "good"
	case bisectBad:
		return "bad"
	case bisectSkip:
		return "skip"
	}
	return "abort"
}

// lockFile takes an exclusive lock on path, saying so when it has to wait;
// the returned function releases it.
func lockFile(ctx context.Context, path string, say func(string)) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fault.New(fault.Infra, "lock", err)
	}
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		say("waiting for another bisection step of this tree (" + path + ")")
		done := make(chan error, 1)
		go func() { done <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
		select {
		case err := <-done:
			if err != nil {
				f.Close()
				return nil, fault.New(fault.Infra, "lock", err)
			}
		case <-ctx.Done():
			f.Close() // the waiting Flock returns with the file closed
			return nil, fault.New(fault.Infra, "lock", ctx.Err())
		}
	}
	return func() { f.Close() }, nil
}

// cloneDir is the harness's own clone of tree, in its cache: steps build
// there.
func cloneDir(tree string) string {
	h := sha256.Sum256([]byte(tree))
	return filepath.Join(cacheDir(), "bisect", hex.EncodeToString(h[:8]))
}

// badEndPath is where a bisection by hand keeps its bad end's measurement,
// beside the clone, for the steps that follow.
func badEndPath(tree, bad string) string {
	return cloneDir(tree) + ".bad-end-" + bad[:12] + ".json"
}

// buildStep checks the commit out in a harness-owned clone of the tree
// (sharing its objects; the user's tree is never touched) and builds it in
// the clone's persistent object directory, so consecutive steps only
// recompile what changed between them.
func buildStep(ctx context.Context, tree, rev string, widen bool, say func(string)) (string, *kernel.Image, error) {
	abs, err := filepath.Abs(tree)
	if err != nil {
		return "", nil, fault.New(fault.Usage, "tree", err)
	}
	if err := kernel.CheckTools(); err != nil {
		return "", nil, err
	}
	out, err := exec.CommandContext(ctx, "git", "-C", abs, "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return "", nil, fault.Newf(fault.Usage, "tree", "%s: %q is not a commit of a git repository", abs, rev)
	}
	commit := strings.TrimSpace(string(out))
	work := cloneDir(abs)
	if err := os.MkdirAll(filepath.Dir(work), 0o755); err != nil {
		return commit, nil, fault.New(fault.Infra, "bisect clone", err)
	}
	// One step at a time in a clone: from checkout to the cached image, a
	// second bisection of the same tree must not change the sources under
	// this one's build (it would cache one commit's kernel under another's
	// key).
	unlock, err := lockFile(ctx, work+".lock", say)
	if err != nil {
		return commit, nil, err
	}
	defer unlock()
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", work}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fault.Newf(fault.Infra, "git "+args[0], "%v: %s", err, strings.TrimSpace(string(b)))
		}
		return nil
	}
	clone := func() error {
		say("cloning " + abs + " (shared objects) into " + work)
		os.RemoveAll(work)
		if b, err := exec.CommandContext(ctx, "git", "clone", "-q", "--shared", "--no-checkout", abs, work).CombinedOutput(); err != nil {
			return fault.Newf(fault.Infra, "git clone", "%v: %s", err, b)
		}
		return os.WriteFile(filepath.Join(work, ".git", "info", "exclude"), []byte("/o/\n/build.log\n"), 0o644)
	}
	checkout := func() error {
		// The clone fetches what the tree gained since (a bisection by
		// hand may start on commits made after the clone).
		if git("cat-file", "-e", commit+"^{commit}") != nil {
			if err := git("fetch", "-q", abs, commit); err != nil {
				return err
			}
		}
		if err := git("checkout", "-q", "-f", "--detach", commit); err != nil {
			return err
		}
		return git("clean", "-q", "-f", "-d")
	}
	if _, err := os.Stat(filepath.Join(work, ".git")); err != nil {
		if err := clone(); err != nil {
			return commit, nil, err
		}
	}
	if err := checkout(); err != nil {
		// A clone shares the tree's objects: after a gc that pruned some
		// in the tree it is broken, and a fresh one is not.
		say(fmt.Sprintf("the clone in %s is unusable (%v): cloning again", work, firstLine(err.Error())))
		if err := clone(); err != nil {
			return commit, nil, err
		}
		if err := checkout(); err != nil {
			return commit, nil, err
		}
	}
	if head, err := gitOut(ctx, work, "rev-parse", "HEAD"); err != nil || head != commit {
		return commit, nil, fault.Newf(fault.Infra, "bisect clone", "%s has %s checked out, not %s", work, head, commit)
	}
	var bf buildFlags
	bf.source, bf.widen = "git:"+abs+"@"+commit, widen
	// Each step's tree says its line: a range may cross into one the
	// harness has no profile for, which is said as such.
	prof, err := kernel.ProfileFor(work)
	if err != nil {
		return commit, nil, err
	}
	fr, err := (&bf).fragmentsFor(prof)
	if err != nil {
		return commit, nil, err
	}
	v := kernel.Variant{Name: "commit " + commit[:12], Boot: kernel.Boot{Profile: prof.Line}}
	if widen {
		v.Boot.Widening, v.Boot.DelayParam = kernel.WidenDelay, prof.DelayParam
		wp, err := bf.patchPath(prof.WidenPatch)
		if err != nil {
			return commit, nil, err
		}
		w, err := kernel.ReadPatch(wp)
		if err != nil {
			return commit, nil, err
		}
		if err := kernel.ApplyTo(ctx, work, w, false); err != nil {
			return commit, nil, &fault.Error{Kind: fault.Build, Op: "widen patch at " + commit[:12], Err: err}
		}
		v.Steps = []kernel.Step{{Patch: w}}
	}
	plan := &kernel.Plan{Source: &kernel.Source{Spec: bf.source, Dir: work, ID: "git-" + commit}, Fragments: fr, Cache: cacheDir(), Say: say}
	img, err := plan.BuildIn(ctx, v, work)
	if img != nil {
		img.Boot = v.Boot // an image cached before profiles does not say its line
	}
	return commit, img, err
}
