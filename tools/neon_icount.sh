#!/usr/bin/env bash
# Guest instructions a token of NEON attention decode executes under
# qemu-aarch64 (tools/qemu_icount.c counts them), for each scheme, budget
# and number of query heads given: the example `decode_calls` runs three
# calls and one on a cache of 4,096 tokens at d = 128, and the difference
# over 2·4,096 is printed, so the cache's set-up cancels. A count, not a
# time: no ARM core is at hand, and qemu's timings are not a core's.
#
#   tools/neon_icount.sh [base-rev]
#
# With a revision, the same counts for it too (the example copied into a
# worktree of it), and their ratio. Needs qemu-user, gcc and
# gcc-aarch64-linux-gnu (as CI's aarch64 step) and the aarch64 target.
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-"kv:2 kv:3 kv:4 kqv:2 kqv:4 qkqv:4"}
heads=${HEADS:-"1 2 3 4"}
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" 2>/dev/null; git worktree prune; rm -rf "$work"' EXIT
gcc -shared -fPIC -O2 tools/qemu_icount.c -o "$work/libqemu_icount.so"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
build() { # tree name → the example's aarch64 binary, $work/bin-<name>
    (cd "$1" && cargo build -q --release -p tqkv --target aarch64-unknown-linux-gnu \
        --example decode_calls --target-dir "$work/target-$2")
    cp "$work/target-$2/aarch64-unknown-linux-gnu/release/examples/decode_calls" "$work/bin-$2"
}
build . new
if [ $# -ge 1 ]; then
    git worktree add -q --detach "$work/base" "$1"
    cp tqkv/examples/decode_calls.rs "$work/base/tqkv/examples/"
    grep -q 'name = "decode_calls"' "$work/base/tqkv/Cargo.toml" ||
        printf '\n[[example]]\nname = "decode_calls"\nrequired-features = ["std"]\n' >> "$work/base/tqkv/Cargo.toml"
    build "$work/base" base
fi
count() { # binary scheme bits g calls → instructions executed
    qemu-aarch64 -L /usr/aarch64-linux-gnu -plugin "$work/libqemu_icount.so" -d plugin \
        "$work/bin-$1" "$2" "$3" "$4" "$5" neon 2>&1 >/dev/null | awk '/^insns:/ {print $2}'
}
per_token() { # binary scheme bits g → instructions a token of one call
    local one three
    one=$(count "$@" 1)
    three=$(count "$@" 3)
    awk -v a="$one" -v b="$three" 'BEGIN { printf "%.1f", (b - a) / (2 * 4096) }'
}
if [ $# -ge 1 ]; then
    echo "| scheme | n | g | $1 | this tree | ratio |"
    echo "|---|---|---|---|---|---|"
else
    echo "| scheme | n | g | instructions a token |"
    echo "|---|---|---|---|"
fi
for shape in $shapes; do
    scheme=${shape%:*}
    bits=${shape#*:}
    for g in $heads; do
        new=$(per_token new "$scheme" "$bits" "$g")
        if [ $# -ge 1 ]; then
            base=$(per_token base "$scheme" "$bits" "$g")
            echo "| $scheme | $bits | $g | $base | $new | $(awk -v a="$base" -v b="$new" 'BEGIN { printf "%.3f", b / a }') |"
        else
            echo "| $scheme | $bits | $g | $new |"
        fi
    done
done
