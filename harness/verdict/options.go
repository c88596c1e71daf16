package verdict

import (
	"fmt"
	"math"
)

// DefaultAlpha is the significance level used when Options.Alpha is zero.
const DefaultAlpha = 0.05

// Options tunes the test.
type Options struct {
	// Alpha is the one-sided significance level; zero means DefaultAlpha.
	Alpha float64
	// MinReduction, when not zero, makes fixed also require that the 95%
	// upper bound on the patched/unpatched rate ratio is at most
	// 1/MinReduction: a fix must be shown to cut the rate at least that much,
	// not merely to lower it. Zero turns the check off; otherwise at least 1.
	MinReduction float64
	// Design is how the runs were chosen: a Design (adaptive) or a
	// FixedDesign. Nil means unknown, and Compare then treats the counts
	// as Poisson over seconds at risk, which is exact only if the hazard
	// does not change with a run's age. Compare names the design in
	// Result.Method, counts failed runs as full runs on the side a claim
	// says fails more (see the package doc), and judges a fix at the level
	// the design was built for, so that the design's stopping point and the
	// verdict agree. Plan.Options fills all three fields.
	Design Plan
}

// Plan is a design that schedules the runs of a comparison: Design or
// FixedDesign. Call Next for each free VM slot and whenever a run
// finishes, then Compare with Options.
type Plan interface {
	Next(State) (Action, string)
	Method() string
	Options() Options
	Validate() error

	level(x1 int) float64
	runSeconds() float64
	alpha() float64
	minReduction() float64
}

// Validate reports whether o can be used; Compare returns an Error verdict
// for options that fail it, so callers should check them up front.
func (o Options) Validate() error {
	if o.Alpha != 0 && !(o.Alpha > 0 && o.Alpha < 1) {
		return fmt.Errorf("significance level %v is out of range: use a value between 0 and 1, e.g. 0.05", o.Alpha)
	}
	if o.MinReduction != 0 && !(o.MinReduction >= 1 && !math.IsInf(o.MinReduction, 0)) {
		return fmt.Errorf("minimum reduction %v is out of range: use 0 (off) or a factor of at least 1, e.g. 10", o.MinReduction)
	}
	if d := o.Design; d != nil {
		if err := d.Validate(); err != nil {
			return err
		}
		if o.alpha() != d.alpha() || o.MinReduction != d.minReduction() {
			return fmt.Errorf("options (alpha %g, minimum reduction %g) disagree with the design's (alpha %g, minimum reduction %g), a harness bug",
				o.alpha(), o.MinReduction, d.alpha(), d.minReduction())
		}
	}
	return nil
}

func (o Options) alpha() float64 {
	if o.Alpha == 0 {
		return DefaultAlpha
	}
	return o.Alpha
}

// level is the significance level a clean patched exposure is judged at
// after x1 unpatched failures; only the adaptive design changes it.
func (o Options) level(x1 int) float64 {
	if o.Design != nil {
		return o.Design.level(x1)
	}
	return o.alpha()
}

// runSeconds is the full length of a run, or 0 when unknown.
func (o Options) runSeconds() float64 {
	if o.Design != nil {
		return o.Design.runSeconds()
	}
	return 0
}

// method names the statistical method for Result.Method.
func (o Options) method() string {
	if o.Design != nil {
		return o.Design.Method()
	}
	return fmt.Sprintf("exact conditional binomial on seconds at risk, one-sided, alpha %g", o.alpha())
}

// testName is the short name of the test in a Reason.
func (o Options) testName() string {
	if o.runSeconds() > 0 {
		return fmt.Sprintf("exact conditional binomial, failed runs counted in full, one-sided, alpha %g", o.alpha())
	}
	return fmt.Sprintf("exact conditional binomial, one-sided, alpha %g", o.alpha())
}

// cleanEnough is the one rule for "a clean patched exposure e2 proves a
// fix" against x1 unpatched failures over f1 seconds (fullRuns): Compare calls fixed with it and the design stops on it, so the
// two cannot disagree by rounding.
func (o Options) cleanEnough(x1 int, f1, e2 float64) bool {
	if x1 <= 0 || e2 <= 0 {
		return false
	}
	if binomCDF(0, x1, e2/(f1+e2)) >= o.level(x1) {
		return false
	}
	return o.MinReduction == 0 || ratioUpper(x1, f1, 0, e2, effectConf) <= 1/o.MinReduction
}

// cleanNeeded is the clean patched exposure at which cleanEnough turns
// true: (f1/(f1+e2))^x1 = level gives e2 = f1*(level^(-1/x1) - 1), and the
// ratio bound with no patched failure is f1/e2 * (0.05^(-1/x1) - 1).
func (o Options) cleanNeeded(x1 int, f1 float64) float64 {
	if x1 <= 0 {
		return math.Inf(1)
	}
	need := f1 * (math.Pow(o.level(x1), -1/float64(x1)) - 1)
	if o.MinReduction > 0 {
		need = max(need, o.MinReduction*f1*(math.Pow(1-effectConf, -1/float64(x1))-1))
	}
	return need
}

// fullRuns bounds from above the time at risk a kernel would have had if
// its runs that stopped on a failure, the race's or another, had run to
// the end: at least its number of runs at risk times the run length.
// Counts do not say how long the failed runs lasted, so a full run is
// added for each rather than swapped in; runs that went on after their
// failure (RanOn) are full already. Without a design it is the plain time
// at risk.
func (o Options) fullRuns(c Counts) float64 {
	return atRisk(c) + float64(c.Failures+c.OtherFailures-c.RanOn)*o.runSeconds()
}
