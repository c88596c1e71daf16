package runner

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/harness/report"
	"zswaprace/harness/vm"
	"zswaprace/stress"
)

// Meminfo figures (kB) before and after a run, as a 256-MiB guest shows
// them: a healthy one, and one where the zswap pool kept 6000 pages after
// swapoff (entries leaked on the invalidate path).
var (
	memBefore = map[string]int64{"MemTotal": 233040, "MemFree": 150000, "Active(anon)": 2000, "Inactive(anon)": 9000,
		"Active(file)": 100, "Inactive(file)": 300, "Unevictable": 40000, "Mlocked": 0, "SwapCached": 0,
		"SReclaimable": 3000, "SUnreclaim": 9000, "KernelStack": 600, "PageTables": 300, "Percpu": 200, "VmallocUsed": 1500, "Zswap": 0}
	memHealthy = with(memBefore, map[string]int64{"MemFree": 148800, "Inactive(anon)": 9800, "SUnreclaim": 9300, "SwapCached": 40})
	memLeaked  = with(memBefore, map[string]int64{"MemFree": 126000, "Inactive(anon)": 9800, "SUnreclaim": 10300, "Zswap": 24000})
)

func with(m, changes map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for k, v := range m {
		out[k] = v
	}
	for k, v := range changes {
		out[k] = v
	}
	return out
}

func TestLostPages(t *testing.T) {
	lost, d, ok := lostPages(memBefore, memHealthy)
	// MemFree fell 1200 kB: 800 kB to the LRU, 300 kB to slab: 100 kB lost.
	if !ok || lost != 25 || d["memfree"] != -300 || d["lru"] != 200 || d["slab"] != 75 || d["swap_cached"] != 10 {
		t.Errorf("healthy: lost %d, deltas %v", lost, d)
	}
	lost, d, ok = lostPages(memBefore, memLeaked)
	// 24000 kB fell: 800 LRU, 1300 slab; the 21900 kB left is the pool.
	if !ok || lost != 5475 || d["zswap_pool"] != 6000 {
		t.Errorf("leaked: lost %d, deltas %v", lost, d)
	}
	if _, _, ok := lostPages(map[string]int64{"Slab": 1}, memHealthy); ok {
		t.Errorf("no MemFree, yet a figure")
	}
}

func healthy() proto.HealthResult {
	return proto.HealthResult{Baseline: memBefore, After: memHealthy, Seconds: 6.2,
		Swapoff:          []proto.Swapoff{{Device: "/dev/vda", UsedKiB: 800, Seconds: 0.4, DeadlineSec: 123, OK: true}},
		ZswapStoredPages: 0, ZswapPoolBytes: 0, LockedPages: 0}
}

