package kernel

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"zswaprace/harness/fault"
)

// Profile is what the harness must know of one kernel line's zswap: how
// to configure and boot it, what makes it write back, where it counts
// what it wrote back, and the race fix and widening written for it.
// Adding a kernel line is adding an entry to profiles (and the patches
// and fragments it names).
type Profile struct {
	// Line is VERSION.PATCHLEVEL of the trees it is for, e.g. "6.12".
	Line string
	// Symbols must all occur in the tree's mm/zswap.c: they tell a tree of
	// this line whose zswap is as the profile expects from one that was
	// back- or forward-ported past it.
	Symbols []string
	// Debian is true when Debian ships the line as linux-source-LINE
	// (the source "debian:LINE").
	Debian bool
	// Fragments are the kconfigs/ fragments (names without .config) every
	// kernel of the line is built with, in order; the flags add theirs.
	Fragments []string
	// Zpools are the zpools that can write back, DefaultZpool the one the
	// harness uses unless --zpool says otherwise.
	Zpools       []string
	DefaultZpool string
	// Params are zswap parameters set on the kernel command line beyond
	// the ones every line has (enabled, zpool, compressor,
	// max_pool_percent).
	Params []string
	// Triggers are what makes this zswap write back, in words.
	Triggers []string
	// WrittenBack is the counter of pages written back, as the guest's
	// sample names it: a file of /sys/kernel/debug/zswap
	// ("written_back_pages") or a /proc/vmstat counter ("zswpwb").
	WrittenBack string
	// WrittenBackHint says where that counter comes from, for a run that
	// could not read it.
	WrittenBackHint string
	// FixPatch is the race fix for this line, WidenPatch its race-window
	// instrumentation (--widen), both under patches/.
	FixPatch, WidenPatch string
	// DelayParam is the kernel parameter WidenPatch's delay is set with.
	DelayParam string
	// WidenDelayUS is WidenPatch's delay at boot, microseconds (0: the
	// harness's default, 2000).
	WidenDelayUS int
	// Mode is the stress mode the workers run on this line unless --mode
	// says otherwise ("": sweep). Measured, with the delay, as what finds
	// the race in the line's widened window (README, "Kernel lines").
	Mode string
}

// profiles is every kernel line the harness knows, oldest first.
var profiles = []Profile{
	{
		Line: "6.1",
		// The red-black tree and the entry refcount of 6.1's zswap (not
		// the race check, which a tree may lack).
		Symbols:         []string{"zswap_writeback_entry", "zswap_rb_search", "zswap_entry_get"},
		Debian:          true,
		Fragments:       []string{"base", "zswap", "debug"},
		Zpools:          []string{"zbud", "z3fold"},
		DefaultZpool:    "zbud",
		Triggers:        []string{"the pool limit (max_pool_percent), one zpool page per shrink work item"},
		WrittenBack:     "written_back_pages",
		WrittenBackHint: "is debugfs in the kernel?",
		FixPatch:        "zswap-writeback-race-fix.patch",
		WidenPatch:      "zswap-writeback-delay.patch",
		DelayParam:      "zswap.writeback_delay_us",
	},
	{
		Line: "6.12",
		// The per-swapfile xarray trees and the list_lru shrinker: not the
		// race check (xa_cmpxchg), so that a tree without the fix, the
		// unpatched side of a user's own fix, is still a 6.12 tree.
		Symbols:      []string{"zswap_writeback_entry", "swap_zswap_tree", "shrink_memcg_cb"},
		Debian:       true,
		Fragments:    []string{"base", "zswap-6.12", "debug"},
		Zpools:       []string{"zsmalloc", "zbud", "z3fold"},
		DefaultZpool: "zsmalloc",
		Params:       []string{"zswap.shrinker_enabled=1"},
		Triggers: []string{"the pool limit (max_pool_percent)",
			"the memory-pressure shrinker (zswap.shrinker_enabled, on)"},
		WrittenBack:     "zswpwb",
		WrittenBackHint: "it is /proc/vmstat's zswpwb: is zswap in the kernel?",
		FixPatch:        "zswap-writeback-race-fix-6.12.patch",
		WidenPatch:      "zswap-writeback-delay-6.12.patch",
		DelayParam:      "zswap.writeback_delay_us",
		// 6.12 loads are exclusive: a page that is swapped in leaves
		// zswap at once, so the window must hold a whole swap-in,
		// rewrite and swap-out of the slot's page, not only the
		// swap-out that 6.1 (whose entries outlive their loads) needs.
		// The cycle mode swaps each page out right after rewriting it.
		// With sweep (2, 20 and 100 ms) or random (2 and 20 ms), 0
		// failures in 17 runs of 60 to 90 s; cycle at 20 ms failed
		// (README, "Kernel lines").
		WidenDelayUS: 20000,
		Mode:         "cycle",
	},
}

// DefaultLine is the line of images built before profiles existed, and
// of kernels whose line nobody said.
const DefaultLine = "6.1"

// Profiles returns every known profile, oldest line first.
func Profiles() []Profile {
	return append([]Profile(nil), profiles...)
}

// Lines lists the known lines, e.g. "6.1, 6.12".
func Lines() string {
	var l []string
	for _, p := range profiles {
		l = append(l, p.Line)
	}
	return strings.Join(l, ", ")
}

// DebianLines lists the lines Debian ships as linux-source-LINE.
func DebianLines() []string {
	var l []string
	for _, p := range profiles {
		if p.Debian {
			l = append(l, p.Line)
		}
	}
	return l
}

