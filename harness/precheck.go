package main

import (
	"fmt"
	"os"
	"strings"

	"zswaprace/harness/kernel"
	"zswaprace/harness/vm"
)

// startUp is what every command that uses the cache does first, once the
// cache is known to be the user's own: it removes what a harness killed
// with SIGKILL left behind (the compilers of its build, its VMs'
// temporary directories, with their swap disks), then checks the input
// that is cheap to check (precheck).
func startUp(command string, args []string) error {
	say := func(s string) { fmt.Fprintln(os.Stderr, "harness: "+s) }
	vm.ReapTemp(say)
	kernel.ReapBuilds(cacheDir(), say)
	return precheck(command, args)
}

// precheck checks the files and names a command was given before anything
// slow or with side effects starts (apt installing a Debian source, QEMU
// probing KVM, building the guest agent): the patch must be readable and
// name only files inside a tree, the source must be a known one, and the
// kernel to boot must be a bzImage. The commands check all of it again
// where they use it; this only makes bad input fail at once.
func precheck(command string, args []string) error {
	switch command {
	case "build", "compare", "bench":
		if p, ok := flagValue(args, "patch"); ok && p != "" {
			if _, err := kernel.ReadPatch(p); err != nil {
				return err
			}
		}
		if s, ok := flagValue(args, "source"); ok {
			if err := kernel.CheckSpec(s); err != nil {
				return err
			}
		}
	case "run":
		if k, ok := flagValue(args, "kernel"); ok && k != "" {
			return vm.CheckKernel(k)
		}
	}
	return nil
}

// flagValue finds the value of the string flag name in args as the flag
// package reads them (-name v, --name v, -name=v, --name=v; the last one
// wins), without knowing the command's other flags.
func flagValue(args []string, name string) (value string, ok bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") {
			continue // another flag's value
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			value, ok = args[i+1], true
			i++
			continue
		}
		if v, found := strings.CutPrefix(a, name+"="); found {
			value, ok = v, true
		}
	}
	return value, ok
}
