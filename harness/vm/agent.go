package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"zswaprace/guest/proto"
)

// AgentError is an error the agent itself reported (bad parameters, a
// worker that could not start): the command ran and said no.
type AgentError struct{ Msg string }

func (e *AgentError) Error() string { return "guest agent: " + e.Msg }

// Command runs one agent command with an optional JSON body. Every message
// the agent sends is passed to onMsg as it arrives (progress is the
// heartbeat); the result is decoded into result. ctx cancels the command.
func (m *Machine) Command(ctx context.Context, name string, body any, onMsg func(proto.Message), result any) error {
	if m.client == nil {
		return errors.New("agent not connected")
	}
	return Command(ctx, m.client, name, body, onMsg, result)
}

// Command runs an agent command over an SSH client (see Machine.Command).
func Command(ctx context.Context, client *ssh.Client, name string, body any, onMsg func(proto.Message), result any) error {
	s, err := client.NewSession()
	if err != nil {
		return fmt.Errorf("ssh session: %w", err)
	}
	defer s.Close()
	stdin, err := s.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return err
	}
	if err := s.Start(name); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	if body != nil {
		if err := json.NewEncoder(stdin).Encode(body); err != nil {
			return fmt.Errorf("send %s request: %w", name, err)
		}
	}
	stdin.Close()
	stop := context.AfterFunc(ctx, func() { s.Close() })
	defer stop()
	var final *proto.Message
	var raw json.RawMessage
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var msg struct {
			proto.Message
			Result json.RawMessage `json:"result"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return fmt.Errorf("agent sent a line that is not a message: %q", truncate(sc.Text(), 200))
		}
		if onMsg != nil {
			onMsg(msg.Message)
		}
		if msg.Type == proto.MsgResult || msg.Type == proto.MsgError {
			m := msg.Message
			final, raw = &m, msg.Result
		}
	}
	io.Copy(io.Discard, stdout)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if final == nil {
		if err := sc.Err(); err != nil {
			return fmt.Errorf("%s: connection to the agent lost: %w", name, err)
		}
		return fmt.Errorf("%s: connection to the agent lost before a result", name)
	}
	if final.Type == proto.MsgError {
		return &AgentError{Msg: final.Error}
	}
	if result != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, result); err != nil {
			return fmt.Errorf("%s: decode result: %w", name, err)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return strings.TrimSpace(s)
}
