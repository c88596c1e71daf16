package vm

import (
	"slices"
	"testing"
)

// The guest kernel has no ACPI, so it counts CPUs from the MP table, which
// QEMU's default topology for "-smp N" fills with one processor: the guest
// then runs on one CPU whatever --cpus says. Each CPU must be its own socket.
func TestArgsGiveEveryCPUItsOwnSocket(t *testing.T) {
	for cpus, want := range map[int]string{1: "1,sockets=1,cores=1,threads=1", 2: "2,sockets=2,cores=1,threads=1", 4: "4,sockets=4,cores=1,threads=1"} {
		m := &Machine{cfg: Config{CPUs: cpus, Accel: "tcg", Kernel: "k", Initrd: "i"}, tmp: "/tmp/x"}
		args := m.args("/tmp/x/swap.img")
		i := slices.Index(args, "-smp")
		if i < 0 || i+1 >= len(args) || args[i+1] != want {
			t.Errorf("--cpus %d: -smp %v, want %q", cpus, args, want)
		}
	}
}
