#!/usr/bin/env bash
# Builds the deployable agent: release profile, glibc linked statically (static-pie).
# No musl target can be installed here; glibc's static libc works because the agent
# uses no NSS lookups (owners are numeric). Prints the binary's path.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-gnu
# --target keeps the flags off build scripts and proc-macros, which cannot be static.
# crates/phoenix-ga/layout.ld orders the code so that an idle agent touches little of it
# (lower RSS); it changes where functions are placed, nothing else.
flags="-C target-feature=+crt-static -C link-arg=-Wl,-T,$PWD/crates/phoenix-ga/layout.ld"
RUSTFLAGS="$flags" cargo build --release --target "$target" -p phoenix-ga >&2
echo "$PWD/target/$target/release/phoenix-ga"
