package console

import (
	"fmt"
	"os"
	"testing"
)

func TestDebugDump(t *testing.T) {
	path := os.Getenv("DUMP")
	if path == "" {
		t.Skip()
	}
	f, _ := readCorpus(path)
	for _, r := range Parse(f.body) {
		fmt.Printf("=== %s | %s | %s [%d,%d)\n--- raw first/last lines:\n%q\n...\n%q\n--- text:\n%s", r.Kind, r.Title, r.Function, r.Start, r.End,
			Tail(f.body[r.Start:r.Start+200], 100)[:120], Tail(f.body[r.Start:r.End], 1), r.Text)
	}
}
