package e2e

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"zswaprace/harness/report"
	"zswaprace/harness/report/schematest"
)

// zswapFrame is a frame of zswap or of its allocator.
var zswapFrame = regexp.MustCompile(`zswap|zbud|zpool|z3fold|zsmalloc`)

// names says whether any of stacks has a zswap frame, and how many pages
// those stacks hold.
func names(stacks []report.StackPages) (bool, int64) {
	found, pages := false, int64(0)
	for _, s := range stacks {
		for _, f := range s.Stack {
			if zswapFrame.MatchString(f) {
				found, pages = true, pages+s.Pages
				break
			}
		}
	}
	return found, pages
}

// TestLeakStacksNamedUnderDebug is TestPatchThatLeaksIsRegressed with
// kernels built with --debug (CONFIG_PAGE_OWNER, booted with
// page_owner=on): the comparison is still regressed, and every leak run's
// health record names the leaked pages' allocation stacks, zswap's pool
// (zbud_alloc under zswap_frontswap_store) holding most of the pages
// lost, while the unpatched kernel's runs name no zswap stack. The report,
// summary.md and junit.xml say so. It needs two debug kernels (a cold
// build is about 15 min more), so it runs only with ZSWAPRACE_E2E_DEBUG=1
// as well (make e2e-debug). --widen as in TestPatchThatLeaksIsRegressed,
// and not only for the same kernels: without the writeback delay the test
// patch crashes the kernel within about 15 s of stress ("kernel BUG in
// zswap_writeback_entry": writeback of a pool page that still holds a
// leaked entry finds the entry of the slot's next owner, and decompressing
// one with the other's length fails), with or without --debug, so its
// runs are crashes, not leaks (3 runs of 3 here; with the delay, leaks).
func TestLeakStacksNamedUnderDebug(t *testing.T) {
	if os.Getenv("ZSWAPRACE_E2E_DEBUG") == "" {
		t.Skip("set ZSWAPRACE_E2E_DEBUG=1 (make e2e-debug does) to build the --debug kernels and run this test")
	}
	patch := filepath.Join(root, "harness", "e2e", "testdata", "zswap-leak-on-invalidate.patch")
	args := []string{"--widen", "--debug", "--patch", patch, "--runs", "5", "--duration", "30s"}
	if j := os.Getenv("ZSWAPRACE_E2E_JOBS"); j != "" {
		args = append(args, "--jobs", j)
	}
	out := t.TempDir()
	start := time.Now()
	code, stdout, _ := harness(t, nil, append([]string{"compare", "--out", out}, args...)...)
	t.Logf("stdout:\n%s\ndecided in %s", stdout, time.Since(start).Round(time.Second))
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatalf("no report.json: %v", err)
	}
	if err := schematest.Validate(b); err != nil {
		t.Errorf("report.json does not match the schema: %v", err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	un, pa := rep.Variants[0], rep.Variants[1]
	if pa.Leaks == 0 {
		t.Fatalf("the patched kernel never leaked: the test proves nothing (outcomes: %v)", outcomes(pa))
	}
	if rep.Verdict != "regressed" || code != 1 {
		t.Errorf("verdict %q, exit %d; want regressed, 1 (%s)", rep.Verdict, code, rep.Reason)
	}
	if !strings.Contains(rep.Guest.Cmdline, "page_owner=on") {
		t.Errorf("the guests' command line %q lacks page_owner=on", rep.Guest.Cmdline)
	}
	for _, r := range un.RunDetails {
		h := r.Health
		if h == nil || h.PageOwner == nil || !h.PageOwner.Compared {
			b, _ := json.Marshal(h)
			t.Errorf("unpatched run %d (%s): page_owner not compared: %s", r.Index, r.Outcome, b)
			continue
		}
		if found, _ := names(h.PageOwner.Stacks); found {
			t.Errorf("unpatched run %d names a zswap stack: %+v", r.Index, h.PageOwner.Stacks)
		}
	}
	for _, r := range pa.RunDetails {
		if r.Outcome != report.OutcomeLeak {
			continue
		}
		h := r.Health
		if h == nil || h.PageOwner == nil || !h.PageOwner.Compared || h.LostPages == nil {
			b, _ := json.Marshal(h)
			t.Errorf("patched leak run %d: page_owner not compared: %s", r.Index, b)
			continue
		}
		p := h.PageOwner
		found, _ := names(p.Stacks)
		byCaller, callerPages := names(p.Callers)
		// The pool's pages are most of the loss (the rest is the entries'
		// slab, which the slab counter explains).
		if !found || !byCaller || callerPages < *h.LostPages/2 {
			t.Errorf("patched leak run %d lost %d pages; page_owner names zswap stacks %v, callers with %d pages: stacks %+v, callers %+v",
				r.Index, *h.LostPages, found, callerPages, p.Stacks, p.Callers)
		}
		t.Logf("patched run %d: lost %d pages; %s", r.Index, *h.LostPages, p.Summary())
		if !strings.Contains(r.Error, "page_owner: allocated since the baseline") {
			t.Errorf("patched leak run %d: the leak message does not name the stacks: %s", r.Index, r.Error)
		}
	}
	stack := regexp.MustCompile(`Pages allocated since the baseline, by allocation stack \(page_owner[^\n]*\n +\d+ pages:\n( +\S+\n)*? +\S*(zswap|zbud)`)
	md, err := os.ReadFile(filepath.Join(out, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := regexp.MustCompile(`\| leaked pages by caller \| - \| [^|]*(zswap|zbud)[^|]* \d+ pages \(\d+ runs\)`); !want.Match(md) || !stack.Match(md) {
		t.Errorf("summary.md does not name a zswap stack:\n%s", md)
	}
	// Every patched leak run's JUnit case names its stacks.
	b, err = os.ReadFile(filepath.Join(out, "junit.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var junit struct {
		Suites []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name      string `xml:"name,attr"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &junit); err != nil {
		t.Fatalf("junit.xml: %v", err)
	}
	named := 0
	for _, s := range junit.Suites {
		for _, c := range s.Cases {
			if stack.MatchString(c.SystemOut) {
				if s.Name != "patched" {
					t.Errorf("junit case %s names a zswap stack:\n%s", c.Name, c.SystemOut)
				}
				named++
			}
		}
	}
	if named != pa.Leaks {
		t.Errorf("%d junit cases name a zswap stack, for %d leak runs", named, pa.Leaks)
	}
}