func TestJudgeHealth(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*proto.HealthResult)
		tol     int64
		outcome report.Outcome
		titles  []string
		msg     string
	}{
		{"healthy", func(*proto.HealthResult) {}, 1024, "", nil, ""},
		{"loss under the tolerance", func(h *proto.HealthResult) { h.After = with(memHealthy, map[string]int64{"MemFree": 145000}) }, 1024, "", nil, ""},
		{"loss over the tolerance", func(h *proto.HealthResult) { h.After = with(memHealthy, map[string]int64{"MemFree": 145000}) }, 900,
			report.OutcomeLeak, []string{report.TitleLeak}, "975 pages (3.8 MiB) did not come back"},
		{"leaked zswap entries", func(h *proto.HealthResult) {
			h.After, h.ZswapStoredPages, h.ZswapPoolBytes = memLeaked, 11000, 6000*4096
		}, 1024, report.OutcomeLeak, []string{report.TitleLeak, report.TitleZswapNotEmpty}, "5475 pages (21.4 MiB) did not come back"},
		{"a few zswap entries kept", func(h *proto.HealthResult) { h.ZswapStoredPages, h.ZswapPoolBytes = 3, 8192 }, 1024,
			report.OutcomeHealth, []string{report.TitleZswapNotEmpty}, "zswap still holds 3 pages (0.0 MiB) stored in 2 pages"},
		{"swapoff fails", func(h *proto.HealthResult) {
			h.Swapoff[0].OK, h.Swapoff[0].Error = false, "swapoff /dev/vda: cannot allocate memory"
			h.After = memLeaked // not judged while swap is on
		}, 1024, report.OutcomeHealth, []string{report.TitleSwapoff}, "swapoff /dev/vda (200 pages (0.8 MiB) in use) failed after 0.4 s: swapoff /dev/vda: cannot allocate memory"},
		{"swapoff overruns", func(h *proto.HealthResult) {
			h.Swapoff[0].OK, h.Swapoff[0].TimedOut, h.Swapoff[0].Error = false, true, "killed at its deadline and still not gone 2 s later (stuck in the kernel)"
			h.StuckTasks = []string{"311 swapoff (folio_wait_bit_common)\n[<0>] folio_wait_bit_common+0x1/0x2"}
		}, 1024, report.OutcomeHang, []string{report.TitleSwapoffHang, report.TitleStuckTask}, "did not finish within its deadline of 123 s"},
		{"stuck task", func(h *proto.HealthResult) { h.StuckTasks = []string{"78 kworker/0:2 (io_schedule)"} }, 1024,
			report.OutcomeHealth, []string{report.TitleStuckTask}, "1 task(s) in D state"},
		{"page left locked", func(h *proto.HealthResult) { h.LockedPages = 2 }, 1024,
			report.OutcomeHealth, []string{report.TitleLockedPage}, "2 pages (0.0 MiB) left locked"},
		{"no baseline, nothing else wrong", func(h *proto.HealthResult) { h.Baseline = nil; h.LockedPages = -1; h.ZswapStoredPages = -1 }, 0, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := healthy()
			res.Swapoff = slices.Clone(res.Swapoff)
			tt.change(&res)
			h, out, titles, msg := judgeHealth(res, tt.tol)
			if out != tt.outcome || !slices.Equal(titles, tt.titles) || !strings.Contains(msg, tt.msg) {
				t.Errorf("got %q %q %q; want %q %q, a message with %q", out, titles, msg, tt.outcome, tt.titles, tt.msg)
			}
			if (out == "") != (len(h.Problems) == 0) || h.LeakTolerancePages != tt.tol || h.Seconds != 6.2 {
				t.Errorf("record %+v", h)
			}
		})
	}
	h, _, _, _ := judgeHealth(healthy(), 1024)
	if *h.LostPages != 25 || *h.MemFreeDropPages != 300 || h.SwappedPages != 200 || !h.SwapoffOK || *h.ZswapStoredPages != 0 || *h.LockedPages != 0 {
		t.Errorf("healthy record: %+v", h)
	}
	if s := h.Summary(); !strings.Contains(s, "swapoff ok in 0.4 s") || !strings.Contains(s, "lost 25 pages (tolerance 1024)") {
		t.Errorf("summary %q", s)
	}
}

// What the health check does to a run's outcome: it decides runs that
// were otherwise clean (or proved nothing about the race), and only
// records itself on runs that already failed.
func TestDecideHealth(t *testing.T) {
	leak := healthy()
	leak.After, leak.ZswapStoredPages, leak.ZswapPoolBytes = memLeaked, 11000, 6000*4096
	base := func() observed {
		return observed{run: report.Run{StressSeconds: 60}, finished: true, result: cleanResult(), elapsed: 61, healthStarted: true, tolerance: 1024}
	}
	tests := []struct {
		name   string
		change func(*observed)
		want   report.Outcome
	}{
		{"healthy", func(o *observed) { h := healthy(); o.health = &h }, report.OutcomeClean},
		{"leak", func(o *observed) { o.health = &leak }, report.OutcomeLeak},
		{"leak without writeback", func(o *observed) {
			o.health = &leak
			before, after := counters(0)
			o.result.KernelBefore, o.result.KernelAfter = before, after
		}, report.OutcomeLeak},
		{"corruption, then a leak", func(o *observed) {
			o.health = &leak
			o.result.Corruptions = map[stress.Class]uint64{stress.Class("stale"): 2}
		}, report.OutcomeCorruption},
		{"interrupted during the check", func(o *observed) { o.interrupted = true; o.healthErr = context.Canceled }, report.OutcomeInterrupted},
		{"check hung", func(o *observed) { o.healthHung = true }, report.OutcomeHang},
		{"agent refused the check", func(o *observed) { o.healthErr = &vm.AgentError{Msg: "health: /proc/swaps: no such file"} }, report.OutcomeClean},
		{"guest lost during the check", func(o *observed) {
			o.healthErr = errors.New("health: connection to the agent lost before a result")
		}, report.OutcomeInfraError},
		{"check off", func(o *observed) { o.healthStarted = false; o.health = &leak }, report.OutcomeClean},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base()
			tt.change(&o)
			r := decide(o)
			if r.Outcome != tt.want {
				t.Fatalf("outcome %q, want %q (%s)", r.Outcome, tt.want, r.Error)
			}
			if o.healthStarted != (r.Health != nil) {
				t.Errorf("health recorded: %v, check started: %v", r.Health != nil, o.healthStarted)
			}
			if r.Failed() && r.Outcome != report.OutcomeCorruption {
				if r.FirstFailureSeconds == nil || *r.FirstFailureSeconds != 60 || len(r.CrashTitles) == 0 {
					t.Errorf("a health failure at %v with titles %q; want at the end of the stress, titled", r.FirstFailureSeconds, r.CrashTitles)
				}
			}
		})
	}
	o := base()
	o.health = &leak
	r := decide(o)
	if !r.FailedAfterWorkload() || r.CrashTitles[0] != report.TitleLeak || r.Health.LostPages == nil || *r.Health.LostPages != 5475 {
		t.Errorf("leak run: %+v", r)
	}
}

