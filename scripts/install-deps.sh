#!/usr/bin/env bash
# Installs what the harness needs on Debian 12: QEMU, the kernel build tools,
# the Debian kernel source, and the peer workloads used by 'make bench'.
# Idempotent: installs only what is missing and says what it installs.
set -euo pipefail

pkgs=(
  qemu-system-x86      # runs the kernels (KVM when /dev/kvm works, else TCG)
  build-essential flex bison bc libelf-dev libssl-dev cpio xz-utils kmod patch  # kernel build
  ccache               # the second variant and bisect steps reuse compiled objects
  git                  # git sources and bisect
  linux-source-6.1     # the default source, debian:6.1 (about 140 MB)
  stress stress-ng     # peer workloads for 'make bench'
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  echo "install-deps: Go is not installed: install Go 1.26 or later (https://go.dev/doc/install), then rerun" >&2
  exit 1
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: everything is installed"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root, or install sudo" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
