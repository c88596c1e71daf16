package verdict

import (
	"fmt"
	"math"
	"strings"
)

// Counts is what one kernel produced over all its runs.
type Counts struct {
	// Failures counts race failures: runs that ended in a corruption, or in
	// a crash or hang matching the race's signature.
	Failures int
	// Exposure is the time at risk in seconds: the stress time of clean,
	// failed and warning runs, without OOM runs (see OOMSeconds).
	Exposure float64
	// OtherFailures counts runs with a kernel failure not attributed to the
	// race (another crash or hang, a WARNING, a failed health check). Their
	// stress time is in Exposure.
	OtherFailures int
	// RanOn counts the failures (of either kind) whose run went on to its
	// end, as a run with a WARNING does: their runs are full already, so
	// they are not counted in full a second time.
	RanOn int
	// BootFailures of Boots boot attempts failed. Boots counts every run
	// started, so that boot failures can be tested as a proportion; Compare
	// rejects counts with more boot failures than boots.
	BootFailures int
	Boots        int
	// InfraErrors counts runs the host spoiled; they say nothing about
	// the kernel.
	InfraErrors int
	// NoWriteback counts runs in which zswap wrote nothing back: they do
	// not exercise the race, so their time is not at risk.
	NoWriteback int
	// OOMs counts runs that ran out of memory, OOMSeconds their stress time.
	// Compare decides whether that time is at risk (see the package doc).
	OOMs       int
	OOMSeconds float64
	// WritebackPerSec is the median over runs of zswap pages written back
	// per stress second, the workload's strength; 0 means unknown.
	WritebackPerSec float64
}

// invalid says why c cannot be counts of real runs, or returns nil.
func invalid(name string, c Counts) error {
	bad := func(f float64) bool { return math.IsNaN(f) || math.IsInf(f, 0) || f < 0 }
	switch {
	case c.Failures < 0, c.OtherFailures < 0, c.RanOn < 0, c.RanOn > c.Failures+c.OtherFailures, c.BootFailures < 0, c.Boots < 0, c.InfraErrors < 0, c.NoWriteback < 0, c.OOMs < 0,
		bad(c.Exposure), bad(c.OOMSeconds), bad(c.WritebackPerSec),
		c.BootFailures > c.Boots, c.OOMs == 0 && c.OOMSeconds > 0:
		return fmt.Errorf("%s counts are invalid (%+v), a harness bug", name, c)
	}
	return nil
}

// unusable says why c has no time at risk, or returns nil.
func unusable(name string, c Counts) error {
	switch {
	case c.Exposure+c.OOMSeconds > 0:
		return nil
	case c.Failures+c.OtherFailures > 0:
		return fmt.Errorf("%s recorded %s but no stress time, so no failure rate can be computed",
			name, plural(c.Failures+c.OtherFailures, "failure", "failures"))
	}
	var why []string
	for _, k := range []struct {
		n         int
		one, many string
	}{
		{c.BootFailures, "boot failure", "boot failures"},
		{c.InfraErrors, "infra error", "infra errors"},
		{c.NoWriteback, "run without zswap writeback", "runs without zswap writeback"},
		{c.OOMs, "run out of memory", "runs out of memory"},
	} {
		if k.n > 0 {
			why = append(why, plural(k.n, k.one, k.many))
		}
	}
	if len(why) == 0 {
		return fmt.Errorf("%s ran no stress (no runs recorded)", name)
	}
	return fmt.Errorf("%s has no usable stress time (%s)", name, strings.Join(why, ", "))
}
