package runner

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/harness/report"
	"zswaprace/stress"
)

// corpus returns a console log from the parser's corpus, without its header.
func corpus(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "console", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		b = b[i+2:]
	}
	return b
}

func counters(wb int64) (before, after map[string]int64) {
	return map[string]int64{"written_back_pages": 100, "zswpout": 5}, map[string]int64{"written_back_pages": 100 + wb, "zswpout": 50}
}

func TestDecide(t *testing.T) {
	before, after := counters(900)
	clean := stress.Report{ElapsedSec: 60, PagesVerified: 1000, FirstCorruptionSec: -1, KernelBefore: before, KernelAfter: after,
		Corruptions: map[stress.Class]uint64{}}
	b0, a0 := counters(0)
	noWB := clean
	noWB.KernelBefore, noWB.KernelAfter = b0, a0
	noBefore := clean
	noBefore.KernelBefore = map[string]int64{}
	corrupt := clean
	corrupt.Corruptions = map[stress.Class]uint64{stress.ClassStale: 2}
	corrupt.FirstCorruptionSec = 12.5
	corrupt.Examples = []stress.Example{{Class: stress.ClassStale, Worker: 1, Page: 7, WantGen: 9, GotWorker: 1, GotPage: 7, GotGen: 6, HeaderOK: true, Offset: 16, AtSec: 12.5}}

	crashLog := corpus(t, "real-6.1-widened-unpatched-zswap-bug.log")
	bootLog := bytes.Split(crashLog, []byte(proto.ConsoleReady))[0]
	warnLog := corpus(t, "synthetic-warning.log")
	oomLog := corpus(t, "synthetic-oom-no-killable-panic.log")
	hungLog := corpus(t, "synthetic-hung-task.log")
	warnGPFLog := corpus(t, "synthetic-warning-then-gpf.log")
	var warnGPFTitles []string
	for _, rep := range console.Parse(warnGPFLog) {
		if rep.Kind == console.Warning {
			warnGPFTitles = append(warnGPFTitles, rep.Title+" (warning)")
		} else {
			warnGPFTitles = append(warnGPFTitles, rep.Title)
		}
	}
	failed := func(sec float64) *float64 { return &sec }

	tests := []struct {
		name        string
		o           observed
		wantOutcome report.Outcome
		wantTitles  []string
		wantFirst   *float64
		wantWB      int64
	}{
		{"clean run", observed{log: bootLog, offset: len(bootLog), finished: true, result: clean}, report.OutcomeClean, nil, nil, 900},
		{"zswap wrote nothing back", observed{log: bootLog, finished: true, result: noWB}, report.OutcomeNoWriteback, nil, nil, 0},
		{"writeback unknown proves nothing", observed{log: bootLog, finished: true, result: noBefore}, report.OutcomeNoWriteback, nil, nil, -1},
		{"corruption", observed{log: bootLog, finished: true, result: corrupt}, report.OutcomeCorruption, nil, failed(12.5), 900},
		{"kernel BUG mid-run", observed{log: crashLog, offset: len(bootLog), cmdErr: errors.New("connection lost"), finished: true, crashAt: 51, elapsed: 57,
			last: stress.Progress{ElapsedSec: 50}, events: []string{"GUEST_PANICKED", "SHUTDOWN(guest-reset)"}},
			report.OutcomeCrash, []string{"kernel BUG in zswap_writeback_entry"}, failed(51), -1},
		{"corruption, then a kernel BUG: the corruption is the outcome", observed{log: crashLog, offset: len(bootLog), cmdErr: errors.New("connection lost"), finished: true, crashAt: 51, elapsed: 57,
			last: stress.Progress{ElapsedSec: 50, Corruptions: 3}, events: []string{"GUEST_PANICKED", "SHUTDOWN(guest-reset)"}},
			// The heartbeat at 50 s already counted corrupt pages: that is the first failure.
			report.OutcomeCorruption, []string{"kernel BUG in zswap_writeback_entry"}, failed(50), -1},
		{"corruptions streamed before the crash keep their time", observed{log: crashLog, offset: len(bootLog), finished: false, crashAt: 51,
			last: stress.Progress{ElapsedSec: 50, Corruptions: 1}, examples: corrupt.Examples},
			report.OutcomeCorruption, []string{"kernel BUG in zswap_writeback_entry"}, failed(12.5), -1},
		{"a warning during the workload fails the run", observed{log: warnLog, finished: true, result: clean, warnAt: 18},
			report.OutcomeWarning, []string{"WARNING in zswap_frontswap_store (warning)"}, failed(18), 900},
		{"a warning before the workload is not counted", observed{log: warnLog, offset: len(warnLog), finished: true, result: clean},
			report.OutcomeClean, []string{"WARNING in zswap_frontswap_store (before the workload started)"}, nil, 900},
		{"a warning, then a crash: the crash", observed{log: warnGPFLog, cmdErr: errors.New("lost"), finished: true, warnAt: 10, crashAt: 11},
			report.OutcomeCrash, warnGPFTitles, failed(11), -1},
		{"a warning, then the user's Ctrl-C: the warning stands", observed{log: warnLog, interrupted: true, warnAt: 18, elapsed: 20},
			report.OutcomeWarning, []string{"WARNING in zswap_frontswap_store (warning)"}, failed(18), -1},
		{"a warning, then OOM: OOM", observed{log: append(append([]byte(nil), warnLog...), oomLog...), finished: true, cmdErr: errors.New("lost"), warnAt: 18},
			report.OutcomeOOM, []string{"WARNING in zswap_frontswap_store (warning)", "out of memory"}, nil, -1},
		{"OOM panic with pvpanic stays OOM", observed{log: oomLog, finished: true, cmdErr: errors.New("lost"), events: []string{"GUEST_PANICKED"}},
			report.OutcomeOOM, []string{"out of memory"}, nil, -1},
		{"hung task on the console", observed{log: hungLog, finished: false, hung: true, elapsed: 200},
			report.OutcomeHang, []string{"INFO: task hung in zswap_writeback_entry", "INFO: task hung in zswap_frontswap_store"}, failed(200), -1},
		{"silent guest", observed{log: bootLog, hung: true, elapsed: 130}, report.OutcomeHang, nil, failed(130), -1},
		// A guest that runs slow (more vCPUs than host cores) has done
		// 510 s of stress in 745 s of the host's time: the failure is
		// timed on the stress clock, as the run's stress seconds and a
		// corruption are, never on the host's.
		{"crash found after the run in a slow guest: on the stress clock", observed{log: crashLog, offset: len(bootLog), cmdErr: errors.New("connection lost"), finished: true, elapsed: 745,
			last: stress.Progress{ElapsedSec: 510}},
			report.OutcomeCrash, []string{"kernel BUG in zswap_writeback_entry"}, failed(510), -1},
		{"silent slow guest: on the stress clock", observed{log: bootLog, hung: true, elapsed: 745, last: stress.Progress{ElapsedSec: 600}},
			report.OutcomeHang, nil, failed(600), -1},
		{"pvpanic with nothing on the console", observed{log: bootLog, cmdErr: errors.New("lost"), finished: true, events: []string{"GUEST_PANICKED"}, elapsed: 20},
			report.OutcomeCrash, []string{"kernel panic (pvpanic; no report on the console)"}, failed(20), -1},
		{"reset nobody asked for", observed{log: bootLog, events: []string{"SHUTDOWN(guest-reset)"}, elapsed: 20},
			report.OutcomeCrash, []string{"guest reset itself mid-run with no report on the console (triple fault or emergency restart)"}, failed(20), -1},
		{"QEMU killed from outside", observed{log: bootLog, finished: true, cmdErr: errors.New("EOF"), elapsed: 20}, report.OutcomeInfraError, nil, nil, -1},
		{"Ctrl-C", observed{log: bootLog, interrupted: true, elapsed: 20}, report.OutcomeInterrupted, nil, nil, -1},
		{"external workload failed", observed{log: bootLog, finished: true, exec: &proto.ExecRequest{Argv: []string{"/usr/bin/stress"}},
			execResult: proto.ExecResult{ExitCode: 1, ElapsedSec: 33, OutputTail: "stress: FAIL: [1] (415) <-- worker 2 got signal 9\n", KernelBefore: before, KernelAfter: after}},
			report.OutcomeWorkloadFailed, nil, failed(33), 900},
		{"external workload stopped at its limit", observed{log: bootLog, finished: true, exec: &proto.ExecRequest{Argv: []string{"/usr/bin/stress"}},
			execResult: proto.ExecResult{ExitCode: -1, TimedOut: true, ElapsedSec: 60, KernelBefore: before, KernelAfter: after}},
			report.OutcomeClean, nil, nil, 900},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := decide(tt.o)
			if r.Outcome != tt.wantOutcome {
				t.Errorf("outcome %q (%s), want %q", r.Outcome, r.Error, tt.wantOutcome)
			}
			if diff := cmp.Diff(tt.wantTitles, r.CrashTitles); diff != "" {
				t.Errorf("titles (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantFirst, r.FirstFailureSeconds); diff != "" {
				t.Errorf("first failure (-want +got):\n%s", diff)
			}
			if r.WrittenBackPages != tt.wantWB {
				t.Errorf("written back %d, want %d", r.WrittenBackPages, tt.wantWB)
			}
			if r.Failed() != (tt.wantOutcome == report.OutcomeCorruption || tt.wantOutcome == report.OutcomeCrash || tt.wantOutcome == report.OutcomeHang || tt.wantOutcome == report.OutcomeWarning || tt.wantOutcome == report.OutcomeWorkloadFailed) {
				t.Errorf("Failed() = %v for %s", r.Failed(), r.Outcome)
			}
			// Every console report is in Reports, in order, marked when it
			// came before the workload (and so is a crash known only from
			// pvpanic or a reset); CrashTitles says the same.
			var titles []string
			for _, k := range r.Reports {
				switch {
				case k.Kind == report.KindDataRace:
					continue
				case k.BeforeWorkload:
					titles = append(titles, k.Title+" (before the workload started)")
				case k.Kind == "warning":
					titles = append(titles, k.Title+" (warning)")
				default:
					titles = append(titles, k.Title)
				}
			}
			if diff := cmp.Diff(r.CrashTitles, titles); diff != "" {
				t.Errorf("reports %+v do not match the crash titles (-titles +reports):\n%s", r.Reports, diff)
			}
		})
	}
}

