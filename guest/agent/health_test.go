package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zswaprace/guest/proto"
)

// fakeProc writes a /proc and a zswap debugfs directory with the given
// files under a temporary directory.
func fakeProc(t *testing.T, files map[string]string) (proc, debugfs string) {
	t.Helper()
	root := t.TempDir()
	proc, debugfs = filepath.Join(root, "proc"), filepath.Join(root, "zswap")
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return proc, debugfs
}

const meminfo = `MemTotal:         225120 kB
MemFree:          180000 kB
MemAvailable:     190000 kB
SwapCached:            0 kB
Active(anon):       1200 kB
Inactive(anon):    10000 kB
Unevictable:       30000 kB
Zswap:                 0 kB
`

const swaps = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n/dev/vda                                partition\t524284\t\t2048\t\t-2\n"

// stat is a /proc/PID/stat line with the given command and state.
func stat(pid, comm, state string) string {
	return pid + " (" + comm + ") " + state + " 1 1 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 4242 1000 10 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
}

func kpageflags(locked ...int) string {
	b := make([]byte, 8*64)
	for _, pfn := range locked {
		binary.LittleEndian.PutUint64(b[8*pfn:], 1<<kpfLocked|1<<5)
	}
	return string(b)
}

func TestParseStat(t *testing.T) {
	comm, state, start, ok := ParseStat(stat("17", "a) (b", "D"))
	if !ok || comm != "a) (b" || state != "D" || start != "4242" {
		t.Errorf("got %q %q %q %v", comm, state, start, ok)
	}
	if _, _, _, ok := ParseStat("17 (x) S 1 2"); ok {
		t.Errorf("a short line parsed")
	}
}

func TestReadSwapsAndMeminfo(t *testing.T) {
	proc, _ := fakeProc(t, map[string]string{"proc/swaps": swaps, "proc/meminfo": meminfo})
	d, err := ReadSwaps(filepath.Join(proc, "swaps"))
	if err != nil || len(d) != 1 || d[0].Name != "/dev/vda" || d[0].UsedKiB != 2048 {
		t.Errorf("swaps: %+v %v", d, err)
	}
	m, err := ReadMeminfo(filepath.Join(proc, "meminfo"))
	if err != nil || m["MemFree"] != 180000 || m["Active(anon)"] != 1200 || m["Zswap"] != 0 {
		t.Errorf("meminfo: %v %v", m, err)
	}
	if _, err := ReadMeminfo(filepath.Join(proc, "swaps")); err == nil {
		t.Errorf("a file without figures read as meminfo")
	}
}

func healthyFiles() map[string]string {
	return map[string]string{
		"proc/swaps": swaps, "proc/meminfo": meminfo, "proc/kpageflags": kpageflags(),
		"proc/1/task/1/stat":   stat("1", "init", "S"),
		"proc/90/task/90/stat": stat("90", "kswapd0", "S"),
		"zswap/stored_pages":   "0\n", "zswap/pool_total_size": "0\n",
	}
}

var req = proto.HealthRequest{SwapoffBaseSec: 2, SwapoffSecPerMiB: 0.1, StuckSec: 0.3}

func TestCheckHealthy(t *testing.T) {
	proc, dbg := fakeProc(t, healthyFiles())
	var off []string
	drops := 0
	e := &HealthEnv{Proc: proc, Debugfs: dbg, Tick: 50 * time.Millisecond, DropCaches: func() { drops++ },
		Swapoff: func(_ context.Context, dev string) error { off = append(off, dev); return nil }}
	base := map[string]int64{"MemFree": 181000}
	res, err := e.Check(context.Background(), req, &Baseline{Meminfo: base}, func() {})
	if err != nil {
		t.Fatal(err)
	}
	if len(off) != 1 || off[0] != "/dev/vda" || drops != 2 {
		t.Errorf("swapoff %v, drop_caches %d times; want /dev/vda once, 2 drops", off, drops)
	}
	s := res.Swapoff[0]
	if !s.OK || s.TimedOut || s.UsedKiB != 2048 || s.DeadlineSec != 2.2 {
		t.Errorf("swapoff %+v; want ok, 2048 KiB used, deadline 2 + 0.1*2 s", s)
	}
	if res.ZswapStoredPages != 0 || res.ZswapPoolBytes != 0 || res.LockedPages != 0 || len(res.StuckTasks) != 0 {
		t.Errorf("healthy kernel: %+v", res)
	}
	if res.Baseline["MemFree"] != 181000 || res.After["MemFree"] != 180000 {
		t.Errorf("baseline %v, after %v", res.Baseline, res.After)
	}
}

