package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
)

// exitUsage is the exit code for a command line the harness refuses before
// it starts anything: an unknown command or flag, a flag without its value,
// a stray argument, a flag value out of range. 64 is EX_USAGE of
// sysexits.h; it collides with no verdict (0 to 3). bisect-run keeps git
// bisect's contract instead and exits 128 (abort) for these.
const exitUsage = 64

// parseArgs parses a command's flags. When ok is false the command stops
// at once with code: 0 after -h or --help (the help goes to stdout),
// exitUsage after a bad flag or a stray argument (the reason goes to
// stderr). positional says whether the command takes arguments after its
// flags (merge's shard directories); no other command does, and an
// argument it would ignore is refused: the flag package stops at the first
// argument that is not a flag, so every flag after it would be silently
// dropped.
func parseArgs(fs *flag.FlagSet, args []string, positional bool) (code int, ok bool) {
	out := fs.Output()
	fs.SetOutput(io.Discard) // the error is printed below, with the command's name
	err := fs.Parse(args)
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		fs.SetOutput(out)
		return 0, false
	case err != nil:
		fmt.Fprintf(os.Stderr, "harness %s: %v (see 'harness %s -h')\n", fs.Name(), err, fs.Name())
		return exitUsage, false
	case fs.NArg() > 0 && !positional:
		fmt.Fprintf(os.Stderr, "harness %s: %s\n", fs.Name(), strayArgument(fs.Name(), fs.Args()))
		return exitUsage, false
	}
	return 0, true
}

// asksHelp says whether a command's arguments ask for its help (before any
// "--"), which it prints before it touches anything.
func asksHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// strayArgument says why an argument after the flags is refused.
func strayArgument(command string, rest []string) string {
	msg := fmt.Sprintf("unexpected argument %q: %s takes flags only", rest[0], command)
	if len(rest) > 1 {
		msg += fmt.Sprintf(", and the %d argument(s) after it would have been ignored", len(rest)-1)
	}
	if command == "compare" || command == "build" || command == "bench" {
		if strings.HasSuffix(rest[0], ".patch") || strings.HasSuffix(rest[0], ".diff") || strings.HasSuffix(rest[0], ".mbox") {
			msg += "; the patch under test goes in --patch FILE"
		}
	}
	return msg + fmt.Sprintf(" (see 'harness %s -h')", command)
}

// usageError prints a refused flag value and returns exitUsage.
func usageError(command string, err error) int {
	fmt.Fprintf(os.Stderr, "harness %s: %v\n", command, err)
	return exitUsage
}

// guard runs the harness and turns a panic in it into exit code onPanic
// (exitError; bisect-run's is 128, abort) with a one-line message instead
// of Go's trace and exit code 2 (which reads as 'inconclusive').
// ZSWAPRACE_DEBUG=1 prints the trace as well. Only the main goroutine's
// panics can be caught here.
func guard(onPanic int, run func() int) (code int) {
	defer func() {
		if r := recover(); r != nil {
			stack := string(debug.Stack())
			fmt.Fprintf(os.Stderr, "harness: internal error: %v%s\n", r, panicSite(stack))
			fmt.Fprintln(os.Stderr, "harness: this is a bug in the harness; please report it with the command line (ZSWAPRACE_DEBUG=1 prints the stack)")
			if os.Getenv("ZSWAPRACE_DEBUG") == "1" {
				fmt.Fprint(os.Stderr, stack)
			}
			code = onPanic
		}
	}()
	return run()
}

// panicSite is " at FILE:LINE (FUNC)" for the frame that panicked, read
// from a goroutine's stack dump, or "".
func panicSite(stack string) string {
	lines := strings.Split(stack, "\n")
	for i, l := range lines {
		// The frame after panic(...) is the one that panicked.
		if strings.HasPrefix(l, "panic(") && i+3 < len(lines) {
			fn := lines[i+2]
			if j := strings.LastIndex(fn, "("); j > 0 {
				fn = fn[:j]
			}
			file := strings.TrimSpace(lines[i+3])
			if j := strings.LastIndex(file, " +0x"); j > 0 {
				file = file[:j]
			}
			return fmt.Sprintf(" at %s (%s)", file, fn)
		}
	}
	return ""
}

// printVersion prints the harness's version and the commit the binary was
// built from (see harnessBuild).
func printVersion(w io.Writer) {
	fmt.Fprintln(w, versionLine())
}

func versionLine() string {
	hb := harnessBuild()
	version := hb.version
	if version == "" {
		version = "(unknown)"
	}
	line := fmt.Sprintf("harness %s %s", hb.module, version)
	if hb.commit != "" {
		line += fmt.Sprintf(", revision %s", hb.commit)
		if hb.when != "" {
			line += " (" + hb.when + ")"
		}
		if hb.dirty {
			line += " with uncommitted changes"
		}
	} else {
		line += ", revision unknown (built without VCS information, e.g. by go run or go test; 'make build' records it)"
	}
	if hb.goVersion != "" {
		line += ", " + hb.goVersion
	}
	return line
}

