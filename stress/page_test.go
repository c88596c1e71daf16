package stress_test

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"

	"zswaprace/stress"
)

func page(worker, pg int, gen uint64) []byte {
	b := make([]byte, stress.PageSize)
	stress.FillPage(b, worker, pg, gen)
	return b
}

// firstDiff is the reference for Detail.Offset: byte by byte.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

type verdict struct {
	Class  stress.Class
	Detail stress.Detail
}

func classify(buf []byte, worker, pg int, want uint64) verdict {
	c, d := stress.Classify(buf, worker, pg, want)
	return verdict{c, d}
}

func TestFillPageRoundTrip(t *testing.T) {
	for _, id := range []struct {
		worker, page int
		gen          uint64
	}{
		{0, 0, 1}, {0, 1, 1}, {1, 0, 1}, {3, 24575, 77}, {1023, 1<<24 - 1, math.MaxUint64},
		{math.MaxUint32, math.MaxUint32, 1 << 40},
	} {
		t.Run(fmt.Sprintf("w%d/p%d/g%d", id.worker, id.page, id.gen), func(t *testing.T) {
			buf := page(id.worker, id.page, id.gen)
			want := verdict{stress.ClassOK, stress.Detail{
				GotWorker: id.worker, GotPage: id.page, GotGen: id.gen, HeaderOK: true, Offset: -1,
			}}
			if diff := cmp.Diff(want, classify(buf, id.worker, id.page, id.gen)); diff != "" {
				t.Errorf("Classify (-want +got):\n%s", diff)
			}
			if got := binary.LittleEndian.Uint64(buf); got != stress.Magic {
				t.Errorf("first word %#x, want Magic", got)
			}
		})
	}
}

func TestFillPageGenZeroIsZeros(t *testing.T) {
	buf := bytes.Repeat([]byte{0xa5}, stress.PageSize)
	stress.FillPage(buf, 2, 3, 0)
	if !bytes.Equal(buf, make([]byte, stress.PageSize)) {
		t.Fatal("FillPage with generation 0 did not write zeros")
	}
	want := verdict{stress.ClassOK, stress.Detail{Offset: -1}}
	if diff := cmp.Diff(want, classify(buf, 2, 3, 0)); diff != "" {
		t.Errorf("Classify (-want +got):\n%s", diff)
	}
}

// TestPageCompressesAndVaries checks what zswap needs: no page is
// same-filled, pages differ from each other, and each compresses to well
// under half a page (flate stands in for LZO).
func TestPageCompressesAndVaries(t *testing.T) {
	seen := make(map[string]string)
	var zbuf bytes.Buffer
	zw, err := flate.NewWriter(&zbuf, flate.DefaultCompression)
	if err != nil {
		t.Fatal(err)
	}
	maxSize, total, n := 0, 0, 0
	for w := range 4 {
		for pg := range 64 {
			for _, gen := range []uint64{1, 2, 3, 1000, math.MaxUint64} {
				name := fmt.Sprintf("w%d/p%d/g%d", w, pg, gen)
				buf := page(w, pg, gen)
				if prev, ok := seen[string(buf)]; ok {
					t.Fatalf("%s has the same content as %s", name, prev)
				}
				seen[string(buf)] = name
				first := binary.LittleEndian.Uint64(buf)
				same, bodySame := true, true
				body := binary.LittleEndian.Uint64(buf[32:])
				for i := 8; i < stress.PageSize; i += 8 {
					v := binary.LittleEndian.Uint64(buf[i:])
					same = same && v == first
					bodySame = bodySame && (i < 32 || v == body)
				}
				if same || bodySame {
					t.Fatalf("%s is same-filled (page %v, body %v)", name, same, bodySame)
				}
				zbuf.Reset()
				zw.Reset(&zbuf)
				zw.Write(buf)
				zw.Close()
				size := zbuf.Len()
				if size >= 1500 {
					t.Errorf("%s compresses to %d bytes, want < 1500", name, size)
				}
				maxSize = max(maxSize, size)
				total += size
				n++
			}
		}
	}
	t.Logf("%d pages: flate size mean %d, max %d bytes", n, total/n, maxSize)
}

