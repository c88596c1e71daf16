// Package agent serves the harness's commands over SSH inside the guest (or on
// a host, for tests): run the stress workers or an external program, read the
// kernel's counters, shut down.
package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"zswaprace/guest/proto"
	"zswaprace/stress"
)

// StressFunc runs one stress job. The agent as PID 1 runs it in a child
// process so that an OOM kill or a crash of the workers cannot take init down.
type StressFunc func(ctx context.Context, cfg stress.Config, progress func(stress.Progress)) (stress.Report, error)

// Server answers the harness's commands.
type Server struct {
	SSH        *ssh.ServerConfig
	Stress     StressFunc
	Hello      func() proto.Hello
	Shutdown   func() // called after the shutdown command is acknowledged
	DebugfsDir string // zswap counters; "" on a host
	VmstatPath string
	Log        *log.Logger
	// Health runs the health check (nil: the command is refused, as on a
	// host). The agent takes its baseline when a workload starts.
	Health *HealthEnv

	baseMu   sync.Mutex
	baseline *Baseline
	// The page_owner baseline, if the host asked for one.
	pageOwner     StackCounts
	pageOwnerSnap *proto.PageOwnerSnapshot
}

// takeBaseline records the memory baseline of the health check before a
// workload starts, with the page_owner baseline taken before it.
func (s *Server) takeBaseline() {
	if s.Health == nil {
		return
	}
	b := s.Health.Snapshot()
	s.baseMu.Lock()
	b.pageOwner, b.PageOwner = s.pageOwner, s.pageOwnerSnap
	s.baseline = b
	s.baseMu.Unlock()
}

// ServerConfig makes an SSH server configuration that accepts exactly one
// client key, with the given host key. Passwords and other methods are refused.
func ServerConfig(hostKeyPEM, authorizedKey []byte) (*ssh.ServerConfig, error) {
	signer, err := ssh.ParsePrivateKey(hostKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("parse host key: %w", err)
	}
	allowed, _, _, _, err := ssh.ParseAuthorizedKey(authorizedKey)
	if err != nil {
		return nil, fmt.Errorf("parse authorized key: %w", err)
	}
	want := allowed.Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(key.Marshal(), want) {
				return nil, nil
			}
			return nil, errors.New("unknown client key")
		},
	}
	cfg.AddHostKey(signer)
	return cfg, nil
}

// Serve accepts connections until ctx ends or the listener fails.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			if err := s.ServeConn(ctx, c); err != nil {
				s.logf("connection: %v", err)
			}
		}()
	}
}

// ServeConn serves one SSH connection (a TCP connection on a host, the
// virtio-serial port in a guest) until the client goes away.
func (s *Server) ServeConn(ctx context.Context, c net.Conn) error {
	conn, chans, reqs, err := ssh.NewServerConn(c, s.SSH)
	if err != nil {
		c.Close()
		return fmt.Errorf("ssh handshake: %w", err)
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	var wg sync.WaitGroup
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "only session channels")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.session(ctx, ch, creqs)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Server) session(ctx context.Context, ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			continue
		}
		req.Reply(true, nil)
		status := s.command(ctx, ch, strings.TrimSpace(payload.Command))
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

// command runs one command and never lets a panic escape: a dead PID 1
// panics the kernel, which the harness would blame on the kernel under test.
func (s *Server) command(ctx context.Context, ch ssh.Channel, name string) (status uint32) {
	// A lost channel (host gone) cancels the command.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &lineWriter{w: ch, onFail: cancel}
	defer func() {
		if r := recover(); r != nil {
			out.send(proto.Message{Type: proto.MsgError, Error: fmt.Sprintf("agent bug in %q: %v", name, r)})
			status = 2
		}
	}()
	result, err := s.dispatch(ctx, name, ch, out)
	if err != nil {
		out.send(proto.Message{Type: proto.MsgError, Error: err.Error()})
		return 1
	}
	out.send(proto.Message{Type: proto.MsgResult, Result: result})
	return 0
}

