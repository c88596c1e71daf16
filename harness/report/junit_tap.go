package report

import (
	"fmt"
	"strings"
)

// junitTAPCases makes each TAP test point of the run's external workload
// (--workload, kselftest's output) a test case of its own, so that a CI
// system shows the selftest's tests: "not ok" is a failure and "# SKIP" is
// skipped; a TODO or XFAIL test that is "not ok" passes, as TAP says. They
// sit in the variant's suite after the run's own case, named
// VARIANT/run-N/TEST_NUMBER NAME.
func junitTAPCases(tool, variant string, run Run) []junitCase {
	if run.Workload == nil {
		return nil
	}
	var cases []junitCase
	for _, tp := range run.Workload.Tests {
		name := fmt.Sprintf("%s/run-%d/%d", variant, run.Index, tp.Number)
		if tp.Name != "" {
			name += " " + tp.Name
		}
		c := junitCase{
			Name:      name,
			Classname: fmt.Sprintf("%s.%s.run-%d", tool, variant, run.Index),
			Time:      junitTime(0),
			SystemOut: tp.String(),
			Properties: []junitProperty{
				{"tap_number", fmt.Sprint(tp.Number)},
				{"run_outcome", string(run.Outcome)},
			},
		}
		if tp.Directive != "" {
			c.Properties = append(c.Properties, junitProperty{"tap_directive", tp.Directive})
		}
		switch {
		case tp.Directive == "SKIP":
			c.Skipped = &junitResult{Type: "tap-skip", Message: firstLine(tp.Reason, "skipped")}
		case !tp.Passed():
			typ := "tap-not-ok"
			if tp.Directive != "" {
				typ += "-" + strings.ToLower(tp.Directive)
			}
			text := fmt.Sprintf("%s/run-%d (%s)", variant, run.Index, run.Outcome)
			if run.ConsoleLog != "" {
				text += ", console log " + run.ConsoleLog
			}
			c.Failure = &junitResult{Type: typ, Message: tp.String(), Text: text}
		}
		cases = append(cases, c)
	}
	return cases
}
