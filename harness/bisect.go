package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"zswaprace/harness/fault"
	"zswaprace/harness/fsutil"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
)

// git bisect run's contract.
const (
	bisectGood  = 0
	bisectBad   = 1
	bisectSkip  = 125
	bisectAbort = 128
)

// badRule says which failures make a commit bad.
type badRule struct {
	on      map[report.Outcome]bool // outcomes that count: corruption, crash, hang
	pattern *regexp.Regexp          // when set, a crash counts only if a title matches
}

func parseBadRule(on, pattern string) (badRule, error) {
	r := badRule{on: map[report.Outcome]bool{}}
	for _, o := range strings.Split(on, ",") {
		switch o := report.Outcome(strings.TrimSpace(o)); o {
		case "any":
			r.on[report.OutcomeCorruption], r.on[report.OutcomeCrash], r.on[report.OutcomeHang] = true, true, true
		case report.OutcomeCorruption, report.OutcomeCrash, report.OutcomeHang, report.OutcomeWarning:
			r.on[o] = true
		default:
			return r, fmt.Errorf("--bad-on %q: want any (corruption, crash, hang), or a list of corruption, crash, hang, warning", o)
		}
	}
	if pattern != "" {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return r, fmt.Errorf("--crash-pattern: %v", err)
		}
		r.pattern = re
	}
	return r, nil
}

// bad says whether a run's failure is what is being bisected. With a
// pattern, it is compare's classification: a corruption always is, a crash
// or hang only when the pattern matches its title or guilty function.
func (b badRule) bad(r report.Run) bool {
	if !r.Failed() || !b.on[r.Outcome] {
		return false
	}
	if b.pattern == nil {
		return true
	}
	return report.Signature{Patterns: []*regexp.Regexp{b.pattern}}.Classify(r) == report.RaceFailure
}

