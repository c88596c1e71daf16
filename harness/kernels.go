package main

// A kernels directory carries both images of a comparison, and what they
// need at boot, from the machine that built them to the machines that run
// them (a CI artifact): 'harness build --export DIR' writes it,
// 'compare --kernels DIR' and 'run --kernels DIR' boot from it and build
// nothing. Every file is checked against the sha256 the manifest records,
// so a damaged or swapped artifact is refused by name, never booted.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"zswaprace/harness/fault"
	"zswaprace/harness/fsutil"
	"zswaprace/harness/kernel"
	"zswaprace/harness/report"
)

// manifestFile is the kernels directory's manifest, written last: a
// directory without one is an export that did not finish.
const manifestFile = "kernels.json"

// manifestSchema changes when a field of the manifest changes meaning.
const manifestSchema = 1

// manifest describes a kernels directory. Paths are relative to it.
type manifest struct {
	SchemaVersion  int    `json:"schema_version"`
	Tool           string `json:"tool"`
	Source         string `json:"source"`
	Patch          string `json:"patch"`
	PatchFile      string `json:"patch_file"` // the patch itself, for the record
	PatchSHA256    string `json:"patch_sha256"`
	PatchDirection string `json:"patch_direction"`
	Widen          bool   `json:"widen"`
	// Widening is how the race window is widened at the default delay;
	// compare's --delay-us can still change the delay.
	Widening string          `json:"widening"`
	Kasan    bool            `json:"kasan"`
	Kcsan    bool            `json:"kcsan,omitempty"`
	Debug    bool            `json:"debug,omitempty"` // kconfigs/mmdebug.config
	Variants []exportedImage `json:"variants"`        // unpatched, then patched
	// SourceVersion and ConfigFragments say exactly which source and
	// config fragments the kernels were built from (absent from an export
	// by an older harness), for report.json's provenance.
	SourceVersion   *kernel.SourceVersion   `json:"source_version,omitempty"`
	ConfigFragments []report.ConfigFragment `json:"config_fragments,omitempty"`
}

// exportedImage is one kernel in a kernels directory.
type exportedImage struct {
	Name         string      `json:"name"`
	Kernel       string      `json:"kernel"`
	KernelSHA256 string      `json:"kernel_sha256"`
	Config       string      `json:"config"`
	ConfigSHA256 string      `json:"config_sha256"`
	Key          string      `json:"key"` // the image cache key it was built under
	Boot         kernel.Boot `json:"boot"`
	// Cmdline is the kernel parameters the harness adds at boot with its
	// default flags; the instrumented kernels need the delay among them.
	Cmdline string `json:"cmdline"`
}

// exportKernels copies both images of b into dir with their manifest.
func exportKernels(dir string, b *built, bf buildFlags) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fault.New(fault.Infra, "export "+dir, err)
	}
	// A stale manifest must not vouch for files half replaced below it.
	if err := os.Remove(filepath.Join(dir, manifestFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fault.New(fault.Infra, "export "+dir, err)
	}
	rf := defaultRunFlags()
	m := manifest{SchemaVersion: manifestSchema, Tool: "zswaprace", Source: bf.source, Patch: b.patch.Path,
		PatchFile: "patch.diff", PatchSHA256: sha256Hex(b.patch.Data), PatchDirection: string(b.direction),
		Widen: bf.widens(), Widening: wideningOf(bootWanted(&bf, b), bf.kcsan, rf), Kasan: bf.kasan, Kcsan: bf.kcsan, Debug: bf.debug,
		SourceVersion: b.version, ConfigFragments: b.fragments}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, m.PatchFile), b.patch.Data); err != nil {
		return fault.New(fault.Infra, "export", err)
	}
	for _, img := range []*kernel.Image{b.unpatched, b.patched} {
		e, err := exportImage(dir, img, rf)
		if err != nil {
			return err
		}
		m.Variants = append(m.Variants, e)
	}
	if err := writeJSONFile(filepath.Join(dir, manifestFile), m); err != nil {
		return fault.New(fault.Infra, "export", err)
	}
	return nil
}

