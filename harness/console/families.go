package console

import (
	"regexp"
	"strings"
)

// family is one kind of kernel report header, modelled on syzkaller's
// pkg/report oops table: a header regexp, the report kind, how the title is
// formed and how the report relates to the headers that may follow it.
type family struct {
	name string
	kind Kind
	re   *regexp.Regexp
	// fn is the submatch of re holding the guilty function, 0 if none.
	// It wins over the RIP line and the call trace unless it is a generic
	// frame (memcpy, a lock primitive, ...).
	fn int
	// title formats the title from the header's submatches and the guilty
	// function ("" if none was found).
	title func(t *titleInput) string

	oops     bool // may be followed by its die() line ("Oops: 0002 [#1]", "invalid opcode: 0000 [#1]")
	die      bool // is a die() line itself
	panic    bool // "Kernel panic - not syncing": merges into the report before it
	oomKill  bool // the OOM killer's verdict: continues an open OOM report, then closes it
	oomCont  bool // continues an open OOM report
	ruled    bool // framed by "=====" rules (KASAN, KFENCE, UBSAN): starts at the first, ends at the second
	skipIRQs bool // frames printed in <IRQ>/<NMI> sections are the detector's, not the culprit's
}

type titleInput struct {
	m     []string // header submatches
	fn    string   // guilty function, "" if unknown
	lines []line   // the report's lines starting at the header
}

// in appends " in FUNC" when the function is known.
func (t *titleInput) in(s string) string {
	if t.fn == "" {
		return s
	}
	return s + " in " + t.fn
}

func fixed(s string) func(*titleInput) string {
	return func(t *titleInput) string { return t.in(s) }
}

const symRe = `([A-Za-z0-9_.$]+)`

