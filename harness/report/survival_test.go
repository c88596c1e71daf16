package report

import (
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func ev(t float64) Observation  { return Observation{Time: t, Event: true} }
func cen(t float64) Observation { return Observation{Time: t} }

// The expected steps are worked out by hand from S(t) = prod (1 - d/n).
func TestKaplanMeier(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []Observation
		want []KMStep
	}{
		{"no runs", nil, nil},
		{
			// Two events at 10 of 4 at risk: 1/2; one of the 2 left at
			// 20: 1/4; the censored run at 30 changes nothing.
			"ties, unsorted input",
			[]Observation{cen(30), ev(10), ev(20), ev(10)},
			[]KMStep{
				{Time: 10, AtRisk: 4, Events: 2, Survival: 0.5},
				{Time: 20, AtRisk: 2, Events: 1, Survival: 0.25},
				{Time: 30, AtRisk: 1, Censored: 1, Survival: 0.25},
			},
		},
		{
			// The run censored at 10 is still at risk at 10: 0.8 * 3/4 =
			// 0.6 (censoring first would give 0.8 * 2/3).
			"censoring at the time of an event",
			[]Observation{ev(5), ev(10), cen(10), cen(15), ev(20)},
			[]KMStep{
				{Time: 5, AtRisk: 5, Events: 1, Survival: 0.8},
				{Time: 10, AtRisk: 4, Events: 1, Censored: 1, Survival: 0.6},
				{Time: 15, AtRisk: 2, Censored: 1, Survival: 0.6},
				{Time: 20, AtRisk: 1, Events: 1, Survival: 0},
			},
		},
		{
			"all censored",
			[]Observation{cen(30), cen(10), cen(20)},
			[]KMStep{
				{Time: 10, AtRisk: 3, Censored: 1, Survival: 1},
				{Time: 20, AtRisk: 2, Censored: 1, Survival: 1},
				{Time: 30, AtRisk: 1, Censored: 1, Survival: 1},
			},
		},
		{
			// 6 runs: events at 3 and 7, censored at 4 and 9, events at 9
			// and 12: 5/6; 5/6 * 3/4 = 0.625; at 9, 2 at risk, 1 event:
			// 0.3125; at 12 the last one: 0.
			"textbook",
			[]Observation{ev(3), cen(4), ev(7), ev(9), cen(9), ev(12)},
			[]KMStep{
				{Time: 3, AtRisk: 6, Events: 1, Survival: 5.0 / 6},
				{Time: 4, AtRisk: 5, Censored: 1, Survival: 5.0 / 6},
				{Time: 7, AtRisk: 4, Events: 1, Survival: 0.625},
				{Time: 9, AtRisk: 3, Events: 1, Censored: 1, Survival: 0.625 * 2 / 3},
				{Time: 12, AtRisk: 1, Events: 1, Survival: 0},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := KaplanMeier(tc.obs)
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateApprox(0, 1e-12)); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func counted(c FailureClass) *FailureClass { return &c }

// Which runs are events, which are censored and which are left out.
func TestSurvivalOf(t *testing.T) {
	v := Variant{Name: "unpatched", RunDetails: []Run{
		{Index: 1, Outcome: OutcomeCorruption, StressSeconds: 20, FirstFailureSeconds: ptr(12.5), CountedAs: counted(RaceFailure)},
		{Index: 2, Outcome: OutcomeCrash, StressSeconds: 31, CountedAs: counted(RaceFailure)}, // no first-failure time
		{Index: 3, Outcome: OutcomeCrash, StressSeconds: 40, FirstFailureSeconds: ptr(40), CountedAs: counted(OtherFailure)},
		{Index: 4, Outcome: OutcomeClean, StressSeconds: 60},
		{Index: 5, Outcome: OutcomeInterrupted, StressSeconds: 15, WrittenBackPages: 10},
		{Index: 6, Outcome: OutcomeInterrupted, StressSeconds: 5},
		{Index: 7, Outcome: OutcomeBootFailure},
		{Index: 8, Outcome: OutcomeInfraError, StressSeconds: 3},
		{Index: 9, Outcome: OutcomeNoWriteback, StressSeconds: 60},
		{Index: 10, Outcome: OutcomeOOM, StressSeconds: 30},
		{Index: 11, Outcome: OutcomeBootFailure},
	}}
	c := SurvivalOf(v)
	want := []SurvivalRun{
		{1, OutcomeCorruption, ev(12.5)},
		{2, OutcomeCrash, ev(31)},
		{3, OutcomeCrash, cen(40)},
		{4, OutcomeClean, cen(60)},
		{5, OutcomeInterrupted, cen(15)},
	}
	if diff := cmp.Diff(want, c.Runs); diff != "" {
		t.Errorf("plotted runs (-want +got):\n%s", diff)
	}
	wantEx := map[Outcome]int{OutcomeInterrupted: 1, OutcomeBootFailure: 2, OutcomeInfraError: 1, OutcomeNoWriteback: 1, OutcomeOOM: 1}
	if diff := cmp.Diff(wantEx, c.Excluded); diff != "" {
		t.Errorf("excluded (-want +got):\n%s", diff)
	}
	if got := c.excludedText(); got != "2 boot-failure, 1 infra-error, 1 interrupted, 1 no-writeback, 1 oom" {
		t.Errorf("excluded text %q", got)
	}
	// 5 at risk: 12.5 -> 4/5, 15 censored, 31 -> 4/5 * 2/3.
	for _, p := range []struct{ t, s float64 }{{0, 1}, {12.4, 1}, {12.5, 0.8}, {30, 0.8}, {31, 0.8 * 2 / 3}, {100, 0.8 * 2 / 3}} {
		if got := c.At(p.t); got < p.s-1e-12 || got > p.s+1e-12 {
			t.Errorf("S(%g) = %g, want %g", p.t, got, p.s)
		}
	}
	if c.Events() != 2 {
		t.Errorf("%d events, want 2", c.Events())
	}
}

// svgElement is a path, or any other element, as the SVG has it.
type svgElement struct {
	name  string
	attrs map[string]string
	title string
}

// parseSVG checks that s is well-formed XML with an svg root and returns
// its elements.
func parseSVG(t *testing.T, s string) []svgElement {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(s))
	var els []svgElement
	var stack []int
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, s)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tk.Name.Local
				if tk.Name.Space != "http://www.w3.org/2000/svg" {
					t.Errorf("root namespace %q", tk.Name.Space)
				}
			}
			e := svgElement{name: tk.Name.Local, attrs: map[string]string{}}
			for _, a := range tk.Attr {
				e.attrs[a.Name.Local] = a.Value
			}
			els = append(els, e)
			stack = append(stack, len(els)-1)
		case xml.CharData:
			if n := len(stack); n >= 2 && els[stack[n-1]].name == "title" {
				els[stack[n-2]].title += string(tk)
			}
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		}
	}
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return els
}

