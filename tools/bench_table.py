#!/usr/bin/env python3
"""Turns the medians of the last `cargo bench` runs
(target/criterion/*/new/estimates.json) into the Markdown tables of
BENCHMARKS.md: ns per call, ns per element and speed-up over scalar, all
from one run on this machine (no figure from elsewhere).
Usage: python3 tools/bench_table.py [target/criterion [attention|cache]]
(with `attention` or `cache`, only that table; `cache` is the encoding
table: `push` and `push_batch`, the time per call and per token)
"""
import json
import os
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
ORDER = ["scalar", "avx2", "avx512", "neon"]


def medians(group):
    out = {}
    base = os.path.join(ROOT, group)
    if not os.path.isdir(base):
        return out
    for backend in os.listdir(base):
        for size in os.listdir(os.path.join(base, backend)):
            path = os.path.join(base, backend, size, "new", "estimates.json")
            if os.path.exists(path):
                with open(path) as f:
                    out[(backend, size)] = json.load(f)["median"]["point_estimate"]
    return out


def table(group, elems):
    m = medians(group)
    backends = [b for b in ORDER if any(k[0] == b for k in m)]
    sizes = sorted({k[1] for k in m}, key=lambda s: [int(p) for p in s.split("x")])
    head = ["size"]
    for b in backends:
        head += [f"{b} ns", f"{b} ns/el"] + ([] if b == "scalar" else [f"{b} vs scalar"])
    if "avx2" in backends and "avx512" in backends:
        head += ["avx512 speed-up over avx2"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for s in sizes:
        row = [s]
        scalar = m.get(("scalar", s))
        for b in backends:
            ns = m.get((b, s))
            if ns is None:
                row += ["–", "–"] + ([] if b == "scalar" else ["–"])
                continue
            row += [f"{ns:,.1f}", f"{ns / elems(s):.3f}"]
            if b != "scalar":
                row.append(f"{scalar / ns:.1f}×" if scalar else "–")
        if "avx2" in backends and "avx512" in backends:
            row.append(f"{m[('avx2', s)] / m[('avx512', s)]:.2f}×")
        print("| " + " | ".join(row) + " |")


def op_medians(group):
    """{(op, backend, size): median ns} of target/criterion/<group>/<op>_<backend>/<size>."""
    base = os.path.join(ROOT, group)
    m = {}
    if not os.path.isdir(base):
        return m
    for op_backend in os.listdir(base):
        for sub in os.listdir(os.path.join(base, op_backend)):
            path = os.path.join(base, op_backend, sub, "new", "estimates.json")
            if os.path.exists(path):
                with open(path) as f:
                    op, _, backend = op_backend.rpartition("_")
                    m[(op, backend, sub)] = json.load(f)["median"]["point_estimate"]
    return m


def op_table(m, ops, size_key):
    """One row per op and size: ns per backend and the best SIMD speed-up."""
    backends = [b for b in ORDER if any(k[1] == b for k in m)]
    print("| op | size | " + " | ".join(f"{b} ns" for b in backends) + " | best vs scalar |")
    print("|" + "---|" * (3 + len(backends)))
    for op in ops:
        for size in sorted({k[2] for k in m if k[0] == op}, key=size_key):
            vals = [m.get((op, b, size)) for b in backends]
            cells = [f"{v:,.1f}" if v is not None else "–" for v in vals]
            simd = [v for b, v in zip(backends, vals) if b != "scalar" and v is not None]
            sc = m.get((op, "scalar", size))
            ratio = f"{sc / min(simd):.1f}×" if sc and simd else "–"
            print(f"| {op} | {size.replace('_', '/')} | " + " | ".join(cells) + f" | {ratio} |")


def codebook_table():
    """codebook/<op>/<backend>/b<bits>/d<dim>, then the past-the-cache runs."""
    m = op_medians("codebook")
    if not m:
        return
    ops = ["quantize_packed", "dequantize", "dot", "dot_rows", "dot_rows_int8", "accumulate_rows",
           "f32dot"]
    op_table(m, ops, str)
    print()
    for key in sorted(k for k in m if k[0].endswith("_1m") or k[0] == "memcpy"):
        print(f"- `codebook/{key[0]}/{key[1]}/{key[2].replace('_', '/')}`: {m[key] / 1e6:,.2f} ms")


def qjl_table():
    """qjl/<op>/<backend>/m<bits>."""
    m = op_medians("qjl")
    if m:
        ops = ["signed_sum_rows", "bitplanes_rows", "accumulate_signs_rows", "hamming",
               "sketch_gaussian", "sketch_hadamard"]
        op_table(m, ops, lambda v: int(v[1:]))


def attention_table():
    """attention/<id>/<size>: median µs per call, one row per id."""
    base = os.path.join(ROOT, "attention")
    if not os.path.isdir(base):
        return
    rows = {}
    for ident in os.listdir(base):
        for size in os.listdir(os.path.join(base, ident)):
            path = os.path.join(base, ident, size, "new", "estimates.json")
            if os.path.exists(path):
                with open(path) as f:
                    rows.setdefault(ident, {})[size] = json.load(f)["median"]["point_estimate"]
    sizes = sorted({s for r in rows.values() for s in r})
    print("| id | " + " | ".join(f"{s} µs" for s in sizes) + " |")
    print("|" + "---|" * (1 + len(sizes)))
    for ident in sorted(rows):
        cells = [f"{rows[ident][s] / 1e3:,.1f}" if s in rows[ident] else "" for s in sizes]
        print(f"| `attention/{ident.replace('_', '/')}/…` | " + " | ".join(cells) + " |")


def cache_table():
    """cache/<op>/<config>/<size>: median per call and per token (per head
    for `h<heads>`), in the order of BENCHMARKS.md's encoding table."""
    base = os.path.join(ROOT, "cache")
    if not os.path.isdir(base):
        return
    found = {}
    for root, _dirs, files in os.walk(base):
        if root.endswith(os.sep + "new") and "benchmark.json" in files:
            with open(os.path.join(root, "benchmark.json")) as f:
                full_id = json.load(f)["full_id"]
            with open(os.path.join(root, "estimates.json")) as f:
                found[full_id] = json.load(f)["median"]["point_estimate"]

    def order(ident):
        parts = ident.split("/")
        op = parts[1]
        rank = ["push", "push_on", "push_batch", "push_batch_parallel", "push_batch_on", "memcpy"]
        backend = parts[2] if op.endswith("_on") else ""
        return (rank.index(op) if op in rank else len(rank), ORDER.index(backend)
                if backend in ORDER else -1, ident)

    def fmt(ns):
        return f"{ns / 1e3:,.2f} µs" if ns >= 1e3 else f"{ns:.1f} ns"

    print("| id | median | a token |")
    print("|---|---|---|")
    for ident in sorted(found, key=order):
        ns = found[ident]
        size = ident.split("/")[-1]
        per, unit = 1, ""
        if "x" in size:
            per = int(size.split("x")[1])
        elif "h" in size:
            per, unit = int(size.split("h")[1]), " a head"
        print(f"| `{ident}` | {fmt(ns)} | {fmt(ns / per)}{unit} |")


if len(sys.argv) > 2 and sys.argv[2] == "attention":
    attention_table()
    sys.exit(0)
if len(sys.argv) > 2 and sys.argv[2] == "cache":
    cache_table()
    sys.exit(0)

print("### `wht/fwht/<backend>/<n>`: one transform per call (median ns)\n")
table("wht_fwht", lambda s: int(s))
print("\n### `wht/fwht_rows/<backend>/<n>x<rows>`: one batched call (median ns per call)\n")
table("wht_fwht_rows", lambda s: int(s.split("x")[0]) * int(s.split("x")[1]))
print("\n### `codebook/<op>/<backend>/b<bits>/d<dim>` (median ns per call)\n")
codebook_table()
print("\n### `qjl/<op>/<backend>/m<bits>` (median ns per call)\n")
qjl_table()
