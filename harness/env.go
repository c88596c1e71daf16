package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"zswaprace/guest/proto"
	"zswaprace/harness/initramfs"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
	"zswaprace/harness/vm"
)

// env is what every run of one command shares, built once: the run flags,
// the agent's initramfs and keys, the external workload, where results go
// and how progress is said. Commands then only decide which runs to make,
// as syzkaller's instance.Env is built once and then asked to test.
type env struct {
	rf     runFlags
	dir    string
	initrd string
	keys   *initramfs.Keys
	exec   *proto.ExecRequest
	say    func(string)
}

// bootImage is a kernel to boot and what it needs at boot.
type bootImage struct {
	Kernel string
	Config string // its .config, recorded in the report
	Widen  bool   // it carries the race-window instrumentation
	// Boot is what its image.json says it needs (kernel line, widening).
	Boot kernel.Boot
}

// boot is what the image needs at boot, --widen included.
func (b bootImage) boot() kernel.Boot {
	k := b.Boot
	if b.Widen && k.Widening == "" {
		k.Widening = kernel.WidenDelay
	}
	return k
}

// bootOf is how to boot an image the harness built: its image.json says
// whether it carries the race-window instrumentation.
func bootOf(img *kernel.Image) bootImage {
	return bootImage{Kernel: img.Kernel, Config: img.Config, Widen: img.Boot.Widening != "", Boot: img.Boot}
}

// newEnv builds the agent's initramfs (with the external workload, if the
// flags name one) into cache; results go under dir.
func newEnv(ctx context.Context, rf runFlags, cache, dir string, say func(string)) (*env, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	e := &env{rf: rf, dir: dir, say: say}
	var extra []initramfs.File
	if rf.workload != "" {
		files, argv, err := initramfs.Workload(rf.workload)
		if err != nil {
			return nil, err
		}
		extra = files
		e.exec = &proto.ExecRequest{Argv: argv, DurationSec: rf.duration.Seconds(), Swing: rf.stressConfig().Swing}
	}
	e.initrd, e.keys, err = initramfs.Build(ctx, root, cache, extra)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// spec is the run spec for run index of variant on img; its console log
// goes to dir/sub.
func (e *env) spec(variant string, index int, img bootImage, sub string) runner.Spec {
	f := &e.rf
	return runner.Spec{
		Variant: variant, Index: index, Config: img.Config, Keys: e.keys, Say: e.say,
		VM: vm.Config{QEMU: f.qemu, Kernel: img.Kernel, Initrd: e.initrd, MemMiB: f.mem, CPUs: f.cpus,
			SwapMiB: f.swapMiB, Cmdline: bootCmdline(f, img), Dir: filepath.Join(e.dir, sub), Accel: f.accel},
		Stress:    f.stressConfigFor(img.boot()),
		Exec:      e.exec,
		HangAfter: f.hangAfter,
		Health:    f.healthSpec(),
		PageOwner: hasPageOwner(img.Config),
		Writeback: writebackOf(img.boot()),
	}
}

// bootCmdline is img's kernel command line: the flags' (zswap's set-up,
// the instrumentation delay), and page_owner=on for a kernel built with
// CONFIG_PAGE_OWNER (--debug), whose page_owner is off unless asked for.
// It goes before the user's --cmdline, which can still turn it off (the
// last page_owner= wins).
func bootCmdline(f *runFlags, img bootImage) []string {
	c := f.cmdlineFor(img.boot())
	if hasPageOwner(img.Config) {
		user := len(strings.Fields(f.cmdline))
		c = slices.Insert(c, len(c)-user, pageOwnerParam)
	}
	return c
}

const pageOwnerParam = "page_owner=on"

// hasPageOwner says whether the .config at path has CONFIG_PAGE_OWNER=y
// (false for no config, or one that cannot be read).
func hasPageOwner(config string) bool {
	return config != "" && configHas(config, "CONFIG_PAGE_OWNER")
}

// configHas says whether the .config at path sets option to y.
func configHas(path, option string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == option+"=y" {
			return true
		}
	}
	return false
}

// run boots img once as run index of variant, stopping at the first
// failure when stopOnFailure is set, and says how it ended.
func (e *env) run(ctx context.Context, variant string, index int, img bootImage, stopOnFailure bool) report.Run {
	spec := e.spec(variant, index, img, fmt.Sprintf("%s-%d", variant, index))
	spec.Stress.StopOnCorruption = stopOnFailure
	r := runner.Run(ctx, spec)
	e.say(fmt.Sprintf("%s run %d: %s after %.0f s of stress%s%s", variant, index, r.Outcome, r.StressSeconds, firstTitle(r), busyNote(r)))
	return r
}

// busyNote says so when the host was busy beside a run's guest
// (report.Run.HostBusy): that run stressed the kernel less.
func busyNote(r report.Run) string {
	if !r.HostBusy() {
		return ""
	}
	return fmt.Sprintf(" (host busy: load %.1f on %d CPUs beside this %d-CPU guest; the run stressed less)", *r.HostLoad, r.HostCPUs, r.GuestCPUs)
}

func firstTitle(r report.Run) string {
	switch {
	case len(r.CrashTitles) > 0:
		return ": " + r.CrashTitles[0]
	case r.Corruptions > 0:
		return fmt.Sprintf(": %d corrupt pages", r.Corruptions)
	case r.Outcome == report.OutcomeWorkloadFailed:
		return ": " + r.Error
	}
	return ""
}