func paths(els []svgElement, class string) []svgElement {
	var out []svgElement
	for _, e := range els {
		if e.name == "path" && e.attrs["class"] == class {
			out = append(out, e)
		}
	}
	return out
}

var vertical = regexp.MustCompile(`V([0-9.]+)`)

func TestSurvivalSVG(t *testing.T) {
	r := sampleReport()
	// A third variant with a name to escape, two censored runs at the same
	// time (two marks) and an event.
	third := []Run{
		{Index: 1, Outcome: OutcomeClean, StressSeconds: 50, PagesVerified: 1, WrittenBackPages: 1},
		{Index: 2, Outcome: OutcomeClean, StressSeconds: 50, PagesVerified: 1, WrittenBackPages: 1},
		{Index: 3, Outcome: OutcomeCorruption, StressSeconds: 9, FirstFailureSeconds: ptr(9), Corruptions: 1},
	}
	r.Variants = append(r.Variants, Aggregate(`a<b>&"c"`, "k", third, Signature{}))
	dir := t.TempDir()
	if err := WriteAll(dir, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, SurvivalFile))
	if err != nil {
		t.Fatal(err)
	}
	els := parseSVG(t, string(b))

	curves := paths(els, "curve")
	var names []string
	for _, c := range curves {
		names = append(names, c.attrs["data-variant"])
	}
	if diff := cmp.Diff([]string{"unpatched", "patched", `a<b>&"c"`}, names); diff != "" {
		t.Errorf("one curve per variant (-want +got):\n%s", diff)
	}
	// Censored: patched/run-1 (clean; run-2 no writeback and run-3 boot
	// failure are not plotted) and the third variant's two clean runs.
	marks := paths(els, "censored")
	var marked []string
	for _, m := range marks {
		marked = append(marked, m.attrs["data-variant"]+" "+strings.Fields(m.title)[0])
	}
	if diff := cmp.Diff([]string{"patched patched/run-1:", `a<b>&"c" a<b>&"c"/run-1:`, `a<b>&"c" a<b>&"c"/run-2:`}, marked); diff != "" {
		t.Errorf("one mark per censored run (-want +got):\n%s", diff)
	}
	// The unpatched curve falls to 1/2 at 12.5 s and to 0 at 31 s: its
	// vertical segments end at y(0.5) and y(0); the patched one stays at 1.
	y := func(s float64) string { return strconv.FormatFloat(svgY(s), 'f', 1, 64) }
	var vs []string
	for _, m := range vertical.FindAllStringSubmatch(curves[0].attrs["d"], -1) {
		vs = append(vs, m[1])
	}
	if diff := cmp.Diff([]string{y(0.5), y(0)}, vs); diff != "" {
		t.Errorf("unpatched steps (-want +got) in %q:\n%s", curves[0].attrs["d"], diff)
	}
	if d := curves[1].attrs["d"]; strings.Contains(d, "V") {
		t.Errorf("the patched curve has a step although it never failed: %q", d)
	}
	// Both third-variant marks sit at S = 2/3 after the event at 9 s.
	for _, m := range marks[1:] {
		if !strings.Contains(m.attrs["d"], " "+y(2.0/3)+" H") {
			t.Errorf("mark %q not at S=2/3 (y %s)", m.attrs["d"], y(2.0/3))
		}
	}
	text := string(b)
	for _, want := range []string{"seconds of stress", "fraction of runs without a race failure", "patched: 1 boot-failure, 1 no-writeback"} {
		if !strings.Contains(text, want) {
			t.Errorf("the SVG does not say %q", want)
		}
	}
}

func TestSurvivalSVGNoRuns(t *testing.T) {
	for _, r := range []*Report{{}, {Variants: []Variant{{Name: "unpatched", RunDetails: []Run{{Index: 1, Outcome: OutcomeBootFailure}}}}}} {
		s := survivalSVG(r)
		els := parseSVG(t, s)
		if n := len(paths(els, "curve")) + len(paths(els, "censored")); n != 0 {
			t.Errorf("%d curves or marks without a run at risk", n)
		}
		if !strings.Contains(s, "no run with time at risk") {
			t.Errorf("the empty plot does not say it is empty:\n%s", s)
		}
	}
}

func TestMarkdownLinksSurvival(t *testing.T) {
	md := markdown(sampleReport())
	for _, want := range []string{
		"## Time to first failure\n\n![Kaplan-Meier curves of the time to the first race failure](survival.svg)\n",
		"Not plotted, having no time at risk: patched: 1 boot-failure, 1 no-writeback.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}
