package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"zswaprace/harness/cache"
)

// A small git history over the Debian 6.1 source: a base commit and eight
// harmless commits, one of which reverses the zswap fix. make bisect with
// the widened stress must name exactly that commit.
func TestBisectFindsCulprit(t *testing.T) {
	srcs, _ := filepath.Glob(filepath.Join(cache.Dir(), "src", "debian-6.1-*", "linux-source-6.1"))
	if len(srcs) == 0 {
		t.Fatal("the Debian 6.1 source is not unpacked in the cache (the build in TestMain should have done it)")
	}
	repo := filepath.Join(t.TempDir(), "linux")
	// The harness keeps a clone per bisected tree in its cache; this tree
	// is temporary, so is its clone.
	h := sha256.Sum256([]byte(repo))
	t.Cleanup(func() { os.RemoveAll(filepath.Join(cache.Dir(), "bisect", hex.EncodeToString(h[:8]))) })
	run := func(dir string, name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("", "cp", "-a", srcs[0], repo)
	run(repo, "git", "init", "-q")
	// -f: Debian's .gitignore ignores everything at the top level.
	run(repo, "git", "-c", "core.looseCompression=0", "add", "-f", "-A")
	run(repo, "git", "commit", "-q", "-m", "base: Debian 6.1 source")
	base := run(repo, "git", "rev-parse", "HEAD")
	var culprit string
	for i := 1; i <= 8; i++ {
		note := filepath.Join(repo, "Documentation", fmt.Sprintf("zswaprace-note-%d.txt", i))
		os.WriteFile(note, []byte(fmt.Sprintf("harmless change %d\n", i)), 0o644)
		msg := fmt.Sprintf("docs: harmless change %d", i)
		if i == 5 {
			run(repo, "patch", "-p1", "-R", "-i", filepath.Join(root, "patches", "zswap-writeback-race-fix.patch"))
			msg = "mm: zswap: drop the writeback recheck (reintroduces the race)"
		}
		run(repo, "git", "add", "-f", "-A")
		run(repo, "git", "commit", "-q", "-m", msg)
		if i == 5 {
			culprit = run(repo, "git", "rev-parse", "HEAD")
		}
	}
	tip := run(repo, "git", "rev-parse", "HEAD")
	cmd := exec.Command("make", "bisect", "TREE="+repo, "GOOD="+base, "BAD="+tip, "WIDEN=1")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "OUT="+filepath.Join(t.TempDir(), "out"))
	out, err := cmd.CombinedOutput()
	t.Logf("make bisect:\n%s", tail(string(out), 60))
	if err != nil {
		t.Fatalf("make bisect failed: %v", err)
	}
	if !strings.Contains(string(out), "culprit: "+culprit) {
		t.Errorf("make bisect did not name %s as the culprit", culprit)
	}
	if st := run(repo, "git", "status", "--porcelain", "--untracked-files=no"); st != "" {
		t.Errorf("the user's tree was modified:\n%s", st)
	}
}