// exportImage copies img into dir/VARIANT with an image.json, so that
// 'run --kernel DIR/VARIANT/bzImage' also knows what the kernel needs.
func exportImage(dir string, img *kernel.Image, rf runFlags) (exportedImage, error) {
	e := exportedImage{Name: img.Variant, Kernel: filepath.Join(img.Variant, "bzImage"),
		Config: filepath.Join(img.Variant, "config"), Key: img.Key, Boot: img.Boot,
		Cmdline: strings.Join(bootCmdline(&rf, bootOf(img)), " ")}
	var err error
	if e.KernelSHA256, err = copyChecked(img.Kernel, filepath.Join(dir, e.Kernel)); err != nil {
		return e, err
	}
	if img.SHA256 != "" && e.KernelSHA256 != img.SHA256 {
		return e, fault.Newf(fault.Infra, "export", "%s changed since it was built (sha256 %.16s…, recorded %.16s…); run 'harness build' again to rebuild it", img.Kernel, e.KernelSHA256, img.SHA256)
	}
	if e.ConfigSHA256, err = copyChecked(img.Config, filepath.Join(dir, e.Config)); err != nil {
		return e, err
	}
	meta := kernel.Image{Variant: img.Variant, Kernel: "bzImage", Config: "config", Key: img.Key, SHA256: e.KernelSHA256, Boot: img.Boot}
	if err := writeJSONFile(filepath.Join(dir, img.Variant, "image.json"), meta); err != nil {
		return e, fault.New(fault.Infra, "export", err)
	}
	return e, nil
}

// copyChecked copies src to dst atomically and returns its sha256.
func copyChecked(src, dst string) (string, error) {
	b, err := os.ReadFile(src)
	if err != nil {
		return "", fault.New(fault.Infra, "export", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fault.New(fault.Infra, "export", err)
	}
	if err := fsutil.WriteFileAtomic(dst, b); err != nil {
		return "", fault.New(fault.Infra, "export", err)
	}
	return sha256Hex(b), nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fileSHA256 is the sha256 of the file at path.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// defaultRunFlags are the run flags at their defaults.
func defaultRunFlags() runFlags {
	var rf runFlags
	rf.register(flag.NewFlagSet("defaults", flag.ContinueOnError))
	return rf
}

// loadKernels reads a kernels directory and checks every file in it
// against the manifest; the result boots like a fresh build.
func loadKernels(dir string) (*built, *manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if err != nil {
		return nil, nil, fault.Newf(fault.Usage, "kernels", "%s: %v; --kernels wants a directory written by 'harness build --export DIR'", dir, err)
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, fault.Newf(fault.Usage, "kernels", "%s: %v; export the kernels again", filepath.Join(dir, manifestFile), err)
	}
	if m.SchemaVersion != manifestSchema {
		return nil, nil, fault.Newf(fault.Usage, "kernels", "%s has schema version %d, this harness reads %d; export the kernels with this harness's version", filepath.Join(dir, manifestFile), m.SchemaVersion, manifestSchema)
	}
	if len(m.Variants) != 2 || m.Variants[0].Name != "unpatched" || m.Variants[1].Name != "patched" {
		return nil, nil, fault.Newf(fault.Usage, "kernels", "%s does not list an unpatched and a patched kernel; export the kernels again", filepath.Join(dir, manifestFile))
	}
	var imgs []*kernel.Image
	for _, e := range m.Variants {
		img, err := loadImage(dir, e)
		if err != nil {
			return nil, nil, err
		}
		imgs = append(imgs, img)
	}
	if err := checkFile(dir, m.PatchFile, m.PatchSHA256); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, m.PatchFile))
	if err != nil {
		return nil, nil, fault.New(fault.Usage, "kernels", err)
	}
	patch := &kernel.Patch{Path: m.Patch, Data: data}
	return &built{patch: patch, direction: kernel.Direction(m.PatchDirection), unpatched: imgs[0], patched: imgs[1],
		version: m.SourceVersion, fragments: m.ConfigFragments}, &m, nil
}