// healthAnswer is an agent that answers the health check with res after a
// few heartbeats.
func healthAnswer(res proto.HealthResult) func(context.Context, *fakeMachine, func(proto.Message), any) error {
	return func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		for range 3 {
			onMsg(proto.Message{Type: proto.MsgProgress})
		}
		*result.(*proto.HealthResult) = res
		return nil
	}
}

func cleanWorkload(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
	return finish(result, cleanResult())
}

func TestWatchHealthCheck(t *testing.T) {
	leak := healthy()
	leak.After = memLeaked
	for _, tt := range []struct {
		name string
		res  proto.HealthResult
		want report.Outcome
	}{{"healthy", healthy(), report.OutcomeClean}, {"leak", leak, report.OutcomeLeak}} {
		t.Run(tt.name, func(t *testing.T) {
			boot, _ := splitAtReady(t, corpus(t, cleanLogName))
			s := newSayings()
			f := newFake(boot, 2)
			f.workload, f.health = cleanWorkload, healthAnswer(tt.res)
			spec := testSpec(s)
			spec.Health = &HealthSpec{LeakTolerancePages: 1024}
			r := watchRun(t, t.Context(), spec, f)
			checkOutcome(t, r, tt.want, s)
			if r.Health == nil || r.Health.LostPages == nil || r.WrittenBackPages != 900 {
				t.Errorf("run %+v", r)
			}
			f.check(t, []string{proto.CmdPing, proto.CmdStress, proto.CmdHealth}, true, false)
		})
	}
}

// A guest that goes silent during the health check (swapoff wedged the
// agent) is a hang, and is killed; one whose kernel crashes during it is a
// crash.
func TestWatchHealthHangsOrCrashes(t *testing.T) {
	boot, _ := splitAtReady(t, corpus(t, cleanLogName))
	s := newSayings()
	f := newFake(boot, 2)
	f.workload = cleanWorkload
	f.health = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		return wedged(ctx)
	}
	spec := testSpec(s)
	spec.HangAfter = 200 * time.Millisecond
	spec.Health = &HealthSpec{LeakTolerancePages: 1024}
	start := time.Now()
	r := watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeHang, s)
	if !slices.Contains(r.CrashTitles, report.TitleSwapoffHang) || r.Health == nil || time.Since(start) > farAway {
		t.Errorf("hang: titles %q, health %+v, after %s", r.CrashTitles, r.Health, time.Since(start))
	}
	f.check(t, []string{proto.CmdPing, proto.CmdStress, proto.CmdHealth}, false, true)

	s = newSayings()
	f = newFake(boot, 2)
	f.workload = cleanWorkload
	f.health = func(ctx context.Context, f *fakeMachine, onMsg func(proto.Message), result any) error {
		onMsg(proto.Message{Type: proto.MsgProgress})
		f.write(reportLines(t, bugLogName, 80))
		return wedged(ctx)
	}
	spec = testSpec(s)
	spec.Health = &HealthSpec{LeakTolerancePages: 1024}
	r = watchRun(t, t.Context(), spec, f)
	checkOutcome(t, r, report.OutcomeCrash, s)
	if r.Health == nil || r.Health.Error == "" {
		t.Errorf("the check cut short by the crash is not recorded: %+v", r.Health)
	}
}

// deltas makes a before and after meminfo (kB) whose changes are the
// given page counts of a recorded run's health figures.
func deltas(memfree, lru, slab, stack, tables, percpu, vmalloc int64) (before, after map[string]int64) {
	before = with(memBefore, nil)
	after = with(memBefore, map[string]int64{
		"MemFree": memBefore["MemFree"] + memfree*4, "Inactive(anon)": memBefore["Inactive(anon)"] + lru*4,
		"SUnreclaim": memBefore["SUnreclaim"] + slab*4, "KernelStack": memBefore["KernelStack"] + stack*4,
		"PageTables": memBefore["PageTables"] + tables*4, "Percpu": memBefore["Percpu"] + percpu*4,
		"VmallocUsed": memBefore["VmallocUsed"] + vmalloc*4})
	return before, after
}

