package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/term"

	"zswaprace/harness/cache"
)

// repoRoot finds the checkout the harness runs from, for kconfigs/ and
// patches/ (and the agent's source, for a harness built without the
// embedded agent): ZSWAPRACE_ROOT, the checkout above the working directory
// or above the binary, else a copy of the kconfigs/ and patches/ embedded
// in the binary.
func repoRoot() (string, error) {
	if r := os.Getenv("ZSWAPRACE_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	if r := checkoutAbove(dir); r != "" {
		return r, nil
	}
	// git bisect run starts the harness from the kernel tree's top: a
	// bin/harness built in its checkout still knows where that is.
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			if r := checkoutAbove(filepath.Dir(exe)); r != "" {
				return r, nil
			}
		}
	}
	// Away from any checkout (a bin/harness copied elsewhere): the
	// kconfigs/ and patches/ embedded in the binary, written to the cache.
	return assetRoot(cacheDir())
}

// checkoutAbove is the nearest directory at or above dir that holds the
// zswaprace module, or "".
func checkoutAbove(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module zswaprace") {
			return d
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// cacheDir is where sources, trees, images and initramfs files are kept.
func cacheDir() string { return cache.Dir() }

// progress prints progress lines: on a terminal with a timestamp, otherwise
// as plain lines.
type progress struct {
	tty   bool
	start time.Time
}

func newProgress() *progress {
	return &progress{tty: term.IsTerminal(int(os.Stderr.Fd())), start: time.Now()}
}

func (p *progress) Say(s string) {
	el := time.Since(p.start).Round(time.Second)
	if p.tty {
		fmt.Fprintf(os.Stderr, "\033[2m[%6s]\033[0m %s\n", el, s)
		return
	}
	fmt.Fprintf(os.Stderr, "[%6s] %s\n", el, s)
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

func newFlags(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: harness %s\n", synopsis)
		printFlags(fs.Output(), fs)
	}
	return fs
}

// outDir is the output directory a command was given, or out/KIND-TIME.
func outDir(flagValue, kind string) string {
	if flagValue != "" {
		return flagValue
	}
	return filepath.Join("out", kind+"-"+time.Now().Format("20060102-150405"))
}
