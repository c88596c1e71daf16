package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"zswaprace/guest/proto"
	"zswaprace/stress"
)

// runExec runs an external workload with the same pool swing and counters
// as the stress workers. Its output is streamed as "output" messages, and a
// progress message every second is the heartbeat the host watches.
func runExec(ctx context.Context, req proto.ExecRequest, out *lineWriter) (proto.ExecResult, error) {
	var res proto.ExecResult
	if req.DebugfsDir != "" {
		res.KernelBefore, _ = stress.SampleKernel(req.DebugfsDir, req.VmstatPath)
	}
	runCtx, stop := context.WithCancel(ctx)
	swung := make(chan struct{})
	if req.Swing.PeriodMs > 0 {
		go func() { defer close(swung); stress.SwingPool(runCtx, req.Swing) }()
	} else {
		close(swung)
	}
	// The pool limit is restored before the result goes back.
	defer func() { stop(); <-swung }()
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tail := &tailBuffer{max: 8 << 10, out: out}
	cmd.Stdout, cmd.Stderr = tail, tail
	// A killed program's descendants may hold its output open: do not wait
	// for them after it is gone.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("start %s: %w", req.Argv[0], err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var limit <-chan time.Time
	if req.DurationSec > 0 {
		t := time.NewTimer(time.Duration(req.DurationSec * float64(time.Second)))
		defer t.Stop()
		limit = t.C
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var werr error
wait:
	for {
		select {
		case werr = <-done:
			break wait
		case <-tick.C:
			out.send(proto.Message{Type: proto.MsgProgress, Progress: &stress.Progress{ElapsedSec: time.Since(start).Seconds()}})
		case <-limit:
			res.TimedOut = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			limit = nil
		case <-ctx.Done():
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return res, ctx.Err()
		}
	}
	res.ElapsedSec = time.Since(start).Seconds()
	res.OutputTail = tail.String()
	var ee *exec.ExitError
	switch {
	case werr == nil:
	case errors.As(werr, &ee):
		res.ExitCode = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			res.Signal = ws.Signal().String()
		}
	default:
		return res, werr
	}
	if req.DebugfsDir != "" {
		res.KernelAfter, _ = stress.SampleKernel(req.DebugfsDir, req.VmstatPath)
	}
	return res, nil
}

// tailBuffer keeps the last max bytes of a program's output and forwards
// each write to the host as it arrives.
type tailBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
	out *lineWriter
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.out.send(proto.Message{Type: proto.MsgOutput, Output: string(p)})
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf.Write(p)
	if over := t.buf.Len() - t.max; over > 0 {
		t.buf.Next(over)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.buf.String()
}
