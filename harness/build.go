package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"zswaprace/harness/fault"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
)

// buildFlags are the flags every command that builds kernels shares.
type buildFlags struct {
	cache  string // where sources, trees and images live; "" is the user's cache
	source string
	patch  string
	widen  bool
	kasan  bool
	kcsan  bool
	debug  bool // kconfigs/mmdebug.config
	jobs   int
	// widenAt is --widen-at FILE:LINE[:USEC]: instrumentation the harness
	// writes itself, instead of the profile's widening patch.
	widenAt string
}

func (b *buildFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.source, "source", "debian:"+kernel.DefaultLine, "kernel source: "+kernel.SpecHelp()+"; its kernel line picks the profile (known: "+kernel.Lines()+")")
	fs.StringVar(&b.patch, "patch", "", "the patch under test (default: the kernel line's fix in patches/, "+kernel.PatchHelp(func(p *kernel.Profile) string { return p.FixPatch })+")")
	fs.BoolVar(&b.widen, "widen", false, "apply the kernel line's race-window instrumentation from patches/ to both variants ("+kernel.PatchHelp(func(p *kernel.Profile) string { return p.WidenPatch })+")")
	fs.StringVar(&b.widenAt, "widen-at", "", "widen at this line of the source instead of --widen: the harness inserts a delay there (a sleep where the code may sleep, else a busy-wait) set by the zswaprace_widen_us parameter, default USEC or 2000")
	fs.BoolVar(&b.kasan, "kasan", false, "add kconfigs/kasan.config (slower, catches use-after-free directly)")
	fs.BoolVar(&b.kcsan, "kcsan", false, "add kconfigs/kcsan.config: KCSAN's watchpoint stalls widen every race window, no race-specific patch (see --kcsan-udelay)")
	fs.BoolVar(&b.debug, "debug", false, "add kconfigs/mmdebug.config: DEBUG_VM, PAGE_OWNER (a leak's allocation stacks named in the health check), DEBUG_ATOMIC_SLEEP; slower")
	fs.IntVar(&b.jobs, "build-jobs", runtime.NumCPU(), "make -j for the kernel builds (not VMs at once: that is --jobs)")
}

// built is the outcome of building both variants.
type built struct {
	source    *kernel.Source
	patch     *kernel.Patch
	direction kernel.Direction
	unpatched *kernel.Image
	patched   *kernel.Image
	// version and fragments are exactly which source and which config
	// fragments the kernels came from, for report.json's provenance.
	version   *kernel.SourceVersion
	fragments []report.ConfigFragment
}

func (b *buildFlags) plan(ctx context.Context, say func(string)) (*kernel.Plan, error) {
	if err := kernel.CheckTools(); err != nil {
		return nil, err
	}
	if err := b.check(); err != nil {
		return nil, err
	}
	cache := b.cache
	if cache == "" {
		cache = cacheDir()
	}
	src, err := kernel.ResolveProfiled(ctx, b.source, cache, say)
	if err != nil {
		return nil, err
	}
	fr, err := b.fragmentsFor(src.Profile)
	if err != nil {
		return nil, err
	}
	return &kernel.Plan{Source: src, Fragments: fr, Cache: cache, Jobs: b.jobs, Say: say}, nil
}

// errKasanKcsan: the kernel builds with one of the two sanitizers.
var errKasanKcsan = fmt.Errorf("--kasan and --kcsan cannot be combined (the kernel allows one of them): drop one")

// check refuses --widen-at flags that cannot work, before anything slow.
func (b *buildFlags) check() error {
	if b.widenAt != "" {
		if b.widen {
			return fault.Newf(fault.Usage, "--widen-at", "--widen and --widen-at cannot be combined (each widens the race window its own way): drop one")
		}
		if _, err := kernel.ParseWidenAt(b.widenAt); err != nil {
			return err
		}
	}
	return nil
}

// buildExit is the exit code of a build that failed with err: exitUsage
// when --widen-at names a place the source does not have (a file that is
// not there, a line past its end or outside a function body: a flag value
// out of range, known only once the source is there), else exitError.
func buildExit(err error) int {
	var fe *fault.Error
	if errors.As(err, &fe) && fe.Kind == fault.Usage && fe.Op == "--widen-at" {
		return exitUsage
	}
	return exitError
}

// widens says whether the kernels carry race-window instrumentation.
func (b *buildFlags) widens() bool { return b.widen || b.widenAt != "" }

// fragments loads the kconfig fragments the flags ask for, for a kernel of
// the default line.
func (b *buildFlags) fragments() ([]kernel.Fragment, error) {
	return b.fragmentsFor(kernel.DefaultProfile())
}

// fragmentsFor loads the kconfig fragments the flags ask for, on top of
// the profile's.
func (b *buildFlags) fragmentsFor(p *kernel.Profile) ([]kernel.Fragment, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if b.kasan && b.kcsan {
		return nil, errKasanKcsan
	}
	frags := append([]string(nil), p.Fragments...)
	if b.kasan {
		frags = append(frags, "kasan")
	}
	if b.kcsan {
		frags = append(frags, "kcsan")
	}
	if b.debug {
		frags = append(frags, "mmdebug")
	}
	return kernel.LoadFragments(filepath.Join(root, "kconfigs"), frags)
}

