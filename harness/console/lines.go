package console

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

// line is one console line: its raw extent in the log and its cleaned text.
type line struct {
	start, end int     // raw byte range [start, end), end past the '\n' if any
	text       string  // without timestamp, caller id, loglevel, '\r' and ANSI escapes
	ts         float64 // printk timestamp in seconds, if hasTS
	hasTS      bool
}

var (
	// printk's "[%5lu.%06lu]" time prefix (CONFIG_PRINTK_TIME).
	tsRe = regexp.MustCompile(`\[\s*(\d+\.\d+)\]`)
	// CONFIG_PRINTK_CALLER's "[  T123]" (task) or "[    C1]" (CPU) prefix.
	callerRe = regexp.MustCompile(`^\[\s*[TC]\d+\]`)
	// A syslog loglevel such as "<4>" (seen when /dev/kmsg is copied to the console).
	levelRe = regexp.MustCompile(`^<\d>`)
	ansiRe  = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")
)

// cleanLine strips the decorations the kernel and the serial line add to a
// message. A timestamp found in the middle of a line means another writer
// (the guest agent) printed an unterminated line just before the kernel
// did: the text before the timestamp is dropped.
func cleanLine(raw []byte) (text string, ts float64, hasTS bool) {
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	s := string(raw)
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(s, "\r", "")
	}
	if strings.IndexByte(s, '\x1b') >= 0 {
		s = ansiRe.ReplaceAllString(s, "")
	}
	s = levelRe.ReplaceAllString(s, "")
	if loc := tsRe.FindStringSubmatchIndex(s); loc != nil {
		if v, err := strconv.ParseFloat(s[loc[2]:loc[3]], 64); err == nil {
			ts, hasTS = v, true
			s = s[loc[1]:]
			if m := callerRe.FindStringIndex(s); m != nil {
				s = s[m[1]:]
			}
			// printk separates the prefix from the message with one space;
			// further indentation (call trace frames) is kept.
			s = strings.TrimPrefix(s, " ")
		}
	} else if m := callerRe.FindStringIndex(s); m != nil {
		s = strings.TrimPrefix(s[m[1]:], " ")
	}
	return strings.TrimRight(s, " \t"), ts, hasTS
}

// splitLines calls fn for every line of buf, including a last line without
// a terminating newline. base is the offset of buf in the log.
func splitLines(buf []byte, base int, fn func(line)) {
	for pos := 0; pos < len(buf); {
		end := len(buf)
		if i := bytes.IndexByte(buf[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		fn(makeLine(buf[pos:end], base+pos))
		pos = end
	}
}

// makeLine makes the line raw found at offset start of the log.
func makeLine(raw []byte, start int) line {
	text, ts, hasTS := cleanLine(raw)
	return line{start: start, end: start + len(raw), text: text, ts: ts, hasTS: hasTS}
}
