#!/usr/bin/env python3
"""Compares two series of coop_bench runs, figure by figure, on medians.

    python3 benchmarks/compare_runs.py 'before*.json' 'after*.json'

For the per-unit cost (throughput: coop and the tight loop, per task count) and the
control operations, prints the median of each series, every run's figure, and the change.
Run the two series interleaved (before, after, before, ...): the machine's drift then
falls on both.
"""
import glob
import json
import statistics
import sys


def figures(pattern):
    out = {}
    files = sorted(glob.glob(pattern))
    if not files:
        sys.exit(f"no file matches {pattern}")
    for name in files:
        with open(name) as f:
            doc = json.load(f)
        tight = {}
        for r in doc.get("throughput", []):
            if r["key"] in ("coop", "tight"):
                out.setdefault(f"{r['key']} ns/unit, {r['tasks']:,} tasks", []).append(r["ns_per_unit"])
            if r["key"] == "tight":
                tight[r["tasks"]] = r["ns_per_unit"]
        # Each run's coop figure over its own tight loop: what a disturbed run moves less.
        for r in doc.get("throughput", []):
            if r["key"] == "coop" and r["tasks"] in tight:
                out.setdefault(f"coop / tight loop, {r['tasks']:,} tasks", []).append(r["ns_per_unit"] / tight[r["tasks"]])
        for side, rows in doc.get("control", {}).items():
            for r in rows:
                value = r.get("ns_per_op", r.get("ns"))
                if value is not None:
                    out.setdefault(f"{side}: {r.get('op', r.get('key'))}, {r.get('tasks')} tasks", []).append(value)
    return out, len(files)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    (before, nb), (after, na) = figures(sys.argv[1]), figures(sys.argv[2])
    print(f"medians of {nb} runs (first) and {na} runs (second)")
    for key in before:
        if key not in after:
            continue
        mb, ma = statistics.median(before[key]), statistics.median(after[key])
        runs_b = " ".join(f"{x:.2f}" for x in before[key])
        runs_a = " ".join(f"{x:.2f}" for x in after[key])
        print(f"  {key:45s} {mb:8.2f} -> {ma:8.2f}  {100 * (ma - mb) / mb:+6.1f}%   ({runs_b} | {runs_a})")


if __name__ == "__main__":
    main()