func flipBit(buf []byte, off, bit int) []byte {
	b := bytes.Clone(buf)
	b[off] ^= 1 << bit
	return b
}

func TestClassify(t *testing.T) {
	const w, pg = 2, 100
	const gen = 50
	good := page(w, pg, gen)
	torn := bytes.Clone(good)
	copy(torn[2048:], page(w, pg, gen-1)[2048:])
	garbage := make([]byte, stress.PageSize)
	for i := range garbage {
		garbage[i] = byte(i*131 + i>>8)
	}
	oneByte := make([]byte, stress.PageSize)
	oneByte[3000] = 0x10
	staleFlip := flipBit(page(w, pg, gen-3), 1234, 5)

	tests := []struct {
		name    string
		buf     []byte
		wantGen uint64
		class   stress.Class
		// got identity; header says whether it is expected valid
		gotW, gotP int
		gotGen     uint64
		headerOK   bool
		offset     int // -1: computed against the expected content
	}{
		{"ok", good, gen, stress.ClassOK, w, pg, gen, true, -1},
		{"stale previous generation", page(w, pg, gen-1), gen, stress.ClassStale, w, pg, gen - 1, true, -1},
		{"stale first generation", page(w, pg, 1), gen, stress.ClassStale, w, pg, 1, true, -1},
		{"foreign other worker", page(w+1, pg, gen), gen, stress.ClassForeign, w + 1, pg, gen, true, -1},
		{"foreign worker 0", page(0, pg, gen), gen, stress.ClassForeign, 0, pg, gen, true, -1},
		{"foreign other page", page(w, pg+1, gen), gen, stress.ClassForeign, w, pg + 1, gen, true, -1},
		{"foreign other page older", page(w, pg-1, gen-7), gen, stress.ClassForeign, w, pg - 1, gen - 7, true, -1},
		{"foreign other page newer", page(w, 0, gen+9), gen, stress.ClassForeign, w, 0, gen + 9, true, -1},
		{"foreign other worker other page", page(w+5, pg*3, 4), gen, stress.ClassForeign, w + 5, pg * 3, 4, true, -1},
		{"zeroed", make([]byte, stress.PageSize), gen, stress.ClassZeroed, 0, 0, 0, false, -1},
		{"own page newer generation", page(w, pg, gen+1), gen, stress.ClassDamaged, w, pg, gen + 1, true, -1},
		{"torn between generations", torn, gen, stress.ClassDamaged, w, pg, gen, true, firstDiff(torn, good)},
		{"stale with a flipped bit", staleFlip, gen, stress.ClassDamaged, w, pg, gen - 3, true, 1234},
		{"garbage", garbage, gen, stress.ClassDamaged, int(binary.LittleEndian.Uint64(garbage[8:]) >> 32),
			int(uint32(binary.LittleEndian.Uint64(garbage[8:]))), binary.LittleEndian.Uint64(garbage[16:]), false, -1},
		{"all ones", bytes.Repeat([]byte{0xff}, stress.PageSize), gen, stress.ClassDamaged, math.MaxUint32, math.MaxUint32, math.MaxUint64, false, -1},
		{"zeros but one byte", oneByte, gen, stress.ClassDamaged, 0, 0, 0, false, -1},
		{"header only", append(bytes.Clone(good[:32]), make([]byte, stress.PageSize-32)...), gen, stress.ClassDamaged, w, pg, gen, true, -1},
		{"body only", append(make([]byte, 32), good[32:]...), gen, stress.ClassDamaged, 0, 0, 0, false, -1},

		// Zeros expected (never written, or after MADV_DONTNEED).
		{"zero ok", make([]byte, stress.PageSize), 0, stress.ClassOK, 0, 0, 0, false, -1},
		{"zero expected, own data", page(w, pg, 3), 0, stress.ClassStale, w, pg, 3, true, -1},
		{"zero expected, own newest data", page(w, pg, math.MaxUint64), 0, stress.ClassStale, w, pg, math.MaxUint64, true, -1},
		{"zero expected, other page", page(w, pg+1, 3), 0, stress.ClassForeign, w, pg + 1, 3, true, -1},
		{"zero expected, other worker", page(w-1, pg, 3), 0, stress.ClassForeign, w - 1, pg, 3, true, -1},
		{"zero expected, garbage", garbage, 0, stress.ClassDamaged, int(binary.LittleEndian.Uint64(garbage[8:]) >> 32),
			int(uint32(binary.LittleEndian.Uint64(garbage[8:]))), binary.LittleEndian.Uint64(garbage[16:]), false, -1},
		{"zero expected, one byte", oneByte, 0, stress.ClassDamaged, 0, 0, 0, false, 3000},
		{"zero expected, own data with flipped bit", staleFlip, 0, stress.ClassDamaged, w, pg, gen - 3, true, 1234},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			off := tc.offset
			if off < 0 && tc.class != stress.ClassOK {
				want := make([]byte, stress.PageSize)
				stress.FillPage(want, w, pg, tc.wantGen)
				off = firstDiff(tc.buf, want)
			}
			want := verdict{tc.class, stress.Detail{
				GotWorker: tc.gotW, GotPage: tc.gotP, GotGen: tc.gotGen, HeaderOK: tc.headerOK, Offset: off,
			}}
			if diff := cmp.Diff(want, classify(tc.buf, w, pg, tc.wantGen)); diff != "" {
				t.Errorf("Classify(want gen %d) (-want +got):\n%s", tc.wantGen, diff)
			}
		})
	}
}

