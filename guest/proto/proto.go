// Package proto holds the messages the host and the guest agent exchange over SSH.
//
// Each SSH exec request names one command. The request body (JSON) goes to
// the session's stdin; the agent answers with JSON lines on stdout, each a
// Message: any number of progress or output lines, then exactly one result or
// error. The exit status is 0 for a result and 1 for an error.
package proto

import (
	"zswaprace/stress"
)

// Commands the agent understands.
const (
	CmdStress   = "stress"   // body: StressRequest; result: stress.Report
	CmdExec     = "exec"     // body: ExecRequest; result: ExecResult
	CmdCounters = "counters" // no body; result: map[string]int64
	CmdPing     = "ping"     // no body; result: Hello
	CmdShutdown = "shutdown" // no body; the guest reboots, which ends QEMU under -no-reboot
)

// Message is one line of the agent's output.
type Message struct {
	Type     string           `json:"type"` // "progress", "output", "result", "error"
	Progress *stress.Progress `json:"progress,omitempty"`
	Output   string           `json:"output,omitempty"`
	Result   any              `json:"result,omitempty"`
	Error    string           `json:"error,omitempty"`
}

// StressRequest asks the agent to run the stress workers.
type StressRequest struct {
	Config stress.Config `json:"config"`
}

// ExecRequest asks the agent to run a program inside the guest (an external
// workload) while the pool controller swings, as for the stress workers.
type ExecRequest struct {
	Argv        []string     `json:"argv"`
	DurationSec float64      `json:"duration_s"` // kill the program after this long; 0 = let it finish
	Swing       stress.Swing `json:"swing"`
	DebugfsDir  string       `json:"debugfs_dir"`
	VmstatPath  string       `json:"vmstat_path"`
}

// ExecResult is what an external workload did.
type ExecResult struct {
	ExitCode     int              `json:"exit_code"` // -1 if killed by a signal
	Signal       string           `json:"signal,omitempty"`
	TimedOut     bool             `json:"timed_out"` // stopped by the harness after DurationSec: not a failure
	ElapsedSec   float64          `json:"elapsed_s"`
	OutputTail   string           `json:"output_tail"`
	KernelBefore map[string]int64 `json:"kernel_before"`
	KernelAfter  map[string]int64 `json:"kernel_after"`
}

// Hello answers a ping.
type Hello struct {
	Kernel  string `json:"kernel"`   // uname release
	PID1    bool   `json:"pid1"`     // running as init inside a VM
	SwapKiB int64  `json:"swap_kib"` // swap the agent turned on
	MemKiB  int64  `json:"mem_kib"`
	// CPUs is the number of CPUs online (/sys/devices/system/cpu/online).
	CPUs int `json:"cpus"`
}

// Message types: Message.Type is one of these.
const (
	MsgProgress = "progress" // a heartbeat; Progress is set for the stress workers
	MsgOutput   = "output"   // a chunk of an external workload's output
	MsgResult   = "result"   // the command's result, in Result; the last message
	MsgError    = "error"    // the command failed, Error says why; the last message
)

// What the agent prints on the guest's console, which the harness reads
// back from the console log: every line starts with ConsolePrefix.
const (
	ConsolePrefix = "zh-agent: "
	// ConsoleReady starts the line printed once the agent serves on its port.
	ConsoleReady = ConsolePrefix + "ready"
	// ConsoleShuttingDown is printed before a reboot the harness asked for.
	ConsoleShuttingDown = ConsolePrefix + "shutting down"
	// ConsoleFatal starts the line printed before the agent's init gives up
	// and reboots the guest.
	ConsoleFatal = ConsolePrefix + "fatal"
)
