package verdict

import (
	"fmt"
	"math"
)

// FixedDesign runs a set number of runs of each kernel, the unpatched ones
// first, and skips the patched runs left once the patched kernel can no
// longer be called fixed. The plan's size does not depend on the outcomes
// and stopping early only ever loses a fix, so the test at alpha is exact
// (conservative) without the adaptive design's argument.
type FixedDesign struct {
	Runs         int     // runs started per kernel, boot failures included
	RunSeconds   float64 // stress duration of each run
	Alpha        float64 // zero means DefaultAlpha
	MinReduction float64 // as in Options
}

// Validate reports whether d can schedule runs.
func (d FixedDesign) Validate() error {
	if err := (Options{Alpha: d.Alpha, MinReduction: d.MinReduction}).Validate(); err != nil {
		return err
	}
	switch {
	case d.Runs < 1:
		return fmt.Errorf("%d runs per kernel is out of range: use at least 1", d.Runs)
	case !(d.RunSeconds > 0) || math.IsInf(d.RunSeconds, 0):
		return fmt.Errorf("run duration %v s is out of range: use a positive duration", d.RunSeconds)
	}
	return nil
}

// Options are the options Compare must be given for data d collected.
func (d FixedDesign) Options() Options {
	return Options{Alpha: d.alpha(), MinReduction: d.MinReduction, Design: d}
}

// Method names the design and the test, for reports.
func (d FixedDesign) Method() string {
	s := fmt.Sprintf("fixed design (%d runs per kernel, patched runs skipped once a fix is ruled out), exact conditional binomial with failed runs counted in full, one-sided alpha %g",
		d.Runs, d.alpha())
	if d.MinReduction > 0 {
		s += fmt.Sprintf(", fixed only if the 95%% upper bound on the rate ratio is at most 1/%g", d.MinReduction)
	}
	return s
}

// Next runs the unpatched kernel d.Runs times, waits for those runs, then
// runs the patched kernel d.Runs times unless the patched kernel can no
// longer be called fixed. It never stops because the patched kernel looks
// clean: stopping at the first look that happens to be significant would
// inflate the false-fix rate, which is what Design is built to avoid.
func (d FixedDesign) Next(s State) (Action, string) {
	if err := d.Validate(); err != nil {
		return stopOrWait(s), "invalid design: " + err.Error()
	}
	un, pa := s.Unpatched, s.Patched
	if started := un.Boots + s.InFlightUnpatched; started < d.Runs {
		return RunUnpatched, fmt.Sprintf("unpatched run %d of %d", started+1, d.Runs)
	}
	if s.InFlightUnpatched > 0 {
		return Wait, "waiting for the unpatched runs before the patched ones"
	}
	if pa.Failures > 0 || cannotFix(un, pa) {
		return stopOrWait(s), "the patched kernel can no longer be called fixed: skipping its remaining runs"
	}
	if started := pa.Boots + s.InFlightPatched; started < d.Runs {
		return RunPatched, fmt.Sprintf("patched run %d of %d", started+1, d.Runs)
	}
	return stopOrWait(s), "all runs started"
}

func (d FixedDesign) alpha() float64        { return Options{Alpha: d.Alpha}.alpha() }
func (d FixedDesign) minReduction() float64 { return d.MinReduction }
func (d FixedDesign) runSeconds() float64   { return d.RunSeconds }
func (d FixedDesign) level(int) float64     { return d.alpha() }

// stopOrWait ends the comparison once nothing is in flight: every run
// started is counted.
func stopOrWait(s State) Action {
	if s.InFlightUnpatched+s.InFlightPatched > 0 {
		return Wait
	}
	return Stop
}
