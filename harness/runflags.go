package main

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
	"zswaprace/harness/vm"
	"zswaprace/stress"
)

// runFlags are the flags of every command that boots kernels.
type runFlags struct {
	duration     time.Duration
	accel        string
	mem, cpus    int
	swapMiB      int
	workers      int
	mibPerWorker int
	mode         string
	zpool        string
	compressor   string
	maxPool      int
	swingLow     int
	swingHigh    int
	swingPeriod  time.Duration
	delayUS      int
	hangAfter    time.Duration
	workload     string
	qemu         string
	cmdline      string
	// KCSAN's stall and how often it watches (kernels built with --kcsan);
	// -1 keeps the kernel's default.
	kcsanUdelay, kcsanSkip int
	// The health check after every run (README, "Kernel health").
	health        bool
	leakTolerance int64
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.duration, "duration", time.Minute, "stress time per run (a run stops at its first failure; the adaptive design counts a failed run as a full one, so shorter runs make each failure cheaper)")
	fs.StringVar(&f.accel, "accel", "auto", "auto, kvm or tcg (auto uses KVM when /dev/kvm is usable)")
	fs.IntVar(&f.mem, "mem", vm.DefaultMemMiB, "guest memory, MiB")
	fs.IntVar(&f.cpus, "cpus", vm.DefaultCPUs, "guest CPUs (each gets its own socket, so the guest brings them all up)")
	fs.IntVar(&f.swapMiB, "swap", vm.DefaultSwapMiB, "swap disk size, MiB")
	fs.IntVar(&f.workers, "workers", stress.DefaultWorkers, "stress workers")
	fs.IntVar(&f.mibPerWorker, "mib-per-worker", stress.DefaultMiBPerWorker, "memory per worker, MiB")
	fs.StringVar(&f.mode, "mode", "", "stress mode: sweep, random, mixed or cycle (a sweep that swaps each batch out right after writing it) (default: the kernel line's: "+kernel.ModeHelp()+")")
	fs.StringVar(&f.zpool, "zpool", "", "zswap zpool (default: the kernel line's; those that write back, by line: "+kernel.ZpoolHelp()+")")
	fs.StringVar(&f.compressor, "compressor", "lzo", "zswap compressor")
	fs.IntVar(&f.maxPool, "max-pool-percent", 20, "zswap max_pool_percent at boot")
	fs.IntVar(&f.swingLow, "swing-low", stress.DefaultSwingLow, "pool controller: low max_pool_percent")
	fs.IntVar(&f.swingHigh, "swing-high", stress.DefaultSwingHigh, "pool controller: high max_pool_percent")
	fs.DurationVar(&f.swingPeriod, "swing-period", stress.DefaultSwingPeriodMs*time.Millisecond, "pool controller period (0 turns the swing off)")
	fs.IntVar(&f.delayUS, "delay-us", -1, "the widening's delay for widened kernels, microseconds (zswap.writeback_delay_us with --widen, zswaprace_widen_us with --widen-at; default 2000, or --widen-at's USEC, else 0)")
	fs.DurationVar(&f.hangAfter, "hang-after", 0, "silence from the guest that counts as a hang (default 30s, x4 under TCG)")
	fs.StringVar(&f.workload, "workload", "", "run this host program in the guest instead of the stress workers, e.g. 'stress --vm 1 --vm-bytes 300M'")
	fs.StringVar(&f.qemu, "qemu", "qemu-system-x86_64", "QEMU binary")
	fs.StringVar(&f.cmdline, "cmdline", "", "extra kernel parameters")
	fs.IntVar(&f.kcsanUdelay, "kcsan-udelay", -1, "kcsan.udelay_task: microseconds a KCSAN watchpoint stalls a task (--kcsan kernels; default: the kernel's, 80)")
	fs.IntVar(&f.kcsanSkip, "kcsan-skip-watch", -1, "kcsan.skip_watch: accesses between KCSAN watchpoints (--kcsan kernels; default: the kernel's, 4000)")
	fs.BoolVar(&f.health, "health", true, "after every run, check that the kernel came back whole: swapoff, zswap empty, memory back, nothing stuck (--health=false skips it)")
	fs.Int64Var(&f.leakTolerance, "leak-tolerance", report.DefaultLeakTolerancePages, "pages that may be missing after a run before it counts as a leak (4 KiB pages)")
}

// healthSpec is the health check every run makes, nil when it is off.
func (f *runFlags) healthSpec() *runner.HealthSpec {
	if !f.health {
		return nil
	}
	return &runner.HealthSpec{LeakTolerancePages: f.leakTolerance}
}

