// Command pagedump makes the real page_owner sample of the agent's parser
// test (guest/agent/testdata/page_owner.txt). Run it in the guest of a
// kernel built with --debug:
//
//	CGO_ENABLED=0 go build -o /tmp/pagedump ./scripts/pagedump
//	bin/harness run --kernel DEBUG_BZIMAGE --workload /tmp/pagedump --duration 0
//
// It pushes memory to swap (so zswap's pool has pages), then copies the
// first records of /sys/kernel/debug/page_owner, every 40th record after
// them, and records of zswap's pool pages, to the console between two
// marker lines (cut them out of the run's console.log), with how long the
// whole read took.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"time"
)

// poolPage is a record of a page of zswap's pool (its allocation).
var poolPage = regexp.MustCompile(`zbud_zpool_malloc|zbud_alloc|z3fold_alloc|zs_malloc`)

func main() {
	mib := flag.Int("mib", 320, "memory to touch first, MiB (more than the guest has: the rest goes to swap)")
	first := flag.Int("first", 40<<10, "bytes of the first records to copy")
	every := flag.Int("every", 40, "then copy every so many records...")
	spread := flag.Int("spread", 90<<10, "... up to this many bytes")
	zswap := flag.Int("pool", 60<<10, "bytes of records of zswap's pool pages (a zbud, z3fold or zsmalloc frame) to copy")
	path := flag.String("page-owner", "/sys/kernel/debug/page_owner", "page_owner's file")
	flag.Parse()
	if err := run(*mib, *first, *every, *spread, *zswap, *path); err != nil {
		fmt.Fprintln(os.Stderr, "pagedump:", err)
		os.Exit(1)
	}
}

func run(mib, first, every, spread, pool int, path string) error {
	// Compressible pages (zswap stores them): a counter, then zeros.
	mem := make([][]byte, mib)
	for i := range mem {
		mem[i] = make([]byte, 1<<20)
		for p := 0; p < len(mem[i]); p += 4096 {
			copy(mem[i][p:], fmt.Sprintf("page %d/%d", i, p))
		}
	}
	con, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer con.Close()
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	var head, spaced, z bytes.Buffer
	var total, records int64
	r := bufio.NewReaderSize(f, 256<<10)
	var rec bytes.Buffer
	for {
		line, err := r.ReadBytes('\n')
		total += int64(len(line))
		rec.Write(line)
		if len(bytes.TrimSpace(line)) == 0 || err == io.EOF {
			if rec.Len() > 0 && bytes.Contains(rec.Bytes(), []byte("Page allocated via")) {
				records++
				switch {
				case head.Len()+rec.Len() <= first:
					head.Write(rec.Bytes())
				case poolPage.Match(rec.Bytes()):
					if z.Len()+rec.Len() <= pool {
						z.Write(rec.Bytes())
					}
				case records%int64(every) == 0 && spaced.Len()+rec.Len() <= spread:
					spaced.Write(rec.Bytes())
				}
			}
			rec.Reset()
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	el := time.Since(start)
	fmt.Fprintf(con, "\n=== page_owner sample begin ===\n")
	con.Write(head.Bytes())
	con.Write(spaced.Bytes())
	con.Write(z.Bytes())
	fmt.Fprintf(con, "=== page_owner sample end ===\n")
	fmt.Fprintf(con, "pagedump: page_owner read in %.1f s: %d bytes, %d records\n", el.Seconds(), total, records)
	fmt.Printf("page_owner read in %.1f s: %d bytes, %d records\n", el.Seconds(), total, records)
	runtime.KeepAlive(mem)
	return nil
}