// Figures recorded on real runs (explained_pages in run.json) are judged
// as they were: the fixed kernel after 60 s of stress (bin/harness run
// --kernel FIXED --duration 60s) is within the default tolerance.
func TestJudgeRecordedRuns(t *testing.T) {
	before, after := deltas(-331, 33, 12, 4, 7, 0, -21)
	res := healthy()
	res.Baseline, res.After = before, after
	h, out, _, _ := judgeHealth(res, report.DefaultLeakTolerancePages)
	if out != "" || *h.LostPages != 296 {
		t.Errorf("the fixed kernel's recorded run: %q, lost %d; want clean, 296", out, *h.LostPages)
	}
	// The kernel with the test patch that leaks zswap entries, 30 s of
	// stress (bin/harness run --kernel LEAKING --duration 30s).
	before, after = deltas(-13182, 21, 526, 4, 3, 0, -21)
	after["Zswap"] = before["Zswap"] + 12235*4
	res.Baseline, res.After, res.ZswapStoredPages, res.ZswapPoolBytes = before, after, 24526, 12235*4096
	h, out, titles, msg := judgeHealth(res, report.DefaultLeakTolerancePages)
	if out != report.OutcomeLeak || *h.LostPages != 12649 || !slices.Equal(titles, []string{report.TitleLeak, report.TitleZswapNotEmpty}) ||
		!strings.Contains(msg, "zswap_pool +12235") || !strings.Contains(msg, "24526 pages (95.8 MiB) stored in 12235 pages (47.8 MiB) of pool") {
		t.Errorf("the leaking kernel's recorded run: %q %q, lost %d: %s", out, titles, *h.LostPages, msg)
	}
}

// With page_owner, a leak run's record and message name the stacks that
// grew by report.MinStackPages or more; smaller growth is not kept.
func TestJudgeHealthNamesLeakStacks(t *testing.T) {
	res := healthy()
	res.After, res.ZswapStoredPages, res.ZswapPoolBytes = memLeaked, 11000, 6000*4096
	zbud := []string{"zbud_alloc", "zswap_frontswap_store", "__frontswap_store", "swap_writepage", "pageout"}
	res.PageOwner = &proto.PageOwnerDiff{
		Baseline: proto.PageOwnerSnapshot{Seconds: 3.5, Pages: 20000, Complete: true},
		After:    proto.PageOwnerSnapshot{Seconds: 4.1, Pages: 26300, Bytes: 9 << 20, Complete: true},
		Grown: []proto.StackPages{{Pages: 4100, Stack: zbud}, {Pages: 1700, Stack: append([]string{"zbud_alloc", "zswap_frontswap_store"}, "shrink_folio_list")},
			{Pages: 255, Stack: []string{"allocate_slab", "___slab_alloc"}}},
		GrownPages: 6300,
		Callers:    []proto.StackPages{{Pages: 5800, Stack: []string{"zbud_alloc"}}, {Pages: 255, Stack: []string{"allocate_slab"}}},
	}
	h, out, _, msg := judgeHealth(res, 1024)
	if out != report.OutcomeLeak {
		t.Fatalf("outcome %q", out)
	}
	p := h.PageOwner
	if p == nil || !p.Compared || len(p.Stacks) != 2 || p.Stacks[0].Pages != 4100 || len(p.Callers) != 1 || p.Callers[0].Stack[0] != "zbud_alloc" ||
		p.GrownPages != 6300 || p.BaselineSeconds != 3.5 || p.AfterSeconds != 4.1 || p.AfterBytes != 9<<20 {
		t.Fatalf("page_owner record %+v", p)
	}
	want := "page_owner: allocated since the baseline 4100 pages from zbud_alloc < zswap_frontswap_store < __frontswap_store < swap_writepage; 1700 pages from zbud_alloc < zswap_frontswap_store < shrink_folio_list"
	if !strings.Contains(msg, want) {
		t.Errorf("message %q\nlacks %q", msg, want)
	}
	if s := h.Summary(); !strings.Contains(s, "page_owner read in 3.5 s at the baseline (20000 pages) and 4.1 s after (26300 pages, 9.0 MiB of text), 6300 pages more; grew most: 4100 pages from zbud_alloc") {
		t.Errorf("summary %q", s)
	}

	// A healthy run: growth under the bar names nothing.
	res = healthy()
	res.PageOwner = &proto.PageOwnerDiff{Baseline: proto.PageOwnerSnapshot{Complete: true}, After: proto.PageOwnerSnapshot{Complete: true},
		Grown: []proto.StackPages{{Pages: 120, Stack: []string{"allocate_slab"}}}, GrownPages: 300, Callers: []proto.StackPages{{Pages: 120, Stack: []string{"allocate_slab"}}}}
	h, out, _, _ = judgeHealth(res, 1024)
	if out != "" || h.PageOwner == nil || len(h.PageOwner.Stacks)+len(h.PageOwner.Callers) != 0 || !strings.Contains(h.Summary(), "300 pages more, no stack by 256 or more") {
		t.Errorf("healthy: %q, %+v, %q", out, h.PageOwner, h.Summary())
	}

	// An incomplete read is not compared, and says why.
	res.PageOwner = &proto.PageOwnerDiff{Baseline: proto.PageOwnerSnapshot{Complete: true}, After: proto.PageOwnerSnapshot{Error: "page_owner: stopped after 120.0 s (its deadline of 2m0s): 9000 records read"}}
	h, _, _, _ = judgeHealth(res, 1024)
	if h.PageOwner.Compared || !strings.Contains(h.Summary(), "not compared: the read after the check did not complete: page_owner: stopped after 120.0 s") {
		t.Errorf("incomplete: %q", h.Summary())
	}
}

