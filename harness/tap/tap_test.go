package tap

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// What test_zswap from Debian's 6.12 source printed in a guest (the issue's
// report): "ok 6" twice, as its buffered stdout was copied into a child.
const testZswap = `TAP version 13
1..7
ok 1 test_zswap_usage
ok 2 test_swapin_nozswap
ok 3 test_zswapin
ok 4 test_zswap_writeback_enabled
ok 5 test_zswap_writeback_disabled
ok 6 test_no_kmem_bypass
ok 6 test_no_kmem_bypass
# at least 1 page should be written back
not ok 7 test_no_invasive_cgroup_shrink
# Totals: pass:6 fail:1 xfail:0 xpass:0 skip:0 error:0
`

func TestParseKselftest(t *testing.T) {
	got, planned := Parse(testZswap, false)
	if planned != 7 {
		t.Errorf("planned %d, want 7", planned)
	}
	want := []Result{
		{Number: 1, Name: "test_zswap_usage", OK: true},
		{Number: 2, Name: "test_swapin_nozswap", OK: true},
		{Number: 3, Name: "test_zswapin", OK: true},
		{Number: 4, Name: "test_zswap_writeback_enabled", OK: true},
		{Number: 5, Name: "test_zswap_writeback_disabled", OK: true},
		{Number: 6, Name: "test_no_kmem_bypass", OK: true},
		{Number: 7, Name: "test_no_invasive_cgroup_shrink", OK: false},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if got[6].Passed() || !got[0].Passed() {
		t.Errorf("Passed: not ok 7 %v, ok 1 %v", got[6].Passed(), got[0].Passed())
	}
	if s := got[6].String(); s != "not ok 7 test_no_invasive_cgroup_shrink" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseDirectivesAndShapes(t *testing.T) {
	out := "ok 1 - described # SKIP no cgroup v2\r\n" +
		"not ok 2 flaky # TODO known\n" +
		"ok 3 has \\# hash # skipped: not root\n" +
		"ok\n" + // no number: 4
		"not ok 5 # xfail expected\n" +
		"  ok 1 subtest, indented\n" +
		"# ok 2 subtest, as a diagnostic\n" +
		"okay 9 not a test point\n" +
		"ok 6 comment # not a directive\n"
	got, planned := Parse(out, false)
	want := []Result{
		{Number: 1, Name: "described", OK: true, Directive: "SKIP", Reason: "no cgroup v2"},
		{Number: 2, Name: "flaky", Directive: "TODO", Reason: "known"},
		{Number: 3, Name: "has # hash", OK: true, Directive: "SKIP", Reason: "not root"},
		{Number: 4, OK: true},
		{Number: 5, Directive: "XFAIL", Reason: "expected"},
		{Number: 6, Name: "comment", OK: true},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("results (-want +got):\n%s", d)
	}
	if planned != 0 {
		t.Errorf("planned %d without a plan", planned)
	}
	if !got[1].Passed() || !got[4].Passed() {
		t.Error("TODO and XFAIL failures count as passed")
	}
	if s := got[0].String(); s != "ok 1 described # SKIP no cgroup v2" {
		t.Errorf("String() = %q", s)
	}
}

// A tail cut mid-line ("not ok 3 x" cut to "ok 3 x") is not read as a pass.
func TestParseCutTail(t *testing.T) {
	got, _ := Parse("ok 3 x\nok 4 y\n", true)
	if len(got) != 1 || got[0].Number != 4 {
		t.Errorf("cut tail: %+v, want only test 4", got)
	}
	if got, _ := Parse("", true); got != nil {
		t.Errorf("empty: %+v", got)
	}
}
