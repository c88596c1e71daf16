package vm

import (
	"io"
	"sync"
)

// tailWriter keeps the last max bytes written.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tailWriter) String() string { return string(t.Bytes()) }

// Len is how many bytes are kept.
func (t *tailWriter) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.buf)
}

// Bytes returns a copy of what is kept.
func (t *tailWriter) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}

// keepGoing passes writes on until the first error, then drops them and
// keeps the error: an io.MultiWriter stops at a failing writer, and QEMU
// would block on a console nobody reads.
type keepGoing struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

func (k *keepGoing) Write(p []byte) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err == nil {
		_, k.err = k.w.Write(p)
	}
	return len(p), nil
}

func (k *keepGoing) Err() error {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}
