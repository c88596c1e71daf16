// Package vm boots a kernel in QEMU with the guest agent as init, a fresh
// swap disk and the console captured, and talks to the agent over SSH on a
// virtio-serial port.
package vm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/digitalocean/go-qemu/qmp"
	"golang.org/x/crypto/ssh"

	"zswaprace/harness/console"
	"zswaprace/harness/fault"
	"zswaprace/harness/initramfs"
)

// Config describes one VM.
type Config struct {
	QEMU        string   // binary; default qemu-system-x86_64
	Kernel      string   // bzImage
	Initrd      string   // the agent's initramfs
	MemMiB      int      // default DefaultMemMiB
	CPUs        int      // default DefaultCPUs
	SwapMiB     int      // default DefaultSwapMiB
	Cmdline     []string // extra kernel parameters
	Dir         string   // where console.log goes
	Accel       string   // "auto" (default), "kvm" or "tcg"
	BootTimeout time.Duration
}

// Defaults for a zero Config field; the harness's flags default to them.
const (
	// DefaultCPUs is one: on a host with N cores, N one-CPU guests found
	// the widened race sooner than N/2 two-CPU guests (README, "SMP").
	DefaultCPUs    = 1
	DefaultMemMiB  = 256
	DefaultSwapMiB = 512 // 200 MiB ran the guest out of memory with the default workload
)

// Machine is a running VM.
type Machine struct {
	cfg     Config
	Accel   string
	LogPath string
	Booted  time.Duration // QEMU start to agent ready

	conBuf *tailWriter      // the whole console, for parsing
	watch  *console.Watcher // spots kernel reports as they arrive

	cmd      *exec.Cmd
	tmp      string // sockets and swap disk
	logFile  *os.File
	logOut   *keepGoing // the console log; a full disk must not stall the guest
	mon      *qmp.SocketMonitor
	client   *ssh.Client
	exited   chan struct{}
	exitErr  error
	stderr   *tailWriter
	mu       sync.Mutex
	events   []string
	closeOne sync.Once
}

func (c *Config) defaults() {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.MemMiB == 0 {
		c.MemMiB = DefaultMemMiB
	}
	if c.CPUs == 0 {
		c.CPUs = DefaultCPUs
	}
	if c.SwapMiB == 0 {
		c.SwapMiB = DefaultSwapMiB
	}
	if c.Accel == "" || c.Accel == "auto" {
		c.Accel = Accel()
		noteTCG()
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 45 * time.Second * Scale(c.Accel)
	}
}

// Start launches QEMU. The caller must Close the machine.
func Start(ctx context.Context, cfg Config) (*Machine, error) {
	cfg.defaults()
	qemu, err := exec.LookPath(cfg.QEMU)
	if err != nil {
		return nil, fault.Newf(fault.Infra, "qemu", "%s not found in PATH: install QEMU with 'apt-get install qemu-system-x86' (or run scripts/install-deps.sh)", cfg.QEMU)
	}
	if err := CheckKernel(cfg.Kernel); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fault.New(fault.Infra, "run directory", err)
	}
	// Unix socket paths must be short: keep them out of the output directory.
	tmp, err := makeTemp()
	if err != nil {
		return nil, fault.New(fault.Infra, "temp dir", err)
	}
	m := &Machine{cfg: cfg, Accel: cfg.Accel, tmp: tmp, exited: make(chan struct{}), stderr: &tailWriter{max: 4096}}
	m.LogPath = filepath.Join(cfg.Dir, "console.log")
	if m.logFile, err = os.Create(m.LogPath); err != nil {
		os.RemoveAll(tmp)
		return nil, fault.New(fault.Infra, "console log", err)
	}
	swap := filepath.Join(tmp, "swap.img")
	if err := makeSparse(swap, int64(cfg.SwapMiB)<<20); err != nil {
		m.cleanup()
		return nil, fault.New(fault.Infra, "swap disk", err)
	}
	m.conBuf = &tailWriter{max: 64 << 20}
	// Every kind, warnings included: the runner decides what ends a run
	// and what only marks it.
	m.watch = console.NewWatcher()
	m.cmd = exec.Command(qemu, m.args(swap)...)
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	m.logOut = &keepGoing{w: m.logFile}
	m.cmd.Stdout = io.MultiWriter(m.logOut, m.conBuf, m.watch)
	m.cmd.Stderr = io.MultiWriter(m.stderr, m.logOut)
	if err := m.cmd.Start(); err != nil {
		m.cleanup()
		return nil, fault.New(fault.Infra, "start qemu", err)
	}
	go func() {
		m.exitErr = m.cmd.Wait()
		close(m.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			m.Kill()
		case <-m.exited:
		}
	}()
	if err := m.connectQMP(); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// CheckKernel rejects a path that is not an x86 bzImage before QEMU does,
