#!/usr/bin/env bash
# Runs every fuzz target briefly on its stored corpus (CI). Long runs: see README.
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on stable.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-10}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo fuzz list); do
    if ! cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$secs" >"$log" 2>&1; then
        tail -60 "$log"
        echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target)"
        exit 1
    fi
    echo "fuzz: $target: $(grep -E '^Done' "$log")"
done
