package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

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
}

func (b *buildFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.source, "source", "debian:6.1", "kernel source: debian:6.1, debian:6.12, git:PATH@REV, or a source directory")
	fs.StringVar(&b.patch, "patch", "", "the patch under test (default patches/zswap-writeback-race-fix.patch)")
	fs.BoolVar(&b.widen, "widen", false, "apply patches/zswap-writeback-delay.patch to both variants (race-window instrumentation)")
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
	fr, err := b.fragments()
	if err != nil {
		return nil, err
	}
	cache := b.cache
	if cache == "" {
		cache = cacheDir()
	}
	src, err := kernel.Resolve(ctx, b.source, cache, say)
	if err != nil {
		return nil, err
	}
	return &kernel.Plan{Source: src, Fragments: fr, Cache: cache, Jobs: b.jobs, Say: say}, nil
}

// errKasanKcsan: the kernel builds with one of the two sanitizers.
var errKasanKcsan = fmt.Errorf("--kasan and --kcsan cannot be combined (the kernel allows one of them): drop one")

// fragments loads the kconfig fragments the flags ask for.
func (b *buildFlags) fragments() ([]kernel.Fragment, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	if b.kasan && b.kcsan {
		return nil, errKasanKcsan
	}
	frags := []string{"base", "zswap", "debug"}
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
	path := b.patch
	if path == "" {
		if path, err = b.patchPath("zswap-writeback-race-fix.patch"); err != nil {
			return nil, err
		}
	}
	fix, err := kernel.ReadPatch(path)
	if err != nil {
		return nil, err
	}
	var widen *kernel.Patch
	var before []*kernel.Patch
	if b.widen {
		wp, err := b.patchPath("zswap-writeback-delay.patch")
		if err != nil {
			return nil, err
		}
		if widen, err = kernel.ReadPatch(wp); err != nil {
			return nil, err
		}
		before = append(before, widen)
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
	imgs, err := plan.Build(ctx, un, pa)
	if err != nil {
		return nil, err
	}
	return &built{source: plan.Source, patch: fix, direction: dir, unpatched: imgs[0], patched: imgs[1],
		version: &plan.Source.Version, fragments: configFragments(plan.Fragments)}, nil
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
	p := newProgress()
	b, err := bf.buildBoth(ctx, p.Say)
	if err == nil && *export != "" {
		err = exportKernels(*export, b, bf)
	}
	if err != nil {
		printErr(err)
		return exitError
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
