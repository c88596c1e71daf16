// Command harness builds a patched and an unpatched kernel, runs each in QEMU
// under zswap stress, and says whether the patch fixed the race.
//
//	harness compare     build both variants, run both, give a verdict (the main job)
//	harness build       build both variants and say where the images are (--export DIR for other machines)
//	harness merge       pool the runs of several compare outputs into one verdict
//	harness run         boot one kernel and run the stress job once
//	harness bisect-run  one step of 'git bisect run'
//	harness bench       builds, boots, time to first failure, throughput, soak
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"zswaprace/harness/cache"
	"zswaprace/harness/fault"
)

const usage = `usage: harness COMMAND [flags]

commands:
  compare      build unpatched and patched kernels, stress both, give a verdict
  build        build both kernel variants and print where they are (--export DIR for CI runners)
  merge        pool several 'compare --out' directories (shards) into one report and verdict
  run          boot one kernel, run the stress job once, report
  bisect-run   one 'git bisect run' step (exit 0 good, 1 bad, 125 skip, 128 abort)
  bench        time builds, boots and time to first failure against stress and stress-ng

'harness COMMAND -h' lists a command's flags; 'harness --version' prints the
version and the revision it was built from. Exit codes: 0 fixed (run: clean),
1 not fixed or regressed (run: kernel failure), 2 inconclusive, 3 error,
64 usage error (bisect-run: git bisect's 0, 1, 125, 128).
`

func main() {
	onPanic := exitError
	if len(os.Args) > 1 && os.Args[1] == "bisect-run" {
		onPanic = bisectAbort // 3 would tell git bisect "bad"
		if os.Getenv(bisectChildEnv) == "" {
			// A crash anywhere (a panic in a goroutine, a fatal error) must
			// abort a bisection, never mark a commit bad.
			os.Exit(bisectAsChild(os.Args[1:]))
		}
	}
	os.Exit(guard(onPanic, func() int { return harnessMain(os.Args[1:]) }))
}

// harnessMain runs the command in argv and returns the exit code.
func harnessMain(argv []string) int {
	if len(argv) < 1 {
		fmt.Fprint(os.Stderr, usage)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first Ctrl-C the harness cleans up; a second one kills it
	// (its QEMUs die with it).
	context.AfterFunc(ctx, stop)
	var code int
	args := argv[1:]
	switch argv[0] {
	case "build", "run", "compare", "bisect-run", "bench":
		if asksHelp(args) {
			break // the help needs no cache, and the input is not checked
		}
		// Every command keeps sources, images and keys in the cache: check
		// once that it is this user's own before anything is read from it.
		if _, err := cache.Open(); err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			if argv[0] == "bisect-run" {
				return bisectAbort // 3 would tell git bisect "bad"
			}
			return exitError
		}
		// What a killed harness left, and input that fails at once.
		if err := startUp(argv[0], args); err != nil {
			printErr(err)
			if argv[0] == "bisect-run" {
				return bisectAbort
			}
			return exitError
		}
	}
	switch argv[0] {
	case "build":
		code = cmdBuild(ctx, args)
	case "run":
		code = cmdRun(ctx, args)
	case "compare":
		code = cmdCompare(ctx, args)
	case "bisect-run":
		code = cmdBisectRun(ctx, args)
	case "bisect-summary":
		code = cmdBisectSummary(args)
	case "bench":
		code = cmdBench(ctx, args)
	case "merge":
		code = cmdMerge(ctx, args)
	case "-h", "-help", "--help", "help":
		fmt.Print(usage)
	case "--version", "-version", "version":
		printVersion(os.Stdout)
	default:
		fmt.Fprintf(os.Stderr, "harness: unknown command %q\n\n%s", argv[0], usage)
		code = exitUsage
	}
	return code
}

// exitError is the exit code for anything that is not a verdict about the
// kernel: bad usage, a build or boot failure, a host failure.
const exitError = 3

// printErr prints an error with its kind and detail, and says what to do.
func printErr(err error) {
	kind := fault.KindOf(err)
	fmt.Fprintf(os.Stderr, "harness: %s: %v\n", kind, err)
	if d := fault.DetailOf(err); d != "" {
		fmt.Fprintf(os.Stderr, "%s\n", indent(d))
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "harness: interrupted")
	}
}
