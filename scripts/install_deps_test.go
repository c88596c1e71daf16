// Package scripts holds the tests of the shell scripts in this directory.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Fakes of the commands install-deps.sh runs. Each logs its arguments to
// $LOG. dpkg-query knows the packages in $INSTALLED; apt-cache has no
// candidate for those in $UNAVAILABLE; apt-get install fails when asked for
// one in $BROKEN; sudo refuses to run without -n, and fails with -n when
// $SUDO_FAILS is set; id -u is $FAKE_UID; go is version $FAKE_GO.
var fakes = map[string]string{
	"dpkg-query": `echo "dpkg-query $*" >>"$LOG"; p="${@: -1}"; case " $INSTALLED " in *" $p "*) printf 'install ok installed';; *) exit 1;; esac`,
	"apt-cache":  `echo "apt-cache $*" >>"$LOG"; p="${@: -1}"; case " $UNAVAILABLE " in *" $p "*) echo "$p:"; echo "  Installed: (none)"; echo "  Candidate: (none)";; *) echo "$p:"; echo "  Installed: (none)"; echo "  Candidate: 1.0";; esac`,
	"apt-get":    `echo "apt-get $* DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >>"$LOG"; [ "$1" = install ] || exit 0; for p in "$@"; do case " $BROKEN " in *" $p "*) echo "E: Unable to locate package $p" >&2; exit 100;; esac; done`,
	"sudo":       `echo "sudo $*" >>"$LOG"; [ "$1" = -n ] || { echo "sudo: a terminal is required to read the password" >&2; exit 1; }; shift; [ -z "${SUDO_FAILS:-}" ] || { echo "sudo: a password is required" >&2; exit 1; }; exec "$@"`,
	"id":         `[ "$1" = -u ] && echo "${FAKE_UID:-0}"`,
	"go":         `echo "go version go${FAKE_GO} linux/amd64"`,
}

const (
	debian12 = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n"
	ubuntu24 = "PRETTY_NAME=\"Ubuntu 24.04.1 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nID=ubuntu\nID_LIKE=debian\n"
	fedora   = "PRETTY_NAME=\"Fedora Linux 40 (Server Edition)\"\nNAME=\"Fedora Linux\"\nID=fedora\n"
	allPkgs  = "qemu-system-x86 build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils kmod patch ccache git linux-source-6.1 stress stress-ng"
)

type result struct {
	code           int
	stdout, stderr string
	log            string
}

