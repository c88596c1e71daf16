package stress

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Page format
//
// Every 4 KiB page a worker writes is a function of its identity
// (worker, page, generation) only, so any read-back can be checked against
// what must be there and, when it is wrong, told apart as stale, foreign,
// zeroed or damaged data. All words are little endian.
//
//	word 0  Magic ("ZSWPRACE")
//	word 1  worker<<32 | page        (both uint32)
//	word 2  generation               (never 0 in a written page)
//	word 3  header checksum = fmix64(fmix64(Magic^word1) ^ word2)
//	word 4..511 body
//
// fmix64 is a bijection, so changing any one header field (a single bit flip,
// say) always changes the checksum: a damaged header is never misread as a
// valid header of another page or generation.
//
// The body is generated from the checksum: a splitmix64 stream picks a
// per-page alphabet of 4 random 64-bit words, then emits runs of 1..8 copies
// of an alphabet word (2 bits of index and 3 bits of run length per run).
// Bodies therefore differ from page to page and from generation to
// generation, are never same-filled (zswap keeps same-filled pages out of the
// zpool), and compress to a few hundred bytes with any LZ77 compressor, well
// under the half page that lets zbud pair two objects per pool page.
//
// Generation 0 means "never written or freed with MADV_DONTNEED": the
// expected content is all zeros.

// PageSize is the size of the pages the workers write and verify.
const PageSize = 4096

// Magic is the first word of every written page ("ZSWPRACE" in memory).
const Magic uint64 = 0x4543415250575a53

const (
	pageWords   = PageSize / 8
	headerWords = 4
	// Byte offsets of the header fields.
	offMagic    = 0
	offIdentity = 8
	offGen      = 16
	offSum      = 24
)

