#!/usr/bin/env python3
"""A/B of two criterion bench binaries on a noisy machine, in alternating runs:

    cargo bench -p tqkv --bench attention --no-run     # prints the binary
    cp target/release/deps/attention-<hash> /tmp/old   # before the change
    ... change, build again, copy to /tmp/new ...
    python3 tools/bench_ab.py --rounds 4 /tmp/old /tmp/new 'attention/kv/n4/avx2'

Each round runs both binaries on the filter (the order swapped every
round), each into its own CRITERION_HOME, with a short warm-up and
measurement (`--measurement-time`, 2 s unless given). Per benchmark id it
prints two estimates of new / old:

- `fastest`: each run's fastest sample (the least time an iteration took,
  criterion's `sample.json` divided by its iteration counts), then the least
  over the rounds. Time stolen by other guests or a busy sibling core only
  ever adds to a sample, so the fastest sample is the one least disturbed.
- `median`: criterion's median, then the median over the rounds.

`--control` runs the old binary against itself instead: the spread of its
ratios around 1.00 is what this machine can resolve.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from bench_compare import fmt


def run(binary, regex, home, measurement):
    env = dict(os.environ, CRITERION_HOME=home)
    cmd = [binary, "--bench", "--warm-up-time", "1", "--measurement-time", measurement, regex]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def estimates(home):
    """Per id: (fastest sample's time an iteration, criterion's median), ns."""
    out = {}
    for dirpath, _dirs, files in os.walk(home):
        if os.path.basename(dirpath) != "new" or "sample.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            name = json.load(f)["full_id"]
        with open(os.path.join(dirpath, "sample.json")) as f:
            s = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            median = json.load(f)["median"]["point_estimate"]
        fastest = min(t / n for t, n in zip(s["times"], s["iters"]))
        out[name] = (fastest, median)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("regex")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--measurement-time", default="2")
    p.add_argument("--control", action="store_true", help="run old against itself")
    a = p.parse_args()
    binaries = {"old": a.old, "new": a.old if a.control else a.new}
    runs = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for label in order:
                home = os.path.join(tmp, f"{label}{r}")
                run(binaries[label], a.regex, home, a.measurement_time)
                runs[label].append(estimates(home))
    ids = sorted(set.intersection(*(set(e) for rs in runs.values() for e in rs)))
    if not ids:
        sys.exit(f"no benchmark id matched {a.regex!r}")
    print("| id | old fastest | new fastest | new / old, fastest | new / old, median |")
    print("|---|---|---|---|---|")
    for i in ids:
        fast = {k: min(e[i][0] for e in rs) for k, rs in runs.items()}
        med = {k: statistics.median(e[i][1] for e in rs) for k, rs in runs.items()}
        print(
            f"| `{i}` | {fmt(fast['old'])} | {fmt(fast['new'])} | "
            f"{fast['new'] / fast['old']:.3f} | {med['new'] / med['old']:.3f} |"
        )


if __name__ == "__main__":
    main()
