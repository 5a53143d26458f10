#!/usr/bin/python3
"""Plots coop_bench's JSON: a latency CDF and per-unit cost bars, as PNG.

    /usr/bin/python3 benchmarks/plot.py results.json [--out DIR]

writes DIR/latency_cdf.png, DIR/unit_cost.png and DIR/shares_over_time.png, for the
sections the JSON has (DIR defaults to the JSON's folder).
Needs matplotlib: Debian's python3-matplotlib, hence /usr/bin/python3 (a python3 earlier on
PATH, e.g. pyenv's, does not see Debian's packages).
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

VARIANTS = [  # (key in the JSON, label), in the order of the bars
    ("tight", "tight loop"),
    ("coop", "coop (default options)"),
    ("batched", "hand-batched post"),
    ("post", "post per unit"),
    ("strand", "post per unit, strand"),
    ("await", "co_await post per unit"),
]
TASK_COUNTS = [1, 1000, 100000]


def subtitle(doc):
    m = doc["machine"]
    return f'{m["cpu"]}, {m["cores"]} cores, {m["compiler"].split(" (")[0]}, {doc["date"]}'


def plot_latency(doc, path):
    latency = doc["latency"]
    fig, ax = plt.subplots(figsize=(8, 5))
    for case in latency["cases"]:
        samples = case["lateness_us"]
        if not samples:
            continue
        n = len(samples)
        xs = [max(v, 1.0) / 1000.0 for v in samples]  # ms; log axis needs > 0
        ys = [(i + 1) / n for i in range(n)]
        ax.step(xs, ys, where="post", label=f'{case["case"]} (p99 {case["p99_us"] / 1000:.2f} ms)')
    ax.axvline(1.3, color="grey", linestyle="--", linewidth=1, label="target: p99 <= 1.3 ms at the 1 ms slice")
    ax.set_xscale("log")
    ax.set_xlabel("timer lateness (ms, log scale)")
    ax.set_ylabel("fraction of timer firings")
    ax.set_ylim(0, 1.01)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(
        f'{latency["period_ms"]} ms periodic timer, {latency["tasks"]} tasks of '
        f'{latency["unit_us"]:.1f} us units on the same io_context\n{subtitle(doc)}',
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_unit_cost(doc, path):
    rows = {(r["key"], r["tasks"]): r["ns_per_unit"] for r in doc["throughput"]}
    fig, ax = plt.subplots(figsize=(9, 5))
    width = 0.8 / len(VARIANTS)
    for i, (key, label) in enumerate(VARIANTS):
        xs, ys = [], []
        for g, tasks in enumerate(TASK_COUNTS):
            if (key, tasks) in rows:
                xs.append(g + (i - (len(VARIANTS) - 1) / 2) * width)
                ys.append(rows[(key, tasks)])
        bars = ax.bar(xs, ys, width, label=label)
        for bar, y in zip(bars, ys):
            ax.annotate(f"{y:.1f}", (bar.get_x() + bar.get_width() / 2, y), ha="center", va="bottom", fontsize=7)
    ax.set_yscale("log")
    ax.set_xticks(range(len(TASK_COUNTS)))
    ax.set_xticklabels([f"{t:,} task{'s' if t > 1 else ''}" for t in TASK_COUNTS])
    ax.set_ylabel("ns per unit (log scale)")
    total = doc["settings"]["total_units"]
    ax.set_title(f"Cost per trivial unit, {total:,} units in all\n{subtitle(doc)}", fontsize=9)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_shares_over_time(doc, path):
    sh = doc["shares"]
    ts = [p[0] for p in sh["set_shares_series"]]
    vs = [p[1] for p in sh["set_shares_series"]]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(ts, vs, marker=".", label="first task's share of the busy time")
    at = sh["set_shares_at_ms"]
    ax.axvline(at, color="gray", linestyle="--", label="set_shares(300) from another thread")
    ax.axhline(50, color="tab:green", alpha=0.4, linestyle=":", label="equal shares: 50%")
    ax.axhline(75, color="tab:red", alpha=0.4, linestyle=":", label="300 : 100 shares: 75%")
    ax.set_ylim(0, 100)
    ax.set_xlabel("ms")
    ax.set_ylabel("% of the busy time, per 50 ms")
    ax.set_title(f"fairness::time, two tasks of 10 us units\n{subtitle(doc)}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("json", help="the file written by coop_bench --json")
    parser.add_argument("--out", help="folder for the PNG files (default: the JSON's folder)")
    args = parser.parse_args()
    with open(args.json) as f:
        doc = json.load(f)
    out = args.out or os.path.dirname(os.path.abspath(args.json))
    os.makedirs(out, exist_ok=True)
    written = []
    if "latency" in doc:
        written.append(os.path.join(out, "latency_cdf.png"))
        plot_latency(doc, written[-1])
    if "throughput" in doc:
        written.append(os.path.join(out, "unit_cost.png"))
        plot_unit_cost(doc, written[-1])
    if "shares" in doc:
        written.append(os.path.join(out, "shares_over_time.png"))
        plot_shares_over_time(doc, written[-1])
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
