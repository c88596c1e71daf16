package runner

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/harness/report"
)

// HealthSpec turns on the health check after the workload: swapoff, zswap
// empty, memory back, nothing stuck (README, "Kernel health").
type HealthSpec struct {
	// LeakTolerancePages: a run that loses more pages than this is a leak.
	LeakTolerancePages int64
	// SwapoffBase and SwapoffPerMiB make each swapoff's deadline (base
	// plus so much per MiB in use); StuckAfter is how long a task may stay
	// in D state, or a page locked, after swapoff. All are scaled for the
	// accelerator (x4 under TCG); 0 takes the defaults below.
	SwapoffBase   time.Duration
	SwapoffPerMiB time.Duration
	StuckAfter    time.Duration
}

// Defaults of the health check's deadlines, before the accelerator's
// scale (x4 under TCG).
const (
	DefaultSwapoffBase   = 30 * time.Second
	DefaultSwapoffPerMiB = time.Second
	DefaultStuckAfter    = 5 * time.Second
)

// request is the agent's request, scaled for the accelerator.
func (h HealthSpec) request(scale time.Duration) proto.HealthRequest {
	or := func(d, def time.Duration) float64 {
		if d <= 0 {
			d = def
		}
		return (d * scale).Seconds()
	}
	return proto.HealthRequest{
		SwapoffBaseSec:   or(h.SwapoffBase, DefaultSwapoffBase),
		SwapoffSecPerMiB: or(h.SwapoffPerMiB, DefaultSwapoffPerMiB),
		// D state is not slower under TCG: a stuck task stays stuck.
		StuckSec: or(h.StuckAfter, DefaultStuckAfter) / float64(scale),
	}
}

// limit is how long the host waits for the whole check before calling it a
// hang: every swapoff at its deadline with the whole swap disk in use, the
// stuck scan, and a margin.
func (h HealthSpec) limit(scale time.Duration, swapMiB int, margin time.Duration) time.Duration {
	req := h.request(scale)
	sec := req.SwapoffBaseSec + req.SwapoffSecPerMiB*float64(swapMiB) + req.StuckSec
	return time.Duration(sec*float64(time.Second)) + margin
}

const pageKiB = 4

// subtracted are the meminfo counters whose growth explains a drop in
// MemFree: pages still in use, but accounted for. The zswap pool is not
// among them: after swapoff it must be empty, and what it still holds is
// lost.
var subtracted = []struct {
	name   string
	fields []string
}{
	{"lru", []string{"Active(anon)", "Inactive(anon)", "Active(file)", "Inactive(file)", "Unevictable"}},
	{"slab", []string{"SReclaimable", "SUnreclaim"}},
	{"kernel_stack", []string{"KernelStack"}},
	{"page_tables", []string{"PageTables"}},
	{"percpu", []string{"Percpu"}},
	{"vmalloc", []string{"VmallocUsed"}},
}

// shown are counters recorded for reading a leak report, not subtracted:
// the swap cache and mlocked pages are inside the LRU counts already, and
// the zswap pool must be empty.
var shown = []struct{ name, field string }{
	{"swap_cached", "SwapCached"},
	{"mlocked", "Mlocked"},
	{"zswap_pool", "Zswap"},
}

// lostPages is the drop in MemFree from before to after that the
// subtracted counters do not explain, in pages, with every counter's
// change (MemFree's as "memfree"). ok is false when a figure is missing.
func lostPages(before, after map[string]int64) (lost int64, deltas map[string]int64, ok bool) {
	get := func(m map[string]int64, f string) (int64, bool) { v, ok := m[f]; return v, ok }
	b, ok1 := get(before, "MemFree")
	a, ok2 := get(after, "MemFree")
	if !ok1 || !ok2 {
		return 0, nil, false
	}
	deltas = map[string]int64{"memfree": (a - b) / pageKiB}
	usedKiB := b - a
	for _, s := range subtracted {
		var d int64
		for _, f := range s.fields {
			bv, okb := get(before, f)
			av, oka := get(after, f)
			if okb && oka {
				d += av - bv
			}
		}
		deltas[s.name] = d / pageKiB
		usedKiB -= d
	}
	for _, s := range shown {
		if bv, okb := get(before, s.field); okb {
			if av, oka := get(after, s.field); oka {
				deltas[s.name] = (av - bv) / pageKiB
			}
		}
	}
	return usedKiB / pageKiB, deltas, true
}

