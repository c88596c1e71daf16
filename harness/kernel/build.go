package kernel

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"zswaprace/harness/cache"
	"zswaprace/harness/fault"
)

// recipe changes whenever the way images are built changes, so old cache
// entries are not reused.
const recipe = "zswaprace-build-1"

// Step is one patch applied to a variant's tree.
type Step struct {
	Patch   *Patch
	Reverse bool
}

// Variant is one kernel to build: a source with patches applied.
type Variant struct {
	Name  string // "unpatched", "patched", or a bisect step's name
	Steps []Step
	Boot  Boot // what its image needs at boot
}

// Boot is what an image needs at boot. It is written into the image's
// image.json, so that 'harness run --kernel' finds it beside the bzImage
// and nobody has to repeat build flags at run time (syzkaller keeps the
// command line beside each image for the same reason).
type Boot struct {
	// Widening names the race-window instrumentation the image carries:
	// "" for none, WidenDelay for the kernel line's delay patch (6.1's
	// patches/zswap-writeback-delay.patch), WidenDelayAt for --widen-at.
	Widening string `json:"widening,omitempty"`
	// Profile is the kernel line whose profile the image was built with
	// ("" in images from before profiles: DefaultLine).
	Profile string `json:"profile,omitempty"`
	// DelayParam is the kernel parameter that sets the widening's delay
	// ("" in images from before: zswap.writeback_delay_us), DelayUS the
	// delay --widen-at asked for (0: the harness's default).
	DelayParam string `json:"delay_param,omitempty"`
	DelayUS    int    `json:"delay_us,omitempty"`
	// WidenAt says where --widen-at put the delay and how it waits, e.g.
	// "mm/zswap.c:1080 (sleep)".
	WidenAt string `json:"widen_at,omitempty"`
}

// Widening values: the kernel line's delay patch, and --widen-at's.
const (
	WidenDelay   = "delay"
	WidenDelayAt = "delay-at"
)

// Param is the kernel parameter that sets the image's widening delay, ""
// when it has no widening.
func (b Boot) Param() string {
	switch {
	case b.Widening == "":
		return ""
	case b.DelayParam != "":
		return b.DelayParam
	}
	return "zswap.writeback_delay_us"
}

// Plan is what to build and how.
type Plan struct {
	Source    *Source
	Fragments []Fragment
	Cache     string
	Jobs      int
	Say       func(string) // progress lines
}

// Image is a built kernel.
type Image struct {
	Variant string  `json:"variant"`
	Kernel  string  `json:"kernel"` // bzImage
	Config  string  `json:"config"` // the resolved .config
	Key     string  `json:"key"`
	SHA256  string  `json:"sha256,omitempty"` // of Kernel, recorded when it was built
	Boot    Boot    `json:"boot"`
	Cached  bool    `json:"cached"`
	Seconds float64 `json:"seconds"`
	Log     string  `json:"log,omitempty"`
}

// Variants returns the unpatched and patched variants for a patch in the
// given direction, each with the instrumentation patch (if any) applied.
//
// The variants' Boot says WidenDelay when there is a widening; a caller
// with more to say (the profile, --widen-at) sets Boot itself.
func Variants(fix *Patch, dir Direction, widen *Patch) (unpatched, patched Variant) {
	unpatched, patched = Variant{Name: "unpatched"}, Variant{Name: "patched"}
	if widen != nil {
		unpatched.Boot.Widening, patched.Boot.Widening = WidenDelay, WidenDelay
		unpatched.Steps = append(unpatched.Steps, Step{Patch: widen})
		patched.Steps = append(patched.Steps, Step{Patch: widen})
	}
	if dir == Reverse {
		unpatched.Steps = append(unpatched.Steps, Step{Patch: fix, Reverse: true})
	} else {
		patched.Steps = append(patched.Steps, Step{Patch: fix})
	}
	return unpatched, patched
}