// loadImage checks one exported image's files and returns it with
// absolute paths.
func loadImage(dir string, e exportedImage) (*kernel.Image, error) {
	if err := checkFile(dir, e.Kernel, e.KernelSHA256); err != nil {
		return nil, err
	}
	if err := checkFile(dir, e.Config, e.ConfigSHA256); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fault.New(fault.Infra, "kernels", err)
	}
	return &kernel.Image{Variant: e.Name, Kernel: filepath.Join(abs, e.Kernel), Config: filepath.Join(abs, e.Config),
		Key: e.Key, SHA256: e.KernelSHA256, Boot: e.Boot, Cached: true}, nil
}

// checkFile checks that rel, inside dir, is a regular file whose sha256 is
// sum. The manifest comes with the artifact, so its paths are confined to
// the directory like a patch's are to its tree.
func checkFile(dir, rel, sum string) error {
	if rel == "" || filepath.IsAbs(rel) || !filepath.IsLocal(rel) {
		return fault.Newf(fault.Usage, "kernels", "%s names %q, which is not a file inside %s; export the kernels again", manifestFile, rel, dir)
	}
	path := filepath.Join(dir, rel)
	st, err := os.Lstat(path)
	if err != nil {
		return fault.Newf(fault.Usage, "kernels", "%s: %v; the artifact is incomplete: download it again or re-export it with 'harness build --export'", path, err)
	}
	if !st.Mode().IsRegular() {
		return fault.Newf(fault.Usage, "kernels", "%s is not a regular file; re-export the kernels", path)
	}
	got, err := fileSHA256(path)
	if err != nil {
		return fault.New(fault.Infra, "kernels", err)
	}
	if got != sum {
		return fault.Newf(fault.Usage, "kernels", "%s has sha256 %.16s…, but %s records %.16s…: the file was changed or damaged on the way; download the artifact again or re-export it with 'harness build --export'", path, got, manifestFile, sum)
	}
	return nil
}

// kernelsExclusive refuses build flags next to --kernels: the kernels in
// the directory were built with their own, and silently ignoring a flag
// would compare something other than what was asked.
func kernelsExclusive(fs *flag.FlagSet, dir string) error {
	if dir == "" {
		return nil
	}
	var clash []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "source", "patch", "widen", "widen-at", "kasan", "kcsan", "debug", "build-jobs":
			clash = append(clash, "--"+f.Name)
		}
	})
	if len(clash) > 0 {
		return fmt.Errorf("--kernels %s brings its kernels already built: drop %s (pass them to 'harness build --export' instead)", dir, strings.Join(clash, ", "))
	}
	return nil
}

// kernelsOrBuild loads the kernels directory dir, or builds both kernels
// when dir is empty. With a directory, bf takes the source, patch and
// widening the kernels were built with, for the report.
func kernelsOrBuild(ctx context.Context, bf *buildFlags, dir string, say func(string)) (*built, *manifest, error) {
	if dir == "" {
		b, err := bf.buildBoth(ctx, say)
		return b, nil, err
	}
	b, m, err := loadKernels(dir)
	if err != nil {
		return nil, nil, err
	}
	bf.source, bf.patch, bf.widen, bf.kasan, bf.kcsan, bf.debug = m.Source, m.Patch, m.Widen, m.Kasan, m.Kcsan, m.Debug
	say(fmt.Sprintf("kernels from %s, sha256 checked: unpatched %.12s…, patched %.12s…; nothing to build",
		dir, b.unpatched.SHA256, b.patched.SHA256))
	return b, m, nil
}

// kernelFromDir is the bzImage and config of one variant of a kernels
// directory, for 'run --kernels DIR --variant V'; its image.json beside it
// then tells run what it needs at boot.
func kernelFromDir(dir, variant, kernelFlag string) (kernelPath, config string, err error) {
	if kernelFlag != "" {
		return "", "", fault.Newf(fault.Usage, "run", "--kernel and --kernels both name a kernel: give one")
	}
	b, _, err := loadKernels(dir)
	if err != nil {
		return "", "", err
	}
	switch variant {
	case "unpatched":
		return b.unpatched.Kernel, b.unpatched.Config, nil
	case "patched":
		return b.patched.Kernel, b.patched.Config, nil
	}
	return "", "", fault.Newf(fault.Usage, "run", "--variant %q: with --kernels, say unpatched or patched", variant)
}
