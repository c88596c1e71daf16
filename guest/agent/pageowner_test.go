package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"zswaprace/guest/proto"
)

// record is one page_owner record as Linux 6.1 prints it.
func record(order int, frames ...string) string {
	var b strings.Builder
	b.WriteString("Page allocated via order ")
	b.WriteString(string(rune('0' + order)))
	b.WriteString(", mask 0x152800(GFP_NOWAIT|__GFP_IO|__GFP_FS|__GFP_NOWARN|__GFP_NORETRY), pid 61, tgid 61 (kswapd0), ts 67891234 ns, free_ts 0 ns\n")
	b.WriteString("PFN 37812 type Unmovable Block 73 type Movable Flags 0x1000000000000000(node=0|zone=1)\n")
	for _, f := range frames {
		b.WriteString(" " + f + "\n")
	}
	b.WriteString("\n")
	return b.String()
}

var zbudStack = []string{"post_alloc_hook+0x1a/0xa0", "get_page_from_freelist+0x3b6/0x1150", "__alloc_pages+0x1a6/0x3a0",
	"zbud_alloc+0x98/0x1f0", "zswap_frontswap_store+0x3d5/0x890", "__frontswap_store+0x73/0x110", "swap_writepage+0x3a/0x70"}

var slabStack = []string{"post_alloc_hook+0x1a/0xa0", "get_page_from_freelist+0x3b6/0x1150", "__alloc_pages+0x1a6/0x3a0",
	"allocate_slab+0x2a0/0x3d0", "___slab_alloc+0x5a9/0x960", "kmem_cache_alloc+0x2c9/0x310", "zswap_entry_cache_alloc+0x17/0x40 [zswap]"}

func TestTrimFrame(t *testing.T) {
	for in, want := range map[string]string{
		" post_alloc_hook+0x1a/0xa0":                  "post_alloc_hook",
		"  zswap_entry_cache_alloc+0x17/0x40 [zswap]": "zswap_entry_cache_alloc [zswap]",
		" shrink_folio_list.constprop.0+0x5f/0xa00":   "shrink_folio_list.constprop.0",
		" 0xffffffff81234567":                         "0xffffffff81234567",
		" register_early_stack+0x28/0x70":             "register_early_stack",
	} {
		if got := trimFrame(in); got != want {
			t.Errorf("trimFrame(%q) = %q, want %q", in, got, want)
		}
	}
	// The allocator's frames go, the caller stays; a stack of nothing but
	// allocator frames keeps its last.
	got := trimStack([]string{"post_alloc_hook", "get_page_from_freelist", "__alloc_pages_slowpath.constprop.0", "__alloc_pages", "zbud_alloc", "alloc_pages"})
	if diff := cmp.Diff([]string{"zbud_alloc", "alloc_pages"}, got); diff != "" {
		t.Errorf("trimStack (-want +got):\n%s", diff)
	}
	if got := trimStack([]string{"post_alloc_hook", "__alloc_pages"}); len(got) != 1 || got[0] != "__alloc_pages" {
		t.Errorf("trimStack of allocator frames only = %q", got)
	}
}

func TestReadPageOwnerGroups(t *testing.T) {
	text := record(0, zbudStack...) + record(0, zbudStack...) + record(3, slabStack...) +
		// The same caller from another offset is the same stack.
		record(0, append([]string{"post_alloc_hook+0x20/0xa0"}, zbudStack[1:]...)...) +
		"Page allocated via order 1, mask 0x0(), pid 1, tgid 1 (swapper/0), ts 0 ns, free_ts 0 ns\n" +
		"PFN 100 type Movable Block 0 type Movable Flags 0x0()\n register_early_stack+0x28/0x70\n" +
		"Page has been migrated, last migrate reason: compaction\nCharged to memcg /\n\n" +
		// A page on the LRU: counted apart, not grouped.
		"Page allocated via order 0, mask 0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), pid 80, tgid 80 (stress), ts 1 ns, free_ts 0 ns\n" +
		"PFN 2048 type Movable Block 2 type Movable Flags 0x80414(uptodate|lru|owner_priv_1|swapbacked|zone=0)\n" +
		" post_alloc_hook+0x7c/0x83\n __read_swap_cache_async+0xce/0x1a0\n\n" +
		// The last record without its blank line still counts.
		strings.TrimSuffix(record(0, slabStack...), "\n")
	counts, snap := ReadPageOwner(context.Background(), strings.NewReader(text))
	want := StackCounts{
		"zbud_alloc\nzswap_frontswap_store\n__frontswap_store\nswap_writepage":            3,
		"allocate_slab\n___slab_alloc\nkmem_cache_alloc\nzswap_entry_cache_alloc [zswap]": 9,
		"register_early_stack": 2,
	}
	if diff := cmp.Diff(want, counts); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if !snap.Complete || snap.Records != 7 || snap.Pages != 15 || snap.LRUPages != 1 || snap.Stacks != 3 || snap.Bytes != int64(len(text)) || snap.Error != "" {
		t.Errorf("snapshot %+v", snap)
	}
}