// TestClassifySingleBitFlips flips one bit anywhere in the page, the header
// included, and expects "damaged" at exactly that offset, never a valid
// header naming another page or generation.
func TestClassifySingleBitFlips(t *testing.T) {
	type flip struct{ off, bit int }
	var flips []flip
	for off := 0; off < stress.PageSize; off += 97 {
		flips = append(flips, flip{off, off % 8})
	}
	for _, off := range []int{0, 7, 8, 11, 12, 15, 16, 23, 24, 31, 32, 33, 2048, 4088, 4095} {
		for bit := range 8 {
			flips = append(flips, flip{off, bit})
		}
	}
	for _, gen := range []uint64{0, 1, 2, 1 << 33} {
		const w, pg = 1, 4242
		good := page(w, pg, gen)
		t.Run(fmt.Sprintf("gen%d", gen), func(t *testing.T) {
			for _, f := range flips {
				buf := flipBit(good, f.off, f.bit)
				c, d := stress.Classify(buf, w, pg, gen)
				headerOK := gen != 0 && f.off >= 32
				if c != stress.ClassDamaged || d.Offset != f.off || d.HeaderOK != headerOK {
					t.Errorf("bit %d of byte %d: got %s at offset %d (header ok %v), want damaged at %d (header ok %v)",
						f.bit, f.off, c, d.Offset, d.HeaderOK, f.off, headerOK)
				}
			}
		})
	}
}

func TestFillPagePanicsOnBadIdentity(t *testing.T) {
	for _, tc := range []struct{ w, p int }{{-1, 0}, {0, -1}, {1 << 32, 0}, {0, 1 << 32}} {
		t.Run(fmt.Sprintf("w%d/p%d", tc.w, tc.p), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			stress.FillPage(make([]byte, stress.PageSize), tc.w, tc.p, 1)
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	buf := page(3, 1234, 99)
	b.SetBytes(stress.PageSize)
	b.ReportAllocs()
	for b.Loop() {
		if c, _ := stress.Classify(buf, 3, 1234, 99); c != stress.ClassOK {
			b.Fatal(c)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}

func BenchmarkFillPage(b *testing.B) {
	buf := make([]byte, stress.PageSize)
	b.SetBytes(stress.PageSize)
	b.ReportAllocs()
	var gen uint64
	for b.Loop() {
		gen++
		stress.FillPage(buf, 3, 1234, gen)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pages/s")
}
