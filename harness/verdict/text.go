package verdict

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// notes says in words which of one kernel's runs did not count as they
// would for a plain clean or race-failed run; other is the other kernel,
// whose OOMs change how this one's count.
func notes(name string, c, other Counts) []string {
	var out []string
	if c.BootFailures > 0 {
		out = append(out, fmt.Sprintf("%s: %d of %d boots failed, not time at risk", name, c.BootFailures, c.Boots))
	}
	if c.InfraErrors > 0 {
		out = append(out, fmt.Sprintf("%s: %s hit a host (infrastructure) error and did not count", name, runs(c.InfraErrors)))
	}
	if c.NoWriteback > 0 {
		out = append(out, fmt.Sprintf("%s: zswap wrote nothing back in %s, which did not count since such a run never reaches the race", name, runs(c.NoWriteback)))
	}
	if c.OOMs > 0 {
		if other.OOMs > 0 {
			out = append(out, fmt.Sprintf("%s: %s ran out of memory", name, runs(c.OOMs)))
		} else {
			its := "their"
			if c.OOMs == 1 {
				its = "its"
			}
			out = append(out, fmt.Sprintf("%s: %s ran out of memory; %s %s of stress count as time at risk without a race failure",
				name, runs(c.OOMs), its, seconds(c.OOMSeconds)))
		}
	}
	if c.OtherFailures > 0 {
		out = append(out, fmt.Sprintf("%s: %s failed other than by the race (another crash or hang, a WARNING or a failed health check); their time counts at risk, not as race failures",
			name, runs(c.OtherFailures)))
	}
	return out
}

func noteTail(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return "; other runs: " + strings.Join(notes, "; ")
}

// rateText is a rate with its interval, e.g. "45/h, 95% CI 9.3 to 132/h".
func rateText(r Rate) string {
	return fmt.Sprintf("%s/h, 95%% CI %s to %s/h", num(r.PerHour), num(r.Low), num(r.High))
}

// ratioText states the effect size a verdict rests on; it is empty without
// a bound.
func ratioText(upper *float64, fullRuns bool) string {
	if upper == nil {
		return ""
	}
	how := "95%"
	if fullRuns {
		how = "95%, failed unpatched runs counted in full"
	}
	if *upper < 1 {
		return fmt.Sprintf("; the patched rate is at most 1/%s of the unpatched rate (%s)", num(1 / *upper), how)
	}
	return fmt.Sprintf("; the patched rate is at most %s times the unpatched rate (%s)", num(*upper), how)
}

// num prints two significant digits, but never in exponent form and never
// dropping integer digits: 132, 45, 9.3, 0.62.
func num(f float64) string {
	if f == 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	dec := max(0, 1-int(math.Floor(math.Log10(math.Abs(f)))))
	return strconv.FormatFloat(f, 'f', dec, 64)
}

func times(n int) string {
	return plural(n, "time", "times")
}

func runs(n int) string {
	return plural(n, "run", "runs")
}

// plural names n things, given the singular and plural noun.
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

func seconds(s float64) string {
	if s < 10 {
		return fmt.Sprintf("%.1f s", s)
	}
	return fmt.Sprintf("%.0f s", s)
}

func pval(p float64) string {
	return fmt.Sprintf("%.2g", p)
}
