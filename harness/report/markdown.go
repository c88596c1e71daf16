package report

import (
	"fmt"
	"strings"
	"time"

	"zswaprace/harness/fsutil"
)

// WriteMarkdown writes r as a Markdown summary (summary.md) to path,
// atomically: the verdict, the side-by-side comparison, one line per run,
// then the details of every run that did not come out clean.
func WriteMarkdown(path string, r *Report) error {
	return fsutil.WriteFileAtomic(path, []byte(markdown(r)))
}

func markdown(r *Report) string {
	var b strings.Builder
	tool := r.Tool
	if tool == "" {
		tool = "zswaprace"
	}
	verdict := r.Verdict
	if verdict == "" {
		verdict = "none"
	}
	fmt.Fprintf(&b, "# %s: %s\n\n%s\n\n", tool, verdict, verdictSentence(r))

	writeFacts(&b, r)
	writeShards(&b, r)

	rows := comparisonRows(r)
	b.WriteString("\n## Comparison\n\n")
	writeMarkdownTable(&b, rows[0], rows[1:])
	writeSurvivalSection(&b, r)

	b.WriteString("\n## Runs\n\n")
	header := []string{"run", "outcome", "accel", "boot", "stress", "pages verified", "written back", "corruptions", "first failure", "what happened"}
	var runRows [][]string
	for _, v := range r.Variants {
		for _, run := range v.RunDetails {
			first := "-"
			if run.FirstFailureSeconds != nil {
				first = seconds(*run.FirstFailureSeconds)
			}
			c := junitCaseFrom(tool, v.Name, run)
			runRows = append(runRows, []string{
				c.Name, string(run.Outcome), run.Accel, seconds(run.BootSeconds), seconds(run.StressSeconds),
				grouped(run.PagesVerified), writtenBack(run.WrittenBackPages), grouped(run.Corruptions),
				first, caseMessage(c),
			})
		}
	}
	writeMarkdownTable(&b, header, runRows)

	wroteHeading := false
	for _, v := range r.Variants {
		for _, run := range v.RunDetails {
			detail := runDetail(run)
			if run.Outcome == OutcomeClean || detail == "" {
				continue
			}
			if !wroteHeading {
				b.WriteString("\n## Details\n")
				wroteHeading = true
			}
			detail = printable(detail)
			fence := codeFence(detail)
			fmt.Fprintf(&b, "\n### %s/run-%d: %s\n\n%s\n%s%s\n", v.Name, run.Index, run.Outcome, fence, detail, fence)
		}
	}
	return b.String()
}

// writeFacts lists what was compared and how.
func writeFacts(b *strings.Builder, r *Report) {
	fact := func(label, value string) {
		if value != "" {
			fmt.Fprintf(b, "- %s: %s\n", label, value)
		}
	}
	fact("Source", code(r.Source))
	patch := code(r.Patch)
	if r.PatchDirection != "" {
		patch += " (" + r.PatchDirection + ")"
	}
	fact("Patch", patch)
	for _, v := range r.Variants {
		fact("Kernel "+v.Name, code(v.Kernel))
	}
	fact("Acceleration", r.Accel)
	if r.GuestCPUs > 0 {
		fact("Guest CPUs", fmt.Sprint(r.GuestCPUs))
	}
	if r.Widening != "" {
		fact("Race window widening", r.Widening)
	}
	if r.Design != "" {
		fact("Design", r.Design)
	}
	if r.Method != "" {
		fact("Method", r.Method)
	}
	fact("Pooling", r.Pooling)
	if len(r.Signature) > 0 {
		fact("Race signature", strings.Join(r.Signature, "; "))
	}
	if r.PValue != nil {
		fact("p-value", fmt.Sprintf("%.3g", *r.PValue))
	}
	if r.RatioUpper != nil {
		fact("Patched rate / unpatched rate", fmt.Sprintf("at most %.3g (95%%)", *r.RatioUpper))
	}
	if r.NeededCleanSeconds != nil && *r.NeededCleanSeconds > 0 {
		fact("Clean patched stress needed for a fix", "more than "+seconds(*r.NeededCleanSeconds))
	}
	for _, n := range r.Notes {
		fact("Note", n)
	}
	if !r.Started.IsZero() {
		span := r.Started.Format(time.RFC3339)
		if !r.Finished.IsZero() {
			span += " to " + r.Finished.Format(time.RFC3339) +
				" (" + r.Finished.Sub(r.Started).Round(time.Second).String() + ")"
		}
		fact("Ran", span)
	}
	if r.Interrupted {
		fact("Interrupted", "yes: only the runs that finished are counted")
	}
}

// writeShards lists the comparisons a merged report pooled.
func writeShards(b *strings.Builder, r *Report) {
	if len(r.Shards) == 0 {
		return
	}
	b.WriteString("\n## Shards\n\n")
	header := []string{"shard", "directory", "verdict alone", "p-value alone", "runs (unpatched, patched)", "accel", "started"}
	var rows [][]string
	for i, s := range r.Shards {
		p := "-"
		if s.PValue != nil {
			p = fmt.Sprintf("%.3g", *s.PValue)
		}
		runs := strings.Trim(fmt.Sprint(s.Runs), "[]")
		rows = append(rows, []string{fmt.Sprint(i + 1), code(s.Dir), s.Verdict, p, runs, s.Accel, s.Started.Format(time.RFC3339)})
	}
	writeMarkdownTable(b, header, rows)
}

func writeMarkdownTable(b *strings.Builder, header []string, rows [][]string) {
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			if c = cell(c); c != "" {
				b.WriteString(" " + c)
			}
			b.WriteString(" |")
		}
		b.WriteString("\n")
	}
	row(header)
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rows {
		row(r)
	}
}

// caseMessage is what the JUnit case says about a run, for the run table.
func caseMessage(c junitCase) string {
	for _, r := range []*junitResult{c.Failure, c.Error, c.Skipped} {
		if r != nil {
			return r.Message
		}
	}
	return ""
}

// cell makes s safe inside a Markdown table cell. Leading spaces, which
// indent the corruption classes under their total, become em spaces so
// Markdown keeps them.
func cell(s string) string {
	indent := len(s) - len(strings.TrimLeft(s, " "))
	s = strings.TrimSpace(printable(s))
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", `\|`)
	if s == "" {
		return ""
	}
	return strings.Repeat("&emsp;", indent/2) + s
}

// printable replaces control characters (terminal escapes in a console
// tail) that have no business in a text file, as encoding/xml does.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return '\uFFFD'
		}
		return r
	}, s)
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

// codeFence returns a fence longer than any run of backticks in s.
func codeFence(s string) string {
	longest, run := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}
