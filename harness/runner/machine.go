package runner

import (
	"context"

	"zswaprace/guest/proto"
	"zswaprace/harness/console"
	"zswaprace/harness/vm"
)

// machine is what the watch loop uses of a booted VM whose agent is up:
// *vm.Machine in a run, a fake that replays a console log in the tests.
type machine interface {
	// ConsoleBytes is the console so far; ConsoleLen its length.
	ConsoleBytes() []byte
	ConsoleLen() int
	// ConsoleReports delivers every kernel report on the console, from
	// boot on, in order, as its header arrives (a provisional report: see
	// console.Watcher); closed when ctx ends.
	ConsoleReports(ctx context.Context) <-chan console.Report
	// Command runs an agent command (see vm.Machine.Command): onMsg sees
	// every message (progress is the heartbeat), result gets the result.
	Command(ctx context.Context, name string, body any, onMsg func(proto.Message), result any) error
	// Exited is closed when the machine has stopped.
	Exited() <-chan struct{}
	// Close shuts the guest down in order (waiting for it); Kill stops it at
	// once, and Exited is closed soon after.
	Close() error
	Kill()
	// Events are QMP events ("GUEST_PANICKED", "SHUTDOWN(guest-reset)").
	Events() []string
	// Stderr is what QEMU said on its standard error.
	Stderr() string
	// LogError is the first error writing the console log, if any.
	LogError() error
}

var _ machine = (*vm.Machine)(nil)
