package console

import "regexp"

// Report states.
const (
	stateOpen   = iota // lines still belong to the report
	stateSoft          // ended ("---[ end trace"), but a panic may still follow
	stateClosed        // nothing more joins it
)

const (
	// lookbackLines is how far before a header a "cut here" line is looked for.
	lookbackLines = 10
	// mergeLines and mergeSeconds bound the distance between an ended
	// report and a panic that still counts as its consequence (an oops with
	// oops=panic, init killed by the OOM killer, panic_on_warn).
	mergeLines   = 200
	mergeSeconds = 10
	// gapSeconds of console silence from the kernel ends an open report
	// that has no end marker (hung tasks, stalls).
	gapSeconds = 10
)

var (
	endTraceRe = regexp.MustCompile(`^---\[ end trace [0-9a-f]+ \]---`)
	endPanicRe = regexp.MustCompile(`^---\[ end [Kk]ernel panic`)
	rebootRe   = regexp.MustCompile(`^Rebooting in -?\d+ seconds`)
	ruleRe     = regexp.MustCompile(`^={20,}$`)
	cutHereRe  = regexp.MustCompile(`^-+\[ cut here \]-+$`)
)

// draft is a report being assembled; indices are line numbers.
type draft struct {
	h       header
	kind    Kind
	first   int // first line (a "cut here" or "=====" before the header)
	hdr     int // the header line
	last    int // last line that belongs to the report
	state   int
	dieSeen bool
	tsMode  bool // the header has a timestamp: lines without one are not the kernel's
	lastTS  float64
}

// parser runs the report state machine over lines. Lines are numbered from
// 0; only lines[base:] are kept (the Watcher drops old ones).
type parser struct {
	lines  []line
	base   int
	drafts []*draft
}

func (p *parser) line(i int) *line { return &p.lines[i-p.base] }

func (p *parser) n() int { return p.base + len(p.lines) }

// cur is the last report, nil if none.
func (p *parser) cur() *draft {
	if len(p.drafts) == 0 {
		return nil
	}
	return p.drafts[len(p.drafts)-1]
}

// add feeds one line and returns the report it opened, if any.
func (p *parser) add(l line) *draft {
	p.lines = append(p.lines, l)
	i := p.n() - 1
	cur := p.cur()
	if cur != nil && cur.state != stateClosed && l.hasTS && cur.tsMode {
		switch {
		case l.ts+1 < cur.lastTS:
			// The clock went back: the machine rebooted.
			cur.state = stateClosed
		case cur.state == stateOpen && l.ts-cur.lastTS > gapSeconds:
			cur.state = stateSoft
		}
	}
	if h, ok := classify(l.text); ok {
		if cur != nil && p.joins(cur, h, l, i) {
			p.extend(cur, i)
			switch {
			case h.fam.panic:
				cur.state = stateOpen
			case h.fam.die:
				cur.dieSeen = true
			case h.fam.oomKill:
				cur.state = stateSoft
			}
			return nil
		}
		if cur != nil && cur.state == stateOpen {
			cur.state = stateSoft
		}
		return p.open(h, i)
	}
	if cur == nil || cur.state != stateOpen || (cur.tsMode && !l.hasTS) {
		return nil
	}
	p.extend(cur, i)
	switch {
	case endPanicRe.MatchString(l.text), rebootRe.MatchString(l.text):
		cur.state = stateClosed
	case endTraceRe.MatchString(l.text):
		cur.state = stateSoft
	case cur.h.fam.ruled && ruleRe.MatchString(l.text):
		cur.state = stateSoft
	}
	return nil
}

// joins reports whether header h continues report d rather than starting
// a new one.
func (p *parser) joins(d *draft, h header, l line, i int) bool {
	switch {
	case h.fam.panic:
		// Whatever panicked right after a report is its consequence: the
		// oops with oops=panic, the OOM that killed init, panic_on_warn.
		if d.state == stateOpen {
			return true
		}
		if d.state == stateClosed || i-d.last > mergeLines {
			return false
		}
		return !(l.hasTS && d.tsMode && l.ts-d.lastTS > mergeSeconds)
	case d.state != stateOpen:
		return false
	case h.fam.die:
		// "kernel BUG at" / "BUG: unable to handle ..." is followed by its
		// "invalid opcode: 0000 [#1]" / "Oops: 0002 [#1]".
		return d.h.fam.oops && !d.dieSeen
	case h.fam.oomKill, h.fam.oomCont:
		return d.kind == OOM
	}
	return false
}

func (p *parser) extend(d *draft, i int) {
	d.last = i
	if l := p.line(i); l.hasTS {
		d.lastTS = l.ts
	}
}

func (p *parser) open(h header, i int) *draft {
	l := p.line(i)
	d := &draft{h: h, kind: h.kind(), first: i, hdr: i, last: i, tsMode: l.hasTS, lastTS: l.ts}
	d.dieSeen = h.fam.die
	// Start at the "------------[ cut here ]------------" that WARN and BUG
	// print before their message, or at KASAN's opening "=====" rule.
	lo := i - lookbackLines
	if prev := p.cur(); prev != nil && prev.last >= lo {
		lo = prev.last + 1
	}
	if lo < p.base {
		lo = p.base
	}
	for j := i - 1; j >= lo; j-- {
		t := p.line(j).text
		if cutHereRe.MatchString(t) || (h.fam.ruled && j == i-1 && ruleRe.MatchString(t)) {
			d.first = j
			break
		}
	}
	p.drafts = append(p.drafts, d)
	return d
}

// report turns a draft into a Report. The lines from d.first on must
// still be kept.
func (p *parser) report(d *draft) Report {
	var text []byte
	var body []line // header onwards, kernel lines only
	for i := d.first; i <= d.last; i++ {
		l := p.line(i)
		if d.tsMode && !l.hasTS {
			continue
		}
		text = append(text, l.text...)
		text = append(text, '\n')
		if i >= d.hdr {
			body = append(body, *l)
		}
	}
	fn := guiltyFunction(d.h.fam, d.h.m, body)
	return Report{
		Kind:     d.kind,
		Title:    d.h.fam.title(&titleInput{m: d.h.m, fn: fn, lines: body}),
		Function: fn,
		Start:    p.line(d.first).start,
		End:      p.line(d.last).end,
		Text:     string(text),
	}
}