var families = []*family{
	{
		name:  "panic",
		kind:  Crash,
		re:    regexp.MustCompile(`^Kernel panic - not syncing:? ?(.*)$`),
		panic: true,
		title: func(t *titleInput) string {
			if panicKind(t.m[1]) == OOM {
				return "out of memory"
			}
			return "kernel panic: " + panicReason(t.m[1])
		},
	},
	{
		name: "kernel BUG at",
		kind: Crash,
		re:   regexp.MustCompile(`^kernel BUG at (\S+?):(\d+)!?`),
		oops: true,
		title: func(t *titleInput) string {
			if t.fn == "" {
				return "kernel BUG at " + t.m[1]
			}
			return "kernel BUG in " + t.fn
		},
	},
	{
		// CONFIG_DEBUG_BUGVERBOSE=n: "Kernel BUG at func+0x1a/0x30 [verbose debug info unavailable]".
		name:  "Kernel BUG at func",
		kind:  Crash,
		re:    regexp.MustCompile(`^Kernel BUG at ` + symRe + `\+0x`),
		fn:    1,
		oops:  true,
		title: fixed("kernel BUG"),
	},
	{
		name:  "KASAN",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: KASAN: (\S+(?: or \S+)?) in (?:` + symRe + `\+0x)?`),
		fn:    2,
		ruled: true,
		title: func(t *titleInput) string {
			s := "KASAN: " + t.m[1]
			// "Read of size 8 at addr ... by task ..." follows the header.
			for i := 1; i < len(t.lines) && i <= 3; i++ {
				if m := kasanAccessRe.FindStringSubmatch(t.lines[i].text); m != nil {
					s += " " + m[1]
					break
				}
			}
			return t.in(s)
		},
	},
	{
		// "BUG: KCSAN: data-race in zswap_load / zswap_writeback_entry",
		// between "=====" rules; the title keeps both functions in the
		// order KCSAN printed them.
		name:  "KCSAN",
		kind:  DataRace,
		re:    regexp.MustCompile(`^BUG: KCSAN: (\S+) in ` + symRe + `(?: / ` + symRe + `)?`),
		ruled: true,
		title: func(t *titleInput) string {
			s := "KCSAN: " + t.m[1] + " in " + normFunc(t.m[2])
			if t.m[3] != "" {
				s += " / " + normFunc(t.m[3])
			}
			return s
		},
	},
	{
		name:  "KFENCE",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: KFENCE: (.+?) in (?:` + symRe + `\+0x)?`),
		fn:    2,
		ruled: true,
		title: func(t *titleInput) string { return t.in("KFENCE: " + t.m[1]) },
	},
	{
		name:  "NULL pointer dereference",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: (?:unable to handle )?kernel NULL pointer dereference`),
		oops:  true,
		title: fixed("BUG: kernel NULL pointer dereference"),
	},
	{
		name:  "page fault",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: unable to handle page fault for address`),
		oops:  true,
		title: fixed("BUG: unable to handle page fault for address"),
	},
	{
		name:  "paging request",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: unable to handle kernel paging request`),
		oops:  true,
		title: fixed("BUG: unable to handle kernel paging request"),
	},
	{
		name:     "soft lockup",
		kind:     Hang,
		re:       regexp.MustCompile(`^(?:watchdog: )?BUG: soft lockup`),
		skipIRQs: true,
		title:    fixed("BUG: soft lockup"),
	},
	{
		name:     "workqueue lockup",
		kind:     Hang,
		re:       regexp.MustCompile(`^BUG: workqueue lockup`),
		skipIRQs: true,
		title:    func(*titleInput) string { return "BUG: workqueue lockup" },
	},
	{
		name:     "hard lockup",
		kind:     Hang,
		re:       regexp.MustCompile(`^(?:NMI )?(?:watchdog: )?Watchdog detected hard LOCKUP`),
		skipIRQs: true,
		title:    fixed("BUG: hard lockup"),
	},
	{
		// Any other "BUG: ...": scheduling while atomic, sleeping function
		// called from invalid context, Bad page state, spinlock bad magic, ...
		name:  "BUG",
		kind:  Crash,
		re:    regexp.MustCompile(`^BUG: (.+)$`),
		oops:  true,
		title: func(t *titleInput) string { return t.in("BUG: " + bugText(t.m[1])) },
	},
	{
		name:  "general protection fault",
		kind:  Crash,
		re:    regexp.MustCompile(`^(?:Oops: )?general protection fault`),
		die:   true,
		title: fixed("general protection fault"),
	},
	{
		// die(): "invalid opcode: 0000 [#1] PREEMPT SMP NOPTI", "Oops: 0002 [#1] ...",
		// "divide error: 0000 [#1] ...", "stack segment: 0000 [#1] ...".
		name: "die",
		kind: Crash,
		re:   regexp.MustCompile(`^(?:Oops: )?([A-Za-z][A-Za-z0-9 #]*?): [0-9a-f]{4} \[#\d+\]`),
		die:  true,
		title: func(t *titleInput) string {
			switch name := t.m[1]; name {
			case "invalid opcode":
				return t.in("BUG: invalid opcode")
			default:
				return t.in(name)
			}
		},
	},
	{
		// "WARNING: CPU: 1 PID: 57 at mm/zswap.c:1234 zswap_frontswap_store+0x4f/0x5e0"
		name:  "WARNING",
		kind:  Warning,
		re:    regexp.MustCompile(`^WARNING: CPU: \d+ PID: \d+ at (?:\S+:\d+ )?(?:` + symRe + `\+0x)?`),
		fn:    1,
		title: fixed("WARNING"),
	},
	{
		// lockdep and RCU-lockdep splats.
		name: "lockdep WARNING",
		kind: Warning,
		re: regexp.MustCompile(`^WARNING: (possible circular locking dependency detected|` +
			`possible recursive locking detected|inconsistent lock state|suspicious RCU usage|` +
			`bad unlock balance detected|held lock freed|lock held when returning to user space|` +
			`possible irq lock inversion dependency detected|\S+-safe -> \S+-unsafe lock order detected|` +
			`lock held at task exit|Nested lock was not taken|bad contention detected)`),
		title: func(t *titleInput) string { return t.in("WARNING: " + t.m[1]) },
	},
	{
		name:  "UBSAN",
		kind:  Warning,
		ruled: true,
		re:    regexp.MustCompile(`^UBSAN: (\S+) in `),
		title: func(t *titleInput) string { return t.in("UBSAN: " + t.m[1]) },
	},
	{
		// "INFO: task kworker/u4:1:45 blocked for more than 122 seconds."
		name:  "hung task",
		kind:  Hang,
		re:    regexp.MustCompile(`^INFO: task .*:\d+ blocked for more than \d+ seconds`),
		title: fixed("INFO: task hung"),
	},
	{
		// "rcu: INFO: rcu_preempt self-detected stall on CPU",
		// "rcu: INFO: rcu_sched detected stalls on CPUs/tasks:",
		// "rcu: INFO: rcu_preempt detected expedited stalls on CPUs/tasks: { 1-... }".
		name:     "RCU stall",
		kind:     Hang,
		re:       regexp.MustCompile(`^(?:rcu: )?INFO: rcu_\w+ (?:self-)?detected (?:expedited )?stall`),
		skipIRQs: true,
		title:    fixed("INFO: rcu detected stall"),
	},
	{
		// "stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0"
		name:  "oom-killer",
		kind:  OOM,
		re:    regexp.MustCompile(`^.+ invoked oom-killer: `),
		title: oomTitle,
	},
	{
		// "Out of memory: Killed process 123 (stress) total-vm:...", and the memcg variant.
		name:    "oom kill",
		kind:    OOM,
		re:      regexp.MustCompile(`^(?:Memory cgroup out of memory|Out of memory(?: \(oom_kill_allocating_task\))?): Kill(?:ed|ing) process \d+`),
		oomKill: true,
		title:   oomTitle,
	},
	{
		name:    "no killable processes",
		kind:    OOM,
		re:      regexp.MustCompile(`^Out of memory and no killable processes`),
		oomCont: true,
		title:   oomTitle,
	},
}

func oomTitle(*titleInput) string { return "out of memory" }

var kasanAccessRe = regexp.MustCompile(`^(Read|Write) of size \d+`)

// header is a line matched by a family.
type header struct {
	fam *family
	m   []string
}

// headerHints holds a substring of every family's header; a line with
// none of them is not tried against the regexps.
var headerHints = []string{"BUG", "Kernel panic", "LOCKUP", "general protection", "[#",
	"WARNING: ", "UBSAN: ", "INFO: ", "oom-killer", "ut of memory"}

// classify returns the family whose header the line is, if any.
func classify(text string) (header, bool) {
	s := strings.TrimSpace(text)
	if len(s) < 8 || !hinted(s) {
		return header{}, false
	}
	for _, f := range families {
		if m := f.re.FindStringSubmatch(s); m != nil {
			return header{fam: f, m: m}, true
		}
	}
	return header{}, false
}

func hinted(s string) bool {
	for _, h := range headerHints {
		if strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// kind is the kind of a report opened by this header.
func (h header) kind() Kind {
	if h.fam.panic {
		return panicKind(h.m[1])
	}
	return h.fam.kind
}

var (
	oomPanicRe  = regexp.MustCompile(`^(?:Out of memory|System is deadlocked on memory)`)
	hangPanicRe = regexp.MustCompile(`^(?:hung_task: blocked tasks|softlockup: hung tasks|Hard LOCKUP|RCU Stall|.*watchdog: .*lockup)`)
)

// panicKind tells OOM panics (panic_on_oom, no killable process) and
// detector panics (hung_task_panic, softlockup_panic) from crashes.
func panicKind(reason string) Kind {
	switch {
	case oomPanicRe.MatchString(reason):
		return OOM
	case hangPanicRe.MatchString(reason):
		return Hang
	}
	return Crash
}

var (
	exitcodeRe = regexp.MustCompile(`\s*exitcode=0x[0-9a-fA-F]+`)
	symOffRe   = regexp.MustCompile(`\+0x[0-9a-f]+/0x[0-9a-f]+`)
	addrRe     = regexp.MustCompile(`\b(?:0x[0-9a-fA-F]+|[0-9a-f]{8,16})\b`)
	sentenceRe = regexp.MustCompile(`\.\s+[A-Z]`)
	spacesRe   = regexp.MustCompile(`\s+`)
)

// panicReason normalises a panic message: "Attempted to kill init!
// exitcode=0x00000009" becomes "Attempted to kill init!", addresses and
// symbol offsets go, and only the first sentence is kept ("No working init
// found.  Try passing init= option to kernel. ...").
func panicReason(s string) string {
	s = exitcodeRe.ReplaceAllString(s, "")
	s = symOffRe.ReplaceAllString(s, "")
	s = addrRe.ReplaceAllString(s, "ADDR")
	if loc := sentenceRe.FindStringIndex(s); loc != nil {
		s = s[:loc[0]]
	}
	s = spacesRe.ReplaceAllString(strings.TrimSpace(s), " ")
	s = strings.TrimRight(s, ". ")
	if s == "" {
		s = "unknown reason"
	}
	return s
}

// bugCutRe finds where the stable part of a "BUG: ..." message ends: before
// a colon, comma, bracket, "at FILE", "in process", "on CPU#", a dash, or a
// key:value token ("mm:00000000deadbeef").
var bugCutRe = regexp.MustCompile(`:|,|!|\.\s|\s\[|\s\(| at | in process| on CPU| - |\s\S+:\S|\s+$`)

func bugText(s string) string {
	if loc := bugCutRe.FindStringIndex(s); loc != nil {
		s = s[:loc[0]]
	}
	s = addrRe.ReplaceAllString(s, "ADDR")
	return spacesRe.ReplaceAllString(strings.TrimSpace(s), " ")
}
