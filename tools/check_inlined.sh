#!/usr/bin/env bash
# Fails if a SIMD intrinsic of `core::arch` was compiled as a call in any of
# tqkv's release test binaries. An intrinsic inlines only into code that has
# the kernel's target features; a closure inside a kernel (`array::from_fn`,
# `.map`) may not get them, and then every intrinsic in it is a function
# call. That once made the AVX-512 int8 kernel's folds six times slower
# while every test stayed green. CPUID and XGETBV (feature detection) are
# calls by design.
set -euo pipefail
cd "$(dirname "$0")/.."

bins=$(cargo test --release -p tqkv --all-features --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
[ -n "$bins" ] || { echo "no test binaries found" >&2; exit 1; }
found=0
for b in $bins; do
    calls=$(objdump -d --no-show-raw-insn "$b" |
        awk '/^[0-9a-f]+ <.*>:$/ { fn = $2 }
             /call.*core_arch/ && !/xgetbv|cpuid/ { print fn " calls " $NF }' |
        sort -u)
    if [ -n "$calls" ]; then
        echo "$b: intrinsics compiled as calls:" >&2
        echo "$calls" | c++filt >&2
        found=1
    fi
done
[ "$found" = 0 ] && echo "no intrinsic compiled as a call in $(echo "$bins" | wc -l) test binaries"
exit "$found"