// with a clearer message. It reads only the header: callers check the
// image before any slow step (building the agent, starting QEMU).
func CheckKernel(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fault.Newf(fault.Usage, "kernel", "%v", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
		return fault.Newf(fault.Usage, "kernel", "%s is not a regular file: pass a bzImage", path)
	}
	hdr := make([]byte, 0x206)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return fault.Newf(fault.Usage, "kernel", "%s is not a bootable x86 kernel image (bzImage): no 'HdrS' boot header; pass arch/x86/boot/bzImage, not vmlinux", path)
	}
	return nil
}

// truncation says when the bzImage at path is shorter than its boot
// header says it is ("" when it is not, or cannot be read): setup sectors
// at 0x1f1 (0 means 4) plus the protected-mode part, syssize 16-byte
// paragraphs at 0x1f4.
func truncation(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	hdr := make([]byte, 0x206)
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return ""
	}
	setup := int64(hdr[0x1f1])
	if setup == 0 {
		setup = 4
	}
	want := (setup+1)*512 + int64(binary.LittleEndian.Uint32(hdr[0x1f4:0x1f8]))*16
	if st.Size() < want {
		return fmt.Sprintf("%s is %d bytes, but its boot header says %d: the image is truncated (an interrupted copy or a full disk?)", path, st.Size(), want)
	}
	return ""
}

func makeSparse(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dialSocket waits for QEMU to create a unix socket and connects to it.
func (m *Machine) dialSocket(name string, timeout time.Duration) (net.Conn, error) {
	path := filepath.Join(m.tmp, name)
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			return c, nil
		}
		select {
		case <-m.exited:
			return nil, m.qemuDied("before its sockets were up")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fault.Newf(fault.Infra, "qemu", "no %s socket after %s", name, timeout)
		}
	}
}

func (m *Machine) connectQMP() error {
	// Wait for the socket to exist, then let go-qemu dial it.
	c, err := m.dialSocket("qmp.sock", 30*time.Second)
	if err != nil {
		return err
	}
	c.Close()
	mon, err := qmp.NewSocketMonitor("unix", filepath.Join(m.tmp, "qmp.sock"), 10*time.Second)
	if err != nil {
		return fault.New(fault.Infra, "qmp", err)
	}
	if err := mon.Connect(); err != nil {
		return fault.New(fault.Infra, "qmp handshake", err)
	}
	m.mon = mon
	events, err := mon.Events(context.Background())
	if err != nil {
		return fault.New(fault.Infra, "qmp events", err)
	}
	// Drain events in their own goroutine: an unread channel blocks every
	// later command.
	go func() {
		for e := range events {
			m.mu.Lock()
			name := e.Event
			if reason, ok := e.Data["reason"].(string); ok {
				name += "(" + reason + ")"
			}
			m.events = append(m.events, name)
			m.mu.Unlock()
		}
	}()
	return nil
}

// Events returns the QMP events seen so far, with the reason when QEMU
// gives one: "SHUTDOWN(guest-reset)", "GUEST_PANICKED", "STOP", ...
func (m *Machine) Events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.events...)
}

// QMP runs a QMP command, e.g. "stop" to freeze the guest.
func (m *Machine) QMP(command string) error {
	if m.mon == nil {
		return errors.New("no qmp connection")
	}
	b, _ := json.Marshal(qmp.Command{Execute: command})
	_, err := m.mon.Run(b)
	return err
}

// Exited is closed when QEMU has exited.
func (m *Machine) Exited() <-chan struct{} { return m.exited }

// ConsoleBytes returns a copy of the console so far (its last 64 MiB).
func (m *Machine) ConsoleBytes() []byte { return m.conBuf.Bytes() }

// ConsoleLen is how many bytes ConsoleBytes would return.
func (m *Machine) ConsoleLen() int { return m.conBuf.Len() }

// ConsoleReports returns a channel that receives every kernel report of
// every kind on the console, from boot on, in order, as soon as its header
// line has arrived; each is provisional (see console.Watcher). Report.Start
// counts from the first byte of the console, as ConsoleBytes does while the
// console is under 64 MiB. The channel is closed when ctx ends.
func (m *Machine) ConsoleReports(ctx context.Context) <-chan console.Report {
	return m.watch.Stream(ctx)
}

// qemuDied describes an unexpected QEMU exit.
func (m *Machine) qemuDied(when string) error {
	msg := strings.TrimSpace(m.stderr.String())
	if msg == "" {
		msg = fmt.Sprint(m.exitErr)
	}
	return &fault.Error{Kind: fault.Infra, Op: "qemu exited " + when, Err: errors.New(msg), Detail: console.Tail(m.conBuf.Bytes(), 20)}
}