// KCSAN reports (--kcsan) are recorded and counted apart: they neither
// fail a clean run nor change what a crash counts as.
func TestDecideDataRaces(t *testing.T) {
	before, after := counters(900)
	clean := stress.Report{ElapsedSec: 60, PagesVerified: 1000, FirstCorruptionSec: -1, KernelBefore: before, KernelAfter: after,
		Corruptions: map[stress.Class]uint64{}}
	crashLog := corpus(t, "real-6.1-widened-unpatched-zswap-bug.log")
	bootLog := bytes.Split(crashLog, []byte(proto.ConsoleReady))[0]
	race := func(a, b string) string {
		return "[   40.000000] ==================================================================\n" +
			"[   40.000001] BUG: KCSAN: data-race in " + a + " / " + b + "\n" +
			"[   40.000002] Reported by Kernel Concurrency Sanitizer on:\n" +
			"[   40.000003] ==================================================================\n"
	}
	bootRace := append(append([]byte(nil), race("rcu_gp_fqs_loop", "rcu_report_qs_rnp")...), bootLog...)
	log := append(append([]byte(nil), bootRace...), race("zswap_frontswap_load", "zswap_writeback_entry")+race("__list_add", "__list_del")...)

	r := decide(observed{log: log, offset: len(bootRace), finished: true, result: clean})
	if r.Outcome != report.OutcomeClean || r.Failed() {
		t.Errorf("clean run with KCSAN reports: outcome %q, failed %v", r.Outcome, r.Failed())
	}
	if r.DataRaces != 3 || len(r.CrashTitles) != 0 {
		t.Errorf("data races %d (want 3), crash titles %q (want none)", r.DataRaces, r.CrashTitles)
	}
	sig := report.Signature{}.Learn([]report.Run{r})
	if len(sig.Titles) != 0 {
		t.Errorf("a data race was learned as the race's signature: %q", sig.Titles)
	}

	crash := append(append([]byte(nil), log...), crashLog[len(bootLog):]...)
	r = decide(observed{log: crash, offset: len(bootRace), cmdErr: errors.New("connection lost"), finished: true, crashAt: 51, elapsed: 57,
		last: stress.Progress{ElapsedSec: 50}, events: []string{"GUEST_PANICKED"}})
	if r.Outcome != report.OutcomeCrash || r.DataRaces != 3 {
		t.Fatalf("KCSAN reports then a crash: outcome %q, data races %d", r.Outcome, r.DataRaces)
	}
	if diff := cmp.Diff([]string{"kernel BUG in zswap_writeback_entry"}, r.CrashTitles); diff != "" {
		t.Errorf("crash titles (-want +got):\n%s", diff)
	}
	if c := (report.Signature{Titles: []string{"kernel BUG in zswap_writeback_entry"}}).Classify(r); c != report.RaceFailure {
		t.Errorf("the crash after KCSAN reports counts as %q, want the race's", c)
	}
	v := report.Aggregate("unpatched", "k", []report.Run{r}, report.Signature{})
	if v.DataRaces != 3 || len(v.DataRaceTitles) != 3 {
		t.Errorf("variant data races %d, titles %q", v.DataRaces, v.DataRaceTitles)
	}
}