// ProfileByLine returns the profile of a line ("" is DefaultLine), or nil.
func ProfileByLine(line string) *Profile {
	if line == "" {
		line = DefaultLine
	}
	for i := range profiles {
		if profiles[i].Line == line {
			p := profiles[i]
			return &p
		}
	}
	return nil
}

// DefaultProfile is the profile of DefaultLine.
func DefaultProfile() *Profile { return ProfileByLine(DefaultLine) }

// TreeLine is VERSION.PATCHLEVEL of the tree in dir, from its Makefile, or
// "" when it has none.
func TreeLine(dir string) string {
	v := makefileVars(dir)
	if v["VERSION"] == "" || v["PATCHLEVEL"] == "" {
		return ""
	}
	return v["VERSION"] + "." + v["PATCHLEVEL"]
}

// ProfileFor picks the profile of the kernel tree in dir: by the line its
// Makefile gives, confirmed by the symbols the profile expects in
// mm/zswap.c. A tree of a line without a profile, or whose zswap is not
// the one its line's profile expects, is a usage error that says what
// was found and how to add a profile.
func ProfileFor(dir string) (*Profile, error) {
	return profileNamed(dir, dir)
}

// profileNamed is ProfileFor, naming the tree as the user did (a git
// source's tree is an export in the cache).
func profileNamed(dir, name string) (*Profile, error) {
	line := TreeLine(dir)
	if line == "" {
		return nil, fault.Newf(fault.Usage, "kernel profile", "%s: no VERSION and PATCHLEVEL in its Makefile, so its kernel line is unknown (the harness knows %s)", name, Lines())
	}
	p := ProfileByLine(line)
	if p == nil {
		return nil, fault.Newf(fault.Usage, "kernel profile",
			"%s is a %s tree (kernel %s), and the harness has no profile for %s: it knows %s. "+
				"To add one, add an entry for %s to the table in harness/kernel/profile.go (config fragments, zpools that write back, parameters, counters, fix and widening patches) "+
				"and the patches and fragments it names (README, \"Your own tree and patch\")",
			name, line, MakefileVersion(dir), line, Lines(), line)
	}
	src, err := os.ReadFile(filepath.Join(dir, "mm", "zswap.c"))
	if err != nil {
		return nil, fault.Newf(fault.Usage, "kernel profile", "%s is a %s tree without a readable mm/zswap.c: %v", name, line, err)
	}
	var missing []string
	for _, s := range p.Symbols {
		if !strings.Contains(string(src), s) {
			missing = append(missing, s)
		}
	}
	if len(missing) > 0 {
		return nil, fault.Newf(fault.Usage, "kernel profile",
			"%s is a %s tree, but its mm/zswap.c lacks %s, which the %s profile expects: its zswap is not %s's (back- or forward-ported?). "+
				"Add a profile for it in harness/kernel/profile.go, matched by the symbols it has",
			name, line, strings.Join(missing, ", "), line, line)
	}
	return p, nil
}

// Cmdline is zswap's part of the kernel command line for this line.
func (p *Profile) Cmdline(zpool, compressor string, maxPoolPercent int) []string {
	if zpool == "" {
		zpool = p.DefaultZpool
	}
	c := []string{"zswap.enabled=1", "zswap.zpool=" + zpool, "zswap.compressor=" + compressor,
		fmt.Sprintf("zswap.max_pool_percent=%d", maxPoolPercent)}
	return append(c, p.Params...)
}

// CanWriteBack says whether zpool can write back on this line.
func (p *Profile) CanWriteBack(zpool string) bool {
	for _, z := range p.Zpools {
		if z == zpool {
			return true
		}
	}
	return false
}

// ZpoolHelp says, per line, which zpools write back and which is the
// default, for flag help: "6.1: zbud (default), z3fold; 6.12: ...".
func ZpoolHelp() string {
	var parts []string
	for _, p := range profiles {
		var z []string
		for _, n := range p.Zpools {
			if n == p.DefaultZpool {
				n += " (default)"
			}
			z = append(z, n)
		}
		parts = append(parts, p.Line+": "+strings.Join(z, ", "))
	}
	return strings.Join(parts, "; ")
}

// StressMode is the stress mode of the line's profile ("sweep" unless it
// names another).
func (p *Profile) StressMode() string {
	if p.Mode == "" {
		return "sweep"
	}
	return p.Mode
}

// ModeHelp says, per line, which stress mode it runs, e.g.
// "6.1: sweep; 6.12: cycle".
func ModeHelp() string {
	var parts []string
	for _, p := range profiles {
		parts = append(parts, p.Line+": "+p.StressMode())
	}
	return strings.Join(parts, "; ")
}

// PatchHelp says, per line, which patch of patches/ pick returns, e.g.
// "6.1: zswap-writeback-race-fix.patch; 6.12: ...".
func PatchHelp(pick func(*Profile) string) string {
	var parts []string
	for i := range profiles {
		parts = append(parts, profiles[i].Line+": "+pick(&profiles[i]))
	}
	return strings.Join(parts, "; ")
}

// makefileVars reads the version variables at the top of dir's Makefile.
func makefileVars(dir string) map[string]string {
	vars := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, "Makefile"))
	if err != nil {
		return vars
	}
	for n, l := range strings.SplitN(string(b), "\n", 51) {
		if n >= 50 { // the version is at the top
			break
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		switch k {
		case "VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION":
			if _, seen := vars[k]; !seen {
				vars[k] = strings.TrimSpace(v)
			}
		}
	}
	return vars
}
