#!/usr/bin/env bash
# Installs what the harness needs with apt (Debian 12 is what it is tested
# on): QEMU, the kernel build tools, the Debian 6.1 kernel source (optional:
# other systems use --source DIR or --source git:...), and the peer
# workloads 'make bench' and the end-to-end tests run. Each group is
# installed on its own, so a group that cannot be installed does not stop
# the others. Idempotent: installs only what is missing and says what.
# Then checks that Go is at least the version go.mod requires.
#
# As root it runs apt-get itself; otherwise it uses 'sudo -n', which never
# asks for a password (CI runners have no terminal). Exit 0 when everything
# required is there, 1 otherwise, with what to do.
#
# For its test: ZSWAPRACE_OS_RELEASE replaces /etc/os-release, and GO names
# the go binary to check (default: go on PATH, else /usr/local/go/bin/go).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "install-deps: $*"; }
warn() { echo "install-deps: $*" >&2; }

os_name="this system"
os_release=${ZSWAPRACE_OS_RELEASE:-/etc/os-release}
if [ -r "$os_release" ]; then
  os_name=$(. "$os_release" && echo "${PRETTY_NAME:-${NAME:-this system}}")
fi

# Groups: name, whether required, packages.
group_names=(qemu build source workloads)
declare -A group_required=([qemu]=1 [build]=1 [source]=0 [workloads]=0)
declare -A group_pkgs=(
  [qemu]="qemu-system-x86"
  [build]="build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils kmod patch ccache git"
  [source]="linux-source-6.1"
  [workloads]="stress stress-ng"
)
declare -A group_what=(
  [qemu]="QEMU, which runs the kernels (KVM when /dev/kvm works, else TCG)"
  [build]="the kernel build tools, ccache and git"
  [source]="the Debian 6.1 kernel source, the default --source debian:6.1 (about 140 MB)"
  [workloads]="stress and stress-ng, the peer workloads of 'make bench' and the end-to-end tests"
)

source_hint="without it, give the harness a kernel tree: --source /path/to/linux, or --source git:/path/to/linux@v6.1.30 (the race-window widening, --widen, fits 6.1 only)"

# check_go says whether Go is at least what go.mod requires, and how to get
# it if not.
check_go() {
  local need have gobin
  need=$(sed -n 's/^go \([0-9][0-9.]*\).*/\1/p' "$here/go.mod" | head -n 1)
  gobin=${GO:-}
  if [ -z "$gobin" ]; then
    gobin=$(command -v go 2>/dev/null || true)
    [ -z "$gobin" ] && [ -x /usr/local/go/bin/go ] && gobin=/usr/local/go/bin/go
  fi
  local how="get Go $need or later from https://go.dev/dl/ (as root: curl -fsSL https://go.dev/dl/go$need.linux-amd64.tar.gz | tar -C /usr/local -xz; the Makefile looks in /usr/local/go/bin), then rerun"
  if [ -z "$gobin" ] || [ ! -x "$gobin" ]; then
    warn "Go is not installed: $how"
    return 1
  fi
  have=$(cd / && GOTOOLCHAIN=local "$gobin" version 2>/dev/null | sed -n 's/^go version go\([0-9][0-9.]*\).*/\1/p')
  if [ -z "$have" ]; then
    warn "could not tell the version of $gobin: $how"
    return 1
  fi
  if [ -n "$need" ] && [ "$(printf '%s\n%s\n' "$need" "$have" | sort -V | head -n 1)" != "$need" ]; then
    warn "Go $have ($gobin) is older than $need, which go.mod requires: $how"
    return 1
  fi
  say "Go $have is recent enough (go.mod requires $need)"
  return 0
}

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-query >/dev/null 2>&1; then
  warn "$os_name has no apt-get: this script installs with apt (Debian 12 is what the harness is tested on). Install by hand:"
  warn "  QEMU (qemu-system-x86_64), the kernel build tools (gcc, make, flex, bison, bc, libelf and OpenSSL headers, cpio, xz, kmod, patch), ccache, git, and stress-ng for the end-to-end tests;"
  warn "  the default source debian:6.1 is Debian's linux-source-6.1 package: $source_hint"
  check_go
  exit 1
fi

missing_of() {
  local p out=()
  for p in ${group_pkgs[$1]}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out+=("$p")
  done
  echo "${out[*]:-}"
}

declare -A missing
any=0
for g in "${group_names[@]}"; do
  missing[$g]=$(missing_of "$g")
  [ -n "${missing[$g]}" ] && any=1
done

status=0
if [ "$any" -eq 0 ]; then
  say "everything is installed"
else
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      warn "not root and no sudo: run this script as root to install: $(for g in "${group_names[@]}"; do echo -n "${missing[$g]} "; done)"
      check_go
      exit 1
    fi
    if ! sudo -n true 2>/dev/null; then
      warn "not root, and 'sudo -n' cannot run without a password (or a terminal): run this script as root (sudo bash scripts/install-deps.sh), or allow passwordless sudo for apt-get"
      check_go
      exit 1
    fi
    sudo=(sudo -n)
  fi
  apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive)
  say "updating the package lists"
  if ! "${apt[@]}" apt-get update -q; then
    warn "apt-get update failed; installing from the lists as they are"
  fi
  for g in "${group_names[@]}"; do
    pkgs=${missing[$g]}
    if [ -z "$pkgs" ]; then
      say "$g: installed"
      continue
    fi
    if [ "$g" = source ]; then
      cand=$(apt-cache policy $pkgs 2>/dev/null | sed -n 's/^ *Candidate: *//p' | head -n 1)
      if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
        warn "source: $pkgs is not available on $os_name (Debian 12 has it; Ubuntu 24.04 does not): skipped. $source_hint"
        continue
      fi
    fi
    say "$g: installing $pkgs (${group_what[$g]})"
    # shellcheck disable=SC2086 # the package list splits on spaces
    if "${apt[@]}" apt-get install -y -q --no-install-recommends $pkgs; then
      continue
    fi
    if [ "${group_required[$g]}" -eq 1 ]; then
      warn "$g: could not install $pkgs (${group_what[$g]}): the harness needs it; see apt-get's message above"
      status=1
    elif [ "$g" = source ]; then
      warn "source: could not install $pkgs: $source_hint"
    else
      warn "$g: could not install $pkgs (${group_what[$g]}): optional, 'make bench' and the end-to-end external workload test need it"
    fi
  done
fi

check_go || status=1
if [ "$status" -eq 0 ]; then
  say "done"
else
  warn "not everything required is installed (see above)"
fi
exit "$status"
