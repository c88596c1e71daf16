package vm

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
)

// fakeProbe answers chooseAccel as a host with the given /dev/kvm, CPU
// flags and QEMU would.
type fakeProbe struct {
	kvmErr   error
	flags    string
	qemuPath string
	qemuOK   bool
	qemuSaid string
	tried    bool
}

func (f *fakeProbe) openKVM() error { return f.kvmErr }
func (f *fakeProbe) cpuinfo() string {
	return "processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu vme de pse " + f.flags + " sse2\n\nprocessor\t: 1\nflags\t\t: fpu " + f.flags + "\n"
}
func (f *fakeProbe) qemu() string { return f.qemuPath }
func (f *fakeProbe) tryKVM(string) (bool, string) {
	f.tried = true
	return f.qemuOK, f.qemuSaid
}

func TestChooseAccel(t *testing.T) {
	const qemu = "/usr/bin/qemu-system-x86_64"
	permission := &fs.PathError{Op: "open", Path: "/dev/kvm", Err: fs.ErrPermission}
	missing := &fs.PathError{Op: "open", Path: "/dev/kvm", Err: fs.ErrNotExist}
	tests := []struct {
		name      string
		p         fakeProbe
		want      string
		wantWhy   []string // substrings of the reason
		wantTried bool
	}{
		{"KVM works", fakeProbe{flags: "vmx", qemuPath: qemu, qemuOK: true}, "kvm", nil, true},
		{"this machine: /dev/kvm but no vmx or svm",
			fakeProbe{flags: "hypervisor", qemuPath: qemu, qemuSaid: "Could not access KVM kernel module: No such device\nqemu-system-x86_64: failed to initialize kvm: No such device\n"},
			"tcg", []string{"/dev/kvm exists but KVM cannot start", "no vmx or svm flag", "nested virtualisation", "QEMU said: Could not access KVM kernel module: No such device"}, true},
		{"/dev/kvm and vmx, but QEMU refuses", fakeProbe{flags: "vmx", qemuPath: qemu, qemuSaid: "kvm: host CPU model refused\n"},
			"tcg", []string{"/dev/kvm exists but QEMU could not start KVM", "QEMU said: kvm: host CPU model refused"}, true},
		{"no /dev/kvm, no flag", fakeProbe{kvmErr: missing, qemuPath: qemu}, "tcg", []string{"no /dev/kvm", "no vmx or svm flag"}, false},
		{"no /dev/kvm, Intel CPU", fakeProbe{kvmErr: missing, flags: "vmx", qemuPath: qemu}, "tcg", []string{"no /dev/kvm, although the CPU has vmx", "modprobe kvm_intel"}, false},
		{"no /dev/kvm, AMD CPU", fakeProbe{kvmErr: missing, flags: "svm", qemuPath: qemu}, "tcg", []string{"modprobe kvm_amd"}, false},
		{"/dev/kvm not ours", fakeProbe{kvmErr: permission, flags: "svm", qemuPath: qemu}, "tcg", []string{"cannot open it", "kvm group"}, false},
		{"/dev/kvm other error", fakeProbe{kvmErr: fmt.Errorf("open /dev/kvm: input/output error"), qemuPath: qemu}, "tcg", []string{"/dev/kvm exists but cannot be opened: open /dev/kvm: input/output error"}, false},
		{"no QEMU: kvm, and starting the VM says what is missing", fakeProbe{flags: "vmx"}, "kvm", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := chooseAccel(&tt.p)
			if got != tt.want {
				t.Errorf("accel %q, want %q (reason %q)", got, tt.want, why)
			}
			if tt.want == "kvm" && why != "" {
				t.Errorf("kvm with a reason %q", why)
			}
			if tt.want == "tcg" && (why == "" || strings.Contains(why, "\n")) {
				t.Errorf("reason %q: want one line", why)
			}
			for _, w := range tt.wantWhy {
				if !strings.Contains(why, w) {
					t.Errorf("reason %q lacks %q", why, w)
				}
			}
			if tt.p.tried != tt.wantTried {
				t.Errorf("QEMU tried: %v, want %v", tt.p.tried, tt.wantTried)
			}
		})
	}
}

func TestVirtFlag(t *testing.T) {
	for in, want := range map[string]string{
		"flags\t\t: fpu vmx sse":                  "vmx",
		"flags\t\t: fpu svm sse":                  "svm",
		"flags\t\t: fpu hypervisor sse":           "",
		"model name\t: vmx svm\nflags\t: fpu sse": "", // only the flags line counts
		"vmx flags\t: ept vpid":                   "", // nor the "vmx flags" line
		"":                                        "",
	} {
		if got := virtFlag(in); got != want {
			t.Errorf("virtFlag(%q) = %q, want %q", in, got, want)
		}
	}
}
