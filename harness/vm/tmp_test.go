package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/cache"
)

// A harness killed with SIGKILL leaves its VM directory (sockets and a
// sparse swap disk); the next start removes it, and only it.
func TestReapTemp(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	mine, err := makeTemp()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(mine), tmpPrefix) {
		t.Fatalf("VM directory %s is not named %s*", mine, tmpPrefix)
	}
	// A dead owner: a process that has exited.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	deadDir := filepath.Join(tmp, tmpPrefix+"dead")
	os.Mkdir(deadDir, 0o700)
	os.WriteFile(filepath.Join(deadDir, ownerFile), []byte(cache.Owner{PID: dead.Process.Pid, Start: 1}.String()), 0o600)
	if err := makeSparse(filepath.Join(deadDir, "swap.img"), 512<<20); err != nil {
		t.Fatal(err)
	}
	// A live pid with another start time: the pid was reused, the owner is gone.
	reused := filepath.Join(tmp, tmpPrefix+"reused")
	os.Mkdir(reused, 0o700)
	os.WriteFile(filepath.Join(reused, ownerFile), []byte(cache.Owner{PID: os.Getpid(), Start: 1}.String()), 0o600)
	// Directories of an older harness, without an owner record: an old one
	// nobody uses goes, one a process names stays, a new one stays.
	old := filepath.Join(tmp, tmpPrefix+"old")
	used := filepath.Join(tmp, tmpPrefix+"used")
	fresh := filepath.Join(tmp, tmpPrefix+"fresh")
	for _, d := range []string{old, used, fresh} {
		os.Mkdir(d, 0o700)
	}
	hour := time.Now().Add(-time.Hour)
	os.Chtimes(old, hour, hour)
	os.Chtimes(used, hour, hour)
	user := exec.Command("sh", "-c", "sleep 30", "sh", used+"/swap.img")
	if err := user.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { user.Process.Kill(); user.Wait() }()

	var said []string
	ReapTemp(func(s string) { said = append(said, s) })
	for _, d := range []string{deadDir, reused, old} {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("stale %s was not removed", d)
		}
	}
	for _, d := range []string{mine, used, fresh} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s was removed although it is in use: %v", d, err)
		}
	}
	if len(said) != 3 {
		t.Errorf("said %q, want one line per removed directory", said)
	}
}
