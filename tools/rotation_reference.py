#!/usr/bin/env python3
"""Independent reference for turbokv's Rotation, written from its documented
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


def rotate(x, seed):
    d = len(x)
    gen = splitmix64(seed)
    x = list(x)
    for w in range(0, d, 64):
        word = next(gen)
        for j in range(min(64, d - w)):
            if (word >> j) & 1:
                x[w + j] = -x[w + j]
    h = 1
    while h < d:
        for i in range(0, d, 2 * h):
            for j in range(i, i + h):
                a, b = x[j], x[j + h]
                x[j], x[j + h] = f32(a + b), f32(a - b)
        h *= 2
    scale = f32(1.0 / d**0.5)
    return [f32(v * scale) for v in x]


if __name__ == "__main__":
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
