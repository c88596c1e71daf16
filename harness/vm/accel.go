package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accel returns "kvm" when KVM works here, else "tcg". An openable /dev/kvm
// is not enough (nested virtualisation can refuse the host CPU model), so
// QEMU is tried once for a moment with KVM; the answer is kept per process.
func Accel() string { return accelOnce().accel }

// AccelReason says, in one line, why Accel is "tcg" ("" when it is "kvm").
func AccelReason() string { return accelOnce().reason }

type accelChoice struct{ accel, reason string }

var accelOnce = sync.OnceValue(func() accelChoice {
	a, why := chooseAccel(hostProbe{})
	return accelChoice{a, why}
})

// kvmProbe is what chooseAccel asks the host; unit tests answer it.
type kvmProbe interface {
	// openKVM opens /dev/kvm read-write and closes it again.
	openKVM() error
	// cpuinfo is /proc/cpuinfo ("" when it cannot be read).
	cpuinfo() string
	// qemu is the QEMU binary's path, "" when there is none.
	qemu() string
	// tryKVM starts QEMU with KVM for a moment: ok when it kept running,
	// else what it printed.
	tryKVM(qemu string) (ok bool, said string)
}

// chooseAccel decides between KVM and TCG, and says why when it is TCG.
func chooseAccel(p kvmProbe) (string, string) {
	flag := virtFlag(p.cpuinfo())
	if err := p.openKVM(); err != nil {
		return "tcg", noKVMReason(err, flag)
	}
	qemu := p.qemu()
	if qemu == "" {
		return "kvm", "" // starting the VM will say that QEMU is missing
	}
	ok, said := p.tryKVM(qemu)
	if ok {
		return "kvm", ""
	}
	why := "/dev/kvm exists but QEMU could not start KVM"
	if flag == "" {
		why = "/dev/kvm exists but KVM cannot start: the CPU shows no vmx or svm flag in /proc/cpuinfo " +
			"(virtualisation is off in the firmware, or this machine is itself a VM without nested virtualisation)"
	}
	if said = firstLineOf(said); said != "" {
		why += "; QEMU said: " + said
	}
	return "tcg", why
}

// noKVMReason says why /dev/kvm could not be opened, given the CPU's
// virtualisation flag ("vmx", "svm" or "").
func noKVMReason(err error, flag string) string {
	switch {
	case errors.Is(err, fs.ErrNotExist) && flag == "":
		return "no /dev/kvm, and the CPU shows no vmx or svm flag in /proc/cpuinfo (no hardware virtualisation, or this machine is a VM without nested virtualisation)"
	case errors.Is(err, fs.ErrNotExist):
		mod := "kvm_intel"
		if flag == "svm" {
			mod = "kvm_amd"
		}
		return fmt.Sprintf("no /dev/kvm, although the CPU has %s: load the module (modprobe %s) or enable virtualisation in the firmware", flag, mod)
	case errors.Is(err, fs.ErrPermission):
		return "/dev/kvm exists but this user cannot open it (" + err.Error() + "): add the user to the kvm group, or run as root"
	}
	return "/dev/kvm exists but cannot be opened: " + err.Error()
}

// virtFlag is "vmx" or "svm" when a CPU in cpuinfo has it, else "".
func virtFlag(cpuinfo string) string {
	for _, l := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok || strings.TrimSpace(k) != "flags" {
			continue
		}
		for _, f := range strings.Fields(v) {
			if f == "vmx" || f == "svm" {
				return f
			}
		}
	}
	return ""
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

// hostProbe asks the real host.
type hostProbe struct{}

func (hostProbe) openKVM() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (hostProbe) cpuinfo() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return string(b)
}

func (hostProbe) qemu() string {
	p, _ := exec.LookPath("qemu-system-x86_64")
	return p
}

func (hostProbe) tryKVM(qemu string) (bool, string) {
	cmd := exec.Command(qemu, "-nodefaults", "-no-user-config", "-display", "none", "-accel", "kvm", "-cpu", "host", "-m", "32", "-no-reboot")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return false, err.Error()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return false, out.String() // QEMU gave up on KVM at once
	case <-time.After(1500 * time.Millisecond):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return true, ""
	}
}

// tcgNote says once per process, on stderr, why the VMs run under TCG when
// the accelerator was left to the harness: silent TCG costs several times
// the run time.
var tcgNote sync.Once

func noteTCG() {
	if why := AccelReason(); why != "" {
		tcgNote.Do(func() {
			fmt.Fprintf(os.Stderr, "harness: no KVM, VMs run under TCG (several times slower): %s\n", why)
		})
	}
}

// Scale is how much slower than KVM a guest runs under accel; every guest
// deadline is multiplied by it.
func Scale(accel string) time.Duration {
	if accel == "kvm" {
		return 1
	}
	return 4
}
