package proto

// CmdHealth asks the agent, after the workload has ended, whether the
// kernel came back whole: swapoff of every swap device, zswap empty after
// it, memory against the baseline the agent took when the workload
// started, no task stuck in D state and no page left locked. Body:
// HealthRequest; result: HealthResult. The agent sends a progress message
// every second while it checks (the host's heartbeat).
const CmdHealth = "health"

// CmdPageOwnerBaseline asks the agent, before the workload, to read
// page_owner (a kernel built with CONFIG_PAGE_OWNER, booted with
// page_owner=on) as the baseline of the health check's comparison. No
// body; result: PageOwnerSnapshot. Progress messages are its heartbeat.
const CmdPageOwnerBaseline = "page-owner-baseline"

// HealthRequest sets the health check's deadlines.
type HealthRequest struct {
	// The swapoff of a device may take SwapoffBaseSec plus
	// SwapoffSecPerMiB for every MiB in use on it; then it is killed and
	// reported as not finished.
	SwapoffBaseSec   float64 `json:"swapoff_base_s"`
	SwapoffSecPerMiB float64 `json:"swapoff_s_per_mib"`
	// StuckSec: a task in D state, or a page locked, for this long after
	// swapoff is stuck.
	StuckSec float64 `json:"stuck_s"`
}

// Swapoff is how the swapoff of one device went.
type Swapoff struct {
	Device      string  `json:"device"`
	UsedKiB     int64   `json:"used_kib"` // in use before swapoff (/proc/swaps)
	Seconds     float64 `json:"seconds"`
	DeadlineSec float64 `json:"deadline_s"`
	OK          bool    `json:"ok"`
	TimedOut    bool    `json:"timed_out"` // still running at its deadline: killed
	Error       string  `json:"error,omitempty"`
}

// HealthResult is what the health check found. Memory figures are
// /proc/meminfo fields in kB; -1 means a figure could not be read.
type HealthResult struct {
	// Baseline: /proc/meminfo (and zswap) after sync and drop_caches, when
	// the workload started; nil if the agent took none.
	Baseline map[string]int64 `json:"baseline,omitempty"`
	// After: the same after the workload, swapoff and drop_caches.
	After   map[string]int64 `json:"after,omitempty"`
	Swapoff []Swapoff        `json:"swapoff"`
	// ZswapStoredPages and ZswapPoolBytes are zswap's stored_pages and
	// pool_total_size after swapoff; -1 if unreadable.
	ZswapStoredPages int64 `json:"zswap_stored_pages"`
	ZswapPoolBytes   int64 `json:"zswap_pool_bytes"`
	// StuckTasks are the tasks in D state throughout StuckSec: "pid comm
	// (wchan)", then the kernel stack when /proc/PID/stack is readable.
	StuckTasks []string `json:"stuck_tasks,omitempty"`
	// LockedPages counts pages locked (PG_locked in /proc/kpageflags) at
	// both ends of StuckSec; -1 if kpageflags is unreadable.
	LockedPages int64   `json:"locked_pages"`
	Seconds     float64 `json:"seconds"`
	// PageOwner is set on a kernel with page_owner on (a --debug build):
	// the pages still allocated, grouped by allocation stack, compared
	// between the baseline and after the check.
	PageOwner *PageOwnerDiff `json:"page_owner,omitempty"`
}

// PageOwnerDeadlineSec bounds each read of /sys/kernel/debug/page_owner
// (one before the workload, one after swapoff): a read still going at it
// is stopped and its snapshot not compared. Both reads come after
// drop_caches with the workload's memory gone, when a 256-MiB guest lists
// about 6,000 pages (3.4 MiB of text): 0.5 to 8 s under TCG on a busy
// 2-core host. The same guest with its memory full lists 60,000 records
// (35 MB), read in 9 to 57 s (README, "Kernel health").
const PageOwnerDeadlineSec = 120

// PageOwnerSnapshot is what one read of page_owner cost and found.
type PageOwnerSnapshot struct {
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes"`   // of text read
	Records int64   `json:"records"` // allocations (one per head page)
	Pages   int64   `json:"pages"`   // 1<<order per record
	// LRUPages are on an LRU list ("lru" in the record's flags): in use
	// by processes or the page cache, accounted for by the LRU counters
	// as the loss is, so not grouped by stack.
	LRUPages int64 `json:"lru_pages"`
	Stacks   int   `json:"stacks"` // distinct stacks (as grouped)
	// Complete is false when the read stopped early (its deadline, an
	// error): such a snapshot is not compared.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
}

// StackPages is a number of pages allocated from one stack: frames
// innermost first, offsets and the page allocator's own frames trimmed.
type StackPages struct {
	Pages int64    `json:"pages"`
	Stack []string `json:"stack"`
}

// PageOwnerDiff compares page_owner's pages by stack after the check
// against the baseline.
type PageOwnerDiff struct {
	Baseline PageOwnerSnapshot `json:"baseline"`
	After    PageOwnerSnapshot `json:"after"`
	// Grown are the stacks with the most more pages after than at the
	// baseline, largest first (at most MaxGrownStacks); GrownPages is the
	// increase summed over every stack that grew. Empty unless both
	// snapshots are complete.
	Grown      []StackPages `json:"grown,omitempty"`
	GrownPages int64        `json:"grown_pages"`
	// Callers is the same by the stacks' first frame (the allocation's
	// caller), for a leak spread over many stacks: the net change, top
	// MaxGrownStacks that grew.
	Callers []StackPages `json:"callers,omitempty"`
}

// MaxGrownStacks is how many grown stacks (and callers) a PageOwnerDiff
// carries.
const MaxGrownStacks = 10
