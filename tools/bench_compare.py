#!/usr/bin/env python3
"""Compares the medians of two criterion runs, id by id:
    python3 tools/bench_compare.py BEFORE/target/criterion AFTER/target/criterion
prints a Markdown table (id, before, after, after/before) of every benchmark
id present in both, and the geometric mean of the ratios per family.
Criterion stores each id under <dir>/<group>/<function>/<parameter>/new/;
ids are shown as group/function/parameter.
"""
import json
import math
import os
import sys
from collections import defaultdict


def medians(root):
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        if "estimates.json" in files and os.path.basename(dirpath) == "new":
            rel = os.path.relpath(os.path.dirname(dirpath), root)
            with open(os.path.join(dirpath, "estimates.json")) as f:
                out[rel.replace(os.sep, "/")] = json.load(f)["median"]["point_estimate"]
    return out


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


def main():
    before, after = medians(sys.argv[1]), medians(sys.argv[2])
    ids = sorted(set(before) & set(after))
    print("| id | before | after | after / before |")
    print("|---|---|---|---|")
    families = defaultdict(list)
    for i in ids:
        r = after[i] / before[i]
        families[i.split("/")[0]].append(r)
        print(f"| `{i}` | {fmt(before[i])} | {fmt(after[i])} | {r:.2f} |")
    print()
    print("| family | ids | geometric mean of after / before | min | max |")
    print("|---|---|---|---|---|")
    for fam, rs in sorted(families.items()):
        g = math.exp(sum(math.log(r) for r in rs) / len(rs))
        print(f"| {fam} | {len(rs)} | {g:.3f} | {min(rs):.2f} | {max(rs):.2f} |")


if __name__ == "__main__":
    main()