func (s *Server) dispatch(ctx context.Context, name string, ch ssh.Channel, out *lineWriter) (any, error) {
	switch name {
	case proto.CmdPing:
		if s.Hello == nil {
			return proto.Hello{}, nil
		}
		return s.Hello(), nil
	case proto.CmdCounters:
		if s.DebugfsDir == "" {
			return map[string]int64{}, nil
		}
		return stress.SampleKernel(s.DebugfsDir, s.VmstatPath)
	case proto.CmdShutdown:
		if s.Shutdown != nil {
			// Answer first; the reboot cuts the channel.
			time.AfterFunc(200*time.Millisecond, s.Shutdown)
		}
		return "shutting down", nil
	case proto.CmdStress:
		var req proto.StressRequest
		if err := readBody(ch, &req); err != nil {
			return nil, err
		}
		cfg := req.Config.WithDefaults()
		if s.DebugfsDir != "" && cfg.DebugfsDir == "" {
			cfg.DebugfsDir, cfg.VmstatPath = s.DebugfsDir, s.VmstatPath
		}
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("bad stress parameters: %w", err)
		}
		s.takeBaseline()
		return s.Stress(ctx, cfg, func(p stress.Progress) {
			out.send(proto.Message{Type: proto.MsgProgress, Progress: &p})
		})
	case proto.CmdExec:
		var req proto.ExecRequest
		if err := readBody(ch, &req); err != nil {
			return nil, err
		}
		if len(req.Argv) == 0 {
			return nil, errors.New("exec: empty argv")
		}
		if s.DebugfsDir != "" && req.DebugfsDir == "" {
			req.DebugfsDir, req.VmstatPath = s.DebugfsDir, s.VmstatPath
		}
		s.takeBaseline()
		return runExec(ctx, req, out)
	case proto.CmdHealth:
		var req proto.HealthRequest
		if err := readBody(ch, &req); err != nil {
			return nil, err
		}
		if s.Health == nil {
			return nil, errors.New("health: the health check turns swap off, so it runs only in the guest (as PID 1)")
		}
		if req.SwapoffBaseSec <= 0 || req.SwapoffSecPerMiB < 0 || req.StuckSec < 0 {
			return nil, fmt.Errorf("health: bad deadlines %+v", req)
		}
		s.baseMu.Lock()
		base := s.baseline
		s.baseMu.Unlock()
		start := time.Now()
		return s.Health.Check(ctx, req, base, func() {
			out.send(proto.Message{Type: proto.MsgProgress, Progress: &stress.Progress{ElapsedSec: time.Since(start).Seconds()}})
		})
	case proto.CmdPageOwnerBaseline:
		if s.Health == nil {
			return nil, errors.New("page-owner-baseline: the health check runs only in the guest (as PID 1)")
		}
		start := time.Now()
		counts, snap := s.Health.PageOwnerBaseline(ctx, func() {
			out.send(proto.Message{Type: proto.MsgProgress, Progress: &stress.Progress{ElapsedSec: time.Since(start).Seconds()}})
		})
		if snap == nil {
			return nil, fmt.Errorf("page-owner-baseline: no %s (a kernel with CONFIG_PAGE_OWNER, booted with page_owner=on, has it)", s.Health.PageOwner)
		}
		s.baseMu.Lock()
		s.pageOwner, s.pageOwnerSnap = counts, snap
		s.baseMu.Unlock()
		return *snap, nil
	case "":
		return nil, errors.New("no command given; commands: ping, counters, stress, exec, health, page-owner-baseline, shutdown")
	default:
		return nil, fmt.Errorf("unknown command %q; commands: ping, counters, stress, exec, health, page-owner-baseline, shutdown", name)
	}
}

func readBody(r io.Reader, v any) error {
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad request body (want one JSON object): %w", err)
	}
	return nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Printf(format, args...)
	}
}

// lineWriter writes one JSON message per line; safe for concurrent use.
type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	onFail func() // the reader is gone: stop the work
	failed bool
}

func (l *lineWriter) send(m proto.Message) {
	b, err := json.Marshal(m)
	if err != nil {
		b, _ = json.Marshal(proto.Message{Type: proto.MsgError, Error: "encode: " + err.Error()})
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed {
		return
	}
	if _, err := l.w.Write(append(b, '\n')); err != nil {
		l.failed = true
		if l.onFail != nil {
			l.onFail()
		}
	}
}

// ChildStress runs the stress job in a child process (self with the given
// arguments), passing the config on stdin and reading Messages from stdout.
func ChildStress(self string, args ...string) StressFunc {
	return func(ctx context.Context, cfg stress.Config, progress func(stress.Progress)) (stress.Report, error) {
		body, err := json.Marshal(cfg)
		if err != nil {
			return stress.Report{}, err
		}
		cmd := exec.CommandContext(ctx, self, args...)
		cmd.Stdin = bytes.NewReader(body)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return stress.Report{}, err
		}
		if err := cmd.Start(); err != nil {
			return stress.Report{}, fmt.Errorf("start stress workers: %w", err)
		}
		var rep *stress.Report
		var childErr string
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var m struct {
				Type     string           `json:"type"`
				Progress *stress.Progress `json:"progress"`
				Result   *stress.Report   `json:"result"`
				Error    string           `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				continue
			}
			switch {
			case m.Progress != nil:
				progress(*m.Progress)
			case m.Result != nil:
				rep = m.Result
			case m.Error != "":
				childErr = m.Error
			}
		}
		werr := cmd.Wait()
		switch {
		case rep != nil:
			return *rep, nil
		case childErr != "":
			return stress.Report{}, errors.New(childErr)
		case ctx.Err() != nil:
			return stress.Report{}, ctx.Err()
		default:
			return stress.Report{}, fmt.Errorf("stress workers died without a result (%v); an OOM kill shows on the console", werr)
		}
	}
}

// RunChild is the child side of ChildStress: config on stdin, Messages on stdout.
func RunChild(ctx context.Context, stdin io.Reader, stdout io.Writer) int {
	out := &lineWriter{w: stdout}
	var cfg stress.Config
	if err := json.NewDecoder(stdin).Decode(&cfg); err != nil {
		out.send(proto.Message{Type: proto.MsgError, Error: "stress child: bad config: " + err.Error()})
		return 1
	}
	rep, err := stress.Run(ctx, cfg, func(p stress.Progress) {
		out.send(proto.Message{Type: proto.MsgProgress, Progress: &p})
	})
	if err != nil {
		out.send(proto.Message{Type: proto.MsgError, Error: err.Error()})
		return 1
	}
	out.send(proto.Message{Type: proto.MsgResult, Result: rep})
	return 0
}
