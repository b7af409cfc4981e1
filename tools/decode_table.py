#!/usr/bin/env python3
"""Prints the runtime-shape tables of BENCHMARKS.md from the medians of the
last `cargo bench -p tqkv --bench attention` run (target/criterion): the
grouped-query, split and many-query shapes against one query, every scheme
against the copy of its own bytes, and eight KV heads past the LLC against
a memory-to-memory copy, then exact against int8 key scoring. All
figures come from that one run.
Usage: python3 tools/decode_table.py [target/criterion]
"""
import glob
import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"


def medians():
    out = {}
    pattern = os.path.join(ROOT, "attention", "**", "new", "benchmark.json")
    for path in glob.glob(pattern, recursive=True):
        with open(path) as f:
            full_id = json.load(f)["full_id"]
        with open(os.path.join(os.path.dirname(path), "estimates.json")) as f:
            out[full_id] = json.load(f)["median"]["point_estimate"]
    return out


def fmt(ns):
    return f"{ns / 1e6:.3f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} µs"


def main():
    m = medians()
    backend = "avx512" if any("/avx512/" in k for k in m) else "avx2"
    base = f"attention/kqv/n4/{backend}/t65536"
    one = m.get(f"{base}/g1x1q1")
    copy4 = m.get("attention/memcpy/1core/t65536/kqvn4")
    print("| shape | id | median | against one query (g1x1q1) |")
    print("|---|---|---|---|")
    rows = [
        ("one query head", "g1x1q1"),
        ("4 query heads sharing the KV head", "g4x1q1"),
        ("8 query heads sharing the KV head", "g8x1q1"),
        ("one query head, two threads (attend_parallel, rayon)", "g1x2q1"),
        ("one query head, two threads (attend_partial, a spinning helper)", "g1x2q1spin"),
        ("8 positions in one call", "g1x1q8"),
    ]
    for name, shape in rows:
        t = m.get(f"{base}/{shape}")
        if t is None or one is None:
            continue
        print(f"| {name} | `{base}/{shape}` | {fmt(t)} | {t / one:.2f}× |")
    if copy4:
        print(f"| memcpy of the KQV n = 4 cache's bytes | `attention/memcpy/1core/t65536/kqvn4` | {fmt(copy4)} | {copy4 / one:.2f}× |")
    print()
    avx2 = backend != "avx2" and any("/avx2/" in k and k.endswith("/g1x1q1") for k in m)
    extra = " AVX2 (g1x1q1) | AVX2 / copy | AVX2 g = 4 / g = 1 |" if avx2 else ""
    print(f"| scheme | n | attention (g1x1q1) | copy of its bytes | attention / copy | g4x1q1 | g = 4 / g = 1 |{extra}")
    print("|---|---|---|---|---|---|---|" + ("---|---|---|" if avx2 else ""))
    for scheme in ["kv", "kqv", "qkqv"]:
        for n in range(2, 7):
            t = m.get(f"attention/{scheme}/n{n}/{backend}/t65536/g1x1q1")
            c = m.get(f"attention/memcpy/1core/t65536/{scheme}n{n}")
            g4 = m.get(f"attention/{scheme}/n{n}/{backend}/t65536/g4x1q1")
            if t is None or c is None:
                continue
            four = f"{fmt(g4)} | {g4 / t:.2f}×" if g4 else "— | —"
            row = f"| {scheme.upper()} | {n} | {fmt(t)} | {fmt(c)} | {t / c:.2f}× | {four} |"
            if avx2:
                a = m.get(f"attention/{scheme}/n{n}/avx2/t65536/g1x1q1")
                a4 = m.get(f"attention/{scheme}/n{n}/avx2/t65536/g4x1q1")
                row += f" {fmt(a)} | {a / c:.2f}× |" if a else " — | — |"
                row += f" {a4 / a:.2f}× |" if a and a4 else " — |"
            print(row)
    big = m.get("attention/memcpy/1core/512MB")
    if big:
        bw_copy = (512 << 20) / big
        print()
        print("| eight KV heads past the LLC | median | GB/s read | against one core's copy |")
        print("|---|---|---|---|")
        # Each scheme and backend the bench ran, one thread, then two.
        # (On an AVX2-only host the third row is the first: once.)
        rows = []
        for row in [
            ("kqv", backend, ""),
            ("kqv", backend, "x2"),
            ("kqv", "avx2", ""),
            ("kv", backend, ""),
        ]:
            if row not in rows:
                rows.append(row)
        for scheme, b, suffix in rows:
            t = m.get(f"attention/{scheme}/n4/{b}/t65536h8{suffix}")
            if t is None:
                continue
            # Bytes read per call: the 8-head cache (the bench's throughput).
            path = os.path.join(ROOT, "attention", f"{scheme}_n4_{b}", "t65536h8", "new", "benchmark.json")
            with open(path) as f:
                read = json.load(f)["throughput"]["Bytes"]
            bw = read / t
            note = " (two threads)" if suffix else ""
            print(f"| `attention/{scheme}/n4/{b}/t65536h8{suffix}`{note} | {fmt(t)} | {bw:.1f} | {bw / bw_copy:.0%} |")
        print(f"| `attention/memcpy/1core/512MB` | {fmt(big)} | {bw_copy:.1f} | 100% |")

    int8_table(m, [backend] + (["avx2"] if avx2 else []))


def int8_table(m, backends):
    """Exact against int8 key scoring (`…/g1x1q1int8`), one query head,
    each against the copy of the cache's bytes."""
    rows = []
    for scheme in ["kv", "kqv", "qkqv"]:
        for n in range(2, 7):
            c = m.get(f"attention/memcpy/1core/t65536/{scheme}n{n}")
            for b in backends:
                e = m.get(f"attention/{scheme}/n{n}/{b}/t65536/g1x1q1")
                i = m.get(f"attention/{scheme}/n{n}/{b}/t65536/g1x1q1int8")
                if c and e and i:
                    name = "AVX-512" if b == "avx512" else b.upper()
                    rows.append(
                        f"| {scheme.upper()} | {n} | {name} | {e / 1e3:.0f} µs | {i / 1e3:.0f} µs | "
                        f"{c / 1e3:.0f} µs | {e / c:.2f}× | {i / c:.2f}× | {e / i:.2f}× |"
                    )
    if rows:
        print()
        print("| scheme | n | backend | exact | int8 | copy | exact / copy | int8 / copy | exact / int8 |")
        print("|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))


main()
