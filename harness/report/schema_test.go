package report_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/report/schematest"
	"zswaprace/harness/tap"
)

// TestRealReportsMatchSchema: reports the harness wrote validate against
// docs/report.schema.json. report.json is a real demo comparison (fixed,
// with a crash and corruptions; its provenance regenerated through the Go
// types, see testdata/README.md), report-error.json a real comparison that
// stopped at a patch that does not apply.
func TestRealReportsMatchSchema(t *testing.T) {
	for _, name := range []string{"report.json", "report-error.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := schematest.Validate(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// fullReport has every field of every type set, optional ones included,
// as a merged report of a comparison with an external workload would.
func fullReport() *report.Report {
	f := func(v float64) *float64 { return &v }
	i := func(v int64) *int64 { return &v }
	race := report.RaceFailure
	t0 := time.Date(2026, 11, 27, 17, 57, 34, 0, time.UTC)
	prov := &report.Provenance{HarnessVersion: report.Nullable("13a4135-dirty"), HarnessCommit: report.Nullable(strings.Repeat("1", 40)),
		Source: "git:/src/linux@v6.1", SourceKernelVersion: report.Nullable("6.1.0"), SourceCommit: report.Nullable(strings.Repeat("2", 40)),
		PatchSHA256:     report.Nullable(strings.Repeat("ab", 32)),
		ConfigFragments: []report.ConfigFragment{{Path: "kconfigs/base.config", SHA256: strings.Repeat("cd", 32)}},
		QEMUPath:        report.Nullable("/usr/bin/qemu-system-x86_64"), QEMUVersion: report.Nullable("QEMU emulator version 7.2.22"),
		HostCPUModel: report.Nullable("AMD EPYC"), HostLogicalCores: 2, HostKernel: report.Nullable("6.1.0-18-amd64"),
		Accel: "tcg", AccelReason: "no /dev/kvm"}
	run := report.Run{Variant: "unpatched", Index: 1, Outcome: report.OutcomeWorkloadFailed, Accel: "tcg", StressSeconds: 30, BootSeconds: 2,
		PagesVerified: 100, WrittenBackPages: 10, Corruptions: 0, CorruptionsByClass: map[string]uint64{"stale": 0},
		Examples: []string{"x"}, CrashTitles: []string{"WARNING in zswap"},
		Reports:   []report.KernelReport{{Kind: "warning", Title: "WARNING in zswap", Function: "zswap_store", BeforeWorkload: true}},
		GuestCPUs: 1, HostLoad: f(2.3), HostCPUs: 2, FirstFailureSeconds: f(12), Error: "exit 1", ConsoleLog: "console.log", KernelConfig: "config",
		Counters: map[string]int64{"written_back_pages": 10},
		Workload: &report.WorkloadResult{Command: "stress-ng", ExitCode: -1, Signal: "SIGKILL", TimedOut: false,
			Tests: []tap.Result{{Number: 1, Name: "t", OK: false, Directive: "SKIP", Reason: "r"}}, TestsPlanned: 1},
		CountedAs: &race, PagesPerSec: f(3.3), WrittenBackPerSec: f(0.3), Contended: true, Shard: 1, ShardIndex: 1,
		Health: &report.Health{SwappedPages: 10, SwapoffOK: true, SwapoffSeconds: 0.2, SwapoffDeadlineSeconds: 130, SwapoffTimedOut: false, SwapoffError: "e",
			ZswapStoredPages: i(0), ZswapPoolPages: i(0), LostPages: i(12649), LeakTolerancePages: 1024, MemFreeDropPages: i(13182),
			Explained: map[string]int64{"lru": 21}, StuckTasks: []string{"1 x"}, LockedPages: i(0), Seconds: 9,
			PageOwner: &report.PageOwner{BaselineSeconds: 4, AfterSeconds: 5, BaselinePages: 20000, AfterPages: 32000, AfterBytes: 9 << 20,
				Compared: true, Error: "e", GrownPages: 12500,
				Stacks:  []report.StackPages{{Pages: 12235, Stack: []string{"zbud_alloc", "zswap_frontswap_store"}}},
				Callers: []report.StackPages{{Pages: 12235, Stack: []string{"zbud_alloc"}}}},
			Problems: []string{"p"}, Error: "e"}}
	v := report.Aggregate("unpatched", "/k/bzImage", []report.Run{run}, report.Signature{})
	v.KernelSHA256 = strings.Repeat("ef", 32)
	v.TimeAtRisk, v.Rate = f(30), &report.Interval{Estimate: 120, Low: 3, High: 600}
	p := report.Aggregate("patched", "/k2/bzImage", nil, report.Signature{})
	runs := 3
	return &report.Report{SchemaVersion: report.SchemaVersion, Tool: "zswaprace", Verdict: "not-fixed", Reason: "r", Notes: []string{"n"},
		PValue: f(0.01), NeededCleanSeconds: f(500), RatioUpper: f(2), Design: "fixed", Method: "m", BudgetSeconds: nil,
		MinReduction: f(10), Signature: []string{"/zswap/"}, Ignore: []string{"benign"}, Widening: "none", GuestCPUs: 1,
		Source: "git:/src/linux@v6.1", Patch: "fix.patch", PatchDirection: "forward", Widen: false, Accel: "tcg",
		Started: t0, Finished: t0.Add(time.Hour), Interrupted: false, Variants: []report.Variant{v, p},
		PatchSHA256: strings.Repeat("ab", 32), Kernels: "kernels", Alpha: 0.05, PlannedRuns: &runs, SignaturePatterns: []string{"zswap"},
		Guest:   &report.Guest{CPUs: 1, MemMiB: 256, SwapMiB: 512, RunSeconds: 60, Workload: "external: stress-ng", Cmdline: "zswap.enabled=1", HangAfterSeconds: 30},
		Shards:  []report.Shard{{Dir: "out/1", Verdict: "fixed", PValue: f(0.2), Runs: []int{1, 0}, Accel: "tcg", Started: t0, Finished: t0, Provenance: prov}},
		Pooling: "p", Expect: "not-fixed", Provenance: prov}
}

// TestFreshReportMatchesSchema: a report marshalled by the current code,
// every field set, validates.
func TestFreshReportMatchesSchema(t *testing.T) {
	b, err := json.Marshal(fullReport())
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(b); err != nil {
		t.Error(err)
	}
}

// TestSchemaRejects: a report with a required field missing, a mistyped
// field, or a value outside its enumeration fails validation, and so does
// the schema 2 demo report (no provenance).
func TestSchemaRejects(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(m map[string]any)
		want   string // in the validator's error
	}{
		{"verdict missing", func(m map[string]any) { delete(m, "verdict") }, "verdict"},
		{"provenance missing", func(m map[string]any) { delete(m, "provenance") }, "provenance"},
		{"p_value a string", func(m map[string]any) { m["p_value"] = "0.018" }, "p_value"},
		{"unknown verdict", func(m map[string]any) { m["verdict"] = "probably-fixed" }, "verdict"},
		{"unknown outcome", func(m map[string]any) { run(m)["outcome"] = "exploded" }, "outcome"},
		{"unknown design", func(m map[string]any) { m["design"] = "bayesian" }, "design"},
		{"unknown accel", func(m map[string]any) { m["accel"] = "hvf" }, "accel"},
		{"unknown field", func(m map[string]any) { m["verdicts"] = "fixed" }, "verdicts"},
		{"runs negative", func(m map[string]any) { m["variants"].([]any)[0].(map[string]any)["runs"] = -1 }, "runs"},
		{"stress_seconds null", func(m map[string]any) { run(m)["stress_seconds"] = nil }, "stress_seconds"},
		{"counted_as unknown", func(m map[string]any) { run(m)["counted_as"] = "maybe" }, "counted_as"},
		{"qemu_version a number", func(m map[string]any) { prov(m)["qemu_version"] = 7.2 }, "qemu_version"},
		{"source_package_version missing", func(m map[string]any) { delete(prov(m), "source_package_version") }, "source_package_version"},
		{"patch_sha256 not a hash", func(m map[string]any) { prov(m)["patch_sha256"] = "238744" }, "patch_sha256"},
		{"fragment without sha256", func(m map[string]any) {
			delete(prov(m)["config_fragments"].([]any)[0].(map[string]any), "sha256")
		}, "sha256"},
		{"started not a time", func(m map[string]any) { m["started"] = "yesterday" }, "started"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var m map[string]any
			if err := json.Unmarshal(good, &m); err != nil {
				t.Fatal(err)
			}
			c.change(m)
			b, _ := json.Marshal(m)
			err := schematest.Validate(b)
			if err == nil {
				t.Fatalf("the schema accepted a report with %s", c.name)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v does not name %s", err, c.want)
			}
		})
	}
	old, err := os.ReadFile(filepath.Join("testdata", "report-v2-demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := schematest.Validate(old); err == nil {
		t.Error("the schema accepted a schema_version 2 report")
	}
}

func run(m map[string]any) map[string]any {
	return m["variants"].([]any)[0].(map[string]any)["run_details"].([]any)[0].(map[string]any)
}

func prov(m map[string]any) map[string]any { return m["provenance"].(map[string]any) }

// TestSchemaCoversTypes: every JSON field of the report's Go types is in
// the schema, required exactly when it is always written (no omitempty),
// and the schema has no field the types lack. A field added to report.go
// without the schema, or the other way round, fails here.
func TestSchemaCoversTypes(t *testing.T) {
	b, err := os.ReadFile(schematest.Path())
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	defs := schema["$defs"].(map[string]any)
	for _, c := range []struct {
		typ  reflect.Type
		node any
	}{
		{reflect.TypeFor[report.Report](), schema},
		{reflect.TypeFor[report.Variant](), defs["variant"]},
		{reflect.TypeFor[report.Run](), defs["run"]},
		{reflect.TypeFor[report.KernelReport](), defs["kernel_report"]},
		{reflect.TypeFor[report.WorkloadResult](), defs["workload"]},
		{reflect.TypeFor[tap.Result](), defs["tap_result"]},
		{reflect.TypeFor[report.Interval](), defs["interval"]},
		{reflect.TypeFor[report.Guest](), defs["guest"]},
		{reflect.TypeFor[report.Shard](), defs["shard"]},
		{reflect.TypeFor[report.Provenance](), defs["provenance"]},
		{reflect.TypeFor[report.ConfigFragment](), defs["config_fragment"]},
		{reflect.TypeFor[report.Health](), defs["health"]},
		{reflect.TypeFor[report.PageOwner](), defs["page_owner"]},
		{reflect.TypeFor[report.StackPages](), defs["stack_pages"]},
	} {
		node, ok := c.node.(map[string]any)
		if !ok {
			t.Errorf("%s: no schema", c.typ)
			continue
		}
		props, _ := node["properties"].(map[string]any)
		var required []string
		for _, r := range node["required"].([]any) {
			required = append(required, r.(string))
		}
		if node["additionalProperties"] != false {
			t.Errorf("%s: the schema allows unknown fields", c.typ)
		}
		seen := map[string]bool{}
		for i := 0; i < c.typ.NumField(); i++ {
			tag := c.typ.Field(i).Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			if name == "" || name == "-" {
				continue
			}
			seen[name] = true
			if _, ok := props[name]; !ok {
				t.Errorf("%s: field %q is not in the schema", c.typ, name)
			}
			if always := !strings.Contains(opts, "omitempty"); always != slices.Contains(required, name) {
				t.Errorf("%s: field %q: always written %v, but required in the schema %v", c.typ, name, always, !always)
			}
		}
		for name := range props {
			if !seen[name] {
				t.Errorf("%s: the schema has %q, which the type does not write", c.typ, name)
			}
		}
	}
}
