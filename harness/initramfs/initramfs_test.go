package initramfs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
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
