package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"zswaprace/guest/proto"
)

// PageOwnerPath is where a kernel booted with page_owner=on lists the
// allocation of every page in use.
const PageOwnerPath = "/sys/kernel/debug/page_owner"

// StackCounts are pages by allocation stack: the key is the trimmed
// frames joined by newlines, innermost first.
type StackCounts map[string]int64

// allocatorFrames are the page allocator's own frames at the top of every
// stack: the same for every allocation, they say nothing about who
// allocated. Trimmed while they lead the stack; the first other frame is
// the caller and always stays. Compared without a compiler suffix such as
// ".constprop.0".
var allocatorFrames = map[string]bool{
	"post_alloc_hook": true, "prep_new_page": true, "get_page_from_freelist": true,
	"__alloc_pages": true, "__alloc_pages_slowpath": true, "__alloc_pages_bulk": true,
	"alloc_pages": true, "__folio_alloc": true, "folio_alloc": true,
	"vma_alloc_folio": true, "alloc_pages_vma": true, "alloc_page_interleave": true,
	"__get_free_pages": true, "get_zeroed_page": true,
}

// trimFrame makes one stack line readable and stable across builds: the
// symbol without its "+0x1a/0x30" offset, a module's "[name]" kept.
func trimFrame(line string) string {
	f := strings.TrimSpace(line)
	i := strings.Index(f, "+0x")
	if i <= 0 {
		return f
	}
	name := f[:i]
	if j := strings.IndexByte(f[i:], ' '); j >= 0 {
		if mod := strings.TrimSpace(f[i+j:]); mod != "" {
			name += " " + mod
		}
	}
	return name
}

// isAllocatorFrame says whether a trimmed frame is the page allocator's.
func isAllocatorFrame(frame string) bool {
	base, _, _ := strings.Cut(frame, " ")
	base, _, _ = strings.Cut(base, ".")
	return allocatorFrames[base]
}

// trimStack drops the allocator's leading frames, keeping at least one.
func trimStack(frames []string) []string {
	i := 0
	for i < len(frames)-1 && isAllocatorFrame(frames[i]) {
		i++
	}
	return frames[i:]
}

const recordPrefix = "Page allocated via order "

// ReadPageOwner reads page_owner text from r and groups its pages by
// allocation stack: each record ("Page allocated via order N, ...", a
// "PFN ..." line, the stack one frame a line, a blank line) counts 1<<N
// pages to its trimmed stack, except pages on an LRU list (counted
// apart: the LRU counters account for them). It stops at ctx's end with what it has,
// Complete false. The text is never held: only the counts are.
func ReadPageOwner(ctx context.Context, r io.Reader) (StackCounts, proto.PageOwnerSnapshot) {
	start := time.Now()
	counts := StackCounts{}
	var snap proto.PageOwnerSnapshot
	br := bufio.NewReaderSize(r, 256<<10)
	var (
		in     bool  // inside a record
		order  int64 // its order
		lru    bool  // its page is on an LRU list
		frames []string
		key    strings.Builder
	)
	flush := func() {
		if !in {
			return
		}
		in = false
		pages := int64(1) << order
		snap.Records++
		snap.Pages += pages
		if lru {
			// Accounted for by the LRU counters, as the loss is: not
			// grouped (swapoff brings swapped pages back on purpose).
			snap.LRUPages += pages
			frames = frames[:0]
			return
		}
		key.Reset()
		for i, f := range trimStack(frames) {
			if i > 0 {
				key.WriteByte('\n')
			}
			key.WriteString(f)
		}
		counts[key.String()] += pages
		frames = frames[:0]
	}
	finish := func(err error) (StackCounts, proto.PageOwnerSnapshot) {
		snap.Seconds = time.Since(start).Seconds()
		snap.Stacks = len(counts)
		if err != nil {
			snap.Error = err.Error()
		} else {
			snap.Complete = true
		}
		return counts, snap
	}
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		snap.Bytes += int64(len(line))
		overlong := false
		for errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer is no frame: skip the rest.
			overlong = true
			line, err = br.ReadSlice('\n')
			snap.Bytes += int64(len(line))
		}
		if err != nil && !errors.Is(err, io.EOF) {
			flush()
			return finish(fmt.Errorf("page_owner: %w", err))
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case overlong:
		case len(bytes.TrimSpace(line)) == 0:
			flush()
		case bytes.HasPrefix(line, []byte(recordPrefix)):
			flush()
			in, order, lru = true, 0, false
			rest := line[len(recordPrefix):]
			if i := bytes.IndexByte(rest, ','); i > 0 {
				if o, perr := strconv.ParseInt(string(rest[:i]), 10, 64); perr == nil && o >= 0 && o < 40 {
					order = o
				}
			}
		case !in:
			// Text outside a record (a kernel that prints something else
			// first): not a page.
		case bytes.HasPrefix(line, []byte("PFN ")):
			lru = hasFlag(line, "lru")
		case line[0] == ' ' || line[0] == '\t':
			frames = append(frames, trimFrame(string(line)))
		default:
			// "Page has been migrated, ...", "Charged to memcg /": not
			// frames (these start with a space).
		}
		if errors.Is(err, io.EOF) {
			flush()
			return finish(nil)
		}
		if n%256 == 0 && ctx.Err() != nil {
			flush()
			return finish(fmt.Errorf("page_owner: stopped after %.1f s (%s): %d records read", time.Since(start).Seconds(), context.Cause(ctx), snap.Records))
		}
	}
}

