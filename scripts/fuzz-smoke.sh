#!/usr/bin/env bash
# Runs every fuzz target briefly on its stored corpus (CI). Long runs: see README.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on stable.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-10}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $(cargo fuzz list); do
    echo "fuzz: $target for ${secs}s"
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$secs" 2>&1 | grep -E "^Done|DONE|panicked|SUMMARY" || true
    # cargo fuzz exits non-zero on a crash; pipefail would hide it behind grep.
    cargo fuzz run -O "$target" "corpus/$target" -- -runs=0 >/dev/null 2>&1
done
