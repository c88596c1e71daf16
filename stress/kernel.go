package stress

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// VmstatCounters are the /proc/vmstat counters SampleKernel reads (zswpwb
// exists only on kernels newer than 6.1). The harness's kernel profiles
// (harness/kernel/profile.go) say which counter is a line's count of pages
// written back; a test there checks that it is one of these.
var VmstatCounters = []string{"zswpin", "zswpout", "zswpwb", "pswpin", "pswpout"}

// SampleKernel reads the kernel's zswap and swap counters: every file of
// debugfsDir (normally /sys/kernel/debug/zswap) whose content is one integer,
// keyed by file name (e.g. "written_back_pages", "pool_limit_hit"), and the
// VmstatCounters from vmstatPath (normally /proc/vmstat), keyed by counter
// name. Either path may be "" to skip it. Files that cannot be read or do not
// hold an integer are skipped; a missing counter is simply absent. It fails
// if the directory cannot be listed or vmstatPath cannot be read, returning
// what it has read so far with the error.
func SampleKernel(debugfsDir, vmstatPath string) (map[string]int64, error) {
	m := make(map[string]int64)
	if debugfsDir != "" {
		ents, err := os.ReadDir(debugfsDir)
		if err != nil {
			return m, fmt.Errorf("stress: sampling zswap counters: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(debugfsDir, e.Name()))
			if err != nil {
				continue
			}
			if v, ok := parseInt(string(bytes.TrimSpace(b))); ok {
				m[e.Name()] = v
			}
		}
	}
	if vmstatPath != "" {
		b, err := os.ReadFile(vmstatPath)
		if err != nil {
			return m, fmt.Errorf("stress: sampling vmstat: %w", err)
		}
		want := make(map[string]bool, len(VmstatCounters))
		for _, n := range VmstatCounters {
			want[n] = true
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			name, val, ok := strings.Cut(sc.Text(), " ")
			if !ok || !want[name] {
				continue
			}
			if v, ok := parseInt(strings.TrimSpace(val)); ok {
				m[name] = v
			}
		}
	}
	return m, nil
}

// parseInt parses a decimal integer; values above MaxInt64 are clamped.
func parseInt(s string) (int64, bool) {
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return v, true
	}
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return 1<<63 - 1, true
	}
	return 0, false
}