// fmix64 is the MurmurHash3 64-bit finalizer, a bijection on uint64.
func fmix64(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

func identity(worker, page int) uint64 {
	if worker < 0 || worker > 0xffffffff || page < 0 || page > 0xffffffff {
		panic(fmt.Sprintf("stress: worker %d / page %d out of range", worker, page))
	}
	return uint64(worker)<<32 | uint64(page)
}

func headerSum(ident, gen uint64) uint64 {
	return fmix64(fmix64(Magic^ident) ^ gen)
}

// bodyGen generates the body words of one page.
type bodyGen struct {
	s     uint64
	alpha [4]uint64
	bits  uint64
	n     int
}

func newBodyGen(sum uint64) bodyGen {
	g := bodyGen{s: sum ^ 0x6a09e667f3bcc909}
	for i := range g.alpha {
		g.alpha[i] = g.next()
	}
	return g
}

// next is splitmix64.
func (g *bodyGen) next() uint64 {
	g.s += 0x9e3779b97f4a7c15
	z := g.s
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// run returns the next word of the body and how many times it repeats.
func (g *bodyGen) run() (uint64, int) {
	if g.n == 0 {
		g.bits = g.next()
		g.n = 12 // 12 runs of 5 bits per 64-bit draw
	}
	r := g.bits
	g.bits >>= 5
	g.n--
	return g.alpha[r&3], int(r>>2&7) + 1
}

// FillPage writes the content of page (worker, page, gen) into buf[:PageSize].
// Generation 0 writes zeros. It panics if buf is shorter than PageSize or the
// worker or page index does not fit in 32 bits.
func FillPage(buf []byte, worker, page int, gen uint64) {
	buf = buf[:PageSize]
	if gen == 0 {
		clear(buf)
		return
	}
	ident := identity(worker, page)
	sum := headerSum(ident, gen)
	le := binary.LittleEndian
	le.PutUint64(buf[offMagic:], Magic)
	le.PutUint64(buf[offIdentity:], ident)
	le.PutUint64(buf[offGen:], gen)
	le.PutUint64(buf[offSum:], sum)
	g := newBodyGen(sum)
	for i := headerWords; i < pageWords; {
		w, n := g.run()
		end := min(i+n, pageWords)
		for ; i < end; i++ {
			le.PutUint64(buf[i*8:], w)
		}
	}
}

// firstDiff returns the byte offset of the first differing byte between
// word index i holding v and the expected word want.
func firstDiff(i int, v, want uint64) int {
	return i*8 + bits.TrailingZeros64(v^want)/8
}

// diffBody compares the body of buf with the body generated from the header
// checksum sum and returns the offset of the first differing byte, or -1.
func diffBody(buf []byte, sum uint64) int {
	buf = buf[:PageSize]
	le := binary.LittleEndian
	g := newBodyGen(sum)
	for i := headerWords; i < pageWords; {
		w, n := g.run()
		end := min(i+n, pageWords)
		for ; i < end; i++ {
			if v := le.Uint64(buf[i*8:]); v != w {
				return firstDiff(i, v, w)
			}
		}
	}
	return -1
}

// diffPage returns the offset of the first byte of buf that differs from
// page (ident, gen) with gen != 0, or -1 if the page matches exactly.
func diffPage(buf []byte, ident, gen uint64) int {
	buf = buf[:PageSize]
	le := binary.LittleEndian
	sum := headerSum(ident, gen)
	hdr := [headerWords]uint64{Magic, ident, gen, sum}
	for i, want := range hdr {
		if v := le.Uint64(buf[i*8:]); v != want {
			return firstDiff(i, v, want)
		}
	}
	return diffBody(buf, sum)
}

// firstNonZero returns the offset of the first non-zero byte, or -1.
func firstNonZero(buf []byte) int {
	buf = buf[:PageSize]
	le := binary.LittleEndian
	for i := 0; i < pageWords; i++ {
		if v := le.Uint64(buf[i*8:]); v != 0 {
			return firstDiff(i, v, 0)
		}
	}
	return -1
}

// Detail is what Classify decoded from a page.
type Detail struct {
	// GotWorker, GotPage and GotGen are the header fields as decoded,
	// whether or not the header is valid (a zero page decodes as 0, 0, 0).
	GotWorker, GotPage int
	GotGen             uint64
	// HeaderOK says the header is a valid one (magic and checksum right,
	// generation non-zero).
	HeaderOK bool
	// Offset is the first byte that differs from the expected content
	// (page wantGen, or zeros when wantGen is 0), -1 for an ok page. For a
	// damaged page whose header is valid, it is instead the first byte that
	// differs from the content that header names, i.e. where the damage is.
	Offset int
}

// Classify checks the whole page buf[:PageSize], which should hold page
// (worker, page, wantGen) (all zeros when wantGen is 0), and says what it
// holds:
//
//   - ClassOK: exactly the expected content.
//   - ClassStale: a valid, intact page of this worker and page at an older
//     generation (any generation when zeros were expected).
//   - ClassForeign: a valid, intact page of another worker or page.
//   - ClassZeroed: all zeros where data was expected.
//   - ClassDamaged: anything else, a single flipped bit anywhere included.
//
// It does not allocate and, for the common ok case, makes one pass over the
// page generating the expected content on the fly.
func Classify(buf []byte, worker, page int, wantGen uint64) (Class, Detail) {
	buf = buf[:PageSize]
	le := binary.LittleEndian
	ident := identity(worker, page)

	var off int
	if wantGen == 0 {
		off = firstNonZero(buf)
	} else {
		off = diffPage(buf, ident, wantGen)
	}

	gotIdent := le.Uint64(buf[offIdentity:])
	gotGen := le.Uint64(buf[offGen:])
	gotSum := le.Uint64(buf[offSum:])
	d := Detail{
		GotWorker: int(gotIdent >> 32),
		GotPage:   int(uint32(gotIdent)),
		GotGen:    gotGen,
		Offset:    off,
	}
	if off < 0 {
		d.HeaderOK = wantGen != 0
		return ClassOK, d
	}

	d.HeaderOK = le.Uint64(buf[offMagic:]) == Magic && gotGen != 0 &&
		gotSum == headerSum(gotIdent, gotGen)
	if !d.HeaderOK {
		if wantGen != 0 && firstNonZero(buf) < 0 {
			return ClassZeroed, d
		}
		return ClassDamaged, d
	}
	if bodyOff := diffBody(buf, gotSum); bodyOff >= 0 {
		d.Offset = bodyOff
		return ClassDamaged, d
	}
	if gotIdent == ident {
		if wantGen == 0 || gotGen < wantGen {
			return ClassStale, d
		}
		// A newer generation than was ever expected: not something the
		// kernel can produce from this page's history.
		return ClassDamaged, d
	}
	return ClassForeign, d
}
