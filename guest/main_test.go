package main

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"zswaprace/guest/proto"
	"zswaprace/stress"
)

func newKey(t *testing.T) (pemBytes []byte, signer ssh.Signer) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes = pem.EncodeToMemory(blk)
	signer, err = ssh.ParsePrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	return pemBytes, signer
}

// startAgent builds the real agent binary and runs it as "guest serve" on
// loopback, returning its address and the keys.
func startAgent(t *testing.T) (addr string, client, host ssh.Signer) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "agent")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, out)
	}
	hostPEM, host := newKey(t)
	_, client = newKey(t)
	os.WriteFile(filepath.Join(dir, "host_key"), hostPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "authorized_key"), ssh.MarshalAuthorizedKey(client.PublicKey()), 0o644)
	cmd := exec.Command(bin, "serve", "-listen", "127.0.0.1:0", "-host-key", filepath.Join(dir, "host_key"), "-authorized-key", filepath.Join(dir, "authorized_key"))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("agent did not say where it listens: %v", err)
	}
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("unexpected first line %q", line)
	}
	go io.Copy(io.Discard, stdout)
	return addr, client, host
}

func dial(addr string, client, host ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", addr, &ssh.ClientConfig{
		User:            "harness",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(client)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()),
		Timeout:         10 * time.Second,
	})
}

// call runs one command and returns every message the agent sent.
func call(t *testing.T, c *ssh.Client, name string, body any) []proto.Message {
	t.Helper()
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stdin, _ := s.StdinPipe()
	stdout, _ := s.StdoutPipe()
	if err := s.Start(name); err != nil {
		t.Fatal(err)
	}
	if body != nil {
		json.NewEncoder(stdin).Encode(body)
	}
	stdin.Close()
	var msgs []proto.Message
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var m proto.Message
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line is not a message: %q", sc.Text())
		}
		msgs = append(msgs, m)
	}
	s.Wait()
	return msgs
}

func TestStressOverSSH(t *testing.T) {
	addr, client, host := startAgent(t)
	c, err := dial(addr, client, host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := stress.Config{Workers: 2, MiBPerWorker: 4, Mode: "sweep", DurationSec: 2.5}
	msgs := call(t, c, proto.CmdStress, proto.StressRequest{Config: cfg})
	if len(msgs) < 2 {
		t.Fatalf("want progress lines and a result, got %d messages: %+v", len(msgs), msgs)
	}
	progress := 0
	for _, m := range msgs[:len(msgs)-1] {
		if m.Type == proto.MsgProgress {
			progress++
		}
	}
	if progress == 0 {
		t.Errorf("no progress lines streamed before the result")
	}
	last := msgs[len(msgs)-1]
	if last.Type != proto.MsgResult {
		t.Fatalf("last message is %q (%s), want result", last.Type, last.Error)
	}
	b, _ := json.Marshal(last.Result)
	var rep stress.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("decode result: %v", err)
	}
	if rep.PagesVerified == 0 || rep.TotalCorruptions() != 0 {
		t.Errorf("report: %d pages verified, %d corruptions; want >0 and 0", rep.PagesVerified, rep.TotalCorruptions())
	}
	if rep.ElapsedSec < 2 {
		t.Errorf("ran %.1f s, asked for 2.5", rep.ElapsedSec)
	}
}

func TestBadRequestsAnswered(t *testing.T) {
	addr, client, host := startAgent(t)
	c, err := dial(addr, client, host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tests := []struct {
		name, cmd string
		body      any
		want      string
	}{
		{"unknown command", "format-disk", nil, "unknown command"},
		{"bad parameters", proto.CmdStress, proto.StressRequest{Config: stress.Config{Workers: -3, Mode: "sweep"}}, "bad stress parameters"},
		{"unknown mode", proto.CmdStress, proto.StressRequest{Config: stress.Config{Mode: "sideways"}}, "bad stress parameters"},
		{"not json", proto.CmdStress, "{{", "bad request body"},
		{"empty exec", proto.CmdExec, proto.ExecRequest{}, "empty argv"},
		// On a host the health check must never turn the host's swap off.
		{"health on a host", proto.CmdHealth, proto.HealthRequest{SwapoffBaseSec: 1}, "only in the guest"},
		{"page_owner baseline on a host", proto.CmdPageOwnerBaseline, nil, "only in the guest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := call(t, c, tt.cmd, tt.body)
			if len(msgs) == 0 {
				t.Fatal("no answer")
			}
			last := msgs[len(msgs)-1]
			if last.Type != proto.MsgError || !strings.Contains(last.Error, tt.want) {
				t.Errorf("got %+v, want an error containing %q", last, tt.want)
			}
		})
	}
	// The agent survived all of that.
	msgs := call(t, c, proto.CmdPing, nil)
	if len(msgs) != 1 || msgs[0].Type != proto.MsgResult {
		t.Errorf("ping after bad requests: %+v", msgs)
	}
}

func TestExecRunsProgram(t *testing.T) {
	addr, client, host := startAgent(t)
	c, err := dial(addr, client, host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := call(t, c, proto.CmdExec, proto.ExecRequest{Argv: []string{"sh", "-c", "echo hello; exit 3"}})
	last := msgs[len(msgs)-1]
	b, _ := json.Marshal(last.Result)
	var res proto.ExecResult
	json.Unmarshal(b, &res)
	if last.Type != proto.MsgResult || res.ExitCode != 3 || !strings.Contains(res.OutputTail, "hello") {
		t.Errorf("exec result %+v (%s), want exit 3 with output hello", res, last.Error)
	}
}

func TestWrongClientKeyRefused(t *testing.T) {
	addr, _, host := startAgent(t)
	_, stranger := newKey(t)
	c, err := dial(addr, stranger, host)
	if err == nil {
		c.Close()
		t.Fatal("agent accepted a client key it was not given")
	}
	if !strings.Contains(err.Error(), "unable to authenticate") {
		t.Errorf("unexpected error: %v", err)
	}
}

func TestWrongHostKeyDetected(t *testing.T) {
	addr, client, _ := startAgent(t)
	_, other := newKey(t)
	if c, err := dial(addr, client, other); err == nil {
		c.Close()
		t.Fatal("client accepted an agent whose host key is not the pinned one")
	}
}