func (f *runFlags) validate() error {
	switch {
	case f.duration <= 0:
		return fmt.Errorf("--duration must be positive")
	case f.workers < 1:
		return fmt.Errorf("--workers %d: at least one worker is needed", f.workers)
	case f.mibPerWorker < 1:
		return fmt.Errorf("--mib-per-worker %d: must be positive", f.mibPerWorker)
	case f.cpus < 1 || f.cpus > 8:
		return fmt.Errorf("--cpus %d: want 1 to 8 (the guest kernel's NR_CPUS)", f.cpus)
	case f.leakTolerance < 0:
		return fmt.Errorf("--leak-tolerance %d: must not be negative (pages; the default is %d)", f.leakTolerance, report.DefaultLeakTolerancePages)
	case f.hangAfter < 0:
		return fmt.Errorf("--hang-after %s: must not be negative (0 is the default)", f.hangAfter)
	case f.mem < 128:
		return fmt.Errorf("--mem %d: the guest needs at least 128 MiB", f.mem)
	case f.swapMiB < 16:
		return fmt.Errorf("--swap %d: too small", f.swapMiB)
	case f.kcsanUdelay < -1 || f.kcsanUdelay > 1000000:
		return fmt.Errorf("--kcsan-udelay %d: want 0 to 1000000 microseconds", f.kcsanUdelay)
	case f.kcsanSkip < -1 || f.kcsanSkip == 0:
		return fmt.Errorf("--kcsan-skip-watch %d: want a positive number of accesses", f.kcsanSkip)
	case f.accel != "auto" && f.accel != "kvm" && f.accel != "tcg":
		return fmt.Errorf("--accel %q: want auto, kvm or tcg", f.accel)
	case f.accel == "kvm" && vm.Accel() != "kvm":
		return fmt.Errorf("--accel kvm: KVM is not usable here: %s (use --accel tcg or auto)", vm.AccelReason())
	}
	return f.stressConfig().Validate()
}

// resolvedAccel is the accelerator the VMs will use.
func (f *runFlags) resolvedAccel() string {
	if f.accel == "auto" {
		return vm.Accel()
	}
	return f.accel
}

// stressConfigFor is the workers' set-up on a kernel that needs what b
// says: --mode, else the mode of its line's profile.
func (f *runFlags) stressConfigFor(b kernel.Boot) stress.Config {
	c := f.stressConfig()
	if f.mode == "" {
		c.Mode = profileOf(b).StressMode()
	}
	return c
}

// stressConfig is the workers' set-up the flags ask for, --mode empty
// (the line's) read as sweep: stressConfigFor knows the line.
func (f *runFlags) stressConfig() stress.Config {
	c := stress.Config{
		Workers: f.workers, MiBPerWorker: f.mibPerWorker, Mode: f.mode,
		DurationSec: f.duration.Seconds(), StopOnCorruption: false,
		Swing: stress.Swing{Path: stress.DefaultSwingPath, Low: f.swingLow, High: f.swingHigh, PeriodMs: int(f.swingPeriod / time.Millisecond)},
	}
	return c.WithDefaults()
}

// delayFor is the widening delay for a kernel that needs what b says.
func (f *runFlags) delayFor(b kernel.Boot) int {
	switch {
	case f.delayUS >= 0:
		return f.delayUS
	case b.Widening != "" && b.DelayUS > 0:
		return b.DelayUS
	case b.Widening != "":
		return defaultDelayUS
	}
	return 0
}

// widenBoot is what a kernel of the default line needs at boot with
// (widen) or without its delay patch.
func widenBoot(widen bool) kernel.Boot {
	if widen {
		return kernel.Boot{Widening: kernel.WidenDelay}
	}
	return kernel.Boot{}
}

// defaultDelayUS is the widened kernels' default writeback delay.
const defaultDelayUS = 2000

// profileOf is the profile of the line an image says it is of; an image
// from before profiles, or of a line this harness does not know, gets the
// default line's.
func profileOf(b kernel.Boot) *kernel.Profile {
	if p := kernel.ProfileByLine(b.Profile); p != nil {
		return p
	}
	return kernel.DefaultProfile()
}

// cmdlineFor is the kernel command line of a kernel that needs what b
// says: its line's zswap set-up, the widening's delay, KCSAN's knobs and
// --cmdline.
func (f *runFlags) cmdlineFor(b kernel.Boot) []string {
	prof := profileOf(b)
	c := prof.Cmdline(f.zpool, f.compressor, f.maxPool)
	if d := f.delayFor(b); d > 0 {
		// --delay-us on a kernel with no widening of the harness's: it may
		// carry the line's delay patch, built elsewhere.
		param := b.Param()
		if param == "" {
			param = prof.DelayParam
		}
		c = append(c, fmt.Sprintf("%s=%d", param, d))
	}
	// Harmless on kernels without KCSAN: an unknown "module.param" is
	// ignored by the kernel.
	if f.kcsanUdelay >= 0 {
		c = append(c, fmt.Sprintf("kcsan.udelay_task=%d", f.kcsanUdelay))
	}
	if f.kcsanSkip > 0 {
		c = append(c, fmt.Sprintf("kcsan.skip_watch=%d", f.kcsanSkip))
	}
	return append(c, strings.Fields(f.cmdline)...)
}

// writebackOf is the counter of pages written back on a kernel that needs
// what b says (its line's profile).
func writebackOf(b kernel.Boot) runner.Counter {
	p := profileOf(b)
	return runner.Counter{Name: p.WrittenBack, Hint: p.WrittenBackHint, Zpools: p.Zpools}
}
