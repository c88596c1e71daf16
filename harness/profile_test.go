package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/harness/kernel"
	"zswaprace/harness/runner"
	"zswaprace/stress"
)

// On 6.1 (and on images from before profiles) the command line is what
// it always was.
func TestCmdlineByProfile(t *testing.T) {
	rf := parsedRunFlags(t)
	base61 := []string{"zswap.enabled=1", "zswap.zpool=zbud", "zswap.compressor=lzo", "zswap.max_pool_percent=20"}
	for _, c := range []struct {
		name string
		boot kernel.Boot
		want []string
	}{
		{"6.1 image from before profiles", kernel.Boot{}, base61},
		{"6.1", kernel.Boot{Profile: "6.1"}, base61},
		{"6.1 widened, old image", kernel.Boot{Widening: kernel.WidenDelay}, append(base61[:4:4], "zswap.writeback_delay_us=2000")},
		{"6.1 widened", kernel.Boot{Widening: kernel.WidenDelay, Profile: "6.1", DelayParam: "zswap.writeback_delay_us"}, append(base61[:4:4], "zswap.writeback_delay_us=2000")},
		{"6.12", kernel.Boot{Profile: "6.12"}, []string{"zswap.enabled=1", "zswap.zpool=zsmalloc", "zswap.compressor=lzo", "zswap.max_pool_percent=20", "zswap.shrinker_enabled=1"}},
		{"6.12 widen-at", kernel.Boot{Profile: "6.12", Widening: kernel.WidenDelayAt, DelayParam: kernel.WidenAtParam, DelayUS: 700, WidenAt: "mm/zswap.c:1068 (sleep)"},
			[]string{"zswap.enabled=1", "zswap.zpool=zsmalloc", "zswap.compressor=lzo", "zswap.max_pool_percent=20", "zswap.shrinker_enabled=1", "zswaprace_widen_us=700"}},
		{"unknown line: the default's", kernel.Boot{Profile: "9.9"}, base61},
	} {
		if diff := cmp.Diff(c.want, rf.cmdlineFor(c.boot)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
	if diff := cmp.Diff(base61, rf.cmdlineFor(widenBoot(false))); diff != "" {
		t.Errorf("cmdlineFor(widenBoot(false)) (-want +got):\n%s", diff)
	}
	rf = parsedRunFlags(t, "--delay-us", "50", "--zpool", "z3fold")
	got := rf.cmdlineFor(kernel.Boot{Profile: "6.12", Widening: kernel.WidenDelayAt, DelayParam: kernel.WidenAtParam, DelayUS: 700})
	if got[1] != "zswap.zpool=z3fold" || got[len(got)-1] != "zswaprace_widen_us=50" {
		t.Errorf("--delay-us 50 --zpool z3fold: %v", got)
	}
	// --delay-us on an image without the harness's widening: the line's
	// delay parameter, as before profiles.
	if got := rf.cmdlineFor(widenBoot(false)); got[len(got)-1] != "zswap.writeback_delay_us=50" {
		t.Errorf("--delay-us 50 without --widen: %v", got)
	}
}

func TestWideningWords(t *testing.T) {
	rf := parsedRunFlags(t)
	at := kernel.Boot{Profile: "6.1", Widening: kernel.WidenDelayAt, DelayParam: kernel.WidenAtParam, WidenAt: "mm/zswap.c:992 (sleep)"}
	if got, want := wideningOf(at, false, rf), "delay at mm/zswap.c:992 (sleep), 2000 us (zswaprace_widen_us)"; got != want {
		t.Errorf("widen-at: %q, want %q", got, want)
	}
	at.DelayUS = 300
	if got, want := wideningOf(at, false, rf), "delay at mm/zswap.c:992 (sleep), 300 us (zswaprace_widen_us)"; got != want {
		t.Errorf("widen-at with USEC: %q, want %q", got, want)
	}
	if got, want := wideningOf(kernel.Boot{Profile: "6.12", Widening: kernel.WidenDelay, DelayParam: "zswap.writeback_delay_us"}, false, rf), "delay patch (zswap.writeback_delay_us=2000)"; got != want {
		t.Errorf("6.12 delay patch: %q, want %q", got, want)
	}
}

// The counter each profile names is one the guest samples.
func TestProfileCountersSampled(t *testing.T) {
	for _, p := range kernel.Profiles() {
		wb := writebackOf(kernel.Boot{Profile: p.Line})
		if wb.Name != p.WrittenBack || wb.Hint == "" || len(wb.Zpools) == 0 {
			t.Errorf("%s: %+v", p.Line, wb)
		}
		if p.WrittenBack == "written_back_pages" {
			continue // a file of debugfs zswap/: every one is sampled
		}
		found := false
		for _, v := range stress.VmstatCounters {
			found = found || v == p.WrittenBack
		}
		if !found {
			t.Errorf("%s counts writeback in /proc/vmstat %s, which stress.VmstatCounters does not sample", p.Line, p.WrittenBack)
		}
	}
}

func TestWidenAtFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--widen", "--widen-at", "mm/zswap.c:992"}, "--widen and --widen-at cannot be combined"},
		{[]string{"--widen-at", "mm/zswap.c"}, "want FILE:LINE[:USEC]"},
		{[]string{"--widen-at", "mm/zswap.c:-3"}, "LINE must be"},
		{[]string{"--widen-at", "mm/zswap.c:9:0"}, "USEC must be"},
	} {
		for _, cmd := range []string{"build", "compare"} {
			var code int
			_, stderr := capture(t, func() { code = commands[cmd](c.args) })
			if code != exitUsage || !strings.Contains(stderr, c.want) {
				t.Errorf("%s %v: exit %d, %q; want %d and %q", cmd, c.args, code, stderr, exitUsage, c.want)
			}
		}
	}
}

