package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"zswaprace/harness/fsutil"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/runner"
	"zswaprace/stress"
)

// Exit codes of 'harness run'.
const (
	runClean   = 0
	runFailure = 1
)

func cmdRun(ctx context.Context, args []string) int {
	var rf runFlags
	fs := newFlags("run", "run --kernel BZIMAGE | --kernels DIR --variant V [--duration D] [--json] [flags]")
	rf.register(fs)
	kernelPath := fs.String("kernel", "", "kernel image (bzImage) to boot")
	config := fs.String("config", "", "its .config, recorded in the report")
	widen := fs.Bool("widen", false, "the kernel has the race-window instrumentation: set its delay (not needed for kernels the harness built: their image.json says so)")
	out := fs.String("out", "", "output directory (default out/run-TIME)")
	asJSON := fs.Bool("json", false, "print the run's result as JSON")
	kernels := fs.String("kernels", "", "take the kernel from DIR ('harness build --export DIR'), after checking its sha256")
	variant := fs.String("variant", "", "with --kernels: unpatched or patched")
	if code, ok := parseArgs(fs, args, false); !ok {
		return code
	}
	if *kernels != "" {
		path, conf, err := kernelFromDir(*kernels, *variant, *kernelPath)
		if err != nil {
			printErr(err)
			return exitError
		}
		*kernelPath, *config = path, conf
	}
	if *kernelPath == "" {
		return usageError("run", fmt.Errorf("--kernel is required (a bzImage; 'harness build' prints where they are), or --kernels DIR --variant V"))
	}
	if err := rf.validate(); err != nil {
		return usageError("run", err)
	}
	dir := outDir(*out, "run")
	p := newProgress()
	img := bootImage{Kernel: *kernelPath, Config: *config, Widen: *widen}
	boot, built, err := kernel.ReadBoot(*kernelPath)
	if err != nil {
		printErr(err)
		return exitError
	}
	if built {
		img.Boot = boot
	}
	if built && img.Config == "" {
		// The harness built it: its .config is beside it (the cache's
		// image directory, or an export's variant directory).
		c := filepath.Join(filepath.Dir(*kernelPath), "config")
		if st, err := os.Stat(c); err == nil && st.Mode().IsRegular() {
			img.Config = c
		}
	}
	if built && boot.Widening != "" && !img.Widen {
		img.Widen = true
		p.Say(fmt.Sprintf("the kernel carries the race-window instrumentation (its image.json says so): %s=%d", boot.Param(), rf.delayFor(boot)))
	}
	e, err := newEnv(ctx, rf, cacheDir(), dir, p.Say)
	if err != nil {
		printErr(err)
		return exitError
	}
	r := runner.Run(ctx, e.spec("kernel", 1, img, ""))
	// The run is shown even when its record cannot be written (a full
	// disk): what happened in it is the first thing to know.
	werr := writeJSONFile(filepath.Join(dir, "run.json"), r)
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(r)
	} else {
		printRun(r)
		if werr == nil {
			fmt.Printf("results in %s\n", dir)
		}
	}
	if werr != nil {
		printErr(werr)
		return exitError
	}
	return runExit(r)
}

// runExit is the exit code of 'harness run' for a finished run.
func runExit(r report.Run) int {
	switch {
	case r.Failed():
		return runFailure
	case r.Outcome == report.OutcomeClean:
		return runClean
	}
	return exitError
}

func printRun(r report.Run) {
	fmt.Printf("outcome: %s (%s, boot %.1f s, stress %.0f s)\n", r.Outcome, r.Accel, r.BootSeconds, r.StressSeconds)
	if r.StressSeconds > 0 {
		wb := "unknown"
		if r.WrittenBackPages >= 0 {
			wb = fmt.Sprint(r.WrittenBackPages)
		}
		var classes []string
		for _, c := range stress.CorruptionClasses {
			if n := r.CorruptionsByClass[string(c)]; n > 0 {
				classes = append(classes, fmt.Sprintf("%s %d", c, n))
			}
		}
		fmt.Printf("pages verified %d, written back %s, corrupt pages %d %s\n", r.PagesVerified, wb, r.Corruptions, strings.Join(classes, ", "))
	}
	for _, t := range r.CrashTitles {
		fmt.Printf("kernel: %s\n", t)
	}
	if r.Health != nil {
		fmt.Printf("health: %s\n", r.Health.Summary())
	}
	for i, e := range r.Examples {
		if i == 5 {
			fmt.Printf("  ... %d more in run.json\n", len(r.Examples)-5)
			break
		}
		fmt.Printf("  %s\n", e)
	}
	if r.Error != "" {
		fmt.Printf("%s\n", indent(r.Error))
	}
	if r.ConsoleLog != "" {
		fmt.Printf("console log: %s\n", r.ConsoleLog)
	}
}

// writeJSONFile writes v atomically: a full disk leaves no half-written file.
func writeJSONFile(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, append(b, '\n'))
}
