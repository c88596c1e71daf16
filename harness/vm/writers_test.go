package vm

import (
	"errors"
	"io"
	"testing"
)

func TestTailWriterKeepsTheTail(t *testing.T) {
	w := &tailWriter{max: 8}
	io.WriteString(w, "0123")
	io.WriteString(w, "456789ab")
	if got := w.String(); got != "456789ab" || w.Len() != 8 {
		t.Errorf("kept %q (%d bytes)", got, w.Len())
	}
	b := w.Bytes()
	b[0] = 'x'
	if w.String()[0] != '4' {
		t.Error("Bytes is not a copy")
	}
}

type failAfter struct{ n int }

func (f *failAfter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("no space left on device")
	}
	f.n--
	return len(p), nil
}

// A console log that cannot be written must not stop the other writers
// behind the same io.MultiWriter (QEMU would block on its serial port).
func TestKeepGoingSwallowsTheFirstError(t *testing.T) {
	k := &keepGoing{w: &failAfter{n: 1}}
	tail := &tailWriter{max: 100}
	mw := io.MultiWriter(k, tail)
	for _, s := range []string{"a", "b", "c"} {
		if n, err := io.WriteString(mw, s); n != 1 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if tail.String() != "abc" || k.Err() == nil || k.Err().Error() != "no space left on device" {
		t.Errorf("tail %q, error %v", tail.String(), k.Err())
	}
	var none *keepGoing
	if none.Err() != nil {
		t.Error("nil keepGoing has an error")
	}
}
