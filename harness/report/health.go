package report

import (
	"fmt"
	"slices"
	"strings"
)

// Health outcomes: the workload finished (or stopped at its corruption),
// but the kernel did not come back whole after it. Both are kernel
// failures, "other" unless they match the race's signature.
const (
	// OutcomeHealth: swapoff failed, zswap kept entries after swapoff, a
	// task stayed in D state or a page stayed locked.
	OutcomeHealth Outcome = "health"
	// OutcomeLeak: more pages did not come back after the workload than
	// the leak tolerance allows.
	OutcomeLeak Outcome = "leak"
)

// DefaultLeakTolerancePages is the default --leak-tolerance: how many
// pages may be missing after the workload before a run is a leak. It was
// calibrated on the fixed kernel (README, "Kernel health").
const DefaultLeakTolerancePages = 1024

// Health is what the health check after the workload found: the swap came
// back, memory came back, nothing is stuck.
type Health struct {
	// SwappedPages were in use on the swap devices when swapoff started.
	SwappedPages int64 `json:"swapped_pages"`
	// SwapoffOK: every swapoff succeeded within its deadline.
	SwapoffOK              bool    `json:"swapoff_ok"`
	SwapoffSeconds         float64 `json:"swapoff_seconds"`
	SwapoffDeadlineSeconds float64 `json:"swapoff_deadline_seconds"`
	SwapoffTimedOut        bool    `json:"swapoff_timed_out,omitempty"`
	SwapoffError           string  `json:"swapoff_error,omitempty"`
	// ZswapStoredPages and ZswapPoolPages are what zswap still held after
	// swapoff (both 0 on a healthy kernel); null if unreadable.
	ZswapStoredPages *int64 `json:"zswap_stored_pages"`
	ZswapPoolPages   *int64 `json:"zswap_pool_pages"`
	// LostPages did not come back: the drop in MemFree since the baseline
	// (taken when the workload started, after drop_caches) that the
	// counters in Explained do not account for. Null without a baseline.
	LostPages          *int64 `json:"lost_pages"`
	LeakTolerancePages int64  `json:"leak_tolerance_pages"`
	// MemFreeDropPages is the drop in MemFree; Explained the change of
	// each counter that accounts for it, in pages (LRU lists, slab, kernel
	// stacks, page tables, per-CPU, vmalloc); SwapCachedPages and
	// ZswapMeminfoPages are shown for reading, already inside the LRU and
	// not subtracted, respectively.
	MemFreeDropPages *int64           `json:"memfree_drop_pages"`
	Explained        map[string]int64 `json:"explained_pages,omitempty"`
	// StuckTasks stayed in D state after swapoff; LockedPages stayed
	// locked (null if /proc/kpageflags was unreadable).
	StuckTasks  []string `json:"stuck_tasks,omitempty"`
	LockedPages *int64   `json:"locked_pages"`
	// Seconds is how long the whole check took in the guest.
	Seconds float64 `json:"seconds"`
	// PageOwner is set for a kernel with page_owner on (built with
	// --debug): the pages still allocated after the check against the
	// baseline, grouped by allocation stack.
	PageOwner *PageOwner `json:"page_owner,omitempty"`
	// Problems says in words what failed; empty for a healthy kernel.
	Problems []string `json:"problems,omitempty"`
	// Error is set when the check could not run (not a kernel failure).
	Error string `json:"error,omitempty"`
}

// PageOwner is what page_owner said after the health check, against its
// baseline (README, "Kernel health").
type PageOwner struct {
	// BaselineSeconds and AfterSeconds are how long each read of
	// /sys/kernel/debug/page_owner took in the guest; BaselinePages and
	// AfterPages how many pages it listed as allocated; AfterBytes how
	// much text the second read was.
	BaselineSeconds float64 `json:"baseline_seconds"`
	AfterSeconds    float64 `json:"after_seconds"`
	BaselinePages   int64   `json:"baseline_pages"`
	AfterPages      int64   `json:"after_pages"`
	AfterBytes      int64   `json:"after_bytes"`
	// Compared: both reads were complete, so the stacks were compared;
	// Error says why not.
	Compared bool   `json:"compared"`
	Error    string `json:"error,omitempty"`
	// GrownPages is how many more pages were allocated after the check
	// than at the baseline, summed over every stack that grew.
	GrownPages int64 `json:"grown_pages"`
	// Stacks are the stacks that grew by at least MinStackPages, largest
	// first (at most 10); Callers the same by the stacks' first frame,
	// the allocation's caller (net change). Both empty when nothing grew
	// that much: a healthy kernel's report stays small.
	Stacks  []StackPages `json:"stacks,omitempty"`
	Callers []StackPages `json:"callers,omitempty"`
}