func TestDecideKeepsCorruptionDetail(t *testing.T) {
	ex := []stress.Example{{Class: stress.ClassStale, Worker: 0, Page: 3, WantGen: 5, GotWorker: 0, GotPage: 3, GotGen: 2, HeaderOK: true, Offset: 16, AtSec: 4}}
	r := decide(observed{log: corpus(t, "real-6.1-widened-unpatched-zswap-bug.log"), crashAt: 30,
		last: stress.Progress{ElapsedSec: 29, Corruptions: 1}, byClass: map[stress.Class]uint64{stress.ClassStale: 1}, examples: ex})
	if r.CorruptionsByClass["stale"] != 1 || len(r.Examples) != 1 || !strings.Contains(r.Examples[0], "wanted generation 5, read worker 0 page 3 generation 2") {
		t.Errorf("corruption detail lost when the kernel died: %v %v", r.CorruptionsByClass, r.Examples)
	}
}

// The selftest: test_zswap ran, "not ok 7", exit 1. Its own class
// with the exit status and the failed test, no corrupt page, the TAP
// results de-duplicated; and it counts as the race's failure.
func TestDecideFailedSelftest(t *testing.T) {
	before, after := counters(40)
	tail := "TAP version 13\n1..7\nok 1 test_zswap_usage\nok 2 test_swapin_nozswap\nok 3 test_zswapin\n" +
		"ok 4 test_zswap_writeback_enabled\nok 5 test_zswap_writeback_disabled\nok 6 test_no_kmem_bypass\nok 6 test_no_kmem_bypass\n" +
		"not ok 7 test_no_invasive_cgroup_shrink\n# Totals: pass:6 fail:1 xfail:0 xpass:0 skip:0 error:0\n"
	bootLog := bytes.Split(corpus(t, "real-6.1-widened-unpatched-zswap-bug.log"), []byte(proto.ConsoleReady))[0]
	o := observed{log: bootLog, finished: true, exec: &proto.ExecRequest{Argv: []string{"/usr/local/bin/test_zswap"}},
		execResult: proto.ExecResult{ExitCode: 1, ElapsedSec: 12, OutputTail: tail, KernelBefore: before, KernelAfter: after}}
	r := decide(o)
	if r.Outcome != report.OutcomeWorkloadFailed || r.Corruptions != 0 || len(r.Examples) != 0 {
		t.Errorf("outcome %q, %d corrupt pages, examples %q; want workload-failed and no corruption", r.Outcome, r.Corruptions, r.Examples)
	}
	if want := "workload /usr/local/bin/test_zswap exited 1: not ok 7 test_no_invasive_cgroup_shrink"; r.Error != want {
		t.Errorf("error %q, want %q", r.Error, want)
	}
	w := r.Workload
	if w == nil || w.ExitCode != 1 || w.Command != "/usr/local/bin/test_zswap" || w.TestsPlanned != 7 || len(w.Tests) != 7 {
		t.Fatalf("workload %+v", w)
	}
	if w.Tests[5].Number != 6 || w.Tests[6].Number != 7 || w.Tests[6].OK || w.Tests[6].Name != "test_no_invasive_cgroup_shrink" {
		t.Errorf("tests %+v", w.Tests)
	}
	if c := (report.Signature{}).Classify(r); c != report.RaceFailure {
		t.Errorf("counted as %q, want race", c)
	}
	if r.Exposure() != 12 {
		t.Errorf("exposure %v, want 12", r.Exposure())
	}
	v := report.Aggregate("patched", "k", []report.Run{r}, report.Signature{})
	if v.Failures != 1 || v.WorkloadFailures != 1 || v.InfraErrors != 0 || v.Corruptions != 0 {
		t.Errorf("aggregate: failures %d, workload failures %d, infra errors %d, corruptions %d", v.Failures, v.WorkloadFailures, v.InfraErrors, v.Corruptions)
	}

	// Killed by a signal, no TAP: the signal and the end of its output.
	o.execResult = proto.ExecResult{ExitCode: -1, Signal: "segmentation fault", ElapsedSec: 3, OutputTail: "starting\nabout to crash\n", KernelBefore: before, KernelAfter: after}
	r = decide(o)
	if want := "workload /usr/local/bin/test_zswap was killed by segmentation fault: starting | about to crash"; r.Outcome != report.OutcomeWorkloadFailed || r.Error != want {
		t.Errorf("signal: %q %q, want %q", r.Outcome, r.Error, want)
	}

	// A clean selftest run keeps its test points too; a run stopped at its
	// time limit is clean.
	o.execResult = proto.ExecResult{ExitCode: 0, ElapsedSec: 20, OutputTail: "1..2\nok 1 a\nok 2 b # SKIP no swap\n", KernelBefore: before, KernelAfter: after}
	r = decide(o)
	if r.Outcome != report.OutcomeClean || r.Workload == nil || len(r.Workload.Tests) != 2 || r.Workload.Tests[1].Directive != "SKIP" {
		t.Errorf("clean selftest: %q %+v", r.Outcome, r.Workload)
	}
}

// In junit.xml a failed workload is a counted run with its exit status and
// failed test, not a skipped one.
func TestFailedWorkloadInJUnit(t *testing.T) {
	before, after := counters(40)
	r := decide(observed{finished: true, exec: &proto.ExecRequest{Argv: []string{"/usr/local/bin/test_zswap"}},
		execResult: proto.ExecResult{ExitCode: 1, ElapsedSec: 12, OutputTail: "1..1\nnot ok 1 test_x\n", KernelBefore: before, KernelAfter: after}})
	rep := &report.Report{Tool: "zswaprace", Verdict: "not-fixed", Variants: []report.Variant{report.Aggregate("patched", "k", []report.Run{r}, report.Signature{})}}
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := report.WriteJUnit(path, rep); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	x := string(b)
	i := strings.Index(x, `name="patched/run-`)
	if i < 0 {
		t.Fatalf("no run case in:\n%s", x)
	}
	run := x[i:]
	run = run[:strings.Index(run, "</testcase>")]
	if strings.Contains(run, "<skipped") || !strings.Contains(run, "workload /usr/local/bin/test_zswap exited 1: not ok 1 test_x") {
		t.Errorf("junit case:\n%s", run)
	}
}