// stepExit maps a bisect step's runs to git bisect's exit code: bad as soon
// as one run fails the way being bisected; skip when the kernel did not boot
// or a run proved nothing; abort when the host or harness failed; good when
// every run was clean.
func stepExit(runs []report.Run, rule badRule) int {
	for _, r := range runs {
		if rule.bad(r) {
			return bisectBad
		}
	}
	for _, r := range runs {
		switch r.Outcome {
		case report.OutcomeInfraError, report.OutcomeInterrupted:
			return bisectAbort
		}
	}
	for _, r := range runs {
		switch r.Outcome {
		case report.OutcomeBootFailure, report.OutcomeNoWriteback, report.OutcomeOOM:
			return bisectSkip
		}
	}
	return bisectGood
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

// runsPerStep is how many clean runs of the given length keep the chance of
// calling a bad commit good under miss, for a bad commit that fails at rate
// perHour: a clean stretch of T seconds has probability exp(-rate*T).
func runsPerStep(perHour, miss float64, runSeconds float64) int {
	if perHour <= 0 || miss <= 0 || miss >= 1 || runSeconds <= 0 {
		return 1
	}
	need := math.Log(1/miss) / (perHour / 3600)
	return max(1, int(math.Ceil(need/runSeconds-1e-9)))
}

// missChance is the chance that a bad commit failing at perHour shows no
// failure in seconds of stress.
func missChance(perHour, seconds float64) float64 {
	return math.Exp(-perHour / 3600 * seconds)
}

func cmdBisectRun(ctx context.Context, args []string) (code int) {
	defer func() {
		// A Go panic exits 2, which git bisect would take for "bad".
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "harness bisect-run: internal error: %v\n", r)
			code = bisectAbort
		}
	}()
	var rf runFlags
	fs := newFlags("bisect-run", "bisect-run [--tree DIR] [--rev REV] [--widen] [--bad-rate R] [--bad-on any] [--crash-pattern RE]")
	rf.register(fs)
	tree := fs.String("tree", ".", "kernel git tree (git bisect runs the step in it)")
	rev := fs.String("rev", "HEAD", "commit to test")
	widen := fs.Bool("widen", false, "apply patches/zswap-writeback-delay.patch at every step")
	badOn := fs.String("bad-on", "any", "what makes a commit bad: any, or a list of corruption, crash, hang")
	pattern := fs.String("crash-pattern", "", "a crash is bad only if its title matches this regexp (others are reported, not counted)")
	runs := fs.Int("runs", 0, "runs per step (default: from --bad-rate and --miss)")
	badRate := fs.Float64("bad-rate", 0, "failures per hour of stress measured at the bad end (make bisect measures it)")
	miss := fs.Float64("miss", 0.05, "acceptable chance of calling a bad commit good")
	measure := fs.Bool("measure", false, "run every run even after a failure, and write the failure rate to --rate-file")
	rateFile := fs.String("rate-file", "", "with --measure: file to write failures per hour into")
	measureFailures := fs.Int("measure-failures", 2, "with --measure and no --runs: run until this many failures")
	measureBudget := fs.Duration("measure-budget", 20*time.Minute, "with --measure and no --runs: give up after this much wall time")
	out := fs.String("out", "", "output directory; each step logs to a subdirectory named by commit")
	if err := fs.Parse(args); err != nil {
		return bisectAbort
	}
	rule, err := parseBadRule(*badOn, *pattern)
	if err == nil {
		err = rf.validate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run:", err)
		return bisectAbort
	}
	n := *runs
	adaptive := *measure && n == 0
	if n == 0 {
		n = runsPerStep(*badRate, *miss, rf.duration.Seconds())
	}
	p := newProgress()
	commit, img, err := buildStep(ctx, *tree, *rev, *widen, p.Say)
	dir := *out
	if dir == "" {
		dir = filepath.Join("out", "bisect")
	}
	if commit != "" {
		dir = filepath.Join(dir, "step-"+commit[:12])
	}
	step := map[string]any{"commit": commit, "rev": *rev, "runs_planned": n, "bad_rate_per_hour": *badRate, "miss_bound": *miss}
	if err != nil {
		printErr(err)
		code := errorExit(err)
		step["build_error"], step["exit"] = err.Error(), code
		writeJSONFile(filepath.Join(dir, "step.json"), step)
		fmt.Fprintf(os.Stderr, "bisect step %.12s: %s\n", commit, exitWord(code))
		return code
	}
	e, err := newEnv(ctx, rf, cacheDir(), dir, p.Say)
	if err != nil {
		printErr(err)
		return bisectAbort
	}
	var done []report.Run
	begin := time.Now()
	// more says whether to start run i: a measurement runs until it has
	// seen enough failures (however slow this machine finds them) or its
	// budget is spent; a step runs its planned runs.
	more := func(i int) bool {
		if !adaptive {
			return i <= n
		}
		failed := 0
		for _, r := range done {
			if rule.bad(r) {
				failed++
			}
		}
		return failed < *measureFailures && time.Since(begin)+rf.duration < *measureBudget
	}
	for i := 1; more(i) && ctx.Err() == nil; i++ {
		spec := e.spec("commit-"+commit[:12], i, bootOf(img), fmt.Sprintf("run-%d", i))
		spec.Stress.StopOnCorruption = true
		r := runner.Run(ctx, spec)
		done = append(done, r)
		of := fmt.Sprint(n)
		if adaptive {
			of = "?"
		}
		p.Say(fmt.Sprintf("step %.12s run %d/%s: %s after %.0f s%s", commit, i, of, r.Outcome, r.StressSeconds, firstTitle(r)))
		if c := stepExit(done, rule); c != bisectGood && !*measure {
			break
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "harness bisect-run: interrupted")
		return bisectAbort
	}
	code = stepExit(done, rule)
	failures, unrelated, exposure := 0, 0, 0.0
	for _, r := range done {
		switch {
		case rule.bad(r):
			failures++
		case r.Failed():
			unrelated++
		}
		exposure += r.Exposure()
	}
	chance := missChance(*badRate, exposure)
	if code == bisectGood && unrelated > 0 && (*badRate <= 0 || chance > *miss) {
		// Failures that are not the one bisected cut runs short: without
		// enough clean time, "good" would be a guess.
		fmt.Fprintf(os.Stderr, "bisect step %.12s: %d run(s) failed in a way not being bisected and the remaining stress is too short to call it good: skip\n", commit, unrelated)
		code = bisectSkip
	}
	step["runs"], step["failures"], step["stress_seconds"], step["exit"], step["run_details"] = len(done), failures, exposure, code, done
	if *badRate > 0 {
		step["chance_bad_called_good"] = chance
	}
	if err := writeJSONFile(filepath.Join(dir, "step.json"), step); err != nil {
		printErr(err)
		return bisectAbort
	}
	msg := fmt.Sprintf("bisect step %.12s: %s (%d runs, %d failures, %.0f s of stress", commit, exitWord(code), len(done), failures, exposure)
	if *badRate > 0 && code == bisectGood {
		msg += fmt.Sprintf("; chance a bad commit looks this clean: %.3f", chance)
	}
	fmt.Fprintln(os.Stderr, msg+"); log in "+dir)
	if *measure && *rateFile != "" {
		rate := 0.0
		if exposure > 0 {
			rate = float64(failures) / exposure * 3600
		}
		if err := fsutil.WriteFileAtomic(*rateFile, []byte(fmt.Sprintf("%.6g\n", rate))); err != nil {
			printErr(err)
			return bisectAbort
		}
	}
	return code
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
	h := sha256.Sum256([]byte(abs))
	work := filepath.Join(cacheDir(), "bisect", hex.EncodeToString(h[:8]))
	git := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "git", append([]string{"-C", work}, args...)...)
		if b, err := cmd.CombinedOutput(); err != nil {
			return fault.Newf(fault.Infra, "git "+args[0], "%v: %s", err, strings.TrimSpace(string(b)))
		}
		return nil
	}
	if _, err := os.Stat(filepath.Join(work, ".git")); err != nil {
		say("cloning " + abs + " (shared objects) into " + work)
		os.RemoveAll(work)
		if b, err := exec.CommandContext(ctx, "git", "clone", "-q", "--shared", "--no-checkout", abs, work).CombinedOutput(); err != nil {
			return commit, nil, fault.Newf(fault.Infra, "git clone", "%v: %s", err, b)
		}
		os.WriteFile(filepath.Join(work, ".git", "info", "exclude"), []byte("/o/\n/build.log\n"), 0o644)
	}
	if err := git("checkout", "-q", "-f", "--detach", commit); err != nil {
		return commit, nil, err
	}
	if err := git("clean", "-q", "-f", "-d"); err != nil {
		return commit, nil, err
	}
	var bf buildFlags
	bf.source, bf.widen = "git:"+abs+"@"+commit, widen
	fr, err := (&bf).fragments()
	if err != nil {
		return commit, nil, err
	}
	v := kernel.Variant{Name: "commit " + commit[:12]}
	if widen {
		v.Boot.Widening = kernel.WidenDelay
		wp, err := bf.patchPath("zswap-writeback-delay.patch")
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
	return commit, img, err
}
