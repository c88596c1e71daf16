package report

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Table writes the variants side by side as an aligned plain-text table,
// then the verdict in one sentence.
func Table(w io.Writer, r *Report) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, row := range comparisonRows(r) {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	fmt.Fprintf(w, "\n%s\n", verdictSentence(r))
}

// comparisonRows is the side-by-side comparison shared by Table and the
// Markdown summary: a header row of variant names, then one row per
// measure with a cell per variant.
func comparisonRows(r *Report) [][]string {
	header := []string{""}
	for _, v := range r.Variants {
		header = append(header, v.Name)
	}
	rows := [][]string{header}
	add := func(label string, cell func(v Variant) string) {
		row := []string{label}
		for _, v := range r.Variants {
			row = append(row, cell(v))
		}
		rows = append(rows, row)
	}
	addInt := func(label string, n func(v Variant) int) {
		add(label, func(v Variant) string { return strconv.Itoa(n(v)) })
	}

	addInt("runs", func(v Variant) int { return v.Runs })
	add("stress time", func(v Variant) string {
		s := seconds(v.StressSeconds)
		if e := v.Exposure(); e != v.StressSeconds {
			s += fmt.Sprintf(", %s counted", seconds(e))
		}
		return s
	})
	add("pages verified", func(v Variant) string { return grouped(v.PagesVerified) })
	add("written-back pages", func(v Variant) string {
		known := false
		for _, r := range v.RunDetails {
			known = known || r.WrittenBackPages >= 0
		}
		if !known && len(v.RunDetails) > 0 {
			return "unknown (no run ended with counters)"
		}
		return grouped(uint64(max(v.WrittenBackPages, 0)))
	})
	add("corruptions", func(v Variant) string { return grouped(v.Corruptions) })
	var counts []map[string]uint64
	for _, v := range r.Variants {
		counts = append(counts, v.CorruptionsByClass)
	}
	for _, c := range classOrder(counts...) {
		add("  "+c, func(v Variant) string { return grouped(v.CorruptionsByClass[c]) })
	}
	addInt("crashes", func(v Variant) int { return v.Crashes })
	titles := 0
	for _, v := range r.Variants {
		titles = max(titles, len(v.CrashTitles))
	}
	for i := range titles {
		label := ""
		if i == 0 {
			label = "  crash titles"
		}
		add(label, func(v Variant) string {
			if i < len(v.CrashTitles) {
				return v.CrashTitles[i]
			}
			return ""
		})
	}
	addInt("hangs", func(v Variant) int { return v.Hangs })
	addInt("boot failures", func(v Variant) int { return v.BootFailures })
	addInt("infra errors", func(v Variant) int { return v.InfraErrors })
	addInt("OOM runs", func(v Variant) int { return v.OOMs })
	addInt("no-writeback runs", func(v Variant) int { return v.NoWriteback })
	addInt("warning runs", func(v Variant) int { return v.Warnings })
	addHealthRows(r.Variants, add)
	addInt("race failures", func(v Variant) int { return v.Failures })
	addInt("other kernel failures", func(v Variant) int { return v.OtherFailures })
	add("race failures per hour", func(v Variant) string {
		if v.Rate == nil {
			return "-"
		}
		return fmt.Sprintf("%.3g (95%%: %.3g-%.3g)", v.Rate.Estimate, v.Rate.Low, v.Rate.High)
	})
	add("pages verified per s", func(v Variant) string { return perSecond(v.PagesPerSec) })
	add("written back per s", func(v Variant) string { return perSecond(v.WrittenBackPerSec) })
	add("contended runs", func(v Variant) string {
		n := 0
		for _, r := range v.RunDetails {
			if r.Contended {
				n++
			}
		}
		if n == 0 {
			return "0"
		}
		return fmt.Sprintf("%d (host busy: its load beside the guest, or under half the median pages/s)", n)
	})
	add("first failure at", func(v Variant) string {
		if v.FirstFailureSeconds == nil {
			return "-"
		}
		return seconds(*v.FirstFailureSeconds)
	})
	return rows
}

// verdictSentence states the verdict and its reason as one sentence.
func verdictSentence(r *Report) string {
	verdict := r.Verdict
	if verdict == "" {
		verdict = "none"
	}
	s := "Verdict: " + verdict
	if r.Reason != "" {
		s += ": " + strings.TrimSuffix(r.Reason, ".")
	}
	if r.Interrupted {
		s += " (interrupted: only the runs that finished are counted)"
	}
	return s + "."
}

// perSecond formats a median rate, "-" when unknown.
func perSecond(v *float64) string {
	if v == nil {
		return "-"
	}
	if *v >= 100 {
		return grouped(uint64(math.Round(*v)))
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

// classOrder lists the corruption classes found in counts for display:
// the base classes first (always, even at zero), then any others sorted.
func classOrder(counts ...map[string]uint64) []string {
	var extra []string
	for _, m := range counts {
		for c := range m {
			if !slices.Contains(baseClasses, c) && !slices.Contains(extra, c) {
				extra = append(extra, c)
			}
		}
	}
	slices.Sort(extra)
	return append(slices.Clone(baseClasses), extra...)
}

// seconds formats a stress time: a tenth of a second is enough detail for
// short times, and long ones get a readable duration too.
func seconds(s float64) string {
	if s < 100 {
		return strconv.FormatFloat(math.Round(s*10)/10, 'f', -1, 64) + " s"
	}
	out := fmt.Sprintf("%.0f s", s)
	if s >= 120 {
		out += " (" + time.Duration(s*float64(time.Second)).Round(time.Second).String() + ")"
	}
	return out
}

// grouped formats n with thousands separators.
func grouped(n uint64) string {
	s := strconv.FormatUint(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
