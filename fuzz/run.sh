#!/usr/bin/env bash
# Runs fuzz targets for a bounded time: fuzz/run.sh [seconds-per-target [target...]]
# (default 60). Needs the nightly toolchain and cargo-fuzz. New corpus
# entries go to fuzz/corpus/<target> (not committed); the committed seeds in
# fuzz/seeds/<target> are read too. A crash stops the script with the
# reproducer under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
# AddressSanitizer's checks as calls (`__asan_load64`, …), not inlined: the
# unrolled SIMD kernels have thousands of loads each, and inlined checks
# (a branch each, and a coverage counter on every branch) made the unrolled
# kernels about 65 times their release size (tqkv's code 37 MB) and the
# build 11–17 minutes; as calls the code is 13 MB, the build about 3.5
# minutes, and the targets run 1.3–1.6 times as many inputs a second.
# Every access is still checked. `cargo fuzz run` must see the same flags, or it
# rebuilds.
export RUSTFLAGS="${RUSTFLAGS:-} -Cllvm-args=-asan-instrumentation-with-call-threshold=0"
# Targets: the arguments after the time, or all four.
cargo +nightly fuzz build -O >/dev/null
targets=("${@:2}")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(cache_from_bytes kernels_differential pack_roundtrip encode_decode)
fi
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "=== $t: ${secs} s"
    log="$(mktemp)"
    status=0
    cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -seed="${FUZZ_SEED:-1}" -timeout=10 -rss_limit_mb=4096 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(stat::number_of_executed_units|stat::average_exec_per_sec)|ERROR|panicked|SUMMARY|Test unit written" "$log" || true
    rm -f "$log"
    if [ "$status" -ne 0 ]; then
        echo "finding in $t (exit $status); the input is under fuzz/artifacts/$t/"
        exit 1
    fi
done
