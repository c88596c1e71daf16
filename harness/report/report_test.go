package report

import (
	"encoding/json"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func ptr(f float64) *float64 { return &f }

func classes(stale, foreign, zeroed, damaged uint64) map[string]uint64 {
	return map[string]uint64{"stale": stale, "foreign": foreign, "zeroed": zeroed, "damaged": damaged}
}

// sampleReport is a small comparison with one run of every kind that
// matters: the unpatched kernel corrupts and crashes, the patched one runs
// clean once and fails to prove anything once.
func sampleReport() *Report {
	unpatched := []Run{
		{
			Variant: "unpatched", Index: 1, Outcome: OutcomeCorruption, Accel: "tcg",
			StressSeconds: 20, BootSeconds: 1.5, PagesVerified: 120000, WrittenBackPages: 4000,
			Corruptions: 15, CorruptionsByClass: classes(15, 0, 0, 0),
			Examples:            []string{"worker 2 page 811: stale generation 3, want 5"},
			CrashTitles:         []string{"BUG: invalid opcode in zswap_writeback_entry"},
			FirstFailureSeconds: ptr(12.5),
			ConsoleLog:          "out/unpatched/run-1/console.log",
			Counters:            map[string]int64{"written_back_pages": 4000, "zswpout": 90000},
		},
		{
			Variant: "unpatched", Index: 2, Outcome: OutcomeCrash, Accel: "tcg",
			StressSeconds: 31, BootSeconds: 1.4, PagesVerified: 200000, WrittenBackPages: 7000,
			CorruptionsByClass:  map[string]uint64{},
			CrashTitles:         []string{"BUG: invalid opcode in zswap_writeback_entry", "Kernel panic - not syncing: Fatal exception"},
			FirstFailureSeconds: ptr(31),
			Error:               "console tail:\n[   33.1] invalid opcode: 0000 [#1] SMP\x1b[0m",
		},
	}
	patched := []Run{
		{
			Variant: "patched", Index: 1, Outcome: OutcomeClean, Accel: "tcg",
			StressSeconds: 134, BootSeconds: 1.5, PagesVerified: 900000, WrittenBackPages: 190000,
			CorruptionsByClass: classes(0, 0, 0, 0),
		},
		{
			Variant: "patched", Index: 2, Outcome: OutcomeNoWriteback, Accel: "tcg",
			StressSeconds: 100, BootSeconds: 1.5, PagesVerified: 500000,
			CorruptionsByClass: classes(0, 0, 0, 0),
		},
		{
			Variant: "patched", Index: 3, Outcome: OutcomeBootFailure, Accel: "tcg",
			Error: "kernel did not reach /init within 60 s\nconsole tail: ...",
		},
	}
	return &Report{
		SchemaVersion:      SchemaVersion,
		Tool:               "zswaprace",
		Verdict:            "inconclusive",
		Reason:             "unpatched failed 2 times in 51 s, patched 0 times in 134 s; p=0.075 (exact conditional binomial, one-sided, alpha 0.05) is not significant: run the patched kernel clean for more than 177 s in all (43 s more) to claim a fix",
		PValue:             ptr(0.0751),
		NeededCleanSeconds: ptr(177.06),
		Source:             "/usr/src/linux-source-6.1.tar.xz",
		Patch:              "patches/zswap-writeback-race.patch",
		PatchDirection:     "reverse",
		Widen:              true,
		Accel:              "tcg",
		Started:            time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC),
		Finished:           time.Date(2025, 3, 1, 10, 9, 30, 0, time.UTC),
		Variants: []Variant{
			Aggregate("unpatched", "out/unpatched/bzImage", unpatched, Signature{}.Learn(unpatched)),
			Aggregate("patched", "out/patched/bzImage", patched, Signature{}.Learn(unpatched)),
		},
	}
}

