package vm

import (
	"fmt"
	"path/filepath"
	"strings"
)

// args is QEMU's command line for the machine, with swap as its disk.
func (m *Machine) args(swap string) []string {
	c := m.cfg
	accel := "tcg,thread=multi"
	cpu := "max"
	if c.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	cmdline := append([]string{"console=ttyS0", "panic=-1", "oops=panic", "nokaslr"}, c.Cmdline...)
	return []string{
		"-nodefaults", "-no-user-config", "-display", "none",
		"-accel", accel, "-cpu", cpu,
		// The kernel is built without ACPI and counts CPUs from the MP
		// table, which lists one processor for QEMU's default "-smp N"
		// topology (cores in one socket): one socket per CPU makes every
		// CPU appear. Cheaper than CONFIG_ACPI, which costs build and boot time.
		"-smp", fmt.Sprintf("%d,sockets=%d,cores=1,threads=1", c.CPUs, c.CPUs), "-m", fmt.Sprint(c.MemMiB),
		"-kernel", c.Kernel, "-initrd", c.Initrd,
		"-append", strings.Join(cmdline, " "),
		"-no-reboot",
		"-serial", "stdio",
		"-drive", "file=" + swap + ",format=raw,if=virtio,cache=unsafe,discard=unmap",
		"-device", "virtio-rng-pci",
		// A panic is a QMP event; panic=-1 then reboots, which ends QEMU.
		"-device", "pvpanic-pci", "-action", "panic=none",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=agent,path=" + filepath.Join(m.tmp, "agent.sock") + ",server=on,wait=off",
		"-device", "virtserialport,chardev=agent,name=zh.agent",
		"-qmp", "unix:" + filepath.Join(m.tmp, "qmp.sock") + ",server=on,wait=off",
	}
}
