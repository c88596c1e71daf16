package main

import (
	"errors"
	"math"
	"testing"

	"zswaprace/harness/fault"
	"zswaprace/harness/report"
)

func TestStepExit(t *testing.T) {
	run := func(outcome report.Outcome, titles ...string) report.Run {
		return report.Run{Outcome: outcome, CrashTitles: titles}
	}
	anyRule, _ := parseBadRule("any", "")
	zswapOnly, _ := parseBadRule("any", "zswap_writeback_entry")
	corruptionOnly, _ := parseBadRule("corruption", "")
	tests := []struct {
		name string
		runs []report.Run
		rule badRule
		want int
	}{
		{"all clean", []report.Run{run("clean"), run("clean")}, anyRule, bisectGood},
		{"corruption", []report.Run{run("clean"), run("corruption")}, anyRule, bisectBad},
		{"kernel panic (crash)", []report.Run{run("crash", "kernel BUG in zswap_writeback_entry")}, anyRule, bisectBad},
		{"hang", []report.Run{run("hang")}, anyRule, bisectBad},
		{"matching crash", []report.Run{run("crash", "kernel BUG in zswap_writeback_entry")}, zswapOnly, bisectBad},
		{"unrelated crash is not bad", []report.Run{run("crash", "general protection fault in ext4_fill_super")}, zswapOnly, bisectGood},
		{"crash when only corruption counts", []report.Run{run("crash", "x")}, corruptionOnly, bisectGood},
		{"boot failure", []report.Run{run("boot-failure")}, anyRule, bisectSkip},
		{"no writeback proves nothing", []report.Run{run("clean"), run("no-writeback")}, anyRule, bisectSkip},
		{"oom is a mis-sized run", []report.Run{run("oom")}, anyRule, bisectSkip},
		{"infrastructure error aborts", []report.Run{run("infra-error")}, anyRule, bisectAbort},
		{"interrupted aborts", []report.Run{run("interrupted")}, anyRule, bisectAbort},
		{"bad wins over a later infra error", []report.Run{run("corruption"), run("infra-error")}, anyRule, bisectBad},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stepExit(tt.runs, tt.rule); got != tt.want {
				t.Errorf("stepExit = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestErrorExit(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{fault.New(fault.Build, "make", errors.New("error: x")), bisectSkip},
		{fault.New(fault.Boot, "boot", errors.New("panic")), bisectSkip},
		{fault.New(fault.Infra, "qemu", errors.New("died")), bisectAbort},
		{fault.New(fault.Usage, "tree", errors.New("not a commit")), bisectAbort},
		{errors.New("untyped"), bisectAbort},
	}
	for _, tt := range tests {
		if got := errorExit(tt.err); got != tt.want {
			t.Errorf("errorExit(%v) = %d, want %d", tt.err, got, tt.want)
		}
		if got := errorExit(tt.err); got > 127 && got != bisectAbort || got == 2 {
			t.Errorf("exit %d is outside git bisect's contract", got)
		}
	}
}

func TestRunsPerStep(t *testing.T) {
	tests := []struct {
		name          string
		perHour, miss float64
		runSeconds    float64
		want          int
	}{
		// One failure a minute: exp(-T/60) <= 0.05 needs T >= 60*ln 20 = 179.7 s.
		{"one a minute, 60 s runs", 60, 0.05, 60, 3},
		{"one a minute, 180 s runs", 60, 0.05, 180, 1},
		{"one an hour, 10 min runs", 1, 0.05, 600, 18},
		{"stricter bound", 60, 0.01, 60, 5},
		{"unknown rate", 0, 0.05, 60, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runsPerStep(tt.perHour, tt.miss, tt.runSeconds)
			if got != tt.want {
				t.Errorf("runsPerStep = %d, want %d", got, tt.want)
			}
			if tt.perHour > 0 {
				if c := missChance(tt.perHour, float64(got)*tt.runSeconds); c > tt.miss {
					t.Errorf("%d runs leave a %.3f chance of missing, above %.3f", got, c, tt.miss)
				}
				if got > 1 {
					if c := missChance(tt.perHour, float64(got-1)*tt.runSeconds); c <= tt.miss {
						t.Errorf("%d runs would have been enough (chance %.3f)", got-1, c)
					}
				}
			}
		})
	}
	if c := missChance(60, 60*math.Log(20)); math.Abs(c-0.05) > 1e-9 {
		t.Errorf("missChance = %v, want 0.05", c)
	}
}

func TestParseBadRule(t *testing.T) {
	if _, err := parseBadRule("crashes", ""); err == nil {
		t.Error("accepted --bad-on crashes")
	}
	if _, err := parseBadRule("any", "("); err == nil {
		t.Error("accepted a bad regexp")
	}
	r, err := parseBadRule("corruption,hang", "")
	if err != nil || !r.on["corruption"] || !r.on["hang"] || r.on["crash"] {
		t.Errorf("got %+v, %v", r.on, err)
	}
}
