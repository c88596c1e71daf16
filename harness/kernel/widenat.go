package kernel

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"zswaprace/harness/fault"
)

// WidenAtParam is the boot parameter that sets --widen-at's delay. It is a
// core parameter (no module prefix), since the file's module name is not
// known from its path; in a file built as a module it is
// MODNAME.zswaprace_widen_us.
const WidenAtParam = "zswaprace_widen_us"

// DefaultWidenUS is --widen-at's delay when the flag gives none.
const DefaultWidenUS = 2000

// WidenSpec is --widen-at FILE:LINE[:USEC] as given.
type WidenSpec struct {
	File    string // relative to the tree root
	Line    int    // 1-based: the delay goes before this line
	DelayUS int
}

// ParseWidenAt parses FILE:LINE[:USEC]; a malformed one is a usage error.
func ParseWidenAt(s string) (WidenSpec, error) {
	bad := func(why string) (WidenSpec, error) {
		return WidenSpec{}, fault.Newf(fault.Usage, "--widen-at", "%q: %s (want FILE:LINE[:USEC], e.g. mm/zswap.c:1080:2000, FILE relative to the source tree)", s, why)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("not FILE:LINE or FILE:LINE:USEC")
	}
	w := WidenSpec{File: parts[0], DelayUS: DefaultWidenUS}
	if w.File == "" || filepath.IsAbs(w.File) || filepath.Clean(w.File) != w.File || strings.HasPrefix(w.File, "..") {
		return bad("FILE must be a clean path inside the source tree")
	}
	if !strings.HasSuffix(w.File, ".c") {
		return bad("FILE must be a C source file (.c): the delay goes into a function body")
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 1 {
		return bad("LINE must be a line number, 1 or more")
	}
	w.Line = n
	if len(parts) == 3 {
		us, err := strconv.Atoi(parts[2])
		if err != nil || us < 1 || us > 1000000 {
			return bad("USEC must be 1 to 1000000 microseconds")
		}
		w.DelayUS = us
	}
	return w, nil
}

// Widen is instrumentation --widen-at generated for a tree.
type Widen struct {
	Spec     WidenSpec
	Function string // the function the delay is in
	// Sleep: the delay sleeps (fsleep) rather than busy-waits (udelay).
	Sleep  bool
	Reason string // why it sleeps or busy-waits, in words
	Patch  *Patch // the unified diff, applied like a shipped widening
}

// DelayUS is the delay the kernel gets by default.
func (w *Widen) DelayUS() int { return w.Spec.DelayUS }

// Where says where the delay is and how it waits: "mm/zswap.c:1080 (sleep)".
func (w *Widen) Where() string {
	how := "busy-wait"
	if w.Sleep {
		how = "sleep"
	}
	return fmt.Sprintf("%s:%d (%s)", w.Spec.File, w.Spec.Line, how)
}

// WidenAt writes the instrumentation --widen-at spec asks for in the tree
// at dir: a parameter, and before line LINE of FILE a delay of that many
// microseconds, sleeping where the code may sleep and busy-waiting where
// it may not (or where that is unclear). A file that is not in the tree,
// a line past its end, or a line where a statement cannot go (outside a
// function body, inside an expression, between an if and its else) is a
// usage error.
func WidenAt(dir, spec string) (*Widen, error) {
	ws, err := ParseWidenAt(spec)
	if err != nil {
		return nil, err
	}
	data, _, err := readTree(dir, ws.File)
	if err != nil {
		return nil, fault.Newf(fault.Usage, "--widen-at", "%s: no such file in the source tree %s (%v)", ws.File, dir, err)
	}
	raw := strings.Split(string(data), "\n")
	if len(raw) > 0 && raw[len(raw)-1] == "" {
		raw = raw[:len(raw)-1]
	}
	if ws.Line > len(raw) {
		return nil, fault.Newf(fault.Usage, "--widen-at", "%s has %d lines: line %d is past its end", ws.File, len(raw), ws.Line)
	}
	a := analyse(raw)
	fn, err := a.placement(ws.Line)
	if err != nil {
		return nil, fault.Newf(fault.Usage, "--widen-at", "%s:%d: %v", ws.File, ws.Line, err)
	}
	sleep, reason := a.context(fn, ws.Line)
	w := &Widen{Spec: ws, Function: fn.name, Sleep: sleep, Reason: reason}
	w.Patch = &Patch{Path: "--widen-at " + spec, Files: []string{ws.File},
		Data: []byte(widenDiff(ws, raw, !strings.HasSuffix(string(data), "\n"), a.declLine(fn), sleep, fn.name, reason))}
	return w, nil
}

// widenDiff is the unified diff that adds the parameter after the file's
// last top-level #include (or at its top) and the delay before ws.Line.
func widenDiff(ws WidenSpec, raw []string, noEOL bool, declAt int, sleep bool, fn, reason string) string {
	decl := []string{
		"",
		"/* zswaprace --widen-at: the delay before line " + strconv.Itoa(ws.Line) + ", in microseconds (0: none). */",
		"#include <linux/delay.h>",
		"#include <linux/moduleparam.h>",
		"static unsigned int " + WidenAtParam + ";",
		"#ifdef MODULE",
		"module_param(" + WidenAtParam + ", uint, 0644);",
		"#else",
		"core_param(" + WidenAtParam + ", " + WidenAtParam + ", uint, 0644);",
		"#endif",
	}
	indent := leadingSpace(raw[ws.Line-1])
	if strings.TrimSpace(raw[ws.Line-1]) == "}" || indent == "" {
		indent += "\t"
	}
	wait := "udelay(" + WidenAtParam + ");"
	if sleep {
		wait = "fsleep(" + WidenAtParam + ");"
	}
	how := "busy-wait: " + reason
	if sleep {
		how = "sleep: " + reason
	}
	how = strings.ReplaceAll(how, "*/", "* /")
	body := []string{
		indent + "/* zswaprace --widen-at, " + how + " */",
		indent + "if (" + WidenAtParam + ")",
		indent + "\t" + wait,
	}
	return unifiedInsert(ws.File, raw, noEOL, []insertion{{before: declAt, lines: decl}, {before: ws.Line, lines: body}})
}

func leadingSpace(s string) string {
	return s[:len(s)-len(strings.TrimLeft(s, " \t"))]
}

// insertion is lines inserted before line before (1-based; len+1 appends).
type insertion struct {
	before int
	lines  []string
}

// unifiedInsert is a -p1 unified diff of file that only inserts lines,
// with three lines of context, hunks that overlap merged; noEOL says the
// file's last line has no newline. The insertions are in line order.
func unifiedInsert(file string, raw []string, noEOL bool, ins []insertion) string {
	const ctx = 3
	var b strings.Builder
	fmt.Fprintf(&b, "--- a/%s\n+++ b/%s\n", file, file)
	added := 0
	for i := 0; i < len(ins); {
		// The hunk covers the insertions whose context overlaps.
		j := i + 1
		for j < len(ins) && ins[j].before-ctx <= ins[j-1].before-1+ctx+1 {
			j++
		}
		start := max(1, ins[i].before-ctx)          // first old line shown
		end := min(len(raw), ins[j-1].before-1+ctx) // last old line shown
		var lines []string
		n := 0
		k := i
		for l := start; l <= end+1; l++ {
			for k < j && ins[k].before == l {
				for _, x := range ins[k].lines {
					lines = append(lines, "+"+x)
					n++
				}
				k++
			}
			if l <= end {
				lines = append(lines, " "+raw[l-1])
				if l == len(raw) && noEOL {
					lines = append(lines, `\ No newline at end of file`)
				}
			}
		}
		old := end - start + 1
		fmt.Fprintf(&b, "@@ -%d,%d +%d,%d @@\n", start, old, start+added, old+n)
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		added += n
		i = j
	}
	return b.String()
}

// analysis is what WidenAt knows of a C file: for every line, the code on
// it without comments, strings and preprocessor lines, and the functions.
type analysis struct {
	raw   []string
	code  []string // comments, strings and # lines blanked
	funcs []function
	// depth and paren are the brace and parenthesis depth at the start of
	// each line (index 0 is line 1); data says the line starts inside an
	// initializer or a struct, union or enum body; directive that it is a
	// preprocessor line.
	depth, paren    []int
	data, directive []bool
	includes        []int // the top-level #include lines
}

// function is a function body: the lines of its braces, and its header.
type function struct {
	name         string
	open, close  int // lines of its { and }
	header       string
	headerLine   int
	commentAbove string
	commentLines int
}

var (
	funcName = regexp.MustCompile(`([A-Za-z_]\w*)\s*\([^()]*(?:\([^()]*\)[^()]*)*\)\s*(?:__\w+(?:\([^()]*\))?\s*)*$`)
	include  = regexp.MustCompile(`^\s*#\s*include\b`)
	// aggregate is a struct, union or enum body's opening.
	aggregate = regexp.MustCompile(`\b(?:struct|union|enum)(?:\s+\w+)?\s*$`)
)

// analyse strips comments, strings and preprocessor lines, and finds
// the function bodies.
func analyse(raw []string) *analysis {
	a := &analysis{raw: raw}
	inComment := false
	inDirective := false
	for i, l := range raw {
		if !inComment && !inDirective && strings.HasPrefix(strings.TrimSpace(l), "#") {
			inDirective = true
			if include.MatchString(l) {
				a.includes = append(a.includes, i+1)
			}
		}
		a.directive = append(a.directive, inDirective)
		if inDirective {
			inDirective = strings.HasSuffix(strings.TrimRight(l, " \t"), "\\")
			a.code = append(a.code, "")
			continue
		}
		var c strings.Builder
		for j := 0; j < len(l); j++ {
			switch {
			case inComment:
				if strings.HasPrefix(l[j:], "*/") {
					inComment = false
					j++
				}
				c.WriteByte(' ')
			case strings.HasPrefix(l[j:], "/*"):
				inComment = true
				j++
				c.WriteString("  ")
			case strings.HasPrefix(l[j:], "//"):
				j = len(l)
			case l[j] == '"' || l[j] == '\'':
				q := l[j]
				c.WriteByte(q)
				for j++; j < len(l) && l[j] != q; j++ {
					if l[j] == '\\' {
						j++
					}
				}
				c.WriteByte(q)
			default:
				c.WriteByte(l[j])
			}
		}
		a.code = append(a.code, c.String())
	}
	// Braces: a top-level { after a ")" (and attributes) opens a function.
	depth, paren := 0, 0
	var pending strings.Builder // code since the last top-level ; or }
	pendingLine := 0
	cur := -1
	var kinds []bool  // per open brace: is it data (an initializer or a type body)?
	var recent []byte // the code just before, for what a brace opens
	for i, l := range a.code {
		a.depth = append(a.depth, depth)
		a.paren = append(a.paren, paren)
		a.data = append(a.data, len(kinds) > 0 && kinds[len(kinds)-1])
		for j := 0; j < len(l); j++ {
			ch := l[j]
			if ch == '{' {
				before := strings.TrimSpace(string(recent))
				isData := false
				if before != "" {
					last := before[len(before)-1]
					isData = last == '=' || last == ',' || last == '{' || last == '(' || aggregate.MatchString(before)
				}
				if len(kinds) > 0 && kinds[len(kinds)-1] {
					isData = true
				}
				kinds = append(kinds, isData)
			}
			if ch == '}' && len(kinds) > 0 {
				kinds = kinds[:len(kinds)-1]
			}
			recent = append(recent, ch)
			if len(recent) > 200 {
				recent = recent[len(recent)-100:]
			}
			switch ch {
			case '(':
				paren++
			case ')':
				paren--
			case '{':
				if depth == 0 {
					head := strings.TrimSpace(pending.String())
					if m := funcName.FindStringSubmatch(head); m != nil && !strings.Contains(head, "=") {
						a.funcs = append(a.funcs, function{name: m[1], open: i + 1, header: head, headerLine: pendingLine})
						cur = len(a.funcs) - 1
					}
				}
				depth++
			case '}':
				depth--
				if depth == 0 {
					if cur >= 0 {
						a.funcs[cur].close = i + 1
						cur = -1
					}
					pending.Reset()
					pendingLine = 0
				}
			case ';':
				if depth == 0 {
					pending.Reset()
					pendingLine = 0
				}
			}
			if depth == 0 && ch != ';' && ch != '}' {
				if pendingLine == 0 && ch != ' ' && ch != '\t' {
					pendingLine = i + 1
				}
				pending.WriteByte(ch)
			}
		}
		if depth == 0 {
			pending.WriteByte(' ')
		}
		recent = append(recent, ' ')
	}
	for k := range a.funcs {
		f := &a.funcs[k]
		// The comment right above the header, if any, for what it says of
		// the calling context.
		var c []string
		for l := f.headerLine - 1; l >= 1 && l > f.headerLine-40; l-- {
			t := strings.TrimSpace(a.raw[l-1])
			if t == "" || !(strings.HasPrefix(t, "*") || strings.HasPrefix(t, "/*") || strings.HasPrefix(t, "//")) {
				break
			}
			c = append(c, t)
		}
		f.commentAbove, f.commentLines = strings.Join(c, " "), len(c)
	}
	return a
}

// declLine is where the parameter goes, before fn: after the last
// top-level #include above it, else just above fn and its comment.
func (a *analysis) declLine(fn *function) int {
	top := fn.headerLine - fn.commentLines
	at := 0
	for _, l := range a.includes {
		if l < top && a.depth[l-1] == 0 && !strings.HasSuffix(strings.TrimRight(a.raw[l-1], " \t"), "\\") {
			at = l + 1
		}
	}
	if at == 0 {
		at = top
	}
	return at
}

// placement finds the function whose body holds line, and checks that a
// statement can go before it.
func (a *analysis) placement(line int) (*function, error) {
	var fn *function
	for k := range a.funcs {
		if f := &a.funcs[k]; line > f.open && line <= f.close {
			fn = f
		}
	}
	if fn == nil {
		return nil, fmt.Errorf("not inside a function body (the delay must go between statements of a function)")
	}
	if a.paren[line-1] != 0 {
		return nil, fmt.Errorf("inside a parenthesised expression (the line continues the one before): pick the line of a statement")
	}
	if a.directive[line-1] {
		return nil, fmt.Errorf("a preprocessor line: pick the line of a statement")
	}
	if a.data[line-1] {
		return nil, fmt.Errorf("inside an initializer or a struct, union or enum body, not between statements")
	}
	t := strings.TrimSpace(a.code[line-1])
	if strings.HasPrefix(t, "else") {
		return nil, fmt.Errorf("an else: a statement before it would split the if from its else")
	}
	// The code before must end a statement, a block or a label: after
	// "if (x)" a delay would become the if's body.
	for l := line - 1; l > fn.open; l-- {
		p := strings.TrimSpace(a.code[l-1])
		if p == "" {
			continue
		}
		if last := p[len(p)-1]; last != ';' && last != '{' && last != '}' && last != ':' {
			return nil, fmt.Errorf("line %d (%q) does not end a statement: a delay here would change what the code means; pick the line of the next statement", l, strings.TrimSpace(a.raw[l-1]))
		}
		break
	}
	return fn, nil
}

// A region the code opens and closes in which it must not sleep.
var (
	acquire = regexp.MustCompile(`\b(?:raw_)?spin_(?:try)?lock(?:_irq|_irqsave|_bh|_nested|_irqsave_nested)?\s*\(|\b(?:read|write)_(?:try)?lock(?:_irq|_irqsave|_bh)?\s*\(|\bxa_lock(?:_irq|_irqsave|_bh)?\s*\(|\brcu_read_lock(?:_bh|_sched)?\s*\(|\blocal_irq_(?:disable|save)\s*\(|\bpreempt_disable\s*\(|\blocal_bh_disable\s*\(|\bpagefault_disable\s*\(|\bkmap_atomic\s*\(|\bget_cpu\s*\(|\bbit_spin_lock\s*\(|\bzs_map_object\s*\(|\blocal_lock(?:_irq|_irqsave)?\s*\(|\bwrite_seqlock(?:_irq|_irqsave|_bh)?\s*\(|\bhlist_bl_lock\s*\(|\block_cluster(?:_or_swap_info)?\s*\(|\b(?:scoped_)?guard\s*\(\s*(?:raw_spinlock|spinlock|rcu|irq|irqsave|preempt|read_lock|write_lock|local_lock)\w*\s*\)`)
	release = regexp.MustCompile(`\b(?:raw_)?spin_unlock(?:_irq|_irqrestore|_bh)?\s*\(|\b(?:read|write)_unlock(?:_irq|_irqrestore|_bh)?\s*\(|\bxa_unlock(?:_irq|_irqrestore|_bh)?\s*\(|\brcu_read_unlock(?:_bh|_sched)?\s*\(|\blocal_irq_(?:enable|restore)\s*\(|\bpreempt_enable(?:_no_resched)?\s*\(|\blocal_bh_enable\s*\(|\bpagefault_enable\s*\(|\bkunmap_atomic\s*\(|\bput_cpu\s*\(|\bbit_spin_unlock\s*\(|\bzs_unmap_object\s*\(|\blocal_unlock(?:_irq|_irqrestore)?\s*\(|\bwrite_sequnlock(?:_irq|_irqrestore|_bh)?\s*\(|\bhlist_bl_unlock\s*\(|\bunlock_cluster(?:_or_swap_info)?\s*\(`)
	// What the comment above a function says when it runs atomically.
	atomicComment = regexp.MustCompile(`(?i)atomic context|interrupt context|irqs? (?:are |is )?disabled|in_interrupt|softirq`)
	// heldComment: the comment says the caller holds a lock; like
	// lockParam, until the body releases one.
	heldComment  = regexp.MustCompile(`(?i)called (?:with|under) [^.]*(?:lock|rcu)[^.]*held|with [^.]*lock held|must hold|caller holds|under [^.]*(?:spin|rcu)[^.]*lock`)
	atomicHeader = regexp.MustCompile(`\birqreturn_t\b|__must_hold\s*\(`)
	// lockParam: a function handed a lock is taken to be called holding
	// it, until its body releases it.
	lockParam = regexp.MustCompile(`\b(?:raw_)?spinlock_t\s*\*|__releases\s*\(`)
)

// event is an acquire (+1) or release (-1), or a brace, on a line.
type event struct {
	pos  int
	kind byte // '+', '-', '{', '}'
	what string
}

// held is an acquisition still open.
type held struct {
	what string
	line int
}

// lockStack is the locks held in each open block of a function body,
// innermost last; a block's locks still held at its end move out to the
// block around it.
type lockStack [][]held

func (s *lockStack) open() { *s = append(*s, nil) }

// close ends the innermost block and returns the locks it still held.
func (s *lockStack) close() []held {
	top := (*s)[len(*s)-1]
	*s = (*s)[:len(*s)-1]
	(*s)[len(*s)-1] = append((*s)[len(*s)-1], top...)
	return top
}

func (s *lockStack) acquire(h held) { (*s)[len(*s)-1] = append((*s)[len(*s)-1], h) }

// release drops the innermost block's last lock, false when it held none.
func (s *lockStack) release() bool {
	t := &(*s)[len(*s)-1]
	if len(*t) == 0 {
		return false
	}
	*t = (*t)[:len(*t)-1]
	return true
}

// context decides whether a delay before line of fn may sleep. It
// busy-waits when the function looks like it runs atomically (an
// interrupt handler, a lock held by its caller, its comment says so) or
// when, at the line, it has acquired a spinlock (a guard() or
// scoped_guard() of one counts until the function's end), an RCU read
// lock, or disabled interrupts, preemption, bottom halves or page faults
// without releasing them. Releases in blocks that closed before the line (an
// early return's unlock) do not count, and what a closed block acquired
// and did not release counts as held: when unsure, busy-wait.
func (a *analysis) context(fn *function, line int) (sleep bool, reason string) {
	if m := atomicHeader.FindString(fn.header); m != "" {
		return false, fmt.Sprintf("%s() looks like it runs atomically (%q in its header)", fn.name, strings.TrimSpace(m))
	}
	if m := atomicComment.FindString(fn.commentAbove); m != "" {
		return false, fmt.Sprintf("the comment above %s() says %q", fn.name, m)
	}
	// Pass 1, the whole body: a function that releases at its top level
	// more than it acquired was called holding it (a callback that drops
	// its caller's lock).
	entry := 0
	{
		stack := lockStack{nil}
		level := 0 // the function level's running balance
		a.walk(fn, fn.close, func(e event, l int) {
			switch e.kind {
			case '{':
				stack.open()
			case '}':
				if top := stack.close(); len(stack) == 1 {
					level += len(top)
				}
			case '+':
				if stack.acquire(held{e.what, l}); len(stack) == 1 {
					level++
				}
			case '-':
				if stack.release(); len(stack) == 1 {
					level--
					entry = max(entry, -level)
				}
			}
		})
	}
	var by string // what says the caller holds a lock
	if m := lockParam.FindString(fn.header); m != "" {
		by = fmt.Sprintf("%q in its header", strings.TrimSpace(m))
	} else if m := heldComment.FindString(fn.commentAbove); m != "" {
		by = fmt.Sprintf("the comment above it says %q", m)
	}
	if by != "" {
		entry = max(entry, 1)
	} else if entry > 0 {
		by = "it unlocks more than it locks"
	}
	// Pass 2, up to the line.
	stack := lockStack{nil}
	callerHeld := entry
	a.walk(fn, line-1, func(e event, l int) {
		switch e.kind {
		case '{':
			stack.open()
		case '}':
			stack.close()
		case '+':
			stack.acquire(held{e.what, l})
		case '-':
			if !stack.release() && len(stack) == 1 && callerHeld > 0 {
				callerHeld--
			}
		}
	})
	var open []string
	for _, s := range stack {
		for _, h := range s {
			open = append(open, fmt.Sprintf("%s at line %d", h.what, h.line))
		}
	}
	if len(open) > 0 {
		return false, fmt.Sprintf("in %s(), %s not released before line %d", fn.name, strings.Join(open, ", "), line)
	}
	if callerHeld > 0 {
		return false, fmt.Sprintf("%s() is entered holding a lock (%s), still held at line %d", fn.name, by, line)
	}
	return true, fmt.Sprintf("no spinlock, RCU read lock, or irq/preempt/bh-off region open at line %d of %s(), and nothing says it runs atomically", line, fn.name)
}

// walk calls f with the events of fn's body, from its opening brace (not
// reported) through line upto, in order.
func (a *analysis) walk(fn *function, upto int, f func(event, int)) {
	for l := fn.open; l <= upto && l <= len(a.code); l++ {
		c := a.code[l-1]
		var evs []event
		if l == fn.open {
			// Skip up to and including the function's own brace.
			i := strings.IndexByte(c, '{')
			c = strings.Repeat(" ", i+1) + c[i+1:]
		}
		for _, m := range acquire.FindAllStringIndex(c, -1) {
			evs = append(evs, event{m[0], '+', strings.TrimRight(strings.TrimSpace(c[m[0]:m[1]]), "( ") + "()"})
		}
		for _, m := range release.FindAllStringIndex(c, -1) {
			evs = append(evs, event{m[0], '-', ""})
		}
		for i := 0; i < len(c); i++ {
			if c[i] == '{' || c[i] == '}' {
				evs = append(evs, event{i, c[i], ""})
			}
		}
		sortEvents(evs)
		for _, e := range evs {
			if l == fn.close && e.kind == '}' {
				return
			}
			f(e, l)
		}
	}
}

func sortEvents(evs []event) {
	for i := 1; i < len(evs); i++ {
		for j := i; j > 0 && evs[j].pos < evs[j-1].pos; j-- {
			evs[j], evs[j-1] = evs[j-1], evs[j]
		}
	}
}
