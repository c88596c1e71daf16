package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/crypto/ssh"
)

func TestWriteArchive(t *testing.T) {
	keys, err := LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	extra := []File{{Path: "/usr/bin/stress", Data: []byte("ELF..."), Mode: 0o755}}
	if err := Write(&buf, []byte("agent binary"), keys, extra); err != nil {
		t.Fatal(err)
	}
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(buf.Bytes())))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]cpio.Record{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	content := func(name string) string {
		r, ok := byName[name]
		if !ok {
			t.Fatalf("archive lacks %s", name)
		}
		b, _ := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
		return string(b)
	}
	if got := content("init"); got != "agent binary" {
		t.Errorf("init = %q", got)
	}
	if c := byName["dev/console"]; c.Mode&cpio.S_IFMT != cpio.S_IFCHR || c.Rmajor != 5 || c.Rminor != 1 {
		t.Errorf("dev/console is not char device 5,1: mode %o %d,%d", c.Mode, c.Rmajor, c.Rminor)
	}
	if _, err := ssh.ParsePrivateKey([]byte(content("etc/zh/host_key"))); err != nil {
		t.Errorf("host key: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(content("etc/zh/authorized_key")))
	if err != nil || !bytes.Equal(pub.Marshal(), keys.Client.PublicKey().Marshal()) {
		t.Errorf("authorized key is not the harness's client key: %v", err)
	}
	if got := content("usr/bin/stress"); got != "ELF..." {
		t.Errorf("workload = %q", got)
	}
	// Same inputs, same bytes: the archive can be cached by content.
	var again bytes.Buffer
	Write(&again, []byte("agent binary"), keys, extra)
	if !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Error("archive is not reproducible")
	}
}

func TestKeysPersist(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.HostPublic.Marshal(), b.HostPublic.Marshal()) || !bytes.Equal(a.ClientPublic, b.ClientPublic) {
		t.Error("keys changed between loads")
	}
	if st, _ := os.Stat(dir + "/client_key"); st.Mode().Perm() != 0o600 {
		t.Errorf("client key mode %o, want 600", st.Mode().Perm())
	}
}

func TestParseLdd(t *testing.T) {
	out := "\tlinux-vdso.so.1 (0x00007ffd4b3f2000)\n" +
		"\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f1e2b2a0000)\n" +
		"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f1e2b0bf000)\n" +
		"\t/lib64/ld-linux-x86-64.so.2 (0x00007f1e2b3a5000)\n"
	got, err := ParseLdd(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/lib/x86_64-linux-gnu/libm.so.6", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := ParseLdd("\tlibfoo.so.1 => not found\n"); err == nil {
		t.Error("a missing library was not reported")
	}
}

func TestWorkloadOfRealBinary(t *testing.T) {
	if _, err := exec.LookPath("ldd"); err != nil {
		t.Skip("no ldd")
	}
	files, argv, err := Workload("sh -c true")
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 3 || argv[0][0] != '/' {
		t.Errorf("argv %v: want an absolute program path", argv)
	}
	hasLoader := false
	for _, f := range files {
		if f.Path == "/lib64/ld-linux-x86-64.so.2" {
			hasLoader = true
		}
	}
	if !hasLoader {
		t.Errorf("the dynamic loader is not packed: %v", files)
	}
	if _, _, err := Workload("no-such-program-zr"); err == nil {
		t.Error("a missing program was accepted")
	}
}

