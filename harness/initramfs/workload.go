package initramfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"zswaprace/harness/fault"
)

// Workload resolves a host command line ("stress --vm 1 --vm-bytes 300M")
// into the files the guest needs to run it: the binary and the shared
// libraries ldd finds for it, each at its host path. Arguments are split on
// white space; there is no shell quoting.
func Workload(cmdline string) ([]File, []string, error) {
	argv := strings.Fields(cmdline)
	if len(argv) == 0 {
		return nil, nil, fault.Newf(fault.Usage, "workload", "empty command")
	}
	bin, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, nil, fault.Newf(fault.Usage, "workload", "%s: not found on this host (install it, or give a path)", argv[0])
	}
	bin, err = filepath.Abs(bin)
	if err != nil {
		return nil, nil, err
	}
	libs, err := SharedLibraries(bin)
	if err != nil {
		return nil, nil, err
	}
	var files []File
	for _, p := range append([]string{bin}, libs...) {
		if m := hiddenIn(p); m != "" {
			return nil, nil, fault.Newf(fault.Usage, "workload", "%s is under %s, which the guest mounts its own file system over, so the guest would not find it: put the workload on a path the guest sees, such as /usr/local/bin", p, m)
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, nil, fault.Newf(fault.Usage, "workload", "%s: %v", p, err)
		}
		b, err := os.ReadFile(real)
		if err != nil {
			return nil, nil, fault.Newf(fault.Usage, "workload", "%v", err)
		}
		files = append(files, File{Path: p, Data: b, Mode: 0o755})
	}
	argv[0] = bin
	return files, argv, nil
}

// guestMounts are the directories the guest agent mounts a file system on
// (guest/sysinit's mounts): a file the initramfs holds under one of them is
// hidden in the guest.
var guestMounts = []string{"/dev", "/proc", "/sys", "/tmp"}

// hiddenIn is the guest mount point that hides path, or "".
func hiddenIn(path string) string {
	for _, m := range guestMounts {
		if path == m || strings.HasPrefix(path, m+"/") {
			return m
		}
	}
	return ""
}

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)`)

// SharedLibraries lists the shared objects a dynamically linked binary loads,
// the dynamic loader included, as ldd reports them. A static binary has none.
func SharedLibraries(bin string) ([]string, error) {
	out, err := exec.Command("ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fault.Newf(fault.Usage, "workload", "ldd %s: %v: %s", bin, err, strings.TrimSpace(string(out)))
	}
	return ParseLdd(string(out))
}

// ParseLdd reads ldd's output.
func ParseLdd(out string) ([]string, error) {
	var libs []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "not found") {
			return nil, fault.Newf(fault.Usage, "workload", "missing shared library: %s", strings.TrimSpace(l))
		}
		if m := lddLine.FindStringSubmatch(l); m != nil {
			libs = append(libs, m[1])
		}
	}
	if len(libs) == 0 && strings.TrimSpace(out) != "" && !strings.Contains(out, "statically linked") {
		return nil, fmt.Errorf("could not read ldd output: %q", out)
	}
	return libs, nil
}