// hasFlag says whether the "PFN ..." line's "Flags 0x...(a|b|zone=0)"
// list has flag.
func hasFlag(line []byte, flag string) bool {
	i := bytes.Index(line, []byte("Flags "))
	if i < 0 {
		return false
	}
	rest := line[i:]
	open, end := bytes.IndexByte(rest, '('), bytes.LastIndexByte(rest, ')')
	if open < 0 || end < open {
		return false
	}
	for _, f := range bytes.Split(rest[open+1:end], []byte("|")) {
		if string(f) == flag {
			return true
		}
	}
	return false
}

// SnapshotPageOwner reads the page_owner file at path within deadline,
// calling beat every tick (the host's heartbeat). A read that does not
// return by the deadline (stuck in the kernel) is abandoned, and the
// snapshot is incomplete.
func SnapshotPageOwner(ctx context.Context, path string, deadline, tick time.Duration, beat func()) (StackCounts, proto.PageOwnerSnapshot) {
	start := time.Now()
	f, err := os.Open(path)
	if err != nil {
		return nil, proto.PageOwnerSnapshot{Error: err.Error()}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, deadline, fmt.Errorf("its deadline of %s", deadline))
	defer cancel()
	type result struct {
		counts StackCounts
		snap   proto.PageOwnerSnapshot
	}
	done := make(chan result, 1)
	go func() {
		defer f.Close()
		c, s := ReadPageOwner(ctx, f)
		done <- result{c, s}
	}()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case r := <-done:
			return r.counts, r.snap
		case <-t.C:
			if beat != nil {
				beat()
			}
		case <-ctx.Done():
			// ReadPageOwner stops between reads; give a read in progress
			// a moment, then leave it.
			select {
			case r := <-done:
				return r.counts, r.snap
			case <-time.After(2 * time.Second):
				return nil, proto.PageOwnerSnapshot{Seconds: time.Since(start).Seconds(),
					Error: fmt.Sprintf("page_owner: a read did not return by %s (%v)", deadline, context.Cause(ctx))}
			}
		}
	}
}

// DiffPageOwner compares two complete snapshots' counts: the stacks with
// the largest increase from before to after (at most max), the increase
// summed over every stack that grew, and the net change by caller (the
// trimmed stack's first frame), largest increases first.
func DiffPageOwner(before, after StackCounts, max int) (grown []proto.StackPages, grownPages int64, callers []proto.StackPages) {
	byCaller := map[string]int64{}
	add := func(key string, d int64) {
		caller, _, _ := strings.Cut(key, "\n")
		byCaller[caller] += d
	}
	for k, a := range after {
		d := a - before[k]
		if d != 0 {
			add(k, d)
		}
		if d > 0 {
			grownPages += d
			grown = append(grown, proto.StackPages{Pages: d, Stack: strings.Split(k, "\n")})
		}
	}
	for k, b := range before {
		if _, ok := after[k]; !ok {
			add(k, -b)
		}
	}
	sortStacks(grown)
	if len(grown) > max {
		grown = grown[:max]
	}
	for c, d := range byCaller {
		if d > 0 {
			callers = append(callers, proto.StackPages{Pages: d, Stack: []string{c}})
		}
	}
	sortStacks(callers)
	if len(callers) > max {
		callers = callers[:max]
	}
	return grown, grownPages, callers
}

// sortStacks orders by pages, most first, then by stack for a stable
// order.
func sortStacks(s []proto.StackPages) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Pages != s[j].Pages {
			return s[i].Pages > s[j].Pages
		}
		return strings.Join(s[i].Stack, "\n") < strings.Join(s[j].Stack, "\n")
	})
}
