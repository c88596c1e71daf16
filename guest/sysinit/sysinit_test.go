package sysinit

import (
	"encoding/binary"
	"testing"
)

func TestSwapHeader(t *testing.T) {
	h, err := SwapHeader(512 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(h[4096-10:]); got != "SWAPSPACE2" {
		t.Errorf("magic %q", got)
	}
	if v := binary.LittleEndian.Uint32(h[1024:]); v != 1 {
		t.Errorf("version %d, want 1", v)
	}
	if last := binary.LittleEndian.Uint32(h[1028:]); last != 512*256-1 {
		t.Errorf("last_page %d, want %d", last, 512*256-1)
	}
	if _, err := SwapHeader(8 * 4096); err == nil {
		t.Error("a 32 KiB swap device was accepted")
	}
}

func TestCountCPUList(t *testing.T) {
	for list, want := range map[string]int{"0": 1, "0-1\n": 2, "0-3": 4, "0,2-3": 3, "0-1,4,6-7": 5, "": 0, "x": 0, "3-1": 0} {
		if got := CountCPUList(list); got != want {
			t.Errorf("CountCPUList(%q) = %d, want %d", list, got, want)
		}
	}
}
