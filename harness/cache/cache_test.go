package cache

import (
	"testing"
	"time"
)

func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	unlock, err := Lock(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	waited := false
	go func() {
		u2, err := Lock(dir, func(string) { waited = true })
		if err != nil {
			t.Error(err)
		}
		close(got)
		u2()
	}()
	select {
	case <-got:
		t.Fatal("a second holder got the lock while the first held it")
	case <-time.After(200 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not handed over")
	}
	if !waited {
		t.Error("the waiter did not say it was waiting")
	}
}