// run runs install-deps.sh on PATH=fakes (without those in omit) + a few
// real tools, with the given os-release and environment.
func run(t *testing.T, osRelease string, omit []string, env ...string) result {
	t.Helper()
	dir := t.TempDir()
	fakeBin := filepath.Join(dir, "bin")
	if err := os.Mkdir(fakeBin, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range fakes {
		if strings.Contains(" "+strings.Join(omit, " ")+" ", " "+name+" ") {
			continue
		}
		if err := os.WriteFile(filepath.Join(fakeBin, name), []byte("#!/bin/bash\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range []string{"bash", "sed", "sort", "head", "grep", "dirname", "env", "cat", "tr", "true"} {
		real, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.Symlink(real, filepath.Join(fakeBin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	osr := filepath.Join(dir, "os-release")
	if err := os.WriteFile(osr, []byte(osRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	cmd := exec.Command(filepath.Join(fakeBin, "bash"), "install-deps.sh")
	cmd.Env = append([]string{"PATH=" + fakeBin, "LOG=" + log, "ZSWAPRACE_OS_RELEASE=" + osr, "FAKE_GO=1.26.1", "FAKE_UID=0"}, env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	r.log = string(b)
	t.Logf("exit %d\nstdout:\n%s\nstderr:\n%s\ncommands:\n%s", r.code, r.stdout, r.stderr, r.log)
	return r
}

func contains(t *testing.T, what, s string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(s, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

// Debian 12 as root with everything there: nothing to do, no apt-get.
func TestInstallDepsNothingMissing(t *testing.T) {
	t.Parallel()
	r := run(t, debian12, nil, "INSTALLED="+allPkgs)
	if r.code != 0 {
		t.Errorf("exit %d, want 0", r.code)
	}
	contains(t, "stdout", r.stdout, "everything is installed", "Go 1.26.1 is recent enough (go.mod requires 1.26.0)")
	if strings.Contains(r.log, "apt-get") || strings.Contains(r.log, "sudo") {
		t.Errorf("ran apt-get or sudo with nothing missing:\n%s", r.log)
	}
}

// Ubuntu 24.04, not root, sudo without a password: each group on its own
// through sudo -n; linux-source-6.1 does not exist there, which skips the
// source with a hint and installs everything else.
func TestInstallDepsUbuntuWithoutDebianSource(t *testing.T) {
	t.Parallel()
	r := run(t, ubuntu24, nil, "FAKE_UID=1000", "UNAVAILABLE=linux-source-6.1")
	if r.code != 0 {
		t.Errorf("exit %d, want 0 (the source is optional)", r.code)
	}
	contains(t, "stderr", r.stderr, "linux-source-6.1 is not available on Ubuntu 24.04.1 LTS", "--source /path/to/linux", "--source git:")
	var installs []string
	for _, l := range strings.Split(r.log, "\n") {
		if strings.HasPrefix(l, "sudo") && !strings.HasPrefix(l, "sudo -n ") {
			t.Errorf("sudo without -n: %s", l)
		}
		if strings.HasPrefix(l, "apt-get install") {
			installs = append(installs, l)
			if !strings.HasSuffix(l, "DEBIAN_FRONTEND=noninteractive") {
				t.Errorf("apt-get not noninteractive: %s", l)
			}
		}
	}
	if len(installs) != 3 || !strings.Contains(installs[0], "qemu-system-x86") || !strings.Contains(installs[1], "build-essential") ||
		!strings.Contains(installs[2], "stress-ng") || strings.Contains(r.log, "install -y -q --no-install-recommends linux-source") {
		t.Errorf("want three installs (qemu, build tools, workloads) and none of the source, got %q", installs)
	}
}

// A group that fails does not stop the others, and fails the script when
// the harness needs it.
func TestInstallDepsGroupsApart(t *testing.T) {
	t.Parallel()
	r := run(t, debian12, nil, "BROKEN=qemu-system-x86")
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (QEMU is required)", r.code)
	}
	contains(t, "stderr", r.stderr, "qemu: could not install qemu-system-x86", "the harness needs it")
	contains(t, "commands", r.log, "install -y -q --no-install-recommends build-essential", "linux-source-6.1", "stress stress-ng")

	r = run(t, debian12, nil, "BROKEN=stress-ng")
	if r.code != 0 {
		t.Errorf("exit %d with only the optional workloads broken, want 0", r.code)
	}
	contains(t, "stderr", r.stderr, "workloads: could not install stress stress-ng", "optional")
}

// Not root, and sudo needs a password: a clear message, never a prompt.
func TestInstallDepsSudoNeedsPassword(t *testing.T) {
	t.Parallel()
	r := run(t, debian12, nil, "FAKE_UID=1000", "SUDO_FAILS=1")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	contains(t, "stderr", r.stderr, "'sudo -n' cannot run without a password", "run this script as root")
	if strings.Contains(r.log, "apt-get") {
		t.Errorf("ran apt-get:\n%s", r.log)
	}
	r = run(t, debian12, []string{"sudo"}, "FAKE_UID=1000")
	if r.code != 1 {
		t.Errorf("no sudo: exit %d, want 1", r.code)
	}
	contains(t, "stderr", r.stderr, "not root and no sudo")
}

// No apt: say what to install by hand, and still check Go.
func TestInstallDepsWithoutApt(t *testing.T) {
	t.Parallel()
	r := run(t, fedora, []string{"apt-get", "apt-cache", "dpkg-query"})
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	contains(t, "stderr", r.stderr, "Fedora Linux 40 (Server Edition) has no apt-get", "qemu-system-x86_64", "--source /path/to/linux")
	contains(t, "stdout", r.stdout, "Go 1.26.1 is recent enough")
}

// Go older than go.mod's, or none: say so, and how to get it.
func TestInstallDepsGoVersion(t *testing.T) {
	t.Parallel()
	r := run(t, debian12, nil, "INSTALLED="+allPkgs, "FAKE_GO=1.22.5")
	if r.code != 1 {
		t.Errorf("old Go: exit %d, want 1", r.code)
	}
	contains(t, "stderr", r.stderr, "Go 1.22.5", "older than 1.26.0, which go.mod requires", "https://go.dev/dl/", "go1.26.0.linux-amd64.tar.gz")

	r = run(t, debian12, nil, "INSTALLED="+allPkgs, "GO=/nonexistent/go")
	if r.code != 1 {
		t.Errorf("no Go: exit %d, want 1", r.code)
	}
	contains(t, "stderr", r.stderr, "Go is not installed", "https://go.dev/dl/")

	r = run(t, debian12, nil, "INSTALLED="+allPkgs, "FAKE_GO=1.26.0")
	if r.code != 0 {
		t.Errorf("Go 1.26.0: exit %d, want 0", r.code)
	}
}
