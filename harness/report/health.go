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
	// Problems says in words what failed; empty for a healthy kernel.
	Problems []string `json:"problems,omitempty"`
	// Error is set when the check could not run (not a kernel failure).
	Error string `json:"error,omitempty"`
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
	return s
}

// addHealthRows adds the health check's rows to the comparison table: the
// runs that failed it, and the pages lost per run (median and largest over
// the runs checked).
func addHealthRows(add func(label string, cell func(v Variant) string)) {
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
}
