package report

// Provenance is what a report was made with, so that a result can be
// traced to the exact harness, kernel source, patch, configs, emulator and
// host. A value that does not exist or could not be found is null.
type Provenance struct {
	// HarnessVersion is 'git describe --always --dirty' of the checkout
	// 'make build' built from, else the Go module's version; HarnessCommit
	// the full commit, from the build's flags or Go's VCS stamp.
	HarnessVersion *string `json:"harness_version"`
	HarnessCommit  *string `json:"harness_commit"`
	// Source is --source as given. SourcePackageVersion is the Debian
	// package's version (debian:X); SourceKernelVersion the tree's
	// Makefile version ('make kernelversion'); SourceCommit the git
	// commit (git:PATH@REV, or a directory that is a git checkout, then
	// with "-dirty" for uncommitted changes).
	Source               string  `json:"source"`
	SourcePackageVersion *string `json:"source_package_version"`
	SourceKernelVersion  *string `json:"source_kernel_version"`
	SourceCommit         *string `json:"source_commit"`
	PatchSHA256          *string `json:"patch_sha256"`
	// ConfigFragments are the kconfig fragments merged into both kernels'
	// configs (the same for both), in order; null when unknown.
	ConfigFragments []ConfigFragment `json:"config_fragments"`
	// QEMUPath is the QEMU binary the guests ran in, QEMUVersion the first
	// line of its --version.
	QEMUPath    *string `json:"qemu_path"`
	QEMUVersion *string `json:"qemu_version"`
	// HostCPUModel is /proc/cpuinfo's first "model name"; HostLogicalCores
	// the logical CPUs the harness could use; HostKernel uname -r.
	HostCPUModel     *string `json:"host_cpu_model"`
	HostLogicalCores int     `json:"host_logical_cores"`
	HostKernel       *string `json:"host_kernel"`
	// Accel is kvm or tcg, and AccelReason why: "kvm usable", the reason
	// the harness printed for falling back to TCG, or that --accel tcg
	// asked for it.
	Accel       string `json:"accel"`
	AccelReason string `json:"accel_reason"`
}

// ConfigFragment is one kconfig fragment file and its sha256.
type ConfigFragment struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Nullable is s, or nil (JSON null) when s is empty.
func Nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
