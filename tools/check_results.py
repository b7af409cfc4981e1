#!/usr/bin/env python3
"""Sanity checks of target/evaluate/results.csv (run by .ci/run after
`cargo run --release --example evaluate -- --quick`).

Checks: the header, one row per (dataset, projection, scheme, budget) with
every budget 2..6 and every scheme present, no empty/NaN/infinite figure,
bits per coordinate equal to the budget plus the f16 side information of each
scheme, confidence intervals that contain their medians, p-values in [0, 1],
|r| <= 1, and the median KL strictly decreasing with the budget for every
scheme of every dataset and projection. Exits non-zero on the first failure.
"""

import csv
import math
import sys
from collections import defaultdict

path = sys.argv[1] if len(sys.argv) > 1 else "target/evaluate/results.csv"
rows = list(csv.DictReader(open(path)))
need = ["dataset", "projection", "scheme", "n", "dim", "bits_k", "bits_v", "bits",
        "kl_median", "kl_lo", "kl_hi", "kerr_median", "kerr_lo", "kerr_hi",
        "six_median", "six_lo", "six_hi", "mw_kl_kqv_qkqv_p", "mw_kl_kqv_qkqv_r",
        "kl_ratio_qkqv_kqv", "kerr_ratio_qkqv_kqv"]
fail = []
if not rows:
    sys.exit(f"{path}: no rows")
missing = [c for c in need if c not in rows[0]]
if missing:
    sys.exit(f"{path}: missing columns {missing}")

text = ("dataset", "dist", "rank", "projection", "scheme")
for i, r in enumerate(rows):
    for k, v in r.items():
        if k in text:
            if not v:
                fail.append(f"row {i}: empty {k}")
            continue
        try:
            x = float(v)
        except ValueError:
            fail.append(f"row {i}: {k} = {v!r} is not a number")
            continue
        if not math.isfinite(x):
            fail.append(f"row {i}: {k} = {v}")
    n, d = int(r["n"]), int(r["dim"])
    side = {"kv": (16, 16), "kqv": (16, 32), "qkqv": (32, 32)}[r["scheme"]]
    for col, s in zip(("bits_k", "bits_v"), side):
        want = n + s / d
        if abs(float(r[col]) - want) > 1e-9:
            fail.append(f"row {i}: {col} = {r[col]}, expected {want}")
    for m in ("kl", "kerr", "six"):
        lo, med, hi = (float(r[f"{m}_{s}"]) for s in ("lo", "median", "hi"))
        if not (lo <= med <= hi) or lo < 0:
            fail.append(f"row {i}: {m} CI [{lo}, {hi}] around {med}")
    for k, v in r.items():
        if k.startswith("mw_") and k.endswith("_p") and not 0 <= float(v) <= 1:
            fail.append(f"row {i}: {k} = {v}")
        if k.startswith("mw_") and k.endswith("_r") and abs(float(v)) > 1:
            fail.append(f"row {i}: {k} = {v}")

series = defaultdict(dict)
for r in rows:
    series[(r["dataset"], r["projection"], r["scheme"])][int(r["n"])] = float(r["kl_median"])
for key, kl in series.items():
    if sorted(kl) != [2, 3, 4, 5, 6]:
        fail.append(f"{key}: budgets {sorted(kl)}")
        continue
    for n in range(3, 7):
        if not kl[n] < kl[n - 1]:
            fail.append(f"{key}: KL does not decrease from n={n-1} ({kl[n-1]}) to n={n} ({kl[n]})")
groups = {(r["dataset"], r["projection"]) for r in rows}
for g in groups:
    schemes = {k[2] for k in series if k[:2] == g}
    if schemes != {"kv", "kqv", "qkqv"}:
        fail.append(f"{g}: schemes {sorted(schemes)}")
if len(rows) != 15 * len(groups):
    fail.append(f"{len(rows)} rows for {len(groups)} groups (expected 15 each)")

if fail:
    print("\n".join(fail[:40]))
    sys.exit(f"{path}: {len(fail)} problems")
print(f"{path}: {len(rows)} rows, {len(groups)} groups: shape and sanity OK")
