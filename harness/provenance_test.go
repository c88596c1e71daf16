package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
)

// fakeTool writes an executable shell script named name into a new
// directory and returns its path.
func fakeTool(t *testing.T, name, script string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestQEMUVersion(t *testing.T) {
	q := fakeTool(t, "qemu-system-x86_64", `[ "$1" = --version ] || exit 1
echo
echo 'QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)  '
echo 'Copyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers'
`)
	if got, want := qemuVersion(q), "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"; got != want {
		t.Errorf("qemuVersion = %q, want %q", got, want)
	}
	if got := qemuVersion(fakeTool(t, "qemu", "exit 1\n")); got != "" {
		t.Errorf("a QEMU that fails: qemuVersion = %q, want empty", got)
	}
	if got := qemuVersion(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("no QEMU: qemuVersion = %q, want empty", got)
	}
}

func TestCPUModel(t *testing.T) {
	x86 := "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\nflags\t\t: fpu svm\n\n" +
		"processor\t: 1\nmodel name\t: AMD EPYC 7763 64-Core Processor\n"
	if got, want := cpuModel(x86), "AMD EPYC 7763 64-Core Processor"; got != want {
		t.Errorf("cpuModel = %q, want %q", got, want)
	}
	arm := "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
	if got := cpuModel(arm); got != "" {
		t.Errorf("cpuinfo without a model name: cpuModel = %q, want empty", got)
	}
}

func TestAccelReason(t *testing.T) {
	rf := defaultRunFlags()
	rf.accel = "tcg"
	if got := accelReason(rf); got != "--accel tcg asked for TCG" {
		t.Errorf("--accel tcg: reason %q", got)
	}
	rf.accel = "kvm"
	if got := accelReason(rf); got != "kvm usable" {
		t.Errorf("--accel kvm: reason %q", got)
	}
}

func TestStampOf(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Path: "zswaprace", Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "1111"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		name, version, commit string
		bi                    *debug.BuildInfo
		want                  buildStamp
	}{
		{"make build", "13a4135-dirty", "13a4135aaaa", bi, buildStamp{module: "zswaprace", version: "13a4135-dirty", commit: "13a4135aaaa", dirty: true, goVersion: "go1.26.8"}},
		{"go build with VCS", "", "", bi, buildStamp{module: "zswaprace", version: "(devel)", commit: "1111", dirty: true, goVersion: "go1.26.8"}},
		{"-buildvcs=false", "", "", &debug.BuildInfo{Main: debug.Module{Path: "zswaprace"}}, buildStamp{module: "zswaprace"}},
		{"no build info", "", "", nil, buildStamp{module: "zswaprace"}},
	} {
		if got := stampOf(c.version, c.commit, c.bi); got != c.want {
			t.Errorf("%s: stampOf = %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestNewProvenance: what the kernels came from, QEMU and the host are
// recorded; what is unknown is null, never an empty string.
func TestNewProvenance(t *testing.T) {
	rf := defaultRunFlags()
	rf.accel = "tcg"
	rf.qemu = fakeTool(t, "qemu-system-x86_64", "echo 'QEMU emulator version 9.9.9'\n")
	b := &built{patch: &kernel.Patch{Data: []byte("diff\n")},
		version:   &kernel.SourceVersion{Package: "6.1.192-2", Kernel: "6.1.192"},
		fragments: []report.ConfigFragment{{Path: "/k/base.config", SHA256: strings.Repeat("ab", 32)}}}
	p := newProvenance(rf, "debian:6.1", b)
	if p.Source != "debian:6.1" || deref(p.SourcePackageVersion) != "6.1.192-2" || deref(p.SourceKernelVersion) != "6.1.192" || p.SourceCommit != nil {
		t.Errorf("source: %q %v %v %v", p.Source, p.SourcePackageVersion, p.SourceKernelVersion, p.SourceCommit)
	}
	if deref(p.PatchSHA256) != sha256Hex([]byte("diff\n")) || len(p.ConfigFragments) != 1 {
		t.Errorf("patch %v, fragments %v", p.PatchSHA256, p.ConfigFragments)
	}
	if deref(p.QEMUPath) != rf.qemu || deref(p.QEMUVersion) != "QEMU emulator version 9.9.9" {
		t.Errorf("qemu %v %v", p.QEMUPath, p.QEMUVersion)
	}
	if p.HostLogicalCores != runtime.NumCPU() || p.HostKernel == nil || *p.HostKernel == "" || p.Accel != "tcg" || p.AccelReason == "" {
		t.Errorf("host and accel: %+v", p)
	}
	// Before the kernels exist (a build that failed): nulls.
	rf.qemu = filepath.Join(t.TempDir(), "no-qemu")
	p = newProvenance(rf, "debian:6.1", nil)
	if p.SourcePackageVersion != nil || p.PatchSHA256 != nil || p.ConfigFragments != nil || p.QEMUPath != nil || p.QEMUVersion != nil {
		t.Errorf("without kernels or QEMU: %+v, want nulls", p)
	}
}

// TestMakeBuildStampsCommit builds bin/harness as 'make build' does (into
// a temporary file) and checks that --version names the checkout's commit.
func TestMakeBuildStampsCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the harness")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not a git checkout (%v): 'make build' has no commit to record", err)
	}
	bin := filepath.Join(t.TempDir(), "harness")
	cmd := exec.Command("make", "-C", root, "build", "HARNESS="+bin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	want := regexp.MustCompile(`^harness zswaprace \S+, revision ` + strings.TrimSpace(string(head)) + `\b`)
	if !want.Match(out) {
		t.Errorf("--version printed %q, want it to match %s", out, want)
	}
}

var updateTestdata = flag.Bool("update-report-testdata", false, "regenerate harness/report/testdata/report.json from report-v2-demo.json")

// TestRegenerateReportTestdata (with -update-report-testdata) turns the real
// schema 2 report of a demo comparison, report-v2-demo.json, into the
// current schema through the current Go types, with the provenance this
// machine records for it (the demo ran here), collected by the same code
// compare uses. Without the flag it only checks that the demo report still
// decodes into the current types field for field.
func TestRegenerateReportTestdata(t *testing.T) {
	dir := filepath.Join("report", "testdata")
	b, err := os.ReadFile(filepath.Join(dir, "report-v2-demo.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep report.Report
	if err := dec.Decode(&rep); err != nil {
		t.Fatalf("the demo report no longer decodes into report.Report: %v", err)
	}
	if !*updateTestdata {
		return
	}
	ctx := context.Background()
	var bf buildFlags
	bf.register(flag.NewFlagSet("x", flag.ContinueOnError))
	bf.source = rep.Source
	plan, err := bf.plan(ctx, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	patch, err := kernel.ReadPatch(rep.Patch)
	if err != nil {
		t.Fatal(err)
	}
	if sha256Hex(patch.Data) != rep.PatchSHA256 {
		t.Fatalf("%s is not the patch the demo compared", rep.Patch)
	}
	rf := defaultRunFlags()
	rep.SchemaVersion = report.SchemaVersion
	rep.Provenance = newProvenance(rf, rep.Source, &built{patch: patch, version: &plan.Source.Version, fragments: configFragments(plan.Fragments)})
	if rep.Provenance.Accel != rep.Accel {
		t.Fatalf("this machine's accel %s is not the demo's %s", rep.Provenance.Accel, rep.Accel)
	}
	if err := report.WriteJSON(filepath.Join(dir, "report.json"), &rep); err != nil {
		t.Fatal(err)
	}
}

// TestExportedKernelsKeepProvenance: a kernels directory carries exactly
// which source and config fragments its kernels came from, so that
// 'compare --kernels' records them as a build would.
func TestExportedKernelsKeepProvenance(t *testing.T) {
	src := t.TempDir()
	img := func(name string) *kernel.Image {
		k, c := filepath.Join(src, name+"-bzImage"), filepath.Join(src, name+"-config")
		os.WriteFile(k, []byte("kernel "+name), 0o644)
		os.WriteFile(c, []byte("CONFIG_ZSWAP=y\n"), 0o644)
		return &kernel.Image{Variant: name, Kernel: k, Config: c, Key: name}
	}
	b := &built{patch: &kernel.Patch{Path: "fix.patch", Data: []byte("diff\n")}, direction: kernel.Reverse,
		unpatched: img("unpatched"), patched: img("patched"),
		version:   &kernel.SourceVersion{Package: "6.1.192-2", Kernel: "6.1.192"},
		fragments: []report.ConfigFragment{{Path: "/k/base.config", SHA256: strings.Repeat("ab", 32)}}}
	dir := filepath.Join(t.TempDir(), "kernels")
	if err := exportKernels(dir, b, buildFlags{source: "debian:6.1"}); err != nil {
		t.Fatal(err)
	}
	got, m, err := loadKernels(dir)
	if err != nil {
		t.Fatal(err)
	}
	rf := defaultRunFlags()
	rf.accel = "tcg"
	p := newProvenance(rf, m.Source, got)
	if p.Source != "debian:6.1" || deref(p.SourcePackageVersion) != "6.1.192-2" || deref(p.SourceKernelVersion) != "6.1.192" ||
		len(p.ConfigFragments) != 1 || p.ConfigFragments[0] != b.fragments[0] || deref(p.PatchSHA256) != sha256Hex(b.patch.Data) {
		t.Errorf("provenance from the kernels directory: %+v", p)
	}
}