func TestCheckFindsStuckTasksAndLockedPages(t *testing.T) {
	f := healthyFiles()
	f["proc/77/task/78/stat"] = stat("78", "stress worker", "D")
	f["proc/77/task/78/wchan"] = "folio_wait_bit_common"
	f["proc/77/task/78/stack"] = "[<0>] folio_wait_bit_common+0x10/0x20\n[<0>] do_swap_page+0x1/0x2\n"
	f["proc/kpageflags"] = kpageflags(3, 40)
	f["zswap/stored_pages"] = "12\n"
	f["zswap/pool_total_size"] = "28672\n"
	proc, dbg := fakeProc(t, f)
	// A task in D state only at first is not stuck.
	f2 := filepath.Join(proc, "91/task/91/stat")
	os.MkdirAll(filepath.Dir(f2), 0o755)
	os.WriteFile(f2, []byte(stat("91", "kworker/0:1", "D")), 0o644)
	beats := 0
	e := &HealthEnv{Proc: proc, Debugfs: dbg, Tick: 50 * time.Millisecond,
		Swapoff: func(context.Context, string) error { return nil }}
	go func() {
		time.Sleep(60 * time.Millisecond)
		os.WriteFile(f2, []byte(stat("91", "kworker/0:1", "R")), 0o644)
	}()
	res, err := e.Check(context.Background(), req, nil, func() { beats++ })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.StuckTasks) != 1 || !strings.HasPrefix(res.StuckTasks[0], "78 stress worker (folio_wait_bit_common)\n[<0>] folio_wait_bit_common") {
		t.Errorf("stuck tasks %q; want only 78, with its wchan and stack", res.StuckTasks)
	}
	if res.LockedPages != 2 || res.ZswapStoredPages != 12 || res.ZswapPoolBytes != 28672 {
		t.Errorf("locked %d, stored %d, pool %d; want 2, 12, 28672", res.LockedPages, res.ZswapStoredPages, res.ZswapPoolBytes)
	}
	if beats < 1 {
		t.Errorf("%d heartbeats in a 0.3-s scan at 50 ms", beats)
	}
	if res.Baseline != nil {
		t.Errorf("no baseline was given, got %v", res.Baseline)
	}
}

func TestCheckSwapoffFailsOrHangs(t *testing.T) {
	proc, dbg := fakeProc(t, healthyFiles())
	e := &HealthEnv{Proc: proc, Debugfs: dbg, Tick: 20 * time.Millisecond,
		Swapoff: func(context.Context, string) error { return errors.New("swapoff /dev/vda: cannot allocate memory") }}
	res, err := e.Check(context.Background(), req, nil, func() {})
	if err != nil || res.Swapoff[0].OK || res.Swapoff[0].TimedOut || !strings.Contains(res.Swapoff[0].Error, "cannot allocate") {
		t.Errorf("failed swapoff: %+v, %v", res.Swapoff, err)
	}

	short := proto.HealthRequest{SwapoffBaseSec: 0.2, StuckSec: 0}
	// One that stops when killed, and one stuck in the kernel for good.
	e.Swapoff = func(ctx context.Context, _ string) error { <-ctx.Done(); return errors.New("signal: killed") }
	start := time.Now()
	res, err = e.Check(context.Background(), short, nil, func() {})
	if err != nil || !res.Swapoff[0].TimedOut || res.Swapoff[0].OK || !strings.Contains(res.Swapoff[0].Error, "killed") {
		t.Errorf("overdue swapoff: %+v, %v", res.Swapoff, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s for a 0.2-s deadline", d)
	}
	block := make(chan struct{})
	defer close(block)
	e.Swapoff = func(context.Context, string) error { <-block; return nil }
	start = time.Now()
	res, err = e.Check(context.Background(), short, nil, func() {})
	if err != nil || !res.Swapoff[0].TimedOut || !strings.Contains(res.Swapoff[0].Error, "stuck") {
		t.Errorf("unkillable swapoff: %+v, %v", res.Swapoff, err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("waited %s for an unkillable swapoff", d)
	}
}
