package vm

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"zswaprace/harness/cache"
	"zswaprace/harness/fsutil"
)

// Every VM keeps its sockets and its sparse swap disk (512 MiB by default)
// in a directory of its own in the temporary directory, removed when the
// VM is closed. A harness killed with SIGKILL cannot remove it, so the
// directory names its owner (the file "owner": pid and start time), and
// every start of the harness removes those whose owner is gone
// (ReapTemp). QEMU itself dies with the harness (its parent-death signal).

// tmpPrefix starts the name of every VM's temporary directory.
const tmpPrefix = "zr-vm-"

// ownerFile names the harness process that owns a VM's directory.
const ownerFile = "owner"

// makeTemp makes a VM's temporary directory and records its owner.
func makeTemp() (string, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tmpPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	// Atomic: a harness starting at this moment must never read it empty
	// and take the directory for an orphan.
	if err := fsutil.WriteFileAtomicMode(filepath.Join(dir, ownerFile), []byte(cache.Self().String()+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// ReapTemp removes the temporary directories of VMs whose harness is gone
// (killed with SIGKILL, say), and says what it removed. Only this user's
// directories are touched. A directory without an owner record (an older
// harness's) is removed when it is over a minute old and no running
// process names it on its command line.
func ReapTemp(say func(string)) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*"))
	var unowned []string
	for _, d := range dirs {
		st, err := os.Lstat(d)
		if err != nil || !st.IsDir() {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); !ok || int(sys.Uid) != os.Geteuid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			if time.Since(st.ModTime()) > time.Minute {
				unowned = append(unowned, d)
			}
			continue
		}
		o, err := cache.ParseOwner(strings.TrimSpace(string(b)))
		if err != nil {
			// Unreadable: judged like a directory without a record.
			if time.Since(st.ModTime()) > time.Minute {
				unowned = append(unowned, d)
			}
			continue
		}
		if o.Alive() {
			continue
		}
		remove(d, fmt.Sprintf("owner harness process %d is gone", o.PID), say)
	}
	if len(unowned) == 0 {
		return
	}
	cmdlines := allCmdlines()
	for _, d := range unowned {
		if !strings.Contains(cmdlines, d+"/") {
			remove(d, "no running process uses it", say)
		}
	}
}

func remove(dir, why string, say func(string)) {
	if err := os.RemoveAll(dir); err != nil {
		if say != nil {
			say(fmt.Sprintf("cannot remove the stale VM directory %s (%s): %v", dir, why, err))
		}
		return
	}
	if say != nil {
		say(fmt.Sprintf("removed the stale VM directory %s (%s)", dir, why))
	}
}

// allCmdlines is every running process's command line, one a line.
func allCmdlines() string {
	ents, _ := os.ReadDir("/proc")
	var sb strings.Builder
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		sb.Write(b)
		sb.WriteByte('\n')
	}
	return strings.ReplaceAll(sb.String(), "\x00", " ")
}
