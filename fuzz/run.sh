#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [seconds-per-target]
# (default 60). Needs the nightly toolchain and cargo-fuzz. New corpus
# entries go to fuzz/corpus/<target> (not committed); the committed seeds in
# fuzz/seeds/<target> are read too. A crash stops the script with the
# reproducer under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
targets=(cache_from_bytes kernels_differential pack_roundtrip encode_decode)
cargo +nightly fuzz build -O >/dev/null
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "=== $t: ${secs} s"
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -rss_limit_mb=4096 -print_final_stats=1 2>&1 |
        grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec|#[0-9]+ +DONE)|ERROR|panicked|SUMMARY" || true
    if ls "artifacts/$t"/crash-* >/dev/null 2>&1 || ls "artifacts/$t"/oom-* >/dev/null 2>&1; then
        echo "finding in $t: $(ls artifacts/$t)"
        exit 1
    fi
done