func TestAggregate(t *testing.T) {
	runs := []Run{
		{Index: 1, Outcome: OutcomeCorruption, StressSeconds: 20, PagesVerified: 100, WrittenBackPages: 10,
			Corruptions: 3, CorruptionsByClass: map[string]uint64{"stale": 2, "damaged": 1},
			CrashTitles: []string{"BUG: A"}, FirstFailureSeconds: ptr(15)},
		{Index: 2, Outcome: OutcomeCrash, StressSeconds: 30, PagesVerified: 100, WrittenBackPages: 20,
			CrashTitles: []string{"BUG: B", "BUG: A"}, FirstFailureSeconds: ptr(9)},
		{Index: 3, Outcome: OutcomeHang, StressSeconds: 40, PagesVerified: 100, WrittenBackPages: 30,
			Corruptions: 1, CorruptionsByClass: map[string]uint64{"torn": 1}},
		{Index: 4, Outcome: OutcomeClean, StressSeconds: 100, PagesVerified: 1000, WrittenBackPages: 40},
		{Index: 5, Outcome: OutcomeNoWriteback, StressSeconds: 100, PagesVerified: 1000},
		{Index: 6, Outcome: OutcomeOOM, StressSeconds: 50, PagesVerified: 10, WrittenBackPages: 5,
			FirstFailureSeconds: ptr(1)},
		{Index: 7, Outcome: OutcomeBootFailure},
		{Index: 8, Outcome: OutcomeInfraError, StressSeconds: 5, WrittenBackPages: -1},
		{Index: 9, Outcome: OutcomeInterrupted, StressSeconds: 7, WrittenBackPages: 2},
		{Index: 10, Outcome: OutcomeInterrupted, StressSeconds: 3},
		{Index: 11, Outcome: "exploded", StressSeconds: 11},
		{Index: 12, Outcome: OutcomeWarning, StressSeconds: 60, PagesVerified: 60, WrittenBackPages: 6,
			Reports: []KernelReport{{Kind: "warning", Title: "WARNING in zswap_frontswap_store"}}},
	}
	want := Variant{
		Name:                "v",
		Kernel:              "k",
		Runs:                12,
		StressSeconds:       20 + 30 + 40 + 100 + 100 + 50 + 5 + 7 + 3 + 11 + 60,
		PagesVerified:       2370,
		WrittenBackPages:    10 + 20 + 30 + 40 + 5 + 2 + 6,
		Corruptions:         4,
		CorruptionsByClass:  map[string]uint64{"stale": 2, "foreign": 0, "zeroed": 0, "damaged": 1, "torn": 1},
		Crashes:             1,
		CrashTitles:         []string{"BUG: A", "BUG: B"},
		Hangs:               1,
		BootFailures:        1,
		InfraErrors:         2, // the infra error and the unknown outcome
		NoWriteback:         1,
		OOMs:                1,
		OOMSeconds:          50,
		Warnings:            1,
		FirstFailureSeconds: ptr(15), // the race's: not the crash's 9 s (another failure), nor the OOM run's 1 s
		// Without a signature the crash and the hang are other failures, as
		// is the warning; the corruption is the race's.
		Failures:      1,
		OtherFailures: 3,
	}
	got := Aggregate("v", "k", runs, Signature{})
	ignore := cmpopts.IgnoreFields(Variant{}, "RunDetails", "PagesPerSec", "WrittenBackPerSec")
	if diff := cmp.Diff(want, got, ignore); diff != "" {
		t.Errorf("Aggregate mismatch (-want +got):\n%s", diff)
	}
	if len(got.RunDetails) != len(runs) || got.RunDetails[0].PagesPerSec == nil || *got.RunDetails[0].PagesPerSec != 5 {
		t.Errorf("run throughput not filled: %+v", got.RunDetails[0])
	}
	// With the unpatched titles learned, the crash in BUG: A is the race's.
	withSig := Aggregate("v", "k", runs, Signature{Titles: []string{"BUG: A"}})
	if withSig.Failures != 2 || withSig.OtherFailures != 2 {
		t.Errorf("with signature BUG: A: race %d other %d, want 2 and 2", withSig.Failures, withSig.OtherFailures)
	}
	// Clean and failed runs count in full, the interrupted run that wrote
	// back counts, the rest proves nothing.
	if got, want := got.Exposure(), 20.0+30+40+100+7+60; got != want {
		t.Errorf("Exposure = %g, want %g", got, want)
	}

	empty := Aggregate("e", "", nil, Signature{})
	if diff := cmp.Diff(Variant{Name: "e", CorruptionsByClass: classes(0, 0, 0, 0), CrashTitles: []string{}, RunDetails: []Run{}}, empty); diff != "" {
		t.Errorf("Aggregate(nil) mismatch (-want +got):\n%s", diff)
	}
	if empty.Exposure() != 0 {
		t.Errorf("empty Exposure = %g", empty.Exposure())
	}
	// Empty lists must encode as [] and the classes must be there, so
	// readers of report.json need no special cases.
	data, err := json.Marshal(empty)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"crash_titles":[]`, `"run_details":[]`, `"stale":0`, `"first_failure_seconds":null`} {
		if !strings.Contains(string(data), s) {
			t.Errorf("JSON %s lacks %s", data, s)
		}
	}
}

func TestAggregateDoesNotAlias(t *testing.T) {
	runs := []Run{{Index: 1, Outcome: OutcomeCorruption, FirstFailureSeconds: ptr(3)}}
	v := Aggregate("v", "k", runs, Signature{})
	runs[0].Index = 99
	*runs[0].FirstFailureSeconds = 1
	if v.RunDetails[0].Index != 1 || *v.FirstFailureSeconds != 3 {
		t.Errorf("Aggregate result changed with its input: %+v", v)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	want := sampleReport()
	path := filepath.Join(t.TempDir(), "report.json")
	if err := WriteJSON(path, want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("report.json does not parse: %v\n%s", err, data)
	}
	if diff := cmp.Diff(want, &got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
	for _, key := range []string{`"verdict": "inconclusive"`, `"needed_clean_seconds": 177.06`, `"schema_version": 3`, `"started": "2025-03-01T10:00:00Z"`, `"no_writeback_runs": 1`} {
		if !strings.Contains(string(data), key) {
			t.Errorf("report.json lacks %s", key)
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("report.json mode = %v, %v; want 0644", fi.Mode(), err)
	}
}

func TestJUnitRoundTrip(t *testing.T) {
	r := sampleReport()
	path := filepath.Join(t.TempDir(), "junit.xml")
	if err := WriteJUnit(path, r); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got junitSuites
	if err := xml.Unmarshal(data, &got); err != nil {
		t.Fatalf("junit.xml does not parse: %v\n%s", err, data)
	}
	props := func(kernel string) []junitProperty {
		return []junitProperty{
			{"kernel", kernel}, {"verdict", r.Verdict}, {"reason", r.Reason}, {"accel", "tcg"},
			{"source", r.Source}, {"patch", r.Patch}, {"patch_direction", "reverse"},
		}
	}
	reason := r.Reason
	verdictText := "verdict inconclusive: " + reason + "\np = 0.0751"
	want := junitSuites{
		XMLName: xml.Name{Local: "testsuites"},
		// Only the verdict fails: the unpatched kernel's reproductions
		// pass, with their details in properties and system-out.
		Name: "zswaprace", Tests: 6, Failures: 1, Errors: 0, Skipped: 2, Time: "290.900",
		Suites: []junitSuite{
			{
				Name: "verdict", Tests: 1, Failures: 1, Time: "0.000", Timestamp: "2025-03-01T10:00:00Z",
				Properties: []junitProperty{{"verdict", "inconclusive"}, {"source", r.Source}, {"patch", r.Patch}, {"accel", "tcg"}},
				Cases: []junitCase{
					{
						Name: "verdict", Classname: "zswaprace.verdict", Time: "0.000",
						Properties: []junitProperty{{"verdict", "inconclusive"}, {"reason", reason}, {"p_value", "0.0751"}},
						Failure: &junitResult{
							Type:    "inconclusive",
							Message: "verdict inconclusive, want fixed: " + reason,
							Text:    verdictText,
						},
						SystemOut: verdictText,
					},
				},
			},
			{
				Name: "unpatched", Tests: 2, Time: "53.900", Timestamp: "2025-03-01T10:00:00Z",
				Properties: props("out/unpatched/bzImage"),
				Cases: []junitCase{
					{
						Name: "unpatched/run-1", Classname: "zswaprace.unpatched", Time: "21.500",
						Properties: []junitProperty{
							{"outcome", "corruption"}, {"counted_as", "race"}, {"first_failure_seconds", "12.5"},
							{"console_log", "out/unpatched/run-1/console.log"},
							{"message", "15 corrupted pages (stale 15): worker 2 page 811: stale generation 3, want 5; then BUG: invalid opcode in zswap_writeback_entry"},
						},
						SystemOut: "corruption on tcg: stress 20 s, boot 1.5 s, 120,000 pages verified, 4,000 written back, 15 corruptions, first failure at 12.5 s\n" +
							"15 corrupted pages (stale 15): worker 2 page 811: stale generation 3, want 5; then BUG: invalid opcode in zswap_writeback_entry\n" +
							"Corruption examples:\n  worker 2 page 811: stale generation 3, want 5\n" +
							"Crash titles:\n  BUG: invalid opcode in zswap_writeback_entry\n" +
							"Console log: out/unpatched/run-1/console.log",
					},
					{
						Name: "unpatched/run-2", Classname: "zswaprace.unpatched", Time: "32.400",
						Properties: []junitProperty{
							{"outcome", "crash"}, {"counted_as", "race"}, {"first_failure_seconds", "31"},
							{"message", "BUG: invalid opcode in zswap_writeback_entry"},
						},
						// The escape character is not allowed in XML and is replaced.
						SystemOut: "crash on tcg: stress 31 s, boot 1.4 s, 200,000 pages verified, 7,000 written back, 0 corruptions, first failure at 31 s\n" +
							"BUG: invalid opcode in zswap_writeback_entry\n" +
							"Crash titles:\n  BUG: invalid opcode in zswap_writeback_entry\n  Kernel panic - not syncing: Fatal exception\n" +
							"console tail:\n[   33.1] invalid opcode: 0000 [#1] SMP\uFFFD[0m",
					},
				},
			},
			{
				Name: "patched", Tests: 3, Skipped: 2, Time: "237.000", Timestamp: "2025-03-01T10:00:00Z",
				Properties: props("out/patched/bzImage"),
				Cases: []junitCase{
					{
						Name: "patched/run-1", Classname: "zswaprace.patched", Time: "135.500",
						Properties: []junitProperty{{"outcome", "clean"}},
						SystemOut:  "clean on tcg: stress 134 s (2m14s), boot 1.5 s, 900,000 pages verified, 190,000 written back, 0 corruptions",
					},
					{
						Name: "patched/run-2", Classname: "zswaprace.patched", Time: "101.500",
						Properties: []junitProperty{{"outcome", "no-writeback"}, {"message", "zswap wrote nothing back, so the run proves nothing; not counted"}},
						Skipped: &junitResult{
							Type:    "no-writeback",
							Message: "zswap wrote nothing back, so the run proves nothing; not counted",
						},
						SystemOut: "no-writeback on tcg: stress 100 s, boot 1.5 s, 500,000 pages verified, 0 written back, 0 corruptions\n" +
							"zswap wrote nothing back, so the run proves nothing; not counted",
					},
					{
						Name: "patched/run-3", Classname: "zswaprace.patched", Time: "0.000",
						Properties: []junitProperty{{"outcome", "boot-failure"}, {"message", "kernel did not reach /init within 60 s; no stress time counted (the verdict weighs boot failures)"}},
						Skipped: &junitResult{
							Type:    "boot-failure",
							Message: "kernel did not reach /init within 60 s; no stress time counted (the verdict weighs boot failures)",
						},
						SystemOut: "boot-failure on tcg: stress 0 s, boot 0 s, 0 pages verified, 0 written back, 0 corruptions\n" +
							"kernel did not reach /init within 60 s; no stress time counted (the verdict weighs boot failures)\n" +
							"kernel did not reach /init within 60 s\nconsole tail: ...",
					},
				},
			},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("junit.xml mismatch (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(string(data), xml.Header) {
		t.Errorf("junit.xml lacks the XML header")
	}
}

func TestJUnitOutcomes(t *testing.T) {
	tests := []struct {
		outcome Outcome
		kind    string // failure, error, skipped or "" for a pass
	}{
		// Runs never fail: the verdict case judges (TestJUnitVerdictCase).
		// Reproductions pass, with their details; runs that count for
		// nothing are skipped with the reason.
		{OutcomeClean, ""},
		{OutcomeCorruption, ""},
		{OutcomeCrash, ""},
		{OutcomeHang, ""},
		{OutcomeWarning, ""},
		{OutcomeHealth, ""},
		{OutcomeLeak, ""},
		{OutcomeBootFailure, "skipped"},
		{OutcomeInfraError, "skipped"},
		{OutcomeOOM, "skipped"},
		{"exploded", "skipped"},
		{OutcomeNoWriteback, "skipped"},
		{OutcomeInterrupted, "skipped"},
	}
	for _, tt := range tests {
		t.Run(string(tt.outcome), func(t *testing.T) {
			c := junitCaseFrom("zswaprace", "patched", Run{Index: 4, Outcome: tt.outcome})
			kind := ""
			switch {
			case c.Failure != nil:
				kind = "failure"
			case c.Error != nil:
				kind = "error"
			case c.Skipped != nil:
				kind = "skipped"
			}
			if kind != tt.kind {
				t.Errorf("%s run is a JUnit %q, want %q", tt.outcome, kind, tt.kind)
			}
			if kind != "" && caseMessage(c) == "" {
				t.Errorf("%s run has an empty message", tt.outcome)
			}
			if len(c.Properties) == 0 || c.Properties[0] != (junitProperty{"outcome", string(tt.outcome)}) {
				t.Errorf("%s run: properties %v, want outcome first", tt.outcome, c.Properties)
			}
			if tt.outcome != OutcomeClean && !strings.Contains(c.SystemOut, "\n") {
				t.Errorf("%s run: system-out %q has no detail after the summary", tt.outcome, c.SystemOut)
			}
			if c.Name != "patched/run-4" {
				t.Errorf("name = %q, want patched/run-4", c.Name)
			}
		})
	}
}

// TestJUnitVerdictCase: the "verdict" test case, and with it the whole
// junit.xml, fails exactly when the verdict is not fixed, although the
// unpatched kernel's runs reproduced the race every time.
func TestJUnitVerdictCase(t *testing.T) {
	for _, v := range []string{"fixed", "not-fixed", "regressed", "inconclusive", "error", "interrupted"} {
		t.Run(v, func(t *testing.T) {
			r := sampleReport()
			r.Verdict, r.Reason = v, "because "+v
			path := filepath.Join(t.TempDir(), "junit.xml")
			if err := WriteJUnit(path, r); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var got junitSuites
			if err := xml.Unmarshal(data, &got); err != nil {
				t.Fatalf("junit.xml does not parse: %v", err)
			}
			var verdictCases []junitCase
			reproductions := 0
			for _, s := range got.Suites {
				for _, c := range s.Cases {
					if c.Name == "verdict" {
						verdictCases = append(verdictCases, c)
					}
					if c.Failure != nil && c.Name != "verdict" {
						t.Errorf("run %s is a failure: only the verdict case may fail", c.Name)
					}
					if c.Error != nil {
						t.Errorf("case %s is an error", c.Name)
					}
					if strings.HasPrefix(c.Name, "unpatched/") && c.Failure == nil && c.Skipped == nil &&
						len(c.Properties) > 0 && c.Properties[0].Value != "clean" {
						reproductions++
					}
				}
			}
			if reproductions != 2 {
				t.Errorf("%d passed reproductions on the unpatched kernel, want 2", reproductions)
			}
			if len(verdictCases) != 1 {
				t.Fatalf("%d verdict cases, want 1", len(verdictCases))
			}
			c := verdictCases[0]
			wantFail := v != "fixed"
			if (c.Failure != nil) != wantFail {
				t.Errorf("verdict %s: verdict case failure %v, want failing %v", v, c.Failure, wantFail)
			}
			if wantFail && (c.Failure.Type != v || !strings.Contains(c.Failure.Message, "because "+v)) {
				t.Errorf("verdict %s: failure %+v lacks the verdict or the reason", v, c.Failure)
			}
			if n := map[bool]int{true: 1, false: 0}[wantFail]; got.Failures != n || got.Errors != 0 {
				t.Errorf("verdict %s: testsuites failures=%d errors=%d, want %d and 0 (red exactly when not fixed)", v, got.Failures, got.Errors, n)
			}
			if !strings.Contains(c.SystemOut, "because "+v) {
				t.Errorf("verdict case system-out %q lacks the reason", c.SystemOut)
			}
		})
	}
	// compare --expect: the verdict case asks for that verdict instead.
	for _, tt := range []struct {
		verdict, expect string
		fail            bool
	}{
		{"not-fixed", "not-fixed", false}, {"fixed", "not-fixed", true}, {"inconclusive", "regressed", true}, {"fixed", "fixed", false},
	} {
		r := sampleReport()
		r.Verdict, r.Expect = tt.verdict, tt.expect
		c := junitVerdictSuite("zswaprace", r).Cases[0]
		if (c.Failure != nil) != tt.fail {
			t.Errorf("verdict %s, --expect %s: failure %+v, want failing %v", tt.verdict, tt.expect, c.Failure, tt.fail)
		}
		if tt.fail && !strings.Contains(c.Failure.Message, "want "+tt.expect) {
			t.Errorf("failure message %q does not say what was expected", c.Failure.Message)
		}
	}
}

// TestWriteFailureLeavesNothing makes the final name a directory, so the
// rename at the end of the write fails: the error must name the file and no
// temporary or partial file may remain.
func TestWriteFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, JSONFile), 0o755); err != nil {
		t.Fatal(err)
	}
	err := WriteAll(dir, sampleReport())
	if err == nil {
		t.Fatal("WriteAll succeeded although report.json is a directory")
	}
	if !strings.Contains(err.Error(), JSONFile) || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("error does not say which file and what to do: %v", err)
	}
	fi, statErr := os.Stat(filepath.Join(dir, JSONFile))
	if statErr != nil || !fi.IsDir() {
		t.Errorf("report.json was replaced: %v, %v", fi, statErr)
	}
	// The other files are still written.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{JUnitFile, JSONFile, MarkdownFile, SurvivalFile}, names); diff != "" {
		t.Errorf("directory contents (-want +got):\n%s", diff)
	}
}

// TestWriteReadOnlyDir keeps an earlier report intact when the directory
// has become unwritable. Root ignores the permission, so the test skips.
func TestWriteReadOnlyDir(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, JSONFile)
	if err := WriteJSON(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) })
	if f, err := os.CreateTemp(dir, "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Skip("the directory is still writable (running as root?)")
	}
	r := sampleReport()
	r.Verdict = "fixed"
	err = WriteJSON(path, r)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("WriteJSON into a read-only directory: %v, want an error naming %s", err, path)
	}
	after, _ := os.ReadFile(path)
	if string(after) != string(before) {
		t.Errorf("report.json changed although the write failed")
	}
}

func TestWriteAllCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out", "run")
	if err := WriteAll(dir, sampleReport()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{JSONFile, JUnitFile, MarkdownFile, SurvivalFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v", name, err)
		}
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(filepath.Join(file, "sub"), sampleReport()); err == nil {
		t.Error("WriteAll under a regular file succeeded")
	}
}

func TestWriteJSONRejectsNaN(t *testing.T) {
	dir := t.TempDir()
	r := sampleReport()
	r.Variants[0].StressSeconds = math.NaN()
	if err := WriteJSON(filepath.Join(dir, JSONFile), r); err == nil {
		t.Fatal("WriteJSON encoded NaN")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed write left %v", entries)
	}
}

func TestTable(t *testing.T) {
	var b strings.Builder
	Table(&b, sampleReport())
	out := b.String()
	t.Logf("\n%s", out)
	lines := strings.Split(out, "\n")
	row := func(label string) []string {
		for _, l := range lines {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, label+" ") {
				return strings.Fields(strings.TrimPrefix(l, label))
			}
		}
		t.Errorf("no %q row in\n%s", label, out)
		return nil
	}
	checks := map[string][]string{
		"runs":                  {"2", "3"},
		"corruptions":           {"15", "0"},
		"stale":                 {"15", "0"},
		"foreign":               {"0", "0"},
		"zeroed":                {"0", "0"},
		"damaged":               {"0", "0"},
		"pages verified":        {"320,000", "1,400,000"},
		"written-back pages":    {"11,000", "190,000"},
		"crashes":               {"1", "0"},
		"hangs":                 {"0", "0"},
		"boot failures":         {"0", "1"},
		"infra errors":          {"0", "0"},
		"OOM runs":              {"0", "0"},
		"no-writeback runs":     {"0", "1"},
		"race failures":         {"2", "0"},
		"other kernel failures": {"0", "0"},
		"first failure at":      {"12.5", "s", "-"},
		"crash titles":          strings.Fields("BUG: invalid opcode in zswap_writeback_entry"),
	}
	for label, want := range checks {
		if diff := cmp.Diff(want, row(label)); diff != "" {
			t.Errorf("row %q (-want +got):\n%s", label, diff)
		}
	}
	for _, want := range []string{
		"Verdict: inconclusive: unpatched failed 2 times in 51 s",
		"to claim a fix.",
		"Kernel panic - not syncing: Fatal exception",
		"234 s (3m54s), 134 s (2m14s) counted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q", want)
		}
	}
	// tabwriter aligns the variant columns: both names start in the same
	// column as their values.
	header, runs := lines[0], lines[1]
	if strings.Index(header, "unpatched") != strings.Index(runs, "2") {
		t.Errorf("columns not aligned:\n%s\n%s", header, runs)
	}
}

func TestMarkdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), MarkdownFile)
	if err := WriteMarkdown(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	md := string(data)
	for _, want := range []string{
		"# zswaprace: inconclusive\n",
		"Verdict: inconclusive: unpatched failed 2 times",
		"| | unpatched | patched |",
		"| &emsp;stale | 15 | 0 |",
		"| &emsp;crash titles | BUG: invalid opcode in zswap_writeback_entry | |\n| | Kernel panic - not syncing: Fatal exception | |\n",
		"| patched/run-2 | no-writeback |",
		"- Patch: `patches/zswap-writeback-race.patch` (reverse)",
		"- Clean patched stress needed for a fix: more than 177 s (2m57s)",
		"### unpatched/run-2: crash",
		"### patched/run-3: boot-failure",
		"Console log: out/unpatched/run-1/console.log",
		"SMP\uFFFD[0m",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

// A run is contended when its pages per second fell under half its
// variant's median, or when the host's load beside its guest says so on
// its own: a comparison that ran wholly on a busy host is flagged too
// (it flagged nothing when every run was equally slow).
func TestContendedByHostLoad(t *testing.T) {
	load := func(l float64, hostCPUs, guestCPUs int) Run {
		return Run{Outcome: OutcomeClean, StressSeconds: 100, PagesVerified: 100000, WrittenBackPages: 10,
			HostLoad: &l, HostCPUs: hostCPUs, GuestCPUs: guestCPUs}
	}
	for _, tt := range []struct {
		name string
		run  Run
		want bool
	}{
		{"2-CPU guest alone on 2 cores", load(2.3, 2, 2), false},
		{"2-CPU guest beside a kernel build", load(4.3, 2, 2), true},
		{"2-CPU guest beside another 2-CPU guest", load(4.4, 2, 2), true},
		{"4-CPU guest alone on 2 cores: the setting asked for", load(4.4, 2, 4), false},
		{"4-CPU guest beside a 2-CPU guest", load(6.5, 2, 4), true},
		{"1-CPU guest beside another 1-CPU guest: a core each", load(2.4, 2, 1), false},
		{"make demo's two 1-CPU guests on 2 cores, as measured", load(2.6, 2, 1), false},
		{"1-CPU guest beside a kernel build", load(3.3, 2, 1), true},
		{"4 harness VMs of 2 CPUs on 8 cores", load(8.8, 8, 2), false},
		{"no load known", Run{Outcome: OutcomeClean, StressSeconds: 100, PagesVerified: 100000}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Three runs alike: the relative check finds nothing.
			v := Aggregate("unpatched", "k", []Run{tt.run, tt.run, tt.run}, Signature{})
			for _, r := range v.RunDetails {
				if r.Contended != tt.want {
					t.Errorf("contended %v, want %v (load %v, host CPUs %d, guest CPUs %d)", r.Contended, tt.want, r.HostLoad, r.HostCPUs, r.GuestCPUs)
				}
			}
		})
	}
}
