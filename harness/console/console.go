// Package console finds kernel crash, hang and OOM reports in a console log.
//
// It is modelled on syzkaller's pkg/report: a table of oops families, each
// with a header regexp, a title format and a way to find the guilty
// function. Parse reads a whole log; Watcher spots the first report header
// on a live serial console.
//
// Titles are stable across runs and builds: they hold no addresses, PIDs,
// timestamps, line numbers or compiler suffixes (".cold", ".constprop.0").
// The formats are:
//
//	kernel BUG in FUNC                        kernel BUG at FILE:LINE! (BUG_ON; FUNC from RIP)
//	kernel BUG at FILE                        the same when no function was found (line dropped)
//	BUG: invalid opcode in FUNC               invalid opcode without a "kernel BUG at" line
//	general protection fault in FUNC
//	BUG: kernel NULL pointer dereference in FUNC
//	BUG: unable to handle page fault for address in FUNC
//	BUG: unable to handle kernel paging request in FUNC   (pre-5.x wording)
//	KASAN: TYPE ACCESS in FUNC                e.g. "KASAN: use-after-free Read in FUNC"
//	KFENCE: TYPE in FUNC
//	BUG: TEXT in FUNC                         other BUG: lines, e.g. "BUG: scheduling while atomic in FUNC"
//	Oops in FUNC, divide error in FUNC, ...   other die() lines
//	WARNING in FUNC                           WARN_ON and friends
//	WARNING: TEXT in FUNC                     lockdep, e.g. "WARNING: possible circular locking dependency detected in FUNC"
//	UBSAN: TYPE in FUNC
//	INFO: task hung in FUNC
//	BUG: soft lockup in FUNC
//	BUG: hard lockup in FUNC
//	BUG: workqueue lockup
//	INFO: rcu detected stall in FUNC
//	kernel panic: REASON                      a panic with no report before it (kind crash,
//	                                          or hang for "hung_task: blocked tasks" and
//	                                          "softlockup: hung tasks"); REASON loses exitcode=,
//	                                          addresses and all but its first sentence
//	out of memory                             every OOM report, including OOM panics
//
// " in FUNC" is left out when no function could be found. The function is
// the one syzkaller would blame: see Report.Function.
package console

import (
	"fmt"
	"strings"
)

// Kind classifies a report.
type Kind string

const (
	// Crash is an oops, BUG, GPF, invalid opcode, KASAN report or panic.
	Crash Kind = "crash"
	// Warning is a WARNING: (WARN_ON, lockdep) or UBSAN report; the kernel
	// carries on unless panic_on_warn is set.
	Warning Kind = "warning"
	// Hang is a hung task, soft or hard lockup, workqueue lockup or RCU stall.
	Hang Kind = "hang"
	// OOM is the OOM killer at work, including the panic that may end it.
	// It is not a bug of the kernel under test.
	OOM Kind = "oom"
	// DataRace is a KCSAN data-race report. With --kcsan the race window is
	// widened by KCSAN's watchpoints, and KCSAN reports every data race it
	// sees, most of them benign or known: they are recorded and counted
	// apart, never as a failure of the kernel under test.
	DataRace Kind = "data-race"
)

// Report is one kernel report found in a console log.
type Report struct {
	Kind  Kind
	Title string // normalised, see the package documentation
	// Function is the guilty function: the one the header names (WARNING,
	// KASAN), else the first kernel RIP, else the first reliable call
	// trace frame that is not a reporting or generic frame (dump_stack,
	// panic, __warn, die, exception entry, KASAN internals, string
	// functions, allocators, locks, schedule and waits; frames marked "?"
	// are unreliable and skipped; hangs skip <IRQ> sections). Compiler
	// suffixes are dropped. For OOM reports it is the allocating function,
	// for a bare panic the panic's caller. Empty if none.
	Function string
	// Start and End are byte offsets into the log: log[Start:End] is the
	// raw report, whole lines (End is past the last line's newline).
	Start, End int
	// Text is the report's kernel lines with timestamps, caller ids, '\r'
	// and ANSI escapes removed; lines printed by others (the guest agent,
	// recognised by their lack of a timestamp) are left out.
	Text string
}

// Parse returns every report in the log, in order, or nil if there is none.
//
// A report runs from its header (or the "cut here" line before it) to its
// end marker ("---[ end trace", "---[ end Kernel panic"), the next report,
// ten seconds of kernel silence, or the end of the log. Headers that belong
// to a report already open do not start another one: the "invalid opcode"
// after "kernel BUG at", the "Oops:" after "BUG: kernel NULL pointer
// dereference", the OOM killer's verdict after "invoked oom-killer", and a
// "Kernel panic - not syncing" that follows a report (oops=panic,
// panic_on_warn, hung_task_panic, init killed by the OOM killer). The first
// header gives the title and the kind, so an OOM that ends in a panic is
// still an OOM.
func Parse(log []byte) []Report {
	var p parser
	splitLines(log, 0, func(l line) { p.add(l) })
	if len(p.drafts) == 0 {
		return nil
	}
	reports := make([]Report, len(p.drafts))
	for i, d := range p.drafts {
		reports[i] = p.report(d)
	}
	return reports
}

// Tail returns the last n lines of log, without '\r' and without a final
// newline, for error messages.
func Tail(log []byte, n int) string {
	if n <= 0 || len(log) == 0 {
		return ""
	}
	end := len(log)
	if log[end-1] == '\n' {
		end--
	}
	start := end
	for lines := 0; start > 0; start-- {
		if log[start-1] == '\n' {
			lines++
			if lines == n {
				break
			}
		}
	}
	return strings.ReplaceAll(string(log[start:end]), "\r", "")
}

// Summary describes reports in one line: "no kernel reports", or the kinds
// and titles in order of first appearance, repeats counted, e.g.
// "crash: kernel BUG in zswap_writeback_entry; oom: out of memory (x2)".
func Summary(reports []Report) string {
	if len(reports) == 0 {
		return "no kernel reports"
	}
	type key struct {
		kind  Kind
		title string
	}
	var order []key
	count := map[key]int{}
	for _, r := range reports {
		k := key{r.Kind, r.Title}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	parts := make([]string, len(order))
	for i, k := range order {
		parts[i] = fmt.Sprintf("%s: %s", k.kind, k.title)
		if c := count[k]; c > 1 {
			parts[i] += fmt.Sprintf(" (x%d)", c)
		}
	}
	return strings.Join(parts, "; ")
}