// Two harnesses starting at once on a fresh cache both make the keys the
// first time: each must succeed, and all must end up with the keys that
// are on disk (one of them wins), never an error or a half-written key.
func TestLoadKeysConcurrentFirstTime(t *testing.T) {
	for round := 0; round < 20; round++ {
		dir := filepath.Join(t.TempDir(), "keys")
		const n = 8
		keys := make([]*Keys, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range keys {
			wg.Add(1)
			go func() {
				defer wg.Done()
				keys[i], errs[i] = LoadKeys(dir)
			}()
		}
		wg.Wait()
		disk, err := LoadKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := range keys {
			if errs[i] != nil {
				t.Fatalf("round %d: concurrent first-time LoadKeys %d: %v", round, i, errs[i])
			}
			if !bytes.Equal(keys[i].HostPublic.Marshal(), disk.HostPublic.Marshal()) || !bytes.Equal(keys[i].ClientPublic, disk.ClientPublic) {
				t.Fatalf("round %d: LoadKeys %d returned keys that are not the ones on disk", round, i)
			}
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*tmp*")); len(left) > 0 {
			t.Fatalf("round %d: temporary key files left: %v", round, left)
		}
	}
}

// The archive holds the guest's SSH host private key: it is written 0600,
// in a directory only its user can enter, and an older 0644 one is made
// private when it is used again. Concurrent first-time packs of the same
// archive all succeed.
func TestPackPrivate(t *testing.T) {
	cacheDir := t.TempDir()
	keys, err := LoadKeys(filepath.Join(cacheDir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 6
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = pack(cacheDir, []byte("agent"), keys, nil)
		}()
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil {
			t.Fatalf("concurrent first-time pack %d: %v", i, errs[i])
		}
		if paths[i] != paths[0] {
			t.Errorf("pack %d wrote %s, pack 0 %s", i, paths[i], paths[0])
		}
	}
	st, err := os.Stat(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("initramfs %s has mode %04o: it holds the host private key, want 0600", paths[0], st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(paths[0])); dst.Mode().Perm()&0o077 != 0 {
		t.Errorf("initramfs directory has mode %04o, want 0700", dst.Mode().Perm())
	}
	os.Chmod(paths[0], 0o644)
	again, err := pack(cacheDir, []byte("agent"), keys, nil)
	if err != nil || again != paths[0] {
		t.Fatalf("pack again: %s, %v", again, err)
	}
	if st, _ := os.Stat(again); st.Mode().Perm() != 0o600 {
		t.Errorf("an older world-readable initramfs is used as mode %04o, want 0600", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(paths[0]), ".*tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A harness without the embedded agent says what to do when it cannot
// compile one: no agent source at root, or no Go on PATH.
func TestBuildAgentSaysWhatIsMissing(t *testing.T) {
	out := filepath.Join(t.TempDir(), "agent")
	err := BuildAgent(t.Context(), t.TempDir(), out)
	if err == nil || !strings.Contains(err.Error(), "no guest agent source") || !strings.Contains(err.Error(), "make build") {
		t.Errorf("no checkout: %v", err)
	}
	checkout, _ := filepath.Abs("../..")
	t.Setenv("PATH", t.TempDir())
	err = BuildAgent(t.Context(), checkout, out)
	if err == nil || !strings.Contains(err.Error(), "go is not on PATH") || !strings.Contains(err.Error(), "make build") {
		t.Errorf("no Go: %v", err)
	}
}

// A workload under a directory the guest mounts over (the issue: a
// selftest placed in /tmp) is refused with a clear error, before any VM.
func TestWorkloadUnderGuestMount(t *testing.T) {
	src, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip("no /bin/true")
	}
	dir, err := os.MkdirTemp("/tmp", "zswaprace-workload-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "test_zswap")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err = Workload(bin + " -v")
	if err == nil || !strings.Contains(err.Error(), "is under /tmp") || !strings.Contains(err.Error(), "/usr/local/bin") {
		t.Errorf("workload in /tmp: %v", err)
	}
	for path, want := range map[string]string{"/tmp": "/tmp", "/tmp/x": "/tmp", "/tmpx/y": "", "/sys/kernel/x": "/sys", "/usr/local/bin/x": "", "/device": ""} {
		if got := hiddenIn(path); got != want {
			t.Errorf("hiddenIn(%q) = %q, want %q", path, got, want)
		}
	}
}

// guestMounts covers every directory the guest mounts on.
func TestGuestMountsMatchSysinit(t *testing.T) {
	src, err := os.ReadFile("../../guest/sysinit/sysinit.go")
	if err != nil {
		t.Fatal(err)
	}
	ms := regexp.MustCompile(`\{"[\w-]+", "(/[^"]*)", "[\w-]+"\}`).FindAllStringSubmatch(string(src), -1)
	if len(ms) == 0 {
		t.Fatal("found no mounts in guest/sysinit/sysinit.go")
	}
	for _, m := range ms {
		if hiddenIn(m[1]) == "" {
			t.Errorf("the guest mounts on %s, which guestMounts lacks", m[1])
		}
	}
}
