package report

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func leakRun(lost int64) Run {
	tol := int64(DefaultLeakTolerancePages)
	return Run{Outcome: OutcomeLeak, StressSeconds: 60, WrittenBackPages: 10, CrashTitles: []string{TitleLeak, TitleZswapNotEmpty},
		Error:  "5475 pages (21.4 MiB) did not come back after the workload",
		Health: &Health{LostPages: &lost, LeakTolerancePages: tol, SwapoffOK: true}}
}

// Health failures are kernel failures of the "other" kind, never learned
// as the race's signature; --signature can claim them and --ignore can
// drop them.
func TestHealthClassify(t *testing.T) {
	health := Run{Outcome: OutcomeHealth, CrashTitles: []string{TitleZswapNotEmpty}}
	learned := Signature{}.Learn([]Run{leakRun(6000), health})
	if len(learned.Titles) != 0 {
		t.Fatalf("learned %q from health failures", learned.Titles)
	}
	tests := []struct {
		name string
		sig  Signature
		run  Run
		want FailureClass
	}{
		{"a leak is another failure", learned, leakRun(6000), OtherFailure},
		{"a health failure is another failure", learned, health, OtherFailure},
		{"a health failure without titles", Signature{}, Run{Outcome: OutcomeHealth}, OtherFailure},
		{"a leak the signature names is the race's", Signature{Patterns: []*regexp.Regexp{regexp.MustCompile("^leak")}}, leakRun(6000), RaceFailure},
		{"an ignored leak is no failure", Signature{Ignore: []*regexp.Regexp{regexp.MustCompile("leak|zswap not empty")}}, leakRun(6000), ""},
		{"ignoring one title keeps the other", Signature{Ignore: []*regexp.Regexp{regexp.MustCompile("^leak")}}, leakRun(6000), OtherFailure},
		{"a swapoff hang is a hang", Signature{}, Run{Outcome: OutcomeHang, CrashTitles: []string{TitleSwapoffHang}}, OtherFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sig.Classify(tt.run); got != tt.want {
				t.Errorf("Classify = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAggregateHealth(t *testing.T) {
	clean := Run{Outcome: OutcomeClean, StressSeconds: 60, WrittenBackPages: 10, Health: &Health{LostPages: new(int64)}}
	runs := []Run{clean, leakRun(6000), leakRun(5000), {Outcome: OutcomeHealth, StressSeconds: 60, CrashTitles: []string{TitleSwapoff}}}
	v := Aggregate("patched", "k", runs, Signature{})
	if v.Leaks != 2 || v.HealthFailures != 1 || v.OtherFailures != 3 || v.Failures != 0 {
		t.Errorf("leaks %d, health %d, other %d, race %d; want 2, 1, 3, 0", v.Leaks, v.HealthFailures, v.OtherFailures, v.Failures)
	}
	if e := v.Exposure(); e != 240 {
		t.Errorf("exposure %v, want every run's 60 s", e)
	}
	if !v.RunDetails[1].FailedAfterWorkload() || v.RunDetails[0].FailedAfterWorkload() {
		t.Errorf("FailedAfterWorkload wrong")
	}
	var b bytes.Buffer
	Table(&b, &Report{Verdict: "regressed", Reason: "r", Variants: []Variant{Aggregate("unpatched", "k", []Run{clean}, Signature{}), v}})
	out := b.String()
	for _, want := range []string{"health failures  ", "leak runs  ", "lost pages per run", "median 0, max 0 (1 runs)", "median 5000, max 6000 (3 runs)"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	c := junitCaseFrom("zswaprace", "patched", v.RunDetails[1])
	msg := ""
	for _, p := range c.Properties {
		if p.Name == "message" {
			msg = p.Value
		}
	}
	if !strings.HasPrefix(msg, "leak: 5475 pages") {
		t.Errorf("junit message %q", msg)
	}
	if !strings.Contains(c.SystemOut, "Health: swapoff ok") {
		t.Errorf("junit system-out lacks the health figures: %s", c.SystemOut)
	}
}

// leakRunWithStacks is a leak run of a --debug kernel: page_owner named
// the stacks that grew.
func leakRunWithStacks(lost int64, pages ...int64) Run {
	r := leakRun(lost)
	r.Error = "5475 pages (21.4 MiB) did not come back after the workload; page_owner: allocated since the baseline 4100 pages from zbud_alloc < zswap_frontswap_store"
	p := &PageOwner{BaselineSeconds: 3, AfterSeconds: 4, BaselinePages: 20000, AfterPages: 26000, AfterBytes: 8 << 20, Compared: true, GrownPages: 6000}
	for _, n := range pages {
		p.Stacks = append(p.Stacks, StackPages{Pages: n, Stack: []string{"zbud_alloc", "zswap_frontswap_store", "__frontswap_store", "swap_writepage", "pageout"}})
	}
	p.Callers = []StackPages{{Pages: 5800, Stack: []string{"zbud_alloc"}}, {Pages: 300, Stack: []string{"allocate_slab"}}}
	r.Health.PageOwner = p
	return r
}

// The stacks page_owner named reach the table (callers summed over the
// leak runs), the run's JUnit case and summary.md's details; without them
// the table has no such row.
func TestLeakStacksReported(t *testing.T) {
	clean := Run{Outcome: OutcomeClean, StressSeconds: 60, WrittenBackPages: 10, Health: &Health{LostPages: new(int64),
		PageOwner: &PageOwner{Compared: true, GrownPages: 120}}}
	pa := Aggregate("patched", "k", []Run{leakRunWithStacks(6000, 4100, 1700), leakRunWithStacks(5000, 3900)}, Signature{})
	rep := &Report{Verdict: "regressed", Reason: "r", Variants: []Variant{Aggregate("unpatched", "k", []Run{clean}, Signature{}), pa}}
	var b bytes.Buffer
	Table(&b, rep)
	if !regexp.MustCompile(`leaked pages by caller +- +zbud_alloc 11600 pages \(2 runs\), allocate_slab 600 pages \(2 runs\)`).MatchString(b.String()) {
		t.Errorf("the table does not name the callers:\n%s", b.String())
	}
	c := junitCaseFrom("zswaprace", "patched", pa.RunDetails[0])
	for _, want := range []string{"leak: 5475 pages (21.4 MiB) did not come back after the workload; page_owner: allocated since the baseline 4100 pages from zbud_alloc",
		"Pages allocated since the baseline, by allocation stack (page_owner; 6000 pages more in all):\n  4100 pages:\n    zbud_alloc\n    zswap_frontswap_store\n",
		"  1700 pages:\n", "  by caller (pages): zbud_alloc 5800, allocate_slab 300",
		"page_owner read in 3.0 s at the baseline (20000 pages) and 4.0 s after (26000 pages, 8.0 MiB of text), 6000 pages more; grew most: 4100 pages from zbud_alloc < zswap_frontswap_store < __frontswap_store < swap_writepage; 1700 pages"} {
		if !strings.Contains(c.SystemOut, want) {
			t.Errorf("junit system-out lacks %q:\n%s", want, c.SystemOut)
		}
	}
	md := markdown(rep)
	if !strings.Contains(md, "### patched/run-0: leak") || !strings.Contains(md, "    swap_writepage\n") || !strings.Contains(md, "| leaked pages by caller | - | zbud_alloc 11600 pages (2 runs), allocate_slab 600 pages (2 runs) |") {
		t.Errorf("summary.md lacks the stacks:\n%s", md)
	}
	// No stacks named: no row.
	b.Reset()
	Table(&b, &Report{Variants: []Variant{Aggregate("patched", "k", []Run{leakRun(6000), clean}, Signature{})}})
	if strings.Contains(b.String(), "by caller") {
		t.Errorf("a row for no stacks:\n%s", b.String())
	}
}
