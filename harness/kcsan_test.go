package main

import (
	"flag"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func parsedRunFlags(t *testing.T, args ...string) runFlags {
	t.Helper()
	var rf runFlags
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return rf
}

func TestKcsanCmdlineAndWidening(t *testing.T) {
	rf := parsedRunFlags(t)
	for _, p := range rf.cmdlineFor(widenBoot(false)) {
		if strings.HasPrefix(p, "kcsan.") {
			t.Errorf("default command line sets %s; the kernel's defaults should stand", p)
		}
	}
	if got := widening(false, true, rf); got != "KCSAN watchpoints (kcsan.udelay_task=80 us (kernel default), kcsan.skip_watch=4000 (kernel default))" {
		t.Errorf("widening = %q", got)
	}
	rf = parsedRunFlags(t, "--kcsan-udelay", "500", "--kcsan-skip-watch", "1000")
	if err := rf.validate(); err != nil {
		t.Fatal(err)
	}
	got := rf.cmdlineFor(widenBoot(false))
	if diff := cmp.Diff([]string{"kcsan.udelay_task=500", "kcsan.skip_watch=1000"}, got[len(got)-2:]); diff != "" {
		t.Errorf("command line tail (-want +got):\n%s", diff)
	}
	if got := widening(true, true, rf); got != "delay patch (zswap.writeback_delay_us=2000) + KCSAN watchpoints (kcsan.udelay_task=500 us, kcsan.skip_watch=1000)" {
		t.Errorf("widening = %q", got)
	}
	if got := widening(false, false, rf); got != "none" {
		t.Errorf("widening without either = %q", got)
	}
}

func TestKcsanFlagsRefused(t *testing.T) {
	for _, args := range [][]string{{"--kcsan-udelay", "-5"}, {"--kcsan-skip-watch", "0"}, {"--kcsan-skip-watch", "-3"}, {"--kcsan-udelay", "2000000"}} {
		rf := parsedRunFlags(t, args...)
		if err := rf.validate(); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming %s", args, err, args[0])
		}
	}
	b := buildFlags{kasan: true, kcsan: true}
	if _, err := b.fragments(); err != errKasanKcsan {
		t.Errorf("--kasan --kcsan: error %v, want %v", err, errKasanKcsan)
	}
	b = buildFlags{kcsan: true}
	frags, err := b.fragments()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range frags {
		names = append(names, f.Name)
	}
	if diff := cmp.Diff([]string{"base", "zswap", "debug", "kcsan"}, names); diff != "" {
		t.Errorf("fragments (-want +got):\n%s", diff)
	}
}
