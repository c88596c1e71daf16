package runner

import (
	"regexp"
	"strconv"
	"strings"
)

// smpRe is the line the kernel prints once it has brought up its CPUs,
// e.g. "smp: Brought up 1 node, 1 CPU" or "smp: Brought up 1 node, 2 CPUs".
var smpRe = regexp.MustCompile(`smp: Brought up \d+ nodes?, (\d+) CPUs?`)

// bootedCPUs finds in a console log how many CPUs the kernel says it
// brought up, and the line that says so ("" and 0 if it did not say).
func bootedCPUs(log []byte) (line string, cpus int) {
	loc := smpRe.FindSubmatchIndex(log)
	if loc == nil {
		return "", 0
	}
	n, err := strconv.Atoi(string(log[loc[2]:loc[3]]))
	if err != nil {
		return "", 0
	}
	return strings.TrimSpace(string(log[loc[0]:loc[1]])), n
}