// StackPages is a number of pages allocated from one stack (frames
// innermost first, without offsets and without the page allocator's own
// frames) or one caller.
type StackPages struct {
	Pages int64    `json:"pages"`
	Stack []string `json:"stack"`
}

// MinStackPages is how much a stack (or a caller) must grow for the
// report to name it: a quarter of the default leak tolerance. Pages on
// the LRU are not grouped, so a healthy run's grouped pages barely move
// (28 pages more in all after a run that filled zswap's pool; README,
// "Kernel health"), while the test patch that leaks zswap entries leaves
// some 12,000 pool pages behind in 30 s.
const MinStackPages = 256

// Short names a stack on one line by its first n frames, the caller
// first: "zbud_alloc < zswap_frontswap_store < __frontswap_store".
func (s StackPages) Short(n int) string {
	f := s.Stack
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " < ")
}

// TopStacks names the largest grown stacks, at most n, with their pages:
// "12235 pages from zbud_alloc < zswap_frontswap_store < ...".
func (p *PageOwner) TopStacks(n int) string {
	if p == nil || len(p.Stacks) == 0 {
		return ""
	}
	var parts []string
	for i, s := range p.Stacks {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s from %s", pageCount(s.Pages), s.Short(4)))
	}
	return strings.Join(parts, "; ")
}

// Detail is every named stack, frame by frame, for a run's details.
func (p *PageOwner) Detail() string {
	if p == nil || len(p.Stacks) == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Pages allocated since the baseline, by allocation stack (page_owner; %d pages more in all):\n", p.GrownPages)
	for _, s := range p.Stacks {
		fmt.Fprintf(&b, "  %s:\n", pageCount(s.Pages))
		for _, f := range s.Stack {
			fmt.Fprintf(&b, "    %s\n", f)
		}
	}
	if len(p.Callers) > 0 {
		var parts []string
		for _, c := range p.Callers {
			parts = append(parts, fmt.Sprintf("%s %d", c.Short(1), c.Pages))
		}
		fmt.Fprintf(&b, "  by caller (pages): %s\n", strings.Join(parts, ", "))
	}
	return b.String()
}

// Summary is page_owner's cost and finding on one line.
func (p *PageOwner) Summary() string {
	if p == nil {
		return ""
	}
	s := fmt.Sprintf("page_owner read in %.1f s at the baseline (%d pages) and %.1f s after (%d pages, %.1f MiB of text)",
		p.BaselineSeconds, p.BaselinePages, p.AfterSeconds, p.AfterPages, float64(p.AfterBytes)/(1<<20))
	switch {
	case !p.Compared:
		s += ", not compared: " + p.Error
	case len(p.Stacks) > 0:
		s += fmt.Sprintf(", %d pages more; grew most: %s", p.GrownPages, p.TopStacks(2))
	default:
		s += fmt.Sprintf(", %d pages more, no stack by %d or more", p.GrownPages, MinStackPages)
	}
	return s
}

func pageCount(n int64) string {
	if n == 1 {
		return "1 page"
	}
	return fmt.Sprintf("%d pages", n)
}

// Health titles: the stable names of health failures, as crash titles are
// (what --signature matches); the figures are in Run.Error and Run.Health.
const (
	TitleLeak          = "leak: pages lost after the workload"
	TitleSwapoff       = "health: swapoff failed"
	TitleSwapoffHang   = "hang: swapoff did not finish"
	TitleZswapNotEmpty = "health: zswap not empty after swapoff"
	TitleStuckTask     = "health: task stuck in D state"
	TitleLockedPage    = "health: page left locked"
)

// FailedAfterWorkload says whether r's failure was found by the health
// check after the workload had run its full time.
func (r Run) FailedAfterWorkload() bool {
	return isHealth(r.Outcome) || r.Outcome == OutcomeHang && slices.Contains(r.CrashTitles, TitleSwapoffHang)
}

// isHealth says whether o is a health outcome.
func isHealth(o Outcome) bool { return o == OutcomeHealth || o == OutcomeLeak }