// ConnectAgent waits for the agent's SSH server and returns when a command
// can be sent. A kernel that never gets there is a boot failure carrying the
// console tail (and the panic, if it panicked).
func (m *Machine) ConnectAgent(ctx context.Context, keys *initramfs.Keys) error {
	start := time.Now()
	conn, err := m.dialSocket("agent.sock", 30*time.Second)
	if err != nil {
		return err
	}
	cfg := &ssh.ClientConfig{
		User:            "harness",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(keys.Client)},
		HostKeyCallback: ssh.FixedHostKey(keys.HostPublic),
	}
	type result struct {
		c   ssh.Conn
		ch  <-chan ssh.NewChannel
		rq  <-chan *ssh.Request
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, ch, rq, err := ssh.NewClientConn(conn, "zh.agent", cfg)
		done <- result{c, ch, rq, err}
	}()
	timer := time.NewTimer(m.cfg.BootTimeout)
	defer timer.Stop()
	fail := func(op string, err error) error {
		conn.Close()
		return m.bootFailure(op, err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			return fail("ssh handshake with the agent", r.err)
		}
		m.client = ssh.NewClient(r.c, r.ch, r.rq)
		m.Booted = time.Since(start)
		return nil
	case <-m.exited:
		return fail("kernel exited before the agent came up", nil)
	case <-timer.C:
		return fail(fmt.Sprintf("agent not up after %s", m.cfg.BootTimeout), nil)
	case <-ctx.Done():
		conn.Close()
		return fault.New(fault.Infra, "boot interrupted", ctx.Err())
	}
}

func (m *Machine) bootFailure(op string, err error) error {
	// Give the console a moment to flush a panic that caused the exit.
	select {
	case <-m.exited:
	case <-time.After(2 * time.Second):
	}
	log := m.conBuf.Bytes()
	reps := console.Parse(log)
	detail := console.Tail(log, 30)
	if strings.TrimSpace(detail) == "" {
		detail = "(the console is empty: the kernel printed nothing)"
	}
	if hint := truncation(m.cfg.Kernel); hint != "" {
		detail += "\n" + hint
	}
	if len(reps) > 0 {
		// The kernel's own words beat the symptom we saw (a reset socket).
		if err != nil {
			detail = "(" + op + ": " + err.Error() + ")\n" + detail
		}
		op, err = "kernel did not boot to the agent", fmt.Errorf("%s", reps[0].Title)
		return &fault.Error{Kind: fault.Boot, Op: op, Err: err, Detail: detail, Log: m.LogPath}
	}
	select {
	case <-m.exited:
		if s := strings.TrimSpace(m.stderr.String()); s != "" {
			return &fault.Error{Kind: fault.Infra, Op: "qemu: " + op, Err: errors.New(s), Detail: detail, Log: m.LogPath}
		}
		// QEMU ended by itself with nothing to say: the guest reset or
		// powered off before the agent was up (a truncated or corrupt
		// image resets at once). The socket error is only the symptom.
		if err != nil {
			detail = "(" + op + ": " + err.Error() + ")\n" + detail
		}
		how := "QEMU exited"
		if ev := m.Events(); len(ev) > 0 {
			how += " after " + strings.Join(ev, ", ")
		}
		return &fault.Error{Kind: fault.Boot, Op: "the kernel did not boot",
			Err: fmt.Errorf("%s before the agent came up", how), Detail: detail, Log: m.LogPath}
	default:
	}
	if err == nil {
		err = errors.New("no crash on the console")
	} else {
		op = "the kernel did not boot to the agent: " + op
	}
	return &fault.Error{Kind: fault.Boot, Op: op, Err: err, Detail: detail, Log: m.LogPath}
}

// Close shuts the guest down (asking the agent, then QMP quit, then
// SIGKILL to QEMU's process group) and removes the swap disk.
func (m *Machine) Close() error {
	m.closeOne.Do(func() {
		// Each step may block on a wedged guest or QEMU, so none is
		// waited for longer than its deadline.
		if m.client != nil {
			go func() {
				if s, err := m.client.NewSession(); err == nil {
					s.Start("shutdown")
					s.Wait()
				}
			}()
		}
		select {
		case <-m.exited:
		case <-time.After(5 * time.Second):
			if m.mon != nil {
				go m.QMP("quit")
			}
			select {
			case <-m.exited:
			case <-time.After(5 * time.Second):
				m.Kill()
				<-m.exited
			}
		}
		m.cleanup()
	})
	return nil
}

// Kill stops QEMU and everything it started at once; Close still has to
// be called.
func (m *Machine) Kill() {
	if m.cmd != nil && m.cmd.Process != nil {
		syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	}
}

func (m *Machine) cleanup() {
	if m.client != nil {
		m.client.Close()
	}
	if m.mon != nil {
		m.mon.Disconnect()
	}
	if m.logFile != nil {
		m.logFile.Close()
	}
	os.RemoveAll(m.tmp)
}

// Stderr is the tail of what QEMU printed on its standard error.
func (m *Machine) Stderr() string { return strings.TrimSpace(m.stderr.String()) }

// LogError is the first error writing the console log (a full disk), if any.
func (m *Machine) LogError() error { return m.logOut.Err() }