// flagGroups sorts every command's flags into topics for the help. A flag
// missing here is listed under "other".
var flagGroups = []struct {
	title string
	flags []string
}{
	{"Source and patch", []string{"source", "patch", "kasan", "debug", "build-jobs", "kernels", "kernel", "config", "variant", "export",
		"tree", "rev", "good", "bad", "log", "culprit", "unresolved"}},
	{"Widening (the race window, and zswap's pressure on it)", []string{"widen", "widen-at", "delay-us", "kcsan", "kcsan-udelay", "kcsan-skip-watch", "zpool", "compressor", "max-pool-percent",
		"swing-low", "swing-high", "swing-period"}},
	{"Guest sizing", []string{"mem", "cpus", "swap", "accel", "qemu", "cmdline"}},
	{"Workload", []string{"workload", "workers", "mib-per-worker", "mode", "duration", "hang-after", "health", "leak-tolerance"}},
	{"Runs and verdict", []string{"runs", "budget", "jobs", "alpha", "min-reduction", "signature", "ignore", "expect",
		"bad-on", "crash-pattern", "bad-end", "measure", "measure-failures", "measure-budget", "wrong", "miss",
		"reps", "peer-reps", "generic-reps", "build-reps", "limit", "generic-limit", "soak", "verdict-reps", "rows"}},
	{"Output", []string{"out", "json"}},
}

// flagPlaceholders name a flag's value in the help.
var flagPlaceholders = map[string]string{
	"source": "SPEC", "patch": "FILE", "widen-at": "FILE:LINE[:USEC]", "config": "FILE", "kernel": "BZIMAGE", "kernels": "DIR", "export": "DIR",
	"out": "DIR", "rows": "REGEXP", "tree": "DIR", "variant": "unpatched|patched", "accel": "auto|kvm|tcg", "mode": "MODE",
	"workload": "'PROGRAM ARGS'", "qemu": "PROGRAM", "cmdline": "'PARAMS'", "zpool": "NAME", "compressor": "NAME",
	"signature": "REGEXP", "ignore": "REGEXP", "crash-pattern": "REGEXP", "rev": "REV", "good": "REV", "bad": "REV",
	"culprit": "SHA", "log": "FILE", "bad-end": "FILE", "bad-on": "LIST", "unresolved": "TEXT", "mem": "MIB",
	"swap": "MIB", "mib-per-worker": "MIB", "alpha": "P", "wrong": "P", "miss": "P", "min-reduction": "X",
	"jobs": "N", "build-jobs": "N", "json": "FILE", "expect": "VERDICT", "leak-tolerance": "PAGES",
}

// printFlags prints fs's flags grouped by topic, GNU style: --name VALUE,
// the description, and the default unless it is empty, zero or a sentinel
// that the description explains.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	byName := map[string]*flag.Flag{}
	fs.VisitAll(func(f *flag.Flag) { byName[f.Name] = f })
	listed := map[string]bool{}
	section := func(title string, names []string) {
		var fl []*flag.Flag
		for _, n := range names {
			if f := byName[n]; f != nil && !listed[n] {
				fl = append(fl, f)
				listed[n] = true
			}
		}
		if len(fl) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		for _, f := range fl {
			printFlag(w, f)
		}
	}
	for _, g := range flagGroups {
		section(g.title, g.flags)
	}
	var rest []string
	fs.VisitAll(func(f *flag.Flag) { rest = append(rest, f.Name) })
	section("Other", rest)
	fmt.Fprintf(w, "\n  -h, --help\n%s\n", wrap("this help", 6, 78))
}

func printFlag(w io.Writer, f *flag.Flag) {
	_, usage := flag.UnquoteUsage(f)
	head := "  --" + f.Name
	if !isBoolFlag(f) {
		ph := flagPlaceholders[f.Name]
		if ph == "" {
			ph = placeholderOf(f)
		}
		head += " " + ph
	}
	if d := f.DefValue; !strings.Contains(usage, "default") && !sentinelDefault(d) {
		usage += " (default " + d + ")"
	}
	fmt.Fprintf(w, "%s\n%s\n", head, wrap(usage, 6, 78))
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func placeholderOf(f *flag.Flag) string {
	name, _ := flag.UnquoteUsage(f)
	switch name {
	case "duration":
		return "DURATION"
	case "int", "uint":
		return "N"
	case "float":
		return "X"
	case "", "value":
		return "VALUE"
	}
	return strings.ToUpper(name)
}

// sentinelDefault is a default not worth printing: nothing, zero, false,
// or -1 (which the flags use for "chosen from the others").
func sentinelDefault(d string) bool {
	switch d {
	case "", "0", "-1", "false", "0s", "[]":
		return true
	}
	return false
}

// wrap fills s into lines of at most width columns, indented by indent.
func wrap(s string, indent, width int) string {
	pad := strings.Repeat(" ", indent)
	var b strings.Builder
	line := pad
	for _, word := range strings.Fields(s) {
		if len(line) > indent && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = pad
		}
		if len(line) > indent {
			line += " "
		}
		line += word
	}
	b.WriteString(line)
	return b.String()
}
