package cache

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Owner names a process for good: its pid and its start time (in clock
// ticks since boot, from /proc/PID/stat), so that a pid reused by another
// process after the owner died is not taken for the owner. The harness
// records owners beside what it leaves while it works (a build's process
// group, a VM's temporary directory) so that the next start can tell what
// a killed harness left behind.
type Owner struct {
	PID   int
	Start uint64
}

// Self is the calling process as an Owner.
func Self() Owner {
	st, _ := StartTime(os.Getpid())
	return Owner{PID: os.Getpid(), Start: st}
}

// OwnerOf is process pid as an Owner; ok is false when it is not running.
func OwnerOf(pid int) (o Owner, ok bool) {
	st, err := StartTime(pid)
	if err != nil {
		return Owner{}, false
	}
	return Owner{PID: pid, Start: st}, true
}

// Alive says whether the owner is still running: a process with its pid
// and its start time exists (a zombie counts as dead).
func (o Owner) Alive() bool {
	if o.PID <= 0 {
		return false
	}
	st, state, err := stat(o.PID)
	if err != nil || state == "Z" || state == "X" {
		return false
	}
	return o.Start == 0 || st == o.Start
}

func (o Owner) String() string { return fmt.Sprintf("%d %d", o.PID, o.Start) }

// ParseOwner reads what Owner.String wrote.
func ParseOwner(s string) (Owner, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Owner{}, fmt.Errorf("owner record %q: want \"PID START\"", s)
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 {
		return Owner{}, fmt.Errorf("owner record %q: want \"PID START\"", s)
	}
	return Owner{PID: pid, Start: start}, nil
}

// StartTime is when process pid started, in clock ticks since boot.
func StartTime(pid int) (uint64, error) {
	st, _, err := stat(pid)
	return st, err
}

// stat reads the start time and state of process pid.
func stat(pid int) (start uint64, state string, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	f, err := statFields(string(b))
	if err != nil {
		return 0, "", err
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0], err
}

// statFields are the fields of /proc/PID/stat after the command name (which
// may hold spaces and parentheses): f[0] is the state (field 3), f[2] the
// process group (field 5), f[19] the start time (field 22).
func statFields(s string) ([]string, error) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, errors.New("malformed /proc stat")
	}
	return f, nil
}

// GroupMembers lists the live processes in process group pgid that
// started at or after since (clock ticks since boot): members that started
// earlier cannot belong to a group made later.
func GroupMembers(pgid int, since uint64) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f, err := statFields(string(b))
		if err != nil || f[0] == "Z" || f[0] == "X" {
			continue
		}
		g, _ := strconv.Atoi(f[2])
		start, _ := strconv.ParseUint(f[19], 10, 64)
		if g == pgid && start >= since {
			pids = append(pids, pid)
		}
	}
	return pids
}

// KillGroup sends SIGKILL to every member of process group pgid that
// started at or after since, until none is left or a few seconds have
// passed, and returns how many it found at first.
func KillGroup(pgid int, since uint64) int {
	first := GroupMembers(pgid, since)
	for i := 0; i < 50; i++ {
		pids := GroupMembers(pgid, since)
		if len(pids) == 0 {
			break
		}
		for _, p := range pids {
			syscall.Kill(p, syscall.SIGKILL)
		}
		sleepTick()
	}
	return len(first)
}

func sleepTick() { time.Sleep(100 * time.Millisecond) }
