package vm

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Accel returns "kvm" when KVM works here, else "tcg". An openable /dev/kvm
// is not enough (nested virtualisation can refuse the host CPU model), so
// QEMU is tried once for a moment with KVM; the answer is kept per process.
func Accel() string { return accelOnce() }

var accelOnce = sync.OnceValue(func() string {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return "tcg"
	}
	f.Close()
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return "kvm"
	}
	cmd := exec.Command(qemu, "-nodefaults", "-no-user-config", "-display", "none", "-accel", "kvm", "-cpu", "host", "-m", "32", "-no-reboot")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if cmd.Start() != nil {
		return "tcg"
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		return "tcg" // QEMU gave up on KVM at once
	case <-time.After(1500 * time.Millisecond):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return "kvm"
	}
})

// Scale is how much slower than KVM a guest runs under accel; every guest
// deadline is multiplied by it.
func Scale(accel string) time.Duration {
	if accel == "kvm" {
		return 1
	}
	return 4
}
