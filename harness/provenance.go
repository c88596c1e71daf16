package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
	"zswaprace/harness/vm"
)

// newProvenance records what a comparison is made with: this harness, the
// source as given (bf.source) and, once the kernels are known (b, nil
// before), exactly which source, patch and config fragments; the QEMU the
// guests run in, the host, and the accelerator with its reason.
func newProvenance(rf runFlags, source string, b *built) *report.Provenance {
	hb := harnessBuild()
	p := &report.Provenance{
		HarnessVersion: report.Nullable(hb.version), HarnessCommit: report.Nullable(hb.commit),
		Source: source, HostLogicalCores: runtime.NumCPU(), HostKernel: report.Nullable(hostKernel()),
		Accel: rf.resolvedAccel(), AccelReason: accelReason(rf),
	}
	if b != nil {
		if v := b.version; v != nil {
			p.SourcePackageVersion, p.SourceKernelVersion, p.SourceCommit = report.Nullable(v.Package), report.Nullable(v.Kernel), report.Nullable(v.Commit)
		}
		if b.patch != nil {
			p.PatchSHA256 = report.Nullable(sha256Hex(b.patch.Data))
		}
		p.ConfigFragments = b.fragments
	}
	if path, err := exec.LookPath(rf.qemu); err == nil {
		p.QEMUPath = &path
		p.QEMUVersion = report.Nullable(qemuVersion(path))
	}
	cpuinfo, _ := os.ReadFile("/proc/cpuinfo")
	p.HostCPUModel = report.Nullable(cpuModel(string(cpuinfo)))
	return p
}

// accelReason says why the guests run under the accelerator they do: the
// same reason the harness prints when it falls back to TCG.
func accelReason(rf runFlags) string {
	switch {
	case rf.resolvedAccel() == "kvm":
		return "kvm usable"
	case rf.accel == "tcg":
		return "--accel tcg asked for TCG"
	case vm.AccelReason() != "":
		return vm.AccelReason()
	}
	return "KVM not usable"
}

// qemuVersion is the first line qemu --version prints, "" when it cannot
// be run.
func qemuVersion(qemu string) string {
	out, err := exec.Command(qemu, "--version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(firstLine(string(out)))
}

// cpuModel is the first "model name" in /proc/cpuinfo's text, "" when it
// has none (some architectures name their CPUs otherwise).
func cpuModel(cpuinfo string) string {
	for _, l := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// hostKernel is uname -r.
func hostKernel() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// configFragments are the fragments' files and sha256, for the record.
func configFragments(frags []kernel.Fragment) []report.ConfigFragment {
	var out []report.ConfigFragment
	for _, f := range frags {
		out = append(out, report.ConfigFragment{Path: f.Path, SHA256: f.SHA256})
	}
	return out
}

// provenanceListed are the parts of a shard's provenance that may differ
// between shards without changing what their runs measure (the runners'
// hosts and tools): merge pools them and notes the differences.
var provenanceListed = []struct {
	name string
	get  func(*report.Provenance) string
}{
	{"harness_version", func(p *report.Provenance) string { return deref(p.HarnessVersion) }},
	{"harness_commit", func(p *report.Provenance) string { return deref(p.HarnessCommit) }},
	{"config_fragments (paths)", func(p *report.Provenance) string {
		var paths []string
		for _, f := range p.ConfigFragments {
			paths = append(paths, f.Path)
		}
		return strings.Join(paths, ", ")
	}},
	{"qemu_path", func(p *report.Provenance) string { return deref(p.QEMUPath) }},
	{"qemu_version", func(p *report.Provenance) string { return deref(p.QEMUVersion) }},
	{"host_cpu_model", func(p *report.Provenance) string { return deref(p.HostCPUModel) }},
	{"host_logical_cores", func(p *report.Provenance) string { return fmt.Sprint(p.HostLogicalCores) }},
	{"host_kernel", func(p *report.Provenance) string { return deref(p.HostKernel) }},
	{"accel_reason", func(p *report.Provenance) string { return p.AccelReason }},
}

// provenanceNotes lists, one note per field, where the shards' provenance
// differs in what merge lets differ; each shard's is kept in shards[].
func provenanceNotes(shards []shard) []string {
	var notes []string
	for _, f := range provenanceListed {
		var vals []string
		differ := false
		for _, s := range shards {
			v := f.get(s.rep.Provenance)
			differ = differ || v != f.get(shards[0].rep.Provenance)
			vals = append(vals, fmt.Sprintf("%s: %s", s.dir, shown(v)))
		}
		if differ {
			notes = append(notes, fmt.Sprintf("the shards differ in provenance.%s (%s); each shard's provenance is in shards[]", f.name, strings.Join(vals, "; ")))
		}
	}
	return notes
}

// fragmentSums is the config fragments' sha256, in order.
func fragmentSums(frags []report.ConfigFragment) string {
	var sums []string
	for _, f := range frags {
		sums = append(sums, f.SHA256)
	}
	return strings.Join(sums, ",")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
