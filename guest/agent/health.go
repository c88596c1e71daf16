package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"zswaprace/guest/proto"
)

// HealthEnv is where the health check reads and what it acts on: the
// guest's own /proc, zswap's debugfs directory and swapoff, or fakes in
// the tests.
type HealthEnv struct {
	Proc    string // "/proc"
	Debugfs string // zswap's debugfs directory
	// Swapoff turns swap off on dev; cancelling ctx must stop it (the
	// guest runs it in a child process and kills that).
	Swapoff func(ctx context.Context, dev string) error
	// DropCaches syncs and drops the page cache and slab caches.
	DropCaches func()
	// Tick is the interval of heartbeats and D-state scans (1 s if 0).
	Tick time.Duration
	// PageOwner is page_owner's file ("" or missing: not compared);
	// PageOwnerDeadline bounds each read of it (proto.PageOwnerDeadlineSec
	// if 0).
	PageOwner         string
	PageOwnerDeadline time.Duration
}

// Baseline is what the health check compares against: /proc/meminfo when
// the workload starts, and page_owner's pages by stack when the host asked
// for them (CmdPageOwnerBaseline) before it.
type Baseline struct {
	Meminfo map[string]int64
	// PageOwner is what reading page_owner cost and found (pageOwner the
	// pages by stack); nil when no page_owner baseline was taken.
	PageOwner *proto.PageOwnerSnapshot
	pageOwner StackCounts
}

// GuestHealth is the guest's own environment.
func GuestHealth(debugfs string, swapoff func(context.Context, string) error) *HealthEnv {
	return &HealthEnv{Proc: "/proc", Debugfs: debugfs, Swapoff: swapoff, DropCaches: dropCaches, PageOwner: PageOwnerPath}
}

func dropCaches() {
	unix.Sync()
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0)
}

// Snapshot syncs, drops caches and reads /proc/meminfo: the baseline the
// health check compares against, taken when the workload starts.
func (e *HealthEnv) Snapshot() *Baseline {
	if e.DropCaches != nil {
		e.DropCaches()
	}
	m, _ := ReadMeminfo(filepath.Join(e.Proc, "meminfo"))
	return &Baseline{Meminfo: m}
}

// PageOwnerBaseline syncs, drops caches and reads page_owner, calling
// beat every tick meanwhile: the pages by stack the health check compares
// with. The snapshot is nil when the kernel has no page_owner.
func (e *HealthEnv) PageOwnerBaseline(ctx context.Context, beat func()) (StackCounts, *proto.PageOwnerSnapshot) {
	if e.DropCaches != nil {
		e.DropCaches()
	}
	return e.readPageOwner(ctx, beat)
}

// readPageOwner snapshots page_owner when the kernel has it (nil, nil
// otherwise).
func (e *HealthEnv) readPageOwner(ctx context.Context, beat func()) (StackCounts, *proto.PageOwnerSnapshot) {
	if e.PageOwner == "" {
		return nil, nil
	}
	if _, err := os.Stat(e.PageOwner); err != nil {
		return nil, nil
	}
	d := e.PageOwnerDeadline
	if d <= 0 {
		d = proto.PageOwnerDeadlineSec * time.Second
	}
	c, s := SnapshotPageOwner(ctx, e.PageOwner, d, e.tick(), beat)
	return c, &s
}

func (e *HealthEnv) tick() time.Duration {
	if e.Tick <= 0 {
		return time.Second
	}
	return e.Tick
}

// ReadMeminfo reads /proc/meminfo into kB figures by field name.
func ReadMeminfo(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[strings.TrimSpace(k)] = n
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: no figures", path)
	}
	return m, nil
}

// SwapDevice is one line of /proc/swaps.
type SwapDevice struct {
	Name    string
	UsedKiB int64
}

// ReadSwaps parses /proc/swaps.
func ReadSwaps(path string) ([]SwapDevice, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []SwapDevice
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if i == 0 || len(f) < 4 { // the header
			continue
		}
		used, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: bad line %q", path, l)
		}
		out = append(out, SwapDevice{Name: f[0], UsedKiB: used})
	}
	return out, nil
}