// A run with page_owner allows for its two reads in its limits.
func TestPageOwnerReadExtendsLimits(t *testing.T) {
	w := &watch{spec: Spec{Health: &HealthSpec{}}}
	if d := w.pageOwnerRead(); d != 0 {
		t.Errorf("without page_owner: %s", d)
	}
	w.spec.PageOwner = true
	if d := w.pageOwnerRead(); d < proto.PageOwnerDeadlineSec*time.Second {
		t.Errorf("with page_owner: %s, under the guest's deadline", d)
	}
}

// A kernel with page_owner: the agent reads its baseline before the
// workload, and the health check's comparison reaches the run. A failed
// baseline is said in the run's health, and the run goes on.
func TestWatchPageOwnerBaseline(t *testing.T) {
	res := healthy()
	res.After, res.ZswapStoredPages, res.ZswapPoolBytes = memLeaked, 11000, 6000*4096
	res.PageOwner = &proto.PageOwnerDiff{Baseline: proto.PageOwnerSnapshot{Complete: true, Seconds: 2}, After: proto.PageOwnerSnapshot{Complete: true, Seconds: 3},
		Grown: []proto.StackPages{{Pages: 5000, Stack: []string{"zbud_alloc", "zswap_frontswap_store"}}}, GrownPages: 5400,
		Callers: []proto.StackPages{{Pages: 5000, Stack: []string{"zbud_alloc"}}}}
	boot, _ := splitAtReady(t, corpus(t, cleanLogName))
	for _, tt := range []struct {
		name    string
		answer  func() (proto.PageOwnerSnapshot, error)
		diff    *proto.PageOwnerDiff
		wantErr string
	}{
		{"baseline taken", func() (proto.PageOwnerSnapshot, error) {
			return proto.PageOwnerSnapshot{Complete: true, Pages: 20000}, nil
		}, res.PageOwner, ""},
		{"baseline failed", func() (proto.PageOwnerSnapshot, error) {
			return proto.PageOwnerSnapshot{}, errors.New("agent: no page_owner")
		}, nil, "no baseline: agent: no page_owner"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSayings()
			f := newFake(boot, 2)
			r := res
			r.PageOwner = tt.diff
			f.workload, f.health, f.pageOwner = cleanWorkload, healthAnswer(r), tt.answer
			spec := testSpec(s)
			spec.Health, spec.PageOwner = &HealthSpec{LeakTolerancePages: 1024}, true
			run := watchRun(t, t.Context(), spec, f)
			checkOutcome(t, run, report.OutcomeLeak, s)
			f.check(t, []string{proto.CmdPing, proto.CmdPageOwnerBaseline, proto.CmdStress, proto.CmdHealth}, true, false)
			p := run.Health.PageOwner
			switch {
			case p == nil:
				t.Fatal("no page_owner in the run's health")
			case tt.wantErr != "" && p.Error != tt.wantErr:
				t.Errorf("error %q, want %q", p.Error, tt.wantErr)
			case tt.wantErr == "" && (len(p.Stacks) != 1 || !strings.Contains(run.Error, "5000 pages from zbud_alloc < zswap_frontswap_store")):
				t.Errorf("page_owner %+v, error %q", p, run.Error)
			}
		})
	}
}