// A --widen-at place the source does not have is found once the source
// is there, and exits as a usage error too.
func TestWidenAtBadPlaceExitsUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mm", "zswap.c"), []byte("int x;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bf := buildFlags{widenAt: "mm/zswap.c:1"}
	_, _, err := bf.widening(&kernel.Source{Dir: dir, Profile: kernel.DefaultProfile()})
	if err == nil || buildExit(err) != exitUsage || !strings.Contains(err.Error(), "not inside a function body") {
		t.Errorf("line outside a function: %v (exit %d)", err, buildExit(err))
	}
	bf.widenAt = "mm/zswap.c:" + strconv.Itoa(5)
	if _, _, err := bf.widening(&kernel.Source{Dir: dir, Profile: kernel.DefaultProfile()}); err == nil || buildExit(err) != exitUsage || !strings.Contains(err.Error(), "past its end") {
		t.Errorf("line past the end: %v", err)
	}
}

// Bad-end files measured before --zpool's default became the line's
// still match.
func TestRunConfigKeepsZpool(t *testing.T) {
	if got := runConfig(parsedRunFlags(t), true); !strings.Contains(got, "zpool:zbud ") {
		t.Errorf("runConfig = %q, want zpool:zbud in it", got)
	}
}

// The runner's default counter, for specs that name none, is the default
// line's.
func TestRunnerDefaultCounterIsDefaultLines(t *testing.T) {
	if diff := cmp.Diff(runner.DefaultWriteback, writebackOf(kernel.Boot{})); diff != "" {
		t.Errorf("runner.DefaultWriteback and the default profile's (-runner +profile):\n%s", diff)
	}
}

// A line's stress mode is the workers' unless --mode says otherwise, and
// it is what the report's guest says the workload was.
func TestStressModeByProfile(t *testing.T) {
	rf := parsedRunFlags(t)
	for line, want := range map[string]string{"": "sweep", "6.1": "sweep", "6.12": "cycle", "9.9": "sweep"} {
		b := kernel.Boot{Profile: line}
		if got := rf.stressConfigFor(b).Mode; got != want {
			t.Errorf("line %q: mode %q, want %q", line, got, want)
		}
		if g := guestOf(rf, b); !strings.Contains(g.Workload, "mode "+want+",") {
			t.Errorf("line %q: guest workload %q does not say mode %s", line, g.Workload, want)
		}
	}
	rf = parsedRunFlags(t, "--mode", "random")
	if got := rf.stressConfigFor(kernel.Boot{Profile: "6.12"}).Mode; got != "random" {
		t.Errorf("--mode random on 6.12: mode %q", got)
	}
}

// --widen on 6.12 boots with the line's longer delay, recorded in the
// image, and --delay-us still wins.
func TestWidenDelayByProfile(t *testing.T) {
	p := kernel.ProfileByLine("6.12")
	b := kernel.Boot{Profile: "6.12", Widening: kernel.WidenDelay, DelayParam: p.DelayParam, DelayUS: p.WidenDelayUS}
	rf := parsedRunFlags(t)
	if got := rf.cmdlineFor(b); got[len(got)-1] != "zswap.writeback_delay_us=20000" {
		t.Errorf("6.12 widened: %v", got)
	}
	if got := wideningOf(b, false, rf); got != "delay patch (zswap.writeback_delay_us=20000)" {
		t.Errorf("6.12 widening in words: %q", got)
	}
	rf = parsedRunFlags(t, "--delay-us", "2000")
	if got := rf.cmdlineFor(b); got[len(got)-1] != "zswap.writeback_delay_us=2000" {
		t.Errorf("6.12 widened, --delay-us 2000: %v", got)
	}
}
