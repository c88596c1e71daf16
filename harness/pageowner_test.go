package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"zswaprace/harness/kernel"
)

// A kernel whose .config has CONFIG_PAGE_OWNER=y (built with --debug)
// boots with page_owner=on, and its run allows for reading it; any other
// kernel does not.
func TestPageOwnerOnForPageOwnerKernels(t *testing.T) {
	dir := t.TempDir()
	conf := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	debug := conf("debug", "CONFIG_ZSWAP=y\nCONFIG_DEBUG_VM=y\nCONFIG_PAGE_OWNER=y\nCONFIG_DEBUG_ATOMIC_SLEEP=y\n")
	plain := conf("plain", "CONFIG_ZSWAP=y\n# CONFIG_PAGE_OWNER is not set\n")
	e := &env{rf: parsedRunFlags(t), dir: dir}
	for _, c := range []struct {
		config string
		want   bool
	}{{debug, true}, {plain, false}, {"", false}, {filepath.Join(dir, "missing"), false}} {
		s := e.spec("patched", 1, bootImage{Kernel: "bzImage", Config: c.config, Widen: true}, "r")
		if got := slices.Contains(s.VM.Cmdline, "page_owner=on"); got != c.want || s.PageOwner != c.want {
			t.Errorf("config %q: command line %q (page_owner=on %v), spec.PageOwner %v; want %v", c.config, s.VM.Cmdline, got, s.PageOwner, c.want)
		}
		if !slices.Contains(s.VM.Cmdline, "zswap.writeback_delay_us=2000") {
			t.Errorf("config %q: the flags' command line is gone: %q", c.config, s.VM.Cmdline)
		}
	}
	// The user's --cmdline comes last, so it can still turn it off.
	e.rf = parsedRunFlags(t, "--cmdline", "page_owner=off")
	got := strings.Join(e.spec("patched", 1, bootImage{Config: debug}, "r").VM.Cmdline, " ")
	if !strings.HasSuffix(got, "page_owner=on page_owner=off") {
		t.Errorf("command line %q", got)
	}
}

// report.json's patch_direction is forward or reverse, as its schema says
// (a comparison of a patch the source lacks wrote "apply", which the
// schema refuses; found by TestLeakStacksNamedUnderDebug).
func TestReportDirection(t *testing.T) {
	if got := reportDirection(kernel.Apply); got != "forward" {
		t.Errorf("apply: %q", got)
	}
	if got := reportDirection(kernel.Reverse); got != "reverse" {
		t.Errorf("reverse: %q", got)
	}
}
