#!/usr/bin/env bash
# Installs what the tests need (Debian/Ubuntu, as root), builds, and runs every test.
#   scripts/test.sh [swift test arguments...]
# The tests use the real thing: sockets on loopback, libpcap capture on lo, traced child processes (ptrace, and
# eBPF programs loaded into the running kernel; gcc builds a C one), tshark and tcpdump as reference decoders,
# headless Chromium for the HTML pages. Run as root (CI does). The build itself needs libpcap-dev and libbpf-dev.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
    libpcap-dev libbpf-dev tcpdump tshark iproute2 python3 strace chromium fonts-noto-cjk bc curl netcat-openbsd gcc
)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "swift is not on PATH: install a Swift 6 toolchain (swift.org)" >&2; exit 1; }

swift build --build-tests
swift test "$@"