// Check runs the health check: swapoff every swap device within its
// deadline, read zswap's counters and memory again, then look for tasks
// in D state and locked pages for req.StuckSec. beat is called at every
// tick, the host's heartbeat. base may be nil. With page_owner, the
// pages by stack are compared with the baseline's after memory is read.
func (e *HealthEnv) Check(ctx context.Context, req proto.HealthRequest, base *Baseline, beat func()) (proto.HealthResult, error) {
	start := time.Now()
	tick := e.tick()
	res := proto.HealthResult{ZswapStoredPages: -1, ZswapPoolBytes: -1, LockedPages: -1, Swapoff: []proto.Swapoff{}}
	if base != nil {
		res.Baseline = base.Meminfo
	}
	if e.DropCaches != nil {
		e.DropCaches()
	}
	devs, err := ReadSwaps(filepath.Join(e.Proc, "swaps"))
	if err != nil {
		return res, fmt.Errorf("health: %w", err)
	}
	for _, d := range devs {
		s := e.swapoff(ctx, d, req, tick, beat)
		res.Swapoff = append(res.Swapoff, s)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	if e.Debugfs != "" {
		res.ZswapStoredPages = readCounter(filepath.Join(e.Debugfs, "stored_pages"))
		res.ZswapPoolBytes = readCounter(filepath.Join(e.Debugfs, "pool_total_size"))
	}
	if e.DropCaches != nil {
		e.DropCaches()
	}
	res.After, _ = ReadMeminfo(filepath.Join(e.Proc, "meminfo"))
	if base != nil && base.PageOwner != nil {
		res.PageOwner = e.comparePageOwner(ctx, base, beat)
	}

	// Stuck: in D state at every scan over StuckSec; locked at both ends.
	stuck := dTasks(e.Proc)
	locked, lerr := lockedPages(filepath.Join(e.Proc, "kpageflags"))
	until := time.Now().Add(time.Duration(req.StuckSec * float64(time.Second)))
	for time.Now().Before(until) && len(stuck)+len(locked) > 0 {
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(min(tick, time.Until(until))):
		}
		beat()
		now := dTasks(e.Proc)
		for k := range stuck {
			if _, ok := now[k]; !ok {
				delete(stuck, k)
			}
		}
	}
	if len(locked) > 0 {
		again, _ := lockedPages(filepath.Join(e.Proc, "kpageflags"))
		for pfn := range locked {
			if _, ok := again[pfn]; !ok {
				delete(locked, pfn)
			}
		}
	}
	if lerr == nil {
		res.LockedPages = int64(len(locked))
	}
	for _, t := range stuck {
		res.StuckTasks = append(res.StuckTasks, t.describe(e.Proc))
	}
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// comparePageOwner reads page_owner again and compares it with the
// baseline's: both must be complete for the stacks to be compared.
func (e *HealthEnv) comparePageOwner(ctx context.Context, base *Baseline, beat func()) *proto.PageOwnerDiff {
	d := &proto.PageOwnerDiff{Baseline: *base.PageOwner}
	after, snap := e.readPageOwner(ctx, beat)
	if snap == nil {
		d.After.Error = "page_owner is gone"
		return d
	}
	d.After = *snap
	if d.Baseline.Complete && d.After.Complete {
		d.Grown, d.GrownPages, d.Callers = DiffPageOwner(base.pageOwner, after, proto.MaxGrownStacks)
	}
	return d
}

// swapoff turns swap off on one device within its deadline, beating
// while it waits.
func (e *HealthEnv) swapoff(ctx context.Context, d SwapDevice, req proto.HealthRequest, tick time.Duration, beat func()) proto.Swapoff {
	s := proto.Swapoff{Device: d.Name, UsedKiB: d.UsedKiB, DeadlineSec: req.SwapoffBaseSec + req.SwapoffSecPerMiB*float64(d.UsedKiB)/1024}
	start := time.Now()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Swapoff(sctx, d.Name) }()
	deadline := time.NewTimer(time.Duration(s.DeadlineSec * float64(time.Second)))
	defer deadline.Stop()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			s.Seconds = time.Since(start).Seconds()
			if err != nil {
				s.Error = err.Error()
			} else {
				s.OK = true
			}
			return s
		case <-t.C:
			beat()
		case <-ctx.Done():
			s.Seconds, s.Error = time.Since(start).Seconds(), "interrupted"
			return s
		case <-deadline.C:
			s.TimedOut = true
			cancel()
			// A swapoff stuck in the kernel may not even die: do not wait
			// long for it.
			select {
			case err := <-done:
				if err != nil {
					s.Error = "killed at its deadline: " + err.Error()
				}
			case <-time.After(2 * time.Second):
				s.Error = "killed at its deadline and still not gone 2 s later (stuck in the kernel)"
			}
			s.Seconds = time.Since(start).Seconds()
			return s
		}
	}
}

