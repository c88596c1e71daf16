package proto

// CmdHealth asks the agent, after the workload has ended, whether the
// kernel came back whole: swapoff of every swap device, zswap empty after
// it, memory against the baseline the agent took when the workload
// started, no task stuck in D state and no page left locked. Body:
// HealthRequest; result: HealthResult. The agent sends a progress message
// every second while it checks (the host's heartbeat).
const CmdHealth = "health"

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
}