func TestReadPageOwnerStopsAtDeadline(t *testing.T) {
	// An endless page_owner: the read stops at the context's end with
	// what it has, incomplete.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, snap := ReadPageOwner(ctx, endless{strings.Repeat(record(0, zbudStack...), 10)})
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s", el)
	}
	if snap.Complete || snap.Records == 0 || !strings.Contains(snap.Error, "stopped after") {
		t.Errorf("snapshot %+v", snap)
	}
}

type endless struct{ s string }

func (e endless) Read(p []byte) (int, error) { return copy(p, e.s), nil }

func TestSnapshotPageOwnerAbandonsAStuckRead(t *testing.T) {
	// A FIFO whose writer never writes: the read blocks in the kernel, as
	// a page_owner stuck behind a lock would. The snapshot gives up at
	// its deadline (and the 2-s grace), beating meanwhile.
	dir := t.TempDir()
	fifo := filepath.Join(dir, "page_owner")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // keeps the FIFO open for the reader, writes nothing
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	beats := 0
	start := time.Now()
	counts, snap := SnapshotPageOwner(context.Background(), fifo, 200*time.Millisecond, 50*time.Millisecond, func() { beats++ })
	el := time.Since(start)
	if el > 4*time.Second || el < 200*time.Millisecond {
		t.Errorf("took %s; want the deadline plus the grace", el)
	}
	if counts != nil || snap.Complete || !strings.Contains(snap.Error, "did not return") || beats < 2 {
		t.Errorf("counts %v, snapshot %+v, %d beats", counts, snap, beats)
	}
	if _, snap := SnapshotPageOwner(context.Background(), filepath.Join(dir, "none"), time.Second, time.Second, nil); snap.Complete || snap.Error == "" {
		t.Errorf("a missing file: %+v", snap)
	}
}

func TestDiffPageOwner(t *testing.T) {
	before := StackCounts{"a\nx": 100, "b\ny": 50, "c\nz": 10, "gone\nq": 7}
	after := StackCounts{"a\nx": 100, "b\ny": 350, "b\nw": 20, "c\nz": 4, "new\nn": 40}
	grown, total, callers := DiffPageOwner(before, after, 2)
	wantGrown := []proto.StackPages{{Pages: 300, Stack: []string{"b", "y"}}, {Pages: 40, Stack: []string{"new", "n"}}}
	if diff := cmp.Diff(wantGrown, grown); diff != "" {
		t.Errorf("grown (-want +got):\n%s", diff)
	}
	if total != 360 {
		t.Errorf("grown pages %d, want 360", total)
	}
	// By caller, net: b +320, new +40, c -6, gone -7.
	wantCallers := []proto.StackPages{{Pages: 320, Stack: []string{"b"}}, {Pages: 40, Stack: []string{"new"}}}
	if diff := cmp.Diff(wantCallers, callers); diff != "" {
		t.Errorf("callers (-want +got):\n%s", diff)
	}
}

