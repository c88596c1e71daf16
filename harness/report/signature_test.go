package report

import (
	"regexp"
	"testing"
)

func TestSignatureClassify(t *testing.T) {
	bug := KernelReport{Kind: "crash", Title: "kernel BUG in zswap_writeback_entry", Function: "zswap_writeback_entry"}
	other := KernelReport{Kind: "crash", Title: "general protection fault in ext4_fill_super", Function: "ext4_fill_super"}
	warn := KernelReport{Kind: "warning", Title: "WARNING in zswap_frontswap_store", Function: "zswap_frontswap_store"}
	boot := KernelReport{Kind: "crash", Title: "kernel BUG in zswap_writeback_entry", BeforeWorkload: true}
	learned := Signature{}.Learn([]Run{
		{Outcome: OutcomeCorruption, Reports: []KernelReport{bug, warn}},
		{Outcome: OutcomeClean, Reports: []KernelReport{boot}},
	})
	if len(learned.Titles) != 1 || learned.Titles[0] != bug.Title {
		t.Fatalf("learned %q, want only the workload's crash title", learned.Titles)
	}
	tests := []struct {
		name string
		sig  Signature
		run  Run
		want FailureClass
	}{
		{"corruption is always the race's", Signature{}, Run{Outcome: OutcomeCorruption}, RaceFailure},
		{"a crash with the learned title", learned, Run{Outcome: OutcomeCrash, Reports: []KernelReport{bug}}, RaceFailure},
		{"a crash in the same function with another wording", learned,
			Run{Outcome: OutcomeCrash, Reports: []KernelReport{{Kind: "crash", Title: "BUG: invalid opcode in zswap_writeback_entry", Function: "zswap_writeback_entry"}}}, RaceFailure},
		{"another crash", learned, Run{Outcome: OutcomeCrash, Reports: []KernelReport{other}}, OtherFailure},
		{"a WARNING is another failure", learned, Run{Outcome: OutcomeWarning, Reports: []KernelReport{warn}}, OtherFailure},
		{"a WARNING matching --signature is the race's", Signature{Patterns: []*regexp.Regexp{regexp.MustCompile("zswap_frontswap")}},
			Run{Outcome: OutcomeWarning, Reports: []KernelReport{warn}}, RaceFailure},
		{"an ignored WARNING is no failure", Signature{Ignore: []*regexp.Regexp{regexp.MustCompile("^WARNING in zswap")}},
			Run{Outcome: OutcomeWarning, Reports: []KernelReport{warn}}, ""},
		{"a boot-time report does not make a clean run fail", learned, Run{Outcome: OutcomeClean, Reports: []KernelReport{boot}}, ""},
		{"a hang with no console report", Signature{}, Run{Outcome: OutcomeHang}, OtherFailure},
		{"clean", learned, Run{Outcome: OutcomeClean}, ""},
		{"oom is not a kernel failure", learned, Run{Outcome: OutcomeOOM, Reports: []KernelReport{{Kind: "oom", Title: "out of memory"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.sig.Classify(tt.run); got != tt.want {
				t.Errorf("Classify = %q, want %q", got, tt.want)
			}
		})
	}
}
