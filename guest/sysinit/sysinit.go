// Package sysinit prepares a bare initramfs for the agent: file systems,
// swap on the swap disk, and the virtio-serial port the host talks over.
package sysinit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

type mount struct{ src, dir, fstype string }

var mounts = []mount{
	{"devtmpfs", "/dev", "devtmpfs"},
	{"proc", "/proc", "proc"},
	{"sysfs", "/sys", "sysfs"},
	{"debugfs", "/sys/kernel/debug", "debugfs"},
	{"cgroup2", "/sys/fs/cgroup", "cgroup2"},
	{"tmpfs", "/tmp", "tmpfs"},
}

// Mount mounts what the agent and the workers need. devtmpfs is not mounted
// by the kernel for an initramfs.
func Mount() error {
	for _, m := range mounts {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.src, m.dir, m.fstype, 0, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mount %s on %s: %w (is it enabled in the kernel config?)", m.fstype, m.dir, err)
		}
	}
	return nil
}

const pageSize = 4096

// SwapHeader returns the first page of a version 1 swap area of size bytes,
// as mkswap writes it.
func SwapHeader(size int64) ([]byte, error) {
	pages := size / pageSize
	if pages < 10 {
		return nil, fmt.Errorf("swap device too small: %d bytes", size)
	}
	h := make([]byte, pageSize)
	binary.LittleEndian.PutUint32(h[1024:], 1)               // version
	binary.LittleEndian.PutUint32(h[1028:], uint32(pages-1)) // last_page
	binary.LittleEndian.PutUint32(h[1032:], 0)               // nr_badpages
	copy(h[1036:], []byte("zswaprace-swap00"))               // uuid
	copy(h[1052:], []byte("zswaprace"))                      // volume name
	copy(h[pageSize-10:], []byte("SWAPSPACE2"))              // magic
	return h, nil
}

// Swapon writes a swap header on dev and turns swap on, returning its size.
func Swapon(dev string) (int64, error) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("open swap disk: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, 2)
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dev, err)
	}
	h, err := SwapHeader(size)
	if err != nil {
		return 0, err
	}
	if _, err := f.WriteAt(h, 0); err != nil {
		return 0, fmt.Errorf("write swap header on %s: %w", dev, err)
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	p, err := unix.BytePtrFromString(dev)
	if err != nil {
		return 0, err
	}
	if _, _, e := unix.Syscall(unix.SYS_SWAPON, uintptr(unsafe.Pointer(p)), 0, 0); e != 0 {
		return 0, fmt.Errorf("swapon %s: %w", dev, e)
	}
	return size, nil
}

// FindPort returns the device node of the virtio-serial port with the given
// name. Ports and their names arrive asynchronously after the driver loads,
// so it waits up to timeout for it.
func FindPort(name string, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		matches, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, m := range matches {
			b, err := os.ReadFile(m)
			if err == nil && strings.TrimSpace(string(b)) == name {
				return "/dev/" + filepath.Base(filepath.Dir(m)), nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no virtio-serial port named %q after %s (CONFIG_VIRTIO_CONSOLE, and QEMU's virtserialport name=%s)", name, timeout, name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CmdlineValue returns the value of key=value on the kernel command line.
func CmdlineValue(key, def string) string {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return def
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return def
}

// MemKiB reads a field of /proc/meminfo.
func MemKiB(field string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			var n int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &n)
			return n
		}
	}
	return 0
}

// Reboot syncs and reboots; under QEMU's -no-reboot that ends QEMU.
func Reboot() {
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
}

// OnlineCPUs counts the CPUs the kernel brought online, from
// /sys/devices/system/cpu/online ("0-1", "0,2-3"); 0 if it cannot be read.
func OnlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return 0
	}
	return CountCPUList(string(b))
}

// CountCPUList counts the CPUs in a kernel CPU list such as "0-3,5"; 0 for
// a list it cannot parse.
func CountCPUList(list string) int {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(list), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0
			}
		}
		n += b - a + 1
	}
	return n
}
