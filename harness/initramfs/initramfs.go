// Package initramfs packs the guest agent, its SSH keys and any external
// workload into a newc cpio archive, cached by content.
package initramfs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"

	"github.com/u-root/u-root/pkg/cpio"
	"golang.org/x/crypto/ssh"

	"zswaprace/harness/fault"
	"zswaprace/harness/fsutil"
)

// File is one extra file in the archive.
type File struct {
	Path string // absolute path inside the guest
	Data []byte
	Mode uint64 // permission bits
}

// Keys are the SSH keys of one harness cache: the agent's host key and the
// harness's client key. They never leave the machine.
type Keys struct {
	HostKeyPEM   []byte
	HostPublic   ssh.PublicKey
	Client       ssh.Signer
	ClientPublic []byte // authorized_keys line
}

// LoadKeys reads the keys in dir, generating them the first time.
func LoadKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	host, err := loadOrCreate(filepath.Join(dir, "host_key"))
	if err != nil {
		return nil, err
	}
	client, err := loadOrCreate(filepath.Join(dir, "client_key"))
	if err != nil {
		return nil, err
	}
	hs, err := ssh.ParsePrivateKey(host)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	cs, err := ssh.ParsePrivateKey(client)
	if err != nil {
		return nil, fmt.Errorf("client key: %w", err)
	}
	return &Keys{HostKeyPEM: host, HostPublic: hs.PublicKey(), Client: cs, ClientPublic: ssh.MarshalAuthorizedKey(cs.PublicKey())}, nil
}

// loadOrCreate reads the key at path, generating it the first time. Two
// harnesses starting at once on a fresh cache may both generate one: each
// writes its own temporary file and links it to path only if path is not
// there yet, so the first wins, and every one returns the key on disk.
func loadOrCreate(path string) ([]byte, error) {
	if b, err := os.ReadFile(path); err == nil {
		return b, nil
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	blk, err := ssh.MarshalPrivateKey(priv, "zswaprace")
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(pem.EncodeToMemory(blk))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	// link(2) never replaces: it fails when another got there first.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return os.ReadFile(path)
}

// EmbeddedAgent reports whether this harness carries the static guest agent
// (built by 'make build', with -tags embedagent) rather than compiling it
// from its checkout on every start.
func EmbeddedAgent() bool { return len(embeddedAgent) > 0 }

// BuildAgent compiles the guest agent as a static binary from the checkout
// at root. It needs Go on PATH and the checkout: a harness built by 'make
// build' needs neither (see EmbeddedAgent).
func BuildAgent(ctx context.Context, root, out string) error {
	const how = "a harness built by 'make build' carries the agent; one built by 'go build' or 'go run' compiles it at every start"
	if _, err := os.Stat(filepath.Join(root, "guest", "main.go")); err != nil {
		return fault.Newf(fault.Usage, "build guest agent", "no guest agent source in %s (not the harness's checkout): %s, so use bin/harness from 'make build', or run from the checkout", root, how)
	}
	if _, err := exec.LookPath("go"); err != nil {
		return fault.Newf(fault.Usage, "build guest agent", "go is not on PATH: %s, so use bin/harness from 'make build', or put Go on PATH", how)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./guest")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fault.Newf(fault.Infra, "build guest agent", "%v: %s", err, b)
	}
	return nil
}

// Write packs the archive: /dev/console, the agent as /init, the keys, extras.
func Write(w io.Writer, agent []byte, keys *Keys, extra []File) error {
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.Directory("etc", 0o755),
		cpio.Directory("etc/zh", 0o700),
		cpio.StaticFile("etc/zh/host_key", string(keys.HostKeyPEM), 0o600),
		cpio.StaticFile("etc/zh/authorized_key", string(keys.ClientPublic), 0o644),
		cpio.StaticFile("init", string(agent), 0o755),
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Path < extra[j].Path })
	for _, f := range extra {
		name := cpio.Normalize(f.Path)
		recs = append(recs, cpio.StaticFile(name, string(f.Data), f.Mode))
	}
	cpio.MakeAllReproducible(recs)
	rw := cpio.NewDedupWriter(cpio.Newc.Writer(w))
	if err := cpio.WriteRecordsAndDirs(rw, recs); err != nil {
		return err
	}
	return cpio.WriteTrailer(rw)
}

// Build returns the path of an initramfs holding the agent (the embedded
// one, else one built from the checkout at root), the cache's keys and the
// extra files, reusing an identical one.
func Build(ctx context.Context, root, cache string, extra []File) (string, *Keys, error) {
	keys, err := LoadKeys(filepath.Join(cache, "keys"))
	if err != nil {
		return "", nil, fault.New(fault.Infra, "ssh keys", err)
	}
	if EmbeddedAgent() {
		out, err := pack(cache, embeddedAgent, keys, extra)
		if err != nil {
			return "", nil, err
		}
		return out, keys, nil
	}
	dir := filepath.Join(cache, "initramfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", nil, fault.New(fault.Infra, "initramfs", err)
	}
	tmpAgent, err := os.CreateTemp(dir, "agent-*.tmp")
	if err != nil {
		return "", nil, fault.New(fault.Infra, "initramfs", err)
	}
	tmpAgent.Close()
	agentPath := tmpAgent.Name()
	defer os.Remove(agentPath)
	if err := BuildAgent(ctx, root, agentPath); err != nil {
		return "", nil, err
	}
	agent, err := os.ReadFile(agentPath)
	if err != nil {
		return "", nil, fault.New(fault.Infra, "initramfs", err)
	}
	out, err := pack(cache, agent, keys, extra)
	if err != nil {
		return "", nil, err
	}
	return out, keys, nil
}

// pack writes the archive of agent, keys and extra into cache/initramfs,
// named by its content, unless an identical one is there.
func pack(cache string, agent []byte, keys *Keys, extra []File) (string, error) {
	// The archive holds the guest's SSH host private key: private to the
	// user, like the keys directory.
	dir := filepath.Join(cache, "initramfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fault.New(fault.Infra, "initramfs", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fault.New(fault.Infra, "initramfs", err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, agent, keys, extra); err != nil {
		return "", fault.New(fault.Infra, "initramfs", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	out := filepath.Join(dir, hex.EncodeToString(sum[:12])+".cpio")
	if st, err := os.Lstat(out); err == nil && st.Mode().IsRegular() {
		// One an older harness wrote world-readable is made private.
		if st.Mode().Perm() != 0o600 {
			if err := os.Chmod(out, 0o600); err != nil {
				return "", fault.New(fault.Infra, "initramfs", err)
			}
		}
		return out, nil
	}
	if err := fsutil.WriteFileAtomicMode(out, buf.Bytes(), 0o600); err != nil {
		return "", fault.New(fault.Infra, "write initramfs", err)
	}
	return out, nil
}
