#!/usr/bin/env bash
# Runs the side-by-side benchmarks (README "Benchmarks"): our static release agent
# against qemu-ga (Debian qemu-guest-agent), through the same Rust client.
# Arguments are passed to phoenix-bench (e.g. --sections core,files --idle-secs 10).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-ga >/dev/null || [ -x /usr/sbin/qemu-ga ] || apt-get install -y -qq qemu-guest-agent
agent=$(scripts/build-static.sh)
cargo build --release -p phoenix-bench >&2
exec target/release/phoenix-bench --agent "$agent" "$@"
