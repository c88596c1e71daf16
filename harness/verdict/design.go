package verdict

import (
	"fmt"
	"math"
	"strings"
)

// DefaultTarget is the number of unpatched race failures stage 1 collects
// when Design.Target is zero.
const DefaultTarget = 3

// Design is the adaptive two-stage design (see the package doc): it says
// which kernel to run next so that the final Compare is exact.
type Design struct {
	// Alpha is the one-sided significance level; zero means DefaultAlpha.
	Alpha float64
	// Target is the number of unpatched race failures to collect before
	// judging the patched kernel; zero means DefaultTarget.
	Target int
	// RunSeconds is the stress duration of every run. Runs are never cut
	// short to fit a target: a run's hazard may depend on its age, and
	// only full runs keep the patched and unpatched runs alike.
	RunSeconds float64
	// Budget is the most the comparison may spend, in the unit of
	// State.Spent; stage 1 stops at half of it.
	Budget float64
	// MinReduction is as in Options: stage 2 then runs until the ratio
	// bound reaches 1/MinReduction as well.
	MinReduction float64
}

// Action is what to do with a free VM slot.
type Action int

// The actions Design.Next returns.
const (
	RunUnpatched Action = iota + 1
	RunPatched
	// Wait leaves the slot idle until a run in flight finishes; those
	// runs may decide what comes next. Next never says Wait with nothing
	// in flight.
	Wait
	// Stop ends the comparison: nothing is in flight, call Compare.
	Stop
)