func (b *buildFlags) patchPath(name string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "patches", name), nil
}

// buildBoth builds the unpatched and the patched kernel.
func (b *buildFlags) buildBoth(ctx context.Context, say func(string)) (*built, error) {
	plan, err := b.plan(ctx, say)
	if err != nil {
		return nil, err
	}
	prof := plan.Source.Profile
	say(fmt.Sprintf("%s is a %s tree (kernel %s): kernel profile %s (writeback from %s; counted by %s)",
		b.source, prof.Line, plan.Source.Version.Kernel, prof.Line, strings.Join(prof.Triggers, " and "), prof.WrittenBack))
	path := b.patch
	if path == "" {
		if path, err = b.patchPath(prof.FixPatch); err != nil {
			return nil, err
		}
	}
	fix, err := kernel.ReadPatch(path)
	if err != nil {
		return nil, err
	}
	widen, boot, err := b.widening(plan.Source)
	if err != nil {
		return nil, err
	}
	var before []*kernel.Patch
	if widen != nil {
		before = append(before, widen)
		if boot.WidenAt != "" {
			say(fmt.Sprintf("--widen-at: a delay at %s, default %d us, set with %s=US", boot.WidenAt, boot.DelayUS, boot.DelayParam))
		}
	}
	dir, err := kernel.DetectAfter(ctx, plan.Source.Dir, fix, before)
	if err != nil {
		return nil, err
	}
	if dir == kernel.Reverse {
		say(fmt.Sprintf("%s already contains %s: unpatched = source with the patch reversed, patched = source as shipped", b.source, filepath.Base(path)))
	} else {
		say(fmt.Sprintf("%s lacks %s: unpatched = source as shipped, patched = source + patch", b.source, filepath.Base(path)))
	}
	un, pa := kernel.Variants(fix, dir, widen)
	un.Boot, pa.Boot = boot, boot
	imgs, err := plan.Build(ctx, un, pa)
	if err != nil {
		return nil, err
	}
	for _, img := range imgs {
		// An image cached before the profiles existed has an image.json
		// that does not say all of it; the key says it is this one.
		img.Boot = boot
	}
	return &built{source: plan.Source, patch: fix, direction: dir, unpatched: imgs[0], patched: imgs[1],
		version: &plan.Source.Version, fragments: configFragments(plan.Fragments)}, nil
}

// widening is the race-window instrumentation the flags ask for on src
// (nil for none), and what its images need at boot.
func (b *buildFlags) widening(src *kernel.Source) (*kernel.Patch, kernel.Boot, error) {
	boot := kernel.Boot{Profile: src.Profile.Line}
	switch {
	case b.widenAt != "":
		w, err := kernel.WidenAt(src.Dir, b.widenAt)
		if err != nil {
			return nil, boot, err
		}
		boot.Widening, boot.DelayParam, boot.DelayUS, boot.WidenAt = kernel.WidenDelayAt, kernel.WidenAtParam, w.DelayUS(), w.Where()
		return w.Patch, boot, nil
	case b.widen:
		wp, err := b.patchPath(src.Profile.WidenPatch)
		if err != nil {
			return nil, boot, err
		}
		w, err := kernel.ReadPatch(wp)
		if err != nil {
			return nil, boot, err
		}
		boot.Widening, boot.DelayParam, boot.DelayUS = kernel.WidenDelay, src.Profile.DelayParam, src.Profile.WidenDelayUS
		return w, boot, nil
	}
	return nil, boot, nil
}

func cmdBuild(ctx context.Context, args []string) int {
	var bf buildFlags
	fs := newFlags("build", "build [--source S] [--patch FILE] [--widen] [--export DIR] [--json]")
	bf.register(fs)
	asJSON := fs.Bool("json", false, "print the result as JSON")
	export := fs.String("export", "", "also write both images, their configs, the patch and kernels.json (hashes, widening, command line) into DIR, for 'compare --kernels DIR' on other machines")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	}
	if err := bf.check(); err != nil {
		return usageError("build", err)
	}
	p := newProgress()
	b, err := bf.buildBoth(ctx, p.Say)
	if err == nil && *export != "" {
		err = exportKernels(*export, b, bf)
	}
	if err != nil {
		printErr(err)
		return buildExit(err)
	}
	if *asJSON {
		json.NewEncoder(os.Stdout).Encode(map[string]any{
			"source": b.source.Spec, "patch": b.patch.Path, "direction": b.direction,
			"unpatched": b.unpatched, "patched": b.patched, "export": *export,
		})
		return 0
	}
	if *export != "" {
		fmt.Printf("kernels exported to %s (%s lists them with their sha256)\n", *export, manifestFile)
	}
	for _, img := range []*kernel.Image{b.unpatched, b.patched} {
		how := fmt.Sprintf("built in %.0f s", img.Seconds)
		if img.Cached {
			how = "from cache"
		}
		fmt.Printf("%-9s kernel %s\n          config %s\n          (%s)\n", img.Variant, img.Kernel, img.Config, how)
	}
	return 0
}