// Key identifies an image by everything that goes into it: source, patches
// and their direction, config fragments, compiler and build recipe.
func (p *Plan) Key(v Variant) string {
	h := sha256.New()
	fmt.Fprintln(h, recipe, p.Source.ID, compilerVersion())
	for _, s := range v.Steps {
		fmt.Fprintln(h, "patch", s.Reverse, len(s.Patch.Data))
		h.Write(s.Patch.Data)
	}
	// image.json carries Boot: an image cached without it must not be
	// served for a variant that needs it. The profile is not hashed: the
	// source decides it, and keys from before profiles stay valid.
	if v.Boot.Widening != "" {
		fmt.Fprintln(h, "boot", v.Boot.Widening)
	}
	if v.Boot.DelayParam != "" && v.Boot.DelayParam != "zswap.writeback_delay_us" || v.Boot.DelayUS != 0 || v.Boot.WidenAt != "" {
		fmt.Fprintln(h, "widen", v.Boot.DelayParam, v.Boot.DelayUS, v.Boot.WidenAt)
	}
	for _, f := range p.Fragments {
		fmt.Fprintln(h, "fragment", f.Name)
		for _, o := range f.Options {
			fmt.Fprintln(h, o.Name, o.Value)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24]
}

func (p *Plan) treeKey() string {
	h := sha256.New()
	fmt.Fprintln(h, recipe, p.Source.ID)
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// compilerVersion is the first line of gcc --version, asked once.
var compilerVersion = sync.OnceValue(func() string {
	out, _ := exec.Command("gcc", "--version").Output()
	v, _, _ := strings.Cut(string(out), "\n")
	return v
})

// Build builds the variants in order, in one harness-owned tree per source
// with one object directory: switching variants only rewrites the files
// their patches touch, so only those recompile (objects copied to a second
// directory would all rebuild, as objtool is rebuilt there).
//
// When every variant is already cached, Build returns the images without
// the cache lock: an image is only ever published whole (image.json last,
// with the bzImage's sha256, checked here), so a comparison with built
// kernels never waits for another process's unrelated build.
func (p *Plan) Build(ctx context.Context, variants ...Variant) ([]*Image, error) {
	if imgs, ok := p.allCached(variants); ok {
		return imgs, nil
	}
	unlock, err := cache.Lock(p.Cache, p.Say)
	if err != nil {
		return nil, fault.New(fault.Infra, "cache", err)
	}
	defer unlock()
	// A killed harness's compilers must not write into the tree now ours.
	ReapBuilds(p.Cache, p.Say)
	var imgs []*Image
	for _, v := range variants {
		img, err := p.build(ctx, v)
		if err != nil {
			return imgs, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// allCached returns the cached images of variants when every one is
// cached and sound, without a word otherwise (Build says it under the lock).
func (p *Plan) allCached(variants []Variant) ([]*Image, bool) {
	var imgs []*Image
	for _, v := range variants {
		key := p.Key(v)
		img, err := cachedImage(filepath.Join(p.Cache, "images", key), v.Name, key)
		if err != nil || img == nil {
			return nil, false
		}
		imgs = append(imgs, img)
	}
	for _, img := range imgs {
		p.say("%s kernel: cached %s", img.Variant, img.Kernel)
	}
	return imgs, len(imgs) > 0
}

func (p *Plan) say(format string, args ...any) {
	if p.Say != nil {
		p.Say(fmt.Sprintf(format, args...))
	}
}

func (p *Plan) build(ctx context.Context, v Variant) (*Image, error) {
	key := p.Key(v)
	imgDir := filepath.Join(p.Cache, "images", key)
	if img, ok := p.cached(imgDir, v.Name, key); ok {
		return img, nil
	}
	start := time.Now()
	tree, err := p.prepareTree(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.switchTo(ctx, tree, v); err != nil {
		return nil, err
	}
	return p.compile(ctx, v, tree, key, imgDir, start)
}

// BuildIn builds a tree the caller prepared (a bisect step's checkout) in
// its o/ directory, which is kept between calls so consecutive builds only
// recompile what changed. The image is cached by the variant's key.
func (p *Plan) BuildIn(ctx context.Context, v Variant, tree string) (*Image, error) {
	unlock, err := cache.Lock(p.Cache, p.Say)
	if err != nil {
		return nil, fault.New(fault.Infra, "cache", err)
	}
	defer unlock()
	// A killed harness's compilers must not write into the tree now ours.
	ReapBuilds(p.Cache, p.Say)
	key := p.Key(v)
	imgDir := filepath.Join(p.Cache, "images", key)
	if img, ok := p.cached(imgDir, v.Name, key); ok {
		return img, nil
	}
	return p.compile(ctx, v, tree, key, imgDir, time.Now())
}

// cached returns the image cached in imgDir when there is a sound one,
// and says why it rebuilds when there is one that is not.
func (p *Plan) cached(imgDir, name, key string) (*Image, bool) {
	img, err := cachedImage(imgDir, name, key)
	if err != nil {
		p.say("%s kernel: not using the cached image in %s: %v; rebuilding", name, imgDir, err)
		return nil, false
	}
	if img == nil {
		return nil, false
	}
	p.say("%s kernel: cached %s", name, img.Kernel)
	return img, true
}

// cachedImage returns the image cached in imgDir, nil when there is none,
// or an error saying why the one there must not be booted: its image.json
// is unreadable or for another key, or its bzImage is empty, lacks the x86
// boot header, or is not the file whose sha256 was recorded when it was
// built. The paths are always imgDir's own, whatever image.json says.
func cachedImage(imgDir, name, key string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(imgDir, "image.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("image.json: %v", err)
	}
	if img.Key != key {
		return nil, fmt.Errorf("image.json is for key %q", img.Key)
	}
	if img.SHA256 == "" {
		return nil, errors.New("no sha256 recorded (built by an older harness)")
	}
	img.Kernel, img.Config = filepath.Join(imgDir, "bzImage"), filepath.Join(imgDir, "config")
	if err := checkBzImage(img.Kernel, img.SHA256); err != nil {
		return nil, err
	}
	if st, err := os.Stat(img.Config); err != nil || !st.Mode().IsRegular() {
		return nil, fmt.Errorf("config missing: %v", err)
	}
	img.Cached, img.Variant = true, name
	return &img, nil
}

// ReadBoot returns what the bzImage at kernel needs at boot, from the
// image.json the harness wrote beside it; ok is false for an image the
// harness did not build (or one whose image.json is not for this file).
func ReadBoot(kernel string) (boot Boot, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(filepath.Dir(kernel), "image.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Boot{}, false, nil
	}
	if err != nil {
		return Boot{}, false, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return Boot{}, false, fmt.Errorf("%s: %v", filepath.Join(filepath.Dir(kernel), "image.json"), err)
	}
	if img.SHA256 == "" || checkBzImage(kernel, img.SHA256) != nil {
		return Boot{}, false, nil
	}
	return img.Boot, true, nil
}

// bootMagic is the x86 boot protocol's header signature, at hdrOffset in a
// bzImage.
const (
	bootMagic = "HdrS"
	hdrOffset = 0x202
)

// checkBzImage checks that path is a non-empty regular file with the x86
// boot header whose sha256 is sum.
func checkBzImage(path, sum string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return fmt.Errorf("%s is empty or not a regular file", path)
	}
	hdr := make([]byte, hdrOffset+len(bootMagic))
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[hdrOffset:]) != bootMagic {
		return fmt.Errorf("%s has no x86 boot header (%q at 0x%x)", path, bootMagic, hdrOffset)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		return fmt.Errorf("%s has sha256 %.16s…, not the %.16s… recorded when it was built", path, got, sum)
	}
	return nil
}

// compile configures and builds tree/o and stores the image.
func (p *Plan) compile(ctx context.Context, v Variant, tree, key, imgDir string, start time.Time) (*Image, error) {
	name := v.Name
	obj, err := inTree(tree, "o")
	if err != nil {
		return nil, fault.New(fault.Infra, "build", err)
	}
	if err := os.MkdirAll(obj, 0o755); err != nil {
		return nil, fault.New(fault.Infra, "build", err)
	}
	logPath, err := inTree(tree, "build.log")
	if err != nil {
		return nil, fault.New(fault.Infra, "build log", err)
	}
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fault.New(fault.Infra, "build log", err)
	}
	defer logf.Close()
	if err := p.configure(ctx, name, tree, logf, logPath); err != nil {
		return nil, err
	}
	p.say("%s kernel: building in %s", name, obj)
	if err := p.make(ctx, name, tree, logf, logPath, start, "bzImage"); err != nil {
		return nil, err
	}
	img, err := p.store(v, key, tree, imgDir)
	if err != nil {
		return nil, err
	}
	img.Seconds = time.Since(start).Seconds()
	img.Log = logPath
	p.say("%s kernel: built in %s", name, time.Since(start).Round(time.Second))
	return img, nil
}

// prepareTree makes the source's harness-owned tree once: hard links to
// the pristine source. GNU patch, and restore below, replace the files they
// change instead of writing through the links, so the pristine tree (which
// may be the user's) is never modified.
func (p *Plan) prepareTree(ctx context.Context) (string, error) {
	tree := filepath.Join(p.Cache, "trees", p.treeKey())
	if _, err := os.Stat(filepath.Join(tree, readyMark)); err == nil {
		return tree, nil
	}
	os.RemoveAll(tree)
	if err := os.MkdirAll(filepath.Dir(tree), 0o755); err != nil {
		return "", fault.New(fault.Infra, "tree", err)
	}
	if err := CheckFree(filepath.Dir(tree), 1<<30); err != nil {
		return "", err
	}
	p.say("preparing tree %s", tree)
	if out, err := exec.CommandContext(ctx, "cp", "-al", p.Source.Dir, tree).CombinedOutput(); err != nil {
		// Hard links cannot cross file systems: copy instead.
		os.RemoveAll(tree)
		if out2, err2 := exec.CommandContext(ctx, "cp", "-a", p.Source.Dir, tree).CombinedOutput(); err2 != nil {
			return "", fault.Newf(fault.Infra, "copy source", "%v: %s %s", err2, out, out2)
		}
	}
	if obj, err := inTree(tree, "o"); err == nil {
		os.RemoveAll(obj)
	}
	if err := writeTree(tree, readyMark, nil, 0o644); err != nil {
		return "", fault.New(fault.Infra, "tree", err)
	}
	return tree, nil
}

// dirtyList records which files of the tree differ from the pristine
// source, one a line; readyMark says the tree is complete. A patch may name
// neither (checkReserved).
const (
	dirtyList = ".zswaprace-dirty"
	readyMark = ".zswaprace-ready"
)

// switchTo brings the tree to the variant's state: every file an earlier
// variant patched is restored from the pristine source, then the variant's
// patches are applied. Restored and patched files get a new time, so make
// recompiles exactly them.
func (p *Plan) switchTo(ctx context.Context, tree string, v Variant) error {
	b, _ := os.ReadFile(filepath.Join(tree, dirtyList))
	for _, f := range strings.Split(string(b), "\n") {
		if f == "" {
			continue
		}
		if err := restore(p.Source.Dir, tree, f); err != nil {
			return fault.Newf(fault.Infra, "restore "+f, "%v (the tree cannot be brought back to the source: remove %s and run again)", err, tree)
		}
	}
	var dirty []string
	for _, s := range v.Steps {
		dirty = append(dirty, s.Patch.Files...)
	}
	// Written before patching: a patch that fails halfway leaves files that
	// the next switch must restore.
	if err := writeTree(tree, dirtyList, []byte(strings.Join(dirty, "\n")+"\n"), 0o644); err != nil {
		return fault.New(fault.Infra, "tree", err)
	}
	for _, s := range v.Steps {
		if err := ApplyTo(ctx, tree, s.Patch, s.Reverse); err != nil {
			return err
		}
		how := "applied"
		if s.Reverse {
			how = "reversed"
		}
		p.say("%s kernel: %s %s", v.Name, how, filepath.Base(s.Patch.Path))
	}
	return nil
}

// restore replaces the file rel of tree with a fresh copy of it from the
// source tree src (or removes it when src lacks it), never writing through
// a hard link, and gives it a new time. Both paths are checked (inTree):
// rel comes from a patch, by way of the dirty list.
func restore(src, tree, rel string) error {
	data, st, err := readTree(src, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return removeTree(tree, rel)
	}
	if err != nil {
		return err
	}
	return writeTree(tree, rel, data, st.Mode().Perm())
}

// configure writes tinyconfig plus the fragments, resolves it, and fails if
// any requested option did not survive.
func (p *Plan) configure(ctx context.Context, name string, tree string, logf io.Writer, logPath string) error {
	if err := p.runMake(ctx, tree, logf, nil, "tinyconfig"); err != nil {
		if ctx.Err() != nil {
			// Ctrl-C is nobody's build failure (a bisect would skip the commit).
			return fault.New(fault.Infra, name+" kernel: build interrupted", ctx.Err())
		}
		return &fault.Error{Kind: fault.Build, Op: name + " kernel: make tinyconfig", Err: err, Log: logPath}
	}
	cfgPath := filepath.Join(tree, "o", ".config")
	base, err := os.ReadFile(cfgPath)
	if err != nil {
		return fault.New(fault.Build, name+" kernel: config", err)
	}
	if err := writeTree(tree, "o/.config", []byte(Merge(string(base), p.Fragments)), 0o644); err != nil {
		return fault.New(fault.Infra, "write config", err)
	}
	if err := p.runMake(ctx, tree, logf, nil, "olddefconfig"); err != nil {
		if ctx.Err() != nil {
			return fault.New(fault.Infra, name+" kernel: build interrupted", ctx.Err())
		}
		return &fault.Error{Kind: fault.Build, Op: name + " kernel: make olddefconfig", Err: err, Log: logPath}
	}
	resolved, err := os.ReadFile(cfgPath)
	if err != nil {
		return fault.New(fault.Build, name+" kernel: config", err)
	}
	if lost := Lost(string(resolved), p.Fragments); len(lost) > 0 {
		return &fault.Error{Kind: fault.Build, Op: name + " kernel: config",
			Err:    fmt.Errorf("%d requested options did not survive olddefconfig (missing dependencies, or not in this kernel): %s", len(lost), strings.Join(lost, "; ")),
			Detail: strings.Join(lost, "\n")}
	}
	return nil
}

func (p *Plan) makeArgs(tree string, targets ...string) []string {
	jobs := p.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	args := []string{"-C", tree, "O=o", fmt.Sprintf("-j%d", jobs),
		"KBUILD_BUILD_TIMESTAMP=2023-05-04 00:00:00 UTC", "KBUILD_BUILD_USER=zswaprace",
		"KBUILD_BUILD_HOST=zswaprace", "KBUILD_BUILD_VERSION=1", "LOCALVERSION=-zswaprace"}
	if _, err := exec.LookPath("ccache"); err == nil {
		args = append(args, "CC=ccache gcc")
	}
	return append(args, targets...)
}

// buildEnv is the environment of the kernel's make: the harness's, less
// what an enclosing make passes to its children. Run from a Makefile
// target (make bench BENCH_FLAGS="--rows 'a|b'"), the kernel's make would
// otherwise inherit the outer command line's variables through MAKEFLAGS,
// and tools/objtool's build failed on them with "Syntax error:
// Unterminated quoted string". The harness sets its own -j.
func buildEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "GNUMAKEFLAGS":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func (p *Plan) runMake(ctx context.Context, tree string, logf io.Writer, lines func(string), targets ...string) error {
	cmd := exec.CommandContext(ctx, "make", p.makeArgs(tree, targets...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Env = buildEnv(os.Environ())
	// Stop the whole make process group on cancel, not just make, and with
	// SIGTERM first: make deletes the half-written target it was building,
	// which SIGKILL would leave behind to break the next build.
	cmd.Cancel = func() error {
		pid := cmd.Process.Pid
		time.AfterFunc(10*time.Second, func() { syscall.Kill(-pid, syscall.SIGKILL) })
		return syscall.Kill(-pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 15 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		if _, lerr := exec.LookPath("make"); lerr != nil {
			return fault.New(fault.Infra, "make", fmt.Errorf("make is not installed: run scripts/install-deps.sh"))
		}
		return err
	}
	// The whole group dies when make has been waited for, and a record
	// lets the next harness kill it if this one is killed first.
	pgid := cmd.Process.Pid
	groupStart, _ := cache.StartTime(pgid)
	unrecord, rerr := recordGroup(p.Cache, pgid)
	if rerr != nil {
		p.say("cannot record the build's process group (%v): if the harness is killed, kill process group %d yourself", rerr, pgid)
	}
	defer func() {
		cache.KillGroup(pgid, groupStart)
		unrecord()
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if lines != nil {
				lines(sc.Text())
			}
		}
		io.Copy(io.Discard, pr)
	}()
	err := cmd.Wait()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (p *Plan) make(ctx context.Context, name, tree string, logf io.Writer, logPath string, start time.Time, target string) error {
	compiled := 0
	last := time.Now()
	err := p.runMake(ctx, tree, logf, func(l string) {
		if strings.HasPrefix(strings.TrimSpace(l), "CC ") {
			compiled++
		}
		if time.Since(last) > 10*time.Second {
			last = time.Now()
			p.say("%s kernel: %d files compiled, %s", name, compiled, time.Since(start).Round(time.Second))
		}
	}, target)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fault.New(fault.Infra, name+" kernel: build interrupted", ctx.Err())
	}
	var fe *fault.Error
	if errors.As(err, &fe) {
		return err
	}
	if ferr := CheckFree(tree, 100<<20); ferr != nil {
		return ferr
	}
	errs := firstErrors(logPath, 12)
	return &fault.Error{Kind: fault.Build, Op: name + " kernel: make " + target,
		Err: fmt.Errorf("%v; first errors:\n%s", err, errs), Detail: errs, Log: logPath}
}

// firstErrors returns the first compiler error lines of a build log.
func firstErrors(logPath string, n int) string {
	f, err := os.Open(logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && len(out) < n {
		l := sc.Text()
		if strings.Contains(l, "error:") || strings.Contains(l, "Error ") || strings.Contains(l, "undefined reference") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// store copies the image and config into the image cache.
func (p *Plan) store(v Variant, key, tree, imgDir string) (*Image, error) {
	tmp := imgDir + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fault.New(fault.Infra, "image cache", err)
	}
	sums := map[string]string{}
	for src, dst := range map[string]string{"o/arch/x86/boot/bzImage": "bzImage", "o/.config": "config"} {
		sum, err := copyFile(filepath.Join(tree, src), filepath.Join(tmp, dst))
		if err != nil {
			return nil, fault.New(fault.Infra, "image cache", err)
		}
		sums[dst] = sum
	}
	img := &Image{Variant: v.Name, Kernel: filepath.Join(imgDir, "bzImage"), Config: filepath.Join(imgDir, "config"), Key: key, SHA256: sums["bzImage"], Boot: v.Boot}
	b, _ := json.MarshalIndent(img, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), b, 0o644); err != nil {
		return nil, fault.New(fault.Infra, "image cache", err)
	}
	os.RemoveAll(imgDir)
	if err := os.Rename(tmp, imgDir); err != nil {
		return nil, fault.New(fault.Infra, "image cache", err)
	}
	return img, nil
}

// copyFile copies src to dst and returns the sha256 of what it copied.
func copyFile(src, dst string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), out.Close()
}