// judgeHealth turns the agent's health figures into the run's record and,
// when the kernel failed the check, an outcome (health, leak, or hang for
// a swapoff that did not finish), its titles and a message. An empty
// outcome means the kernel came back whole.
func judgeHealth(res proto.HealthResult, tolerance int64) (h *report.Health, outcome report.Outcome, titles []string, msg string) {
	h = &report.Health{LeakTolerancePages: tolerance, Seconds: res.Seconds, SwapoffOK: true}
	var problems []string
	fail := func(o report.Outcome, title, what string) {
		if outcome == "" {
			outcome = o
		}
		titles = append(titles, title)
		problems = append(problems, what)
	}
	var hung, failed []string
	for _, s := range res.Swapoff {
		h.SwappedPages += s.UsedKiB / pageKiB
		h.SwapoffSeconds += s.Seconds
		h.SwapoffDeadlineSeconds += s.DeadlineSec
		switch {
		case s.TimedOut:
			h.SwapoffOK, h.SwapoffTimedOut = false, true
			hung = append(hung, fmt.Sprintf("swapoff %s (%s in use) did not finish within its deadline of %.0f s", s.Device, pages(s.UsedKiB/pageKiB), s.DeadlineSec))
			h.SwapoffError = joinNonEmpty(h.SwapoffError, s.Error)
		case !s.OK:
			h.SwapoffOK = false
			failed = append(failed, fmt.Sprintf("swapoff %s (%s in use) failed after %.1f s: %s", s.Device, pages(s.UsedKiB/pageKiB), s.Seconds, s.Error))
			h.SwapoffError = joinNonEmpty(h.SwapoffError, s.Error)
		}
	}
	if res.ZswapStoredPages >= 0 {
		v := res.ZswapStoredPages
		h.ZswapStoredPages = &v
	}
	if res.ZswapPoolBytes >= 0 {
		v := res.ZswapPoolBytes / (pageKiB * 1024)
		h.ZswapPoolPages = &v
	}
	if res.LockedPages >= 0 {
		v := res.LockedPages
		h.LockedPages = &v
	}
	h.StuckTasks = res.StuckTasks
	h.PageOwner = pageOwnerOf(res.PageOwner)
	if res.Baseline != nil && res.After != nil {
		if lost, deltas, ok := lostPages(res.Baseline, res.After); ok {
			h.LostPages, h.Explained = &lost, deltas
			drop := -deltas["memfree"]
			h.MemFreeDropPages = &drop
		}
	}

	for _, s := range hung {
		fail(report.OutcomeHang, report.TitleSwapoffHang, s)
	}
	for _, s := range failed {
		fail(report.OutcomeHealth, report.TitleSwapoff, s)
	}
	// With swap still on, memory and zswap are not expected back.
	if h.SwapoffOK {
		if h.LostPages != nil && *h.LostPages > tolerance {
			fail(report.OutcomeLeak, report.TitleLeak, leakMessage(h))
		}
		if n, p := h.ZswapStoredPages, h.ZswapPoolPages; n != nil && *n > 0 || p != nil && *p > 0 {
			fail(report.OutcomeHealth, report.TitleZswapNotEmpty, fmt.Sprintf("zswap still holds %s stored in %s of pool after swapoff (stored_pages and pool_total_size must be 0)", pagesOrUnknown(n), pagesOrUnknown(p)))
		}
	}
	if len(h.StuckTasks) > 0 {
		first, _, _ := strings.Cut(h.StuckTasks[0], "\n")
		fail(report.OutcomeHealth, report.TitleStuckTask, fmt.Sprintf("%d task(s) in D state for %s after swapoff, first %s", len(h.StuckTasks), "the whole stuck window", first))
	}
	if h.LockedPages != nil && *h.LockedPages > 0 {
		fail(report.OutcomeHealth, report.TitleLockedPage, fmt.Sprintf("%s left locked (PG_locked in /proc/kpageflags throughout the stuck window)", pages(*h.LockedPages)))
	}
	h.Problems = problems
	if outcome != "" {
		msg = strings.Join(problems, "; ")
		if len(h.StuckTasks) > 0 {
			msg += "\nstuck tasks:\n" + strings.Join(h.StuckTasks, "\n")
		}
	}
	return h, outcome, titles, msg
}

// pageOwnerOf keeps what the report needs of the agent's page_owner
// comparison: its cost, and the stacks and callers that grew by
// report.MinStackPages or more.
func pageOwnerOf(d *proto.PageOwnerDiff) *report.PageOwner {
	if d == nil {
		return nil
	}
	p := &report.PageOwner{BaselineSeconds: d.Baseline.Seconds, AfterSeconds: d.After.Seconds,
		BaselinePages: d.Baseline.Pages, AfterPages: d.After.Pages, AfterBytes: d.After.Bytes,
		Compared: d.Baseline.Complete && d.After.Complete, GrownPages: d.GrownPages}
	switch {
	case !d.Baseline.Complete:
		p.Error = "the baseline's read did not complete: " + d.Baseline.Error
	case !d.After.Complete:
		p.Error = "the read after the check did not complete: " + d.After.Error
	}
	keep := func(in []proto.StackPages) []report.StackPages {
		var out []report.StackPages
		for _, s := range in {
			if s.Pages >= report.MinStackPages {
				out = append(out, report.StackPages{Pages: s.Pages, Stack: s.Stack})
			}
		}
		return out
	}
	p.Stacks, p.Callers = keep(d.Grown), keep(d.Callers)
	return p
}

// leakMessage says how many pages were lost and where the rest went.
func leakMessage(h *report.Health) string {
	msg := fmt.Sprintf("%s did not come back after the workload (tolerance %s; see --leak-tolerance): MemFree dropped by %s",
		pages(*h.LostPages), pages(h.LeakTolerancePages), pages(*h.MemFreeDropPages))
	var parts []string
	keys := make([]string, 0, len(h.Explained))
	for k := range h.Explained {
		if k != "memfree" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %+d", k, h.Explained[k]))
	}
	msg += ", counters changed by (pages) " + strings.Join(parts, ", ")
	if top := h.PageOwner.TopStacks(2); top != "" {
		msg += "; page_owner: allocated since the baseline " + top
	}
	return msg
}

func pages(n int64) string {
	if n == 1 || n == -1 {
		return fmt.Sprintf("%d page", n)
	}
	return fmt.Sprintf("%d pages (%.1f MiB)", n, float64(n)*pageKiB/1024)
}

func pagesOrUnknown(n *int64) string {
	if n == nil {
		return "an unknown number of pages"
	}
	return pages(*n)
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}
