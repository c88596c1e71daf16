// Package fault types the harness's errors by whose fault they are, so that
// callers decide with errors.As and never by matching text.
package fault

import (
	"errors"
	"fmt"
)

// Kind says whose fault an error is.
type Kind int

const (
	// Usage: the user asked for something that cannot work (a patch that
	// neither applies nor reverses, a path that is not a kernel). Printed as
	// "bad input" and exit 3: exit 64, "usage error", is for what the
	// command line alone shows to be wrong (harness/cli.go).
	Usage Kind = iota + 1
	// Build: the kernel did not build.
	Build
	// Boot: the kernel built but did not boot to the agent.
	Boot
	// Infra: the host or the harness failed (QEMU died, disk full, ...).
	Infra
)

func (k Kind) String() string {
	switch k {
	case Usage:
		return "bad input"
	case Build:
		return "build failure"
	case Boot:
		return "boot failure"
	case Infra:
		return "infrastructure error"
	}
	return "error"
}

// Error is an error of a known kind. Detail carries what a user needs to see
// beyond the one-line message: compiler errors, a console tail.
type Error struct {
	Kind   Kind
	Op     string
	Err    error
	Detail string
	Log    string // path of the full log, if any
}

func (e *Error) Error() string {
	msg := e.Op
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Log != "" {
		msg += " (full log: " + e.Log + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New makes an Error of kind k.
func New(k Kind, op string, err error) *Error { return &Error{Kind: k, Op: op, Err: err} }

// Newf makes an Error of kind k with a formatted cause.
func Newf(k Kind, op, format string, args ...any) *Error {
	return &Error{Kind: k, Op: op, Err: fmt.Errorf(format, args...)}
}

// KindOf returns the kind of err, or Infra for an untyped error: an error
// nobody classified is the harness's own problem, never the kernel's.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Infra
}

// DetailOf returns the detail text of err, if it has one.
func DetailOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Detail
	}
	return ""
}