// The health check compares page_owner after swapoff with the baseline's
// and names what grew.
func TestCheckComparesPageOwner(t *testing.T) {
	proc, dbg := fakeProc(t, map[string]string{"proc/swaps": swaps, "proc/meminfo": meminfo,
		"zswap/stored_pages": "0\n", "zswap/pool_total_size": "0\n", "proc/1/stat": stat("1", "init", "S"),
		"proc/kpageflags": kpageflags()})
	po := filepath.Join(t.TempDir(), "page_owner")
	if err := os.WriteFile(po, []byte(record(3, slabStack...)+record(0, zbudStack...)), 0o644); err != nil {
		t.Fatal(err)
	}
	e := &HealthEnv{Proc: proc, Debugfs: dbg, Tick: 20 * time.Millisecond, PageOwner: po,
		Swapoff: func(context.Context, string) error { return nil }}
	counts, snap := e.PageOwnerBaseline(context.Background(), func() {})
	base := e.Snapshot()
	base.pageOwner, base.PageOwner = counts, snap
	if base.PageOwner == nil || !base.PageOwner.Complete || base.PageOwner.Pages != 9 || base.Meminfo["MemFree"] != 180000 {
		t.Fatalf("baseline %+v", base)
	}
	if err := os.WriteFile(po, []byte(record(3, slabStack...)+strings.Repeat(record(0, zbudStack...), 5)), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := e.Check(context.Background(), proto.HealthRequest{SwapoffBaseSec: 5, StuckSec: 0}, base, func() {})
	if err != nil {
		t.Fatal(err)
	}
	d := res.PageOwner
	if d == nil || !d.After.Complete || d.After.Pages != 13 || d.GrownPages != 4 || len(d.Grown) != 1 || d.Grown[0].Pages != 4 ||
		d.Grown[0].Stack[0] != "zbud_alloc" || len(d.Callers) != 1 || d.Callers[0].Stack[0] != "zbud_alloc" {
		t.Errorf("page_owner diff %+v", d)
	}
	// Without page_owner the check says nothing about it.
	e.PageOwner = filepath.Join(t.TempDir(), "none")
	counts, snap = e.PageOwnerBaseline(context.Background(), func() {})
	base = e.Snapshot()
	res, _ = e.Check(context.Background(), proto.HealthRequest{SwapoffBaseSec: 5}, base, func() {})
	if counts != nil || snap != nil || res.PageOwner != nil {
		t.Errorf("without page_owner: baseline %v %+v, result %+v", counts, snap, res.PageOwner)
	}
}

// The real sample (testdata/README.md): its figures as counted from the
// text independently of the parser.
func TestReadRealPageOwner(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "page_owner.txt"))
	if err != nil {
		t.Fatal(err)
	}
	counts, snap := ReadPageOwner(context.Background(), bytes.NewReader(b))
	if !snap.Complete || snap.Records != 396 || snap.Pages != 412 || snap.LRUPages != 100 || snap.Stacks != 26 || snap.Bytes != int64(len(b)) {
		t.Errorf("snapshot %+v; want 396 records, 412 pages, 100 on the LRU, 26 stacks, %d bytes", snap, len(b))
	}
	early := "register_early_stack\ninit_page_owner\npage_ext_init\nkernel_init_freeable"
	if counts[early] != 169 {
		t.Errorf("early pages %d, want 169; stacks:\n%v", counts[early], counts)
	}
	var pool int64
	for k, n := range counts {
		if strings.HasPrefix(k, "zbud_zpool_malloc\nzpool_malloc\nzswap_frontswap_store\n__frontswap_store\nswap_writepage\n") {
			pool += n
		}
		for _, f := range strings.Split(k, "\n") {
			if strings.Contains(f, "+0x") || f == "post_alloc_hook" || f == "get_page_from_freelist" || f == "Charged to memcg /" {
				t.Errorf("stack %q keeps %q", k, f)
			}
		}
	}
	if pool != 90 {
		t.Errorf("zswap pool pages %d, want 90", pool)
	}

	// The same guest before the pool filled: without the pool's records.
	// The pool is what grew, and its caller says so.
	var before bytes.Buffer
	for _, rec := range strings.SplitAfter(string(b), "\n\n") {
		if !strings.Contains(rec, "zbud_zpool_malloc") {
			before.WriteString(rec)
		}
	}
	base, _ := ReadPageOwner(context.Background(), &before)
	grown, total, callers := DiffPageOwner(base, counts, proto.MaxGrownStacks)
	if total != 90 || len(grown) != 4 || grown[0].Pages != 62 || grown[0].Stack[0] != "zbud_zpool_malloc" ||
		len(callers) != 1 || callers[0].Pages != 90 || callers[0].Stack[0] != "zbud_zpool_malloc" {
		t.Errorf("grown %d pages: %+v; callers %+v", total, grown, callers)
	}
}
