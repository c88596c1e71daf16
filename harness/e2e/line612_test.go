package e2e

import (
	"os"
	"strings"
	"testing"

	"zswaprace/harness/report"
)

// The 6.12 kernel line, from Debian's linux-source-6.12, through its own
// profile: both variants build (the unpatched one with the 6.12 race check
// reversed), boot on two CPUs with zsmalloc and the shrinker, and run the
// workload with pages written back through zswpwb in /proc/vmstat, the
// patched one clean (the unpatched one too, unless it races unwidened).
// The widened comparison ('compare --source debian:6.12 --widen', fixed)
// is in make bench and the README: its two widened variants and its runs
// took 10 minutes more here.
func TestDebian612BuildsAndRuns(t *testing.T) {
	// Built by TestMain in the background, beside the 6.1 tests.
	if bg612 == nil {
		t.Fatal("TestMain did not start the 6.12 build (willRun)")
	}
	built := bg612.wait(t)
	for _, v := range []struct{ name, kernel, config string }{
		{"unpatched", built.Unpatched.Kernel, built.Unpatched.Config},
		{"patched", built.Patched.Kernel, built.Patched.Config},
	} {
		cfg, err := os.ReadFile(v.config)
		if err != nil {
			t.Fatalf("%s config: %v", v.name, err)
		}
		for _, want := range []string{"CONFIG_ZSMALLOC=y", "CONFIG_ZSWAP_SHRINKER_DEFAULT_ON=y"} {
			if !strings.Contains(string(cfg), want+"\n") {
				t.Errorf("%s 6.12 kernel's config lacks %s (kconfigs/zswap-6.12.config)", v.name, want)
			}
		}
		dir := t.TempDir()
		code, _, _ := harness(t, nil, "run", "--kernel", v.kernel, "--cpus", "2", "--duration", "30s", "--out", dir)
		r := readRun(t, dir)
		switch {
		case v.name == "unpatched" && r.Outcome == report.OutcomeCorruption:
			// Without the check, the race may show unwidened: rare, and
			// no failure of the harness's.
			t.Logf("the unpatched 6.12 kernel corrupted %d pages without widening", r.Corruptions)
		case code != 0 || r.Outcome != report.OutcomeClean:
			t.Errorf("%s 6.12 run: exit %d, outcome %s (%s), want a clean run", v.name, code, r.Outcome, r.Error)
		}
		if r.WrittenBackPages <= 0 {
			t.Errorf("%s 6.12 run wrote back %d pages (zswpwb): the profile's writeback triggers did not work", v.name, r.WrittenBackPages)
		}
		if r.GuestCPUs != 2 {
			t.Errorf("%s 6.12 run had %d CPUs online, want 2", v.name, r.GuestCPUs)
		}
		// The kernel prints its command line first thing on the console.
		console, err := os.ReadFile(r.ConsoleLog)
		if err != nil {
			t.Fatalf("%s 6.12 run's console log: %v", v.name, err)
		}
		for _, want := range []string{"zswap.zpool=zsmalloc", "zswap.shrinker_enabled=1"} {
			if !strings.Contains(string(console), want) {
				t.Errorf("%s 6.12 kernel did not boot with %s (the 6.12 profile)", v.name, want)
			}
		}
		t.Logf("%s 6.12: %d pages written back in %.0f s, %d pages verified", v.name, r.WrittenBackPages, r.StressSeconds, r.PagesVerified)
	}
}
