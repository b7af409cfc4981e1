#!/usr/bin/env python3
"""Turns llama.cpp `llama-perplexity` logs into rows of tqkv-llm's CSV.

Usage: tools/llamacpp_rows.py LOGDIR CONTEXT >> docs/llm/llamacpp.csv

LOGDIR holds f16-<CONTEXT>.log (the run that saved its base logits with
--kl-divergence-base) and <type>-<CONTEXT>.log for each KV-cache type run
with --kl-divergence. ΔPPL is PPL(Q) over the f16 run's own final
perplexity (not llama.cpp's `PPL(Q)/PPL(base)` line, which recomputes the
base from 16-bit log-probabilities and is biased by about +0.1 %); its
interval and the KLD's are ±1.96 of llama.cpp's standard errors.
"""
import math
import re
import sys

# Bits per coordinate of each cache type (keys and values averaged).
BITS = {"q8_0": 8.5, "q5_0": 5.5, "q4_1": 5.0, "iq4_nl": 4.5, "q4_0": 4.5,
        "q4_0norot": 4.5, "k8v4": 6.5}
NAMES = {"q4_0norot": "q4_0 (rotation off)", "k8v4": "K q8_0 / V q4_0"}


def value(text, label):
    m = re.search(re.escape(label) + r"\s*:\s*([-\d.]+)\s*±\s*([-\d.]+)", text)
    if not m:
        raise SystemExit(f"no '{label}' line")
    return float(m.group(1)), float(m.group(2))


def main():
    logdir, ctx = sys.argv[1], int(sys.argv[2])
    base = open(f"{logdir}/f16-{ctx}.log", encoding="utf-8", errors="replace").read()
    f16 = float(re.search(r"Final estimate: PPL = ([\d.]+)", base).group(1))
    print(f"llama.cpp,f16,{ctx},16.0000,0,{f16:.5f},f16,{f16:.5f},0,0,0,0,0,0,100,0,0")
    for kind, bits in BITS.items():
        try:
            text = open(f"{logdir}/{kind}-{ctx}.log", encoding="utf-8", errors="replace").read()
        except FileNotFoundError:
            continue
        if "Mean PPL(Q)" not in text:
            print(f"{kind}: run not finished, skipped", file=sys.stderr)
            continue
        ppl, _ = value(text, "Mean PPL(Q)")
        ln_ratio, ln_unc = value(text, "Mean ln(PPL(Q)/PPL(base))")
        kld, kld_unc = value(text, "Mean    KLD")
        top, _ = value(text, "Same top p")
        r = math.log(ppl / f16)
        pct = lambda x: (math.exp(x) - 1) * 100
        lo, hi = pct(r - 1.96 * ln_unc), pct(r + 1.96 * ln_unc)
        name = NAMES.get(kind, kind)
        print(f"llama.cpp,{name},{ctx},{bits:.4f},8184,{ppl:.5f},f16,{f16:.5f},"
              f"{pct(r):.3f},{lo:.3f},{hi:.3f},{kld:.6f},{kld - 1.96 * kld_unc:.6f},"
              f"{kld + 1.96 * kld_unc:.6f},{top:.2f},0,0")


if __name__ == "__main__":
    main()
