// Command guest is the harness's in-guest agent. As PID 1 of the initramfs it
// mounts file systems, turns on swap, and serves the host over SSH on a
// virtio-serial port. Run as "guest serve" it is an ordinary process that
// serves on a TCP address, which is how its tests drive it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"zswaprace/guest/agent"
	"zswaprace/guest/proto"
	"zswaprace/guest/sysinit"
)

const (
	hostKeyPath       = "/etc/zh/host_key"
	authorizedKeyPath = "/etc/zh/authorized_key"
	portName          = "zh.agent"
	childArg          = "stress-child"
	swapoffArg        = "swapoff-child" // the health check's swapoff, killable
	agentArg          = "agent"         // the agent under PID 1's supervision
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == childArg {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		os.Exit(agent.RunChild(ctx, os.Stdin, os.Stdout))
	}
	if len(os.Args) > 2 && os.Args[1] == swapoffArg {
		os.Exit(agent.RunSwapoff(os.Args[2], os.Stderr))
	}
	if os.Getpid() == 1 {
		runInit()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == agentArg {
		runAgent()
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serveHost(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "guest:", err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintln(os.Stderr, "usage: guest serve -listen ADDR -host-key FILE -authorized-key FILE\n(as PID 1 of an initramfs it sets up the guest and serves on the virtio-serial port)")
	os.Exit(2)
}

func serveHost(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to serve on")
	hostKey := fs.String("host-key", "", "PEM private host key")
	authKey := fs.String("authorized-key", "", "the one client public key accepted (authorized_keys format)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := newServer(*hostKey, *authKey, false)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", l.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	srv.Shutdown = stop
	return srv.Serve(ctx, l)
}

func newServer(hostKeyFile, authKeyFile string, pid1 bool) (*agent.Server, error) {
	hk, err := os.ReadFile(hostKeyFile)
	if err != nil {
		return nil, fmt.Errorf("host key: %w", err)
	}
	ak, err := os.ReadFile(authKeyFile)
	if err != nil {
		return nil, fmt.Errorf("authorized key: %w", err)
	}
	cfg, err := agent.ServerConfig(hk, ak)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	srv := &agent.Server{
		SSH:    cfg,
		Stress: agent.ChildStress(self, childArg),
		Log:    log.New(os.Stderr, proto.ConsolePrefix, 0),
		Hello: func() proto.Hello {
			var u unix.Utsname
			unix.Uname(&u)
			return proto.Hello{
				Kernel:  unix.ByteSliceToString(u.Release[:]),
				PID1:    pid1,
				SwapKiB: sysinit.MemKiB("SwapTotal"),
				MemKiB:  sysinit.MemKiB("MemTotal"),
				CPUs:    sysinit.OnlineCPUs(),
			}
		},
	}
	if pid1 {
		srv.DebugfsDir, srv.VmstatPath = "/sys/kernel/debug/zswap", "/proc/vmstat"
		srv.Health = agent.GuestHealth(srv.DebugfsDir, agent.ChildSwapoff(self, swapoffArg))
	}
	return srv, nil
}

// runInit never returns: if PID 1 exited the kernel would panic, and the
// harness would blame the kernel under test. It sets the guest up, then only
// supervises: the agent runs as its child (restarted if it dies), and
// orphaned processes are reaped. On a fatal error it says why on the
// console and reboots, which ends QEMU.
func runInit() {
	if err := sysinit.Mount(); err != nil {
		fatal(err)
	}
	signal.Ignore(syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	dev := sysinit.CmdlineValue("zh.swap", "/dev/vda")
	if dev != "none" {
		size, err := sysinit.Swapon(dev)
		if err != nil {
			fatal(err)
		}
		say("swap on %s, %d MiB", dev, size>>20)
	}
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	attr := &os.ProcAttr{Files: []*os.File{os.Stdin, os.Stdout, os.Stderr}}
	for restarts := 0; ; restarts++ {
		p, err := os.StartProcess(self, []string{self, agentArg}, attr)
		if err != nil {
			fatal(err)
		}
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, 0, nil)
			if err == unix.EINTR {
				continue
			}
			if err != nil || pid == p.Pid {
				say("agent exited (%v, %v); restarting it", ws, err)
				break
			}
		}
		if restarts > 20 {
			fatal(errors.New("the agent keeps dying"))
		}
		time.Sleep(time.Second)
	}
}

// runAgent serves the host on the virtio-serial port; PID 1 restarts it if
// it dies.
func runAgent() {
	srv, err := newServer(hostKeyPath, authorizedKeyPath, true)
	if err != nil {
		fatal(err)
	}
	srv.Shutdown = func() { fmt.Println(proto.ConsoleShuttingDown); sysinit.Reboot() }
	port, err := sysinit.FindPort(portName, 10*time.Second)
	if err != nil {
		fatal(err)
	}
	fmt.Printf("%s on %s\n", proto.ConsoleReady, port)
	for {
		f, err := os.OpenFile(port, os.O_RDWR, 0)
		if err != nil {
			fatal(err)
		}
		if err := srv.ServeConn(context.Background(), fileConn{f}); err != nil {
			say("%v", err)
		}
		f.Close()
		time.Sleep(100 * time.Millisecond)
	}
}

func say(format string, args ...any) { fmt.Printf(proto.ConsolePrefix+format+"\n", args...) }

// fatal says why on the console and reboots the guest, which ends QEMU.
func fatal(err error) {
	fmt.Printf("%s: %v\n", proto.ConsoleFatal, err)
	time.Sleep(time.Second)
	sysinit.Reboot()
	select {}
}

// fileConn lets SSH run over a character device.
type fileConn struct{ *os.File }

type portAddr struct{}

func (portAddr) Network() string { return "virtio-serial" }
func (portAddr) String() string  { return portName }

func (fileConn) LocalAddr() net.Addr  { return portAddr{} }
func (fileConn) RemoteAddr() net.Addr { return portAddr{} }
