#!/usr/bin/env python3
"""Independent reference for tqkv's Rotation, written from its documented
definition only (no code shared with the crate): SplitMix64 signs, the
canonical-order WHT in IEEE binary32, then the f32 scale 1/sqrt(d).

binary32 arithmetic is emulated exactly: the sum or product of two binary32
values is computed exactly in binary64 (53 >= 2*24+2 bits, so rounding twice
is innocuous) and rounded to binary32 with struct.

Prints, for the test in tests/wht.rs, the output bits of rotate() on
x[i] = (float)(1.0 / (i + 1)) for the given dimension and seed.
With --fnv it prints instead the 64-bit FNV-1a hash of those bits, each
taken as 4 little-endian bytes, for dimensions too long to paste.
Usage: python3 tools/rotation_reference.py DIM SEED [--fnv]

With --qjl-hadamard DIM M SEED it prints, in hex, the sign bytes of the
Hadamard QJL sketch of x[i] = (float)(1/(i+1) − 0.3).
Usage: python3 tools/rotation_reference.py --qjl-hadamard DIM M SEED
"""
import struct
import sys

M = (1 << 64) - 1


def f32(v):
    return struct.unpack("<f", struct.pack("<f", v))[0]


def bits(v):
    return struct.unpack("<I", struct.pack("<f", v))[0]


def splitmix64(seed):
    s = seed
    while True:
        s = (s + 0x9E3779B97F4A7C15) & M
        z = s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        yield z ^ (z >> 31)


def flip_signs(x, seed):
    """x times the sign diagonal of seed: bit i % 64 of output i // 64."""
    gen = splitmix64(seed)
    x = list(x)
    for w in range(0, len(x), 64):
        word = next(gen)
        for j in range(min(64, len(x) - w)):
            if (word >> j) & 1:
                x[w + j] = -x[w + j]
    return x


def wht(x):
    """The canonical-order WHT in binary32: strides 1, 2, 4, ..."""
    x = list(x)
    d, h = len(x), 1
    while h < d:
        for i in range(0, d, 2 * h):
            for j in range(i, i + h):
                a, b = x[j], x[j + h]
                x[j], x[j + h] = f32(a + b), f32(a - b)
        h *= 2
    return x


def rotate(x, seed):
    d = len(x)
    x = wht(flip_signs(x, seed))
    scale = f32(1.0 / d**0.5)
    return [f32(v * scale) for v in x]


def qjl_hadamard_sketch(x, m, seed):
    """Sign bits of the Hadamard QJL projection (tqkv::qjl docs): block b
    is the WHT of D_b·x (no scale), D_b the signs of seed + b; bit j = 1 iff
    (S·x)_j > 0, bit j of byte j // 8 at position j % 8."""
    out = bytearray(m // 8)
    j, b = 0, 0
    while j < m:
        for v in wht(flip_signs(x, (seed + b) & M))[: m - j]:
            if v > 0:
                out[j // 8] |= 1 << (j % 8)
            j += 1
        b += 1
    return bytes(out)


if __name__ == "__main__":
    if sys.argv[1] == "--qjl-hadamard":
        # x[i] = (float)(1/(i+1) - 0.3)
        dim, m, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4], 0)
        x = [f32(1.0 / (i + 1) - 0.3) for i in range(dim)]
        print(qjl_hadamard_sketch(x, m, seed).hex())
        sys.exit(0)
    dim, seed = int(sys.argv[1]), int(sys.argv[2], 0)
    x = [f32(1.0 / (i + 1)) for i in range(dim)]
    out = rotate(x, seed)
    if "--fnv" in sys.argv:
        h = 0xCBF29CE484222325
        for v in out:
            for byte in struct.pack("<I", bits(v)):
                h = ((h ^ byte) * 0x100000001B3) & M
        print("0x%016x" % h)
    else:
        print(", ".join("0x%08x" % bits(v) for v in out))
