#!/usr/bin/python3
"""Judges the harness's targets on the median of several coop_bench runs.

    python3 benchmarks/targets_over_runs.py run1.json run2.json ... [--json OUT]

One run of coop_bench judges each target on that run alone; the targets are meant for the
median of several runs on the machine, and this shared 2-core VM has quiet and busy spells
that move a single run. For every target this prints its figure in each run, the median
and whether the median holds. A run that could not measure a target (too few undisturbed
ticks) is left out of that target's median. Exits 1 when a median misses.
"""
import argparse
import json
import statistics
import sys

HOLDS = {"<=": lambda v, limit: v <= limit, ">=": lambda v, limit: v >= limit}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="JSON files written by coop_bench --json")
    parser.add_argument("--json", help="also write the medians here")
    args = parser.parse_args()

    docs = [json.load(open(path)) for path in args.runs]
    if any(doc["settings"]["quick"] for doc in docs):
        sys.exit("a --quick run is too short and too small to judge the targets")
    if any(doc["settings"] != docs[0]["settings"] for doc in docs):
        sys.exit("the runs were made with different settings: their medians would mix different measurements")
    names = []  # every target of every run (a run with --only has fewer), in order of first sight
    for doc in docs:
        names += [t["target"] for t in doc["targets"] if t["target"] not in names]
    print(f"Targets: median of {len(docs)} runs ({', '.join(d['date'] for d in docs)})")
    rows, missed = [], 0
    for name in names:
        found = [next((t for t in doc["targets"] if t["target"] == name), None) for doc in docs]
        first = next(t for t in found if t)
        measured = [t for t in found if t and t["holds"] is not None]
        median = statistics.median(t["value"] for t in measured) if measured else None
        # Limits that depend on a run's own figures (a unit's length) differ a little from
        # run to run: judge the median against the strictest.
        limits = [t["limit"] for t in measured] or [first["limit"]]
        limit = min(limits) if first["op"] == "<=" else max(limits)
        holds = None if median is None else HOLDS[first["op"]](median, limit)
        missed += holds is False
        each = " ".join("n/a" if not t or t["holds"] is None else f"{t['value']:.4g}" for t in found)
        verdict = {True: "ok  ", False: "MISS", None: "n/a "}[holds]
        shown = "-" if median is None else f"{median:.3f}"
        print(f"  {verdict} {name:<58} {shown:>9} {first['op']} {limit:g} {first['unit']}   runs: {each}")
        rows.append({"target": name, "median": median, "op": first["op"], "limit": limit, "unit": first["unit"],
                     "holds": holds, "runs": [t["value"] if t and t["holds"] is not None else None for t in found]})
    judged = sum(r["holds"] is not None for r in rows)
    print(f"  {judged - missed} of {judged} medians hold" + (f" ({len(rows) - judged} n/a)" if judged < len(rows) else ""))
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"runs": [d["date"] for d in docs], "targets": rows}, out, indent=1)
    return 1 if missed or judged == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
