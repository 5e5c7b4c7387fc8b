#!/usr/bin/env bash
# Runs every fuzz target briefly on its stored corpus: part of scripts/test. Long runs:
# see README. Prints a line per target, then `fuzz: N passed, M failed`; exits 1 if a
# target failed (its input is saved under fuzz/artifacts/TARGET).
# Needs cargo-fuzz (`scripts/test --deps-only` installs it); cargo-fuzz needs nightly
# features, which RUSTC_BOOTSTRAP=1 enables on stable. Built with debug assertions and
# overflow checks (cargo-fuzz's default without -O), so an arithmetic overflow is a find.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${FUZZ_SECONDS:-5}
command -v cargo-fuzz >/dev/null \
    || { echo "fuzz: cargo-fuzz not found (scripts/test --deps-only installs it)" >&2; exit 1; }
export RUSTC_BOOTSTRAP=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
passed=0 failed=0
for target in $(cargo fuzz list); do
    # libFuzzer adds the inputs it finds to the first corpus folder: a temporary one, so
    # the stored corpus (the second) is only read and the work tree stays clean.
    mkdir "$work/$target"
    if cargo fuzz run "$target" "$work/$target" "corpus/$target" \
        -- -max_total_time="$secs" >"$work/log" 2>&1; then
        passed=$((passed + 1))
        echo "fuzz: $target passed: $(grep -E '^Done' "$work/log")"
    else
        failed=$((failed + 1))
        tail -60 "$work/log"
        echo "fuzz: $target FAILED (input saved under fuzz/artifacts/$target)"
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" = 0 ]
