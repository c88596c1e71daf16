package console

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the # KIND/# TITLE/# FUNCTION headers of testdata/*.log from the parser's output")

// A corpus file is a header of "# " lines, a blank line, then the raw
// console log:
//
//	# SOURCE: synthetic          (any other "# KEY: value" line is kept as is)
//	# KIND: crash                (starts the next expected report)
//	# TITLE: kernel BUG in zswap_writeback_entry
//	# FUNCTION: zswap_writeback_entry   (optional; compared when present)
//	# NONE                       (instead of reports: a clean log)
//
//	[    0.000000] Linux version ...
type corpusFile struct {
	meta []string // header lines other than the expectations, in order
	want []expected
	none bool
	body []byte
}

type expected struct {
	Kind     Kind
	Title    string
	Function string
	hasFunc  bool
}

func readCorpus(path string) (*corpusFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f := &corpusFile{}
	pos := 0
	for {
		nl := bytes.IndexByte(data[pos:], '\n')
		if nl < 0 {
			return nil, fmt.Errorf("no blank line after the header")
		}
		ln := strings.TrimRight(string(data[pos:pos+nl]), "\r")
		pos += nl + 1
		if ln == "" {
			break
		}
		if !strings.HasPrefix(ln, "#") {
			return nil, fmt.Errorf("header line %q does not start with #", ln)
		}
		key, val, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(ln, "#")), ":")
		val = strings.TrimSpace(val)
		switch key {
		case "KIND":
			f.want = append(f.want, expected{Kind: Kind(val)})
		case "TITLE", "FUNCTION":
			if len(f.want) == 0 {
				return nil, fmt.Errorf("%s before KIND", key)
			}
			e := &f.want[len(f.want)-1]
			if key == "TITLE" {
				e.Title = val
			} else {
				e.Function, e.hasFunc = val, true
			}
		case "NONE":
			f.none = true
		default:
			f.meta = append(f.meta, ln)
		}
	}
	f.body = data[pos:]
	if f.none && len(f.want) > 0 {
		return nil, fmt.Errorf("both NONE and KIND")
	}
	return f, nil
}

func (f *corpusFile) write(path string, reports []Report) error {
	var b bytes.Buffer
	for _, m := range f.meta {
		b.WriteString(m + "\n")
	}
	if len(reports) == 0 {
		b.WriteString("# NONE\n")
	}
	for _, r := range reports {
		fmt.Fprintf(&b, "# KIND: %s\n# TITLE: %s\n# FUNCTION: %s\n", r.Kind, r.Title, r.Function)
	}
	b.WriteString("\n")
	b.Write(f.body)
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func corpusFiles(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join("testdata", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.log")
	}
	return files
}

var badTitleRe = regexp.MustCompile(`0x[0-9a-f]|\b[0-9a-f]{8,}\b|\[\s*\d+\.\d+\]|\+0x`)

func TestCorpus(t *testing.T) {
	for _, path := range corpusFiles(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := readCorpus(path)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			got := Parse(f.body)
			if *update {
				if err := f.write(path, got); err != nil {
					t.Fatal(err)
				}
				return
			}
			if len(f.want) == 0 && !f.none {
				t.Fatalf("%s has neither # KIND nor # NONE; run go test -update", path)
			}
			gotE := make([]expected, len(got))
			for i, r := range got {
				gotE[i] = expected{Kind: r.Kind, Title: r.Title, Function: r.Function, hasFunc: true}
				if i < len(f.want) && !f.want[i].hasFunc {
					gotE[i].Function, gotE[i].hasFunc = "", false
				}
			}
			if diff := cmp.Diff(f.want, gotE, cmp.AllowUnexported(expected{}), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("reports differ (-want +got):\n%s\nsummary: %s", diff, Summary(got))
			}
			checkReports(t, f.body, got)
		})
	}
}

// checkReports checks what every report must satisfy.
func checkReports(t *testing.T, log []byte, reports []Report) {
	t.Helper()
	prevEnd := 0
	for i, r := range reports {
		if r.Start < prevEnd || r.Start >= r.End || r.End > len(log) {
			t.Errorf("report %d %q: bad extent [%d,%d) after %d in %d bytes", i, r.Title, r.Start, r.End, prevEnd, len(log))
			continue
		}
		prevEnd = r.End
		if r.Start > 0 && log[r.Start-1] != '\n' {
			t.Errorf("report %d %q: Start %d is not at a line start", i, r.Title, r.Start)
		}
		if r.Text == "" || !strings.HasSuffix(r.Text, "\n") {
			t.Errorf("report %d %q: Text %q", i, r.Title, r.Text)
		}
		if strings.ContainsAny(r.Text, "\r\x1b") {
			t.Errorf("report %d %q: Text has \\r or ESC", i, r.Title)
		}
		if r.Title == "" || badTitleRe.MatchString(r.Title) {
			t.Errorf("report %d: unstable title %q", i, r.Title)
		}
		if r.Kind != Crash && r.Kind != Warning && r.Kind != Hang && r.Kind != OOM && r.Kind != DataRace {
			t.Errorf("report %d %q: kind %q", i, r.Title, r.Kind)
		}
	}
}

// Removing timestamps and caller ids must not change what is found.
func TestCorpusWithoutTimestamps(t *testing.T) {
	strip := regexp.MustCompile(`(?m)^\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])? ?`)
	for _, path := range corpusFiles(t) {
		f, err := readCorpus(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body := strip.ReplaceAll(f.body, nil)
		if bytes.Equal(body, f.body) {
			continue
		}
		summary := func(rs []Report) []string {
			var s []string
			for _, r := range rs {
				s = append(s, fmt.Sprintf("%s|%s|%s", r.Kind, r.Title, r.Function))
			}
			return s
		}
		want, got := Parse(f.body), Parse(body)
		if diff := cmp.Diff(summary(want), summary(got)); diff != "" {
			t.Errorf("%s without timestamps (-with +without):\n%s", path, diff)
		}
		checkReports(t, body, got)
	}
}

// The Watcher's first report starts where Parse's first one does, however
// the log is cut into writes.
func TestCorpusWatcher(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	for _, path := range corpusFiles(t) {
		f, err := readCorpus(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		all := Parse(f.body)
		for _, kinds := range [][]Kind{nil, {Crash, Hang}} {
			var want *Report
			for _, r := range all {
				if kinds == nil || r.Kind == kinds[0] || r.Kind == kinds[1] {
					want = &r
					break
				}
			}
			w := NewWatcher(kinds...)
			for p := f.body; len(p) > 0; {
				n := 1 + rnd.Intn(200)
				if n > len(p) {
					n = len(p)
				}
				w.Write(p[:n])
				p = p[n:]
			}
			w.Flush()
			if w.Written() != len(f.body) {
				t.Errorf("%s: Written() = %d, want %d", path, w.Written(), len(f.body))
			}
			got, ok := w.Report()
			switch {
			case want == nil && ok:
				t.Errorf("%s %v: watcher found %q, Parse found nothing", path, kinds, got.Title)
			case want != nil && !ok:
				t.Errorf("%s %v: watcher found nothing, Parse found %q", path, kinds, want.Title)
			case want != nil && (got.Start != want.Start || got.Kind != want.Kind):
				t.Errorf("%s %v: watcher found %s %q at %d, Parse %s %q at %d", path, kinds, got.Kind, got.Title, got.Start, want.Kind, want.Title, want.Start)
			}
		}
	}
}