func readCounter(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// task is a thread seen in D state.
type task struct {
	pid, tid string
	comm     string
}

func (t task) describe(proc string) string {
	s := fmt.Sprintf("%s %s", t.tid, t.comm)
	dir := filepath.Join(proc, t.pid, "task", t.tid)
	if w, err := os.ReadFile(filepath.Join(dir, "wchan")); err == nil && len(w) > 0 && string(w) != "0" {
		s += " (" + strings.TrimSpace(string(w)) + ")"
	}
	if st, err := os.ReadFile(filepath.Join(dir, "stack")); err == nil && len(st) > 0 {
		s += "\n" + strings.TrimRight(string(st), "\n")
	}
	return s
}

// dTasks lists the threads in D state, by "tid start-time".
func dTasks(proc string) map[string]task {
	out := map[string]task{}
	stats, _ := filepath.Glob(filepath.Join(proc, "[0-9]*", "task", "[0-9]*", "stat"))
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		comm, state, start, ok := ParseStat(string(b))
		if !ok || state != "D" {
			continue
		}
		tdir := filepath.Dir(p)
		pid := filepath.Base(filepath.Dir(filepath.Dir(tdir)))
		tid := filepath.Base(tdir)
		out[tid+" "+start] = task{pid: pid, tid: tid, comm: comm}
	}
	return out
}

// ParseStat reads the command, the state and the start time (field 22) of
// a /proc/PID/stat line. The command is in parentheses and may hold
// anything, parentheses and spaces included: it ends at the last ')'.
func ParseStat(line string) (comm, state, start string, ok bool) {
	i, j := strings.IndexByte(line, '('), strings.LastIndexByte(line, ')')
	if i < 0 || j < i {
		return "", "", "", false
	}
	f := strings.Fields(line[j+1:])
	// After the command: state is field 3, start time field 22.
	if len(f) < 20 {
		return "", "", "", false
	}
	return line[i+1 : j], f[0], f[19], true
}

// kpfLocked is PG_locked's bit in /proc/kpageflags (KPF_LOCKED).
const kpfLocked = 0

// maxLocked caps how many locked pages are tracked.
const maxLocked = 100000

// lockedPages lists the page frames whose flags in kpageflags have
// KPF_LOCKED set.
func lockedPages(path string) (map[uint64]struct{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[uint64]struct{}{}
	r := bufio.NewReaderSize(f, 64<<10)
	var buf [8]byte
	for pfn := uint64(0); ; pfn++ {
		if _, err := io.ReadFull(r, buf[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return out, nil
			}
			return out, err
		}
		if binary.LittleEndian.Uint64(buf[:])&(1<<kpfLocked) != 0 && len(out) < maxLocked {
			out[pfn] = struct{}{}
		}
	}
}

// ChildSwapoff runs swapoff in a child process (self with args, then the
// device), so that a swapoff that overruns its deadline can be killed: a
// fatal signal stops try_to_unuse.
func ChildSwapoff(self string, args ...string) func(ctx context.Context, dev string) error {
	return func(ctx context.Context, dev string) error {
		cmd := exec.CommandContext(ctx, self, append(append([]string{}, args...), dev)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		err := cmd.Run()
		if err != nil && stderr.Len() > 0 {
			return fmt.Errorf("%s", strings.TrimSpace(stderr.String()))
		}
		return err
	}
}

// RunSwapoff is the child side of ChildSwapoff: swapoff(dev), the error on
// stderr.
func RunSwapoff(dev string, stderr io.Writer) int {
	p, err := unix.BytePtrFromString(dev)
	if err == nil {
		if _, _, e := unix.Syscall(unix.SYS_SWAPOFF, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
			err = e
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "swapoff %s: %v\n", dev, err)
		return 1
	}
	return 0
}
