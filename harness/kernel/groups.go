package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"zswaprace/harness/cache"
	"zswaprace/harness/fsutil"
)

// A kernel build runs in its own process group: make, the shells it
// starts and every compiler. make dies with the harness (its parent-death
// signal), but the compilers it started would not, and would go on
// writing into the tree after the harness's lock is gone. So while a build
// runs, a record under the cache's build-groups directory names the group
// and the harness that owns it, and every start of the harness kills the
// groups whose owner is dead (ReapBuilds).

// groupsDir holds one record per running build's process group.
func groupsDir(cacheDir string) string { return filepath.Join(cacheDir, "build-groups") }

// buildGroup is a running build's process group and the harness owning it.
type buildGroup struct {
	path  string
	owner cache.Owner
	group cache.Owner // the group leader (make) as it started; the pgid is its pid
}

// recordGroup notes that the process group led by pid (just started) is a
// build owned by this process. The record is removed by done.
func recordGroup(cacheDir string, pid int) (done func(), err error) {
	leader, ok := cache.OwnerOf(pid)
	if !ok {
		leader = cache.Owner{PID: pid}
	}
	dir := groupsDir(cacheDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return func() {}, err
	}
	path := filepath.Join(dir, strconv.Itoa(pid))
	body := fmt.Sprintf("owner %s\ngroup %s\n", cache.Self(), leader)
	if err := fsutil.WriteFileAtomic(path, []byte(body)); err != nil {
		return func() {}, err
	}
	return func() { os.Remove(path) }, nil
}

func readGroup(path string) (buildGroup, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return buildGroup{}, err
	}
	g := buildGroup{path: path}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, _ := strings.Cut(l, " ")
		o, err := cache.ParseOwner(v)
		if err != nil {
			return g, fmt.Errorf("%s: %v", path, err)
		}
		switch k {
		case "owner":
			g.owner = o
		case "group":
			g.group = o
		}
	}
	if g.owner.PID == 0 || g.group.PID == 0 {
		return g, fmt.Errorf("%s: incomplete build-group record", path)
	}
	return g, nil
}

// ReapBuilds kills what is left of every build whose harness died (kill
// -9, a crash, the machine's OOM killer) and removes its record; builds
// whose harness still runs are left alone. It says what it killed.
func ReapBuilds(cacheDir string, say func(string)) {
	ents, err := os.ReadDir(groupsDir(cacheDir))
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue // a record being written
		}
		path := filepath.Join(groupsDir(cacheDir), e.Name())
		g, err := readGroup(path)
		if err != nil {
			os.Remove(path)
			continue
		}
		if g.owner.Alive() {
			continue
		}
		// Members that started before the group's leader cannot be the
		// build's (a pgid number is not reused while its group lives), and
		// a live process with the leader's pid but another start time
		// leads a group that is not the build's.
		if g.group.Start == 0 {
			// The leader's start time was never known: there is no telling
			// the build's group from a later one with the same number.
			os.Remove(path)
			continue
		}
		if l, ok := cache.OwnerOf(g.group.PID); ok && l.Start != g.group.Start {
			os.Remove(path)
			continue
		}
		if n := cache.KillGroup(g.group.PID, g.group.Start); n > 0 && say != nil {
			say(fmt.Sprintf("killed %d process(es) of a kernel build (process group %d) left running by harness process %d, which is gone", n, g.group.PID, g.owner.PID))
		}
		os.Remove(path)
	}
}