// healthReports are the reports a health failure counts by: its titles
// (in CrashTitles), matched against the signature like a crash's.
func healthReports(r Run) []KernelReport {
	var out []KernelReport
	for _, t := range r.CrashTitles {
		if strings.HasPrefix(t, "leak: ") || strings.HasPrefix(t, "health: ") {
			out = append(out, KernelReport{Kind: string(r.Outcome), Title: t})
		}
	}
	if len(out) == 0 {
		out = append(out, KernelReport{Kind: string(r.Outcome), Title: string(r.Outcome)})
	}
	return out
}

// Summary is the health check's figures on one line.
func (h *Health) Summary() string {
	if h == nil {
		return "not checked"
	}
	if h.Error != "" && h.ZswapStoredPages == nil && h.LostPages == nil {
		return "the check did not run through: " + h.Error
	}
	opt := func(p *int64) string {
		if p == nil {
			return "?"
		}
		return fmt.Sprint(*p)
	}
	swap := fmt.Sprintf("swapoff ok in %.1f s", h.SwapoffSeconds)
	switch {
	case h.SwapoffTimedOut:
		swap = fmt.Sprintf("swapoff did not finish in %.0f s", h.SwapoffDeadlineSeconds)
	case !h.SwapoffOK:
		swap = "swapoff failed: " + h.SwapoffError
	}
	s := fmt.Sprintf("%s (%d pages were swapped, deadline %.0f s), zswap after it %s stored / %s pool pages, lost %s pages (tolerance %d), %d stuck tasks, %s locked pages; check took %.1f s",
		swap, h.SwappedPages, h.SwapoffDeadlineSeconds, opt(h.ZswapStoredPages), opt(h.ZswapPoolPages), opt(h.LostPages), h.LeakTolerancePages, len(h.StuckTasks), opt(h.LockedPages), h.Seconds)
	if h.PageOwner != nil {
		s += "; " + h.PageOwner.Summary()
	}
	return s
}

// addHealthRows adds the health check's rows to the comparison table: the
// runs that failed it, and the pages lost per run (median and largest over
// the runs checked).
func addHealthRows(variants []Variant, add func(label string, cell func(v Variant) string)) {
	add("health failures", func(v Variant) string { return fmt.Sprint(v.HealthFailures) })
	add("leak runs", func(v Variant) string { return fmt.Sprint(v.Leaks) })
	add("lost pages per run", func(v Variant) string {
		var lost []float64
		for _, r := range v.RunDetails {
			if r.Health != nil && r.Health.LostPages != nil {
				lost = append(lost, float64(*r.Health.LostPages))
			}
		}
		if len(lost) == 0 {
			return "-"
		}
		return fmt.Sprintf("median %.0f, max %.0f (%d runs)", *median(lost), slices.Max(lost), len(lost))
	})
	// With page_owner (--debug), the callers whose pages grew in leak runs.
	named := false
	for _, v := range variants {
		named = named || len(leakCallers(v)) > 0
	}
	if named {
		add("leaked pages by caller", func(v Variant) string {
			c := leakCallers(v)
			if len(c) == 0 {
				return "-"
			}
			var parts []string
			for i, s := range c {
				if i == 2 {
					break
				}
				parts = append(parts, fmt.Sprintf("%s %s (%d runs)", s.caller, pageCount(s.pages), s.runs))
			}
			return strings.Join(parts, ", ")
		})
	}
}

// callerPages is one caller's pages over a variant's leak runs.
type callerPages struct {
	caller string
	pages  int64
	runs   int
}

// leakCallers sums the callers page_owner named over v's leak runs, most
// pages first.
func leakCallers(v Variant) []callerPages {
	by := map[string]*callerPages{}
	var out []*callerPages
	for _, r := range v.RunDetails {
		if r.Outcome != OutcomeLeak || r.Health == nil || r.Health.PageOwner == nil {
			continue
		}
		for _, c := range r.Health.PageOwner.Callers {
			name := c.Short(1)
			if by[name] == nil {
				by[name] = &callerPages{caller: name}
				out = append(out, by[name])
			}
			by[name].pages += c.Pages
			by[name].runs++
		}
	}
	slices.SortStableFunc(out, func(a, b *callerPages) int { return int(b.pages - a.pages) })
	res := make([]callerPages, len(out))
	for i, c := range out {
		res[i] = *c
	}
	return res
}
