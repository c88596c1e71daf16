package report

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// SurvivalFile is the name of the survival plot WriteAll writes.
const SurvivalFile = "survival.svg"

// Observation is one run's time to the race's first failure: an event at
// Time, or censored at Time (the run ended without the race failing).
type Observation struct {
	Time  float64
	Event bool
}

// KMStep is the Kaplan-Meier estimate at one distinct time: AtRisk runs
// were still without a race failure just before Time, Events of them failed
// at Time and Censored ended there without failing; Survival is the
// estimated fraction of runs without a race failure after Time.
type KMStep struct {
	Time     float64
	AtRisk   int
	Events   int
	Censored int
	Survival float64
}

// KaplanMeier estimates the survival function of obs: one step per
// distinct time, in increasing order, S(t) = prod over event times ti <= t
// of (1 - d_i/n_i). A run censored at the same time as an event is counted
// at risk at that time (the usual convention: the censoring happens just
// after the event). No observations give no steps.
func KaplanMeier(obs []Observation) []KMStep {
	sorted := slices.Clone(obs)
	slices.SortFunc(sorted, func(a, b Observation) int {
		if a.Time < b.Time {
			return -1
		}
		if a.Time > b.Time {
			return 1
		}
		return 0
	})
	var steps []KMStep
	s, atRisk := 1.0, len(sorted)
	for i := 0; i < len(sorted); {
		st := KMStep{Time: sorted[i].Time, AtRisk: atRisk}
		for ; i < len(sorted) && sorted[i].Time == st.Time; i++ {
			if sorted[i].Event {
				st.Events++
			} else {
				st.Censored++
			}
		}
		s *= 1 - float64(st.Events)/float64(atRisk)
		st.Survival = s
		atRisk -= st.Events + st.Censored
		steps = append(steps, st)
	}
	return steps
}

// SurvivalCurve is one variant's time to first race failure.
type SurvivalCurve struct {
	Variant string
	Steps   []KMStep
	// Runs are the plotted runs, in RunDetails order, with what each is.
	Runs []SurvivalRun
	// Excluded counts the runs left out, by outcome: they had no time at
	// risk (boot failures, infra errors, no-writeback and OOM runs,
	// interrupted runs before any writeback).
	Excluded map[Outcome]int
}

// SurvivalRun is one plotted run.
type SurvivalRun struct {
	Index   int
	Outcome Outcome
	Observation
}

// Events counts the curve's race failures.
func (c SurvivalCurve) Events() int {
	n := 0
	for _, r := range c.Runs {
		if r.Event {
			n++
		}
	}
	return n
}

// SurvivalOf is the variant's time to first race failure. The runs are
// those whose stress time counts toward the verdict's time at risk
// (Run.Exposure > 0); the others are counted in Excluded. A run the verdict
// counted as a race failure (CountedAs "race") is an event at its first
// failure (its stress time if that is unknown). Every other plotted run is
// censored at its stress time: clean runs, interrupted runs, and runs with
// another kernel failure, which ended the run before the race could show.
func SurvivalOf(v Variant) SurvivalCurve {
	c := SurvivalCurve{Variant: v.Name, Excluded: map[Outcome]int{}}
	var obs []Observation
	for _, r := range v.RunDetails {
		if r.Exposure() <= 0 {
			c.Excluded[r.Outcome]++
			continue
		}
		o := Observation{Time: r.StressSeconds}
		if r.CountedAs != nil && *r.CountedAs == RaceFailure {
			o.Event = true
			if r.FirstFailureSeconds != nil {
				o.Time = *r.FirstFailureSeconds
			}
		}
		c.Runs = append(c.Runs, SurvivalRun{Index: r.Index, Outcome: r.Outcome, Observation: o})
		obs = append(obs, o)
	}
	c.Steps = KaplanMeier(obs)
	return c
}

// At is the curve's estimate at time t: 1 before the first event.
func (c SurvivalCurve) At(t float64) float64 {
	s := 1.0
	for _, st := range c.Steps {
		if st.Time > t {
			break
		}
		s = st.Survival
	}
	return s
}

// excludedText says which runs a curve left out, "" when none.
func (c SurvivalCurve) excludedText() string {
	var parts []string
	for _, o := range slices.Sorted(maps.Keys(c.Excluded)) {
		parts = append(parts, fmt.Sprintf("%d %s", c.Excluded[o], o))
	}
	return strings.Join(parts, ", ")
}

// survivalCaption says in words what the plot shows and what it leaves out.
func survivalCaption(curves []SurvivalCurve) string {
	s := "Time to the first race failure per run (Kaplan-Meier): the fraction of runs still without a race failure after each second of stress. " +
		"A race failure is what the verdict counts as one; + marks a run that ended without one (censored: clean, interrupted, or stopped by another kernel failure)."
	var ex []string
	for _, c := range curves {
		if t := c.excludedText(); t != "" {
			ex = append(ex, c.Variant+": "+t)
		}
	}
	if len(ex) > 0 {
		s += " Not plotted, having no time at risk: " + strings.Join(ex, "; ") + "."
	}
	return s
}

// writeSurvivalSection links the survival plot from summary.md.
func writeSurvivalSection(b *strings.Builder, r *Report) {
	var curves []SurvivalCurve
	for _, v := range r.Variants {
		curves = append(curves, SurvivalOf(v))
	}
	fmt.Fprintf(b, "\n## Time to first failure\n\n![Kaplan-Meier curves of the time to the first race failure](%s)\n\n%s\n", SurvivalFile, survivalCaption(curves))
}

// niceStep is a tick spacing of 1, 2 or 5 times a power of ten that puts
// about n ticks on [0, max].
func niceStep(max float64, n int) float64 {
	if max <= 0 || math.IsNaN(max) || math.IsInf(max, 0) {
		return 1
	}
	raw := max / float64(n)
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return m * p
		}
	}
	return 10 * p
}
