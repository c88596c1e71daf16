package main

import (
	"runtime/debug"
	"strings"
)

// Set by 'make build' with -ldflags -X: 'git describe --always --dirty' and
// 'git rev-parse HEAD' of the checkout it built from. Empty otherwise (go
// build, go run, go test, or a build outside a git checkout).
var (
	buildVersion string
	buildCommit  string
)

// buildStamp is the harness's own identity.
type buildStamp struct {
	module    string // the Go module path
	version   string // describe output, or the module version; "" unknown
	commit    string // full commit; "" unknown
	when      string // commit time, when Go's VCS stamp has it
	dirty     bool   // built with uncommitted changes
	goVersion string
}

// harnessBuild is what built this binary: the version and commit 'make
// build' stamped into it, else what the Go toolchain recorded (its VCS
// stamp is off under -buildvcs=false), else unknown.
func harnessBuild() buildStamp {
	return stampOf(buildVersion, buildCommit, readBuildInfo())
}

// readBuildInfo is debug.ReadBuildInfo, nil when there is none.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// stampOf combines the linker-stamped version and commit with bi.
func stampOf(version, commit string, bi *debug.BuildInfo) buildStamp {
	s := buildStamp{module: "zswaprace", version: version, commit: commit}
	if bi != nil {
		if bi.Main.Path != "" {
			s.module = bi.Main.Path
		}
		s.goVersion = bi.GoVersion
	}
	if commit != "" {
		s.dirty = strings.HasSuffix(version, "-dirty")
		return s
	}
	if bi == nil {
		return s
	}
	if s.version == "" {
		s.version = bi.Main.Version
	}
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s.commit = kv.Value
		case "vcs.time":
			s.when = kv.Value
		case "vcs.modified":
			s.dirty = kv.Value == "true"
		}
	}
	return s
}