func (a Action) String() string {
	switch a {
	case RunUnpatched:
		return "run unpatched"
	case RunPatched:
		return "run patched"
	case Wait:
		return "wait"
	case Stop:
		return "stop"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// State is everything the design may look at: the finished runs' counts
// (Boots counting every finished run), the runs in flight, and the budget
// used so far.
type State struct {
	Unpatched, Patched                 Counts
	InFlightUnpatched, InFlightPatched int
	// Spent is the budget used so far, in Budget's unit. Wall-clock
	// seconds since the comparison started (boots included) make Budget a
	// deadline whatever the number of VMs.
	Spent float64
}

// Validate reports whether d can schedule runs.
func (d Design) Validate() error {
	if err := (Options{Alpha: d.Alpha, MinReduction: d.MinReduction}).Validate(); err != nil {
		return err
	}
	switch {
	case d.Target < 0:
		return fmt.Errorf("target of %d unpatched failures is out of range: use at least 1", d.Target)
	case !(d.RunSeconds > 0) || math.IsInf(d.RunSeconds, 0):
		return fmt.Errorf("run duration %v s is out of range: use a positive duration", d.RunSeconds)
	case !(d.Budget > 0) || math.IsInf(d.Budget, 0):
		return fmt.Errorf("budget %v s is out of range: use a positive duration", d.Budget)
	}
	return nil
}

// Options are the options Compare must be given for data d collected.
func (d Design) Options() Options {
	return Options{Alpha: d.alpha(), MinReduction: d.MinReduction, Design: d}
}

// Method names the design and the test, for reports.
func (d Design) Method() string {
	s := fmt.Sprintf("two-stage inverse sampling (unpatched until %d race failures, then a fixed clean patched exposure), exact conditional binomial with failed runs counted in full, one-sided alpha %g",
		d.target(), d.alpha())
	if d.MinReduction > 0 {
		s += fmt.Sprintf(", fixed only if the 95%% upper bound on the rate ratio is at most 1/%g", d.MinReduction)
	}
	return s
}

func (d Design) alpha() float64 {
	return Options{Alpha: d.Alpha}.alpha()
}

func (d Design) minReduction() float64 { return d.MinReduction }

func (d Design) runSeconds() float64 { return d.RunSeconds }

func (d Design) target() int {
	if d.Target == 0 {
		return DefaultTarget
	}
	return d.Target
}

// level is the significance level at which a clean patched exposure is
// judged after x1 unpatched failures. Runs still in flight when stage 1
// reaches its target can push x1 past it; the level then shrinks to
// alpha^(x1/Target), which keeps the clean exposure asked for at
// c(Target) times the unpatched one, the multiple the proof is about. A
// stage 1 cut short by the budget keeps alpha: the simulation, and the
// Poisson sum in the package doc, show the total stays within alpha.
func (d Design) level(x1 int) float64 {
	if t := d.target(); x1 > t {
		return math.Pow(d.alpha(), float64(x1)/float64(t))
	}
	return d.alpha()
}

// Next says what to do with one free VM slot, and why in a few words for a
// progress line. Call it for each free slot, and again whenever a run
// finishes.
func (d Design) Next(s State) (Action, string) {
	a, k := d.decide(s)
	return a, d.explain(k, s)
}

// why is the reason behind a decision; explain turns it into words. The
// simulation calls decide millions of times, so decide formats nothing.
type why int

const (
	whyInvalid why = iota
	whyStage1
	whyStage1Finishing
	whyNotReproduced
	whyUnpatchedNoBoot
	whyStage2
	whyPatchedFailed
	whyCannotFix
	whyCovered
	whyBudget
)

func (d Design) decide(s State) (Action, why) {
	if d.Validate() != nil {
		return d.stop(s, whyInvalid)
	}
	un, pa := s.Unpatched, s.Patched
	fits := s.Spent+d.RunSeconds <= d.Budget
	if pa == (Counts{}) && s.InFlightPatched == 0 {
		// Stage 1. A kernel that never boots would otherwise burn half
		// the budget.
		if un.BootFailures >= 3 && un.BootFailures == un.Boots {
			return d.stop(s, whyUnpatchedNoBoot)
		}
		if un.Failures < d.target() && s.Spent < d.Budget/2 {
			if !fits {
				return d.stop(s, whyBudget)
			}
			return RunUnpatched, whyStage1
		}
		// Stage 1 is over, but its runs in flight are counted before
		// the target of stage 2 is set from them.
		if s.InFlightUnpatched > 0 {
			return Wait, whyStage1Finishing
		}
	}
	if un.Failures == 0 {
		return d.stop(s, whyNotReproduced)
	}
	if pa.Failures > 0 {
		return d.stop(s, whyPatchedFailed)
	}
	if cannotFix(un, pa) {
		return d.stop(s, whyCannotFix)
	}
	opt := d.Options()
	if opt.cleanEnough(un.Failures, opt.fullRuns(un), pa.Exposure+float64(s.InFlightPatched)*d.RunSeconds) {
		return d.stop(s, whyCovered)
	}
	if !fits {
		return d.stop(s, whyBudget)
	}
	return RunPatched, whyStage2
}

// stop ends the comparison once the runs in flight have finished: every
// run started is counted.
func (d Design) stop(s State, k why) (Action, why) {
	return stopOrWait(s), k
}

func (d Design) explain(k why, s State) string {
	un, pa := s.Unpatched, s.Patched
	inFlight := ""
	if n := s.InFlightUnpatched + s.InFlightPatched; n > 0 {
		inFlight = fmt.Sprintf("; waiting for %s in flight", runs(n))
	}
	need := func() float64 {
		opt := d.Options()
		return opt.cleanNeeded(un.Failures, opt.fullRuns(un))
	}
	switch k {
	case whyInvalid:
		return "invalid design: " + d.Validate().Error() + inFlight
	case whyStage1:
		return fmt.Sprintf("stage 1: unpatched has failed on the race %s of the %d wanted, %s used of %s",
			times(un.Failures), d.target(), seconds(s.Spent), seconds(d.Budget))
	case whyStage1Finishing:
		return fmt.Sprintf("stage 1 done with %s; waiting for %s in flight before setting the patched target",
			plural(un.Failures, "unpatched failure", "unpatched failures"), plural(s.InFlightUnpatched, "unpatched run", "unpatched runs"))
	case whyNotReproduced:
		return "the unpatched kernel did not fail on the race in half the budget: the race was not reproduced" + inFlight
	case whyUnpatchedNoBoot:
		return fmt.Sprintf("the unpatched kernel failed to boot in all %d runs", un.Boots) + inFlight
	case whyStage2:
		return fmt.Sprintf("stage 2: patched clean for %s (%s in flight) of the %s that would show a fix",
			seconds(pa.Exposure), runs(s.InFlightPatched), seconds(need()))
	case whyPatchedFailed:
		return fmt.Sprintf("the patched kernel failed on the race %s: it cannot be fixed", times(pa.Failures)) + inFlight
	case whyCannotFix:
		return strings.Join(ruledOut(un, pa), "; ") + inFlight
	case whyCovered:
		return fmt.Sprintf("patched clean time reaches the %s that shows a fix", seconds(need())) + inFlight
	case whyBudget:
		return fmt.Sprintf("budget spent (%s of %s, runs of %s)", seconds(s.Spent), seconds(d.Budget), seconds(d.RunSeconds)) + inFlight
	}
	return "?"
}
