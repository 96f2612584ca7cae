#!/usr/bin/env python3
"""Plot bench/run_bench.py's results: throughput per tool (PNG).

    python plot_results.py OUT/results.json bench/results.png

Needs matplotlib (run_bench.py runs this with the peers venv's Python).
One horizontal bar per tool that ran: packets per second on a log scale,
coloured by kind (read floor, C tools, mosfw, Python tools), labelled with
the rate and the ratio to the read floor; tools that ran on the slice of
the capture are marked. Rows that did not run are listed under the plot.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLORS = {"floor": "#7f7f7f", "c": "#1f77b4", "mosfw": "#d62728", "python": "#2ca02c"}
LABELS = {"floor": "read floor (tcpdump)", "c": "C tools", "mosfw": "mosfw", "python": "Python tools"}


def main(src: str, dst: str) -> int:
    with open(src) as f:
        doc = json.load(f)
    rows = [r for r in doc["results"] if r["status"] == "ok" and r.get("mpkt_per_s")]
    skipped = [r for r in doc["results"] if r["status"] != "ok"]
    sl = doc.get("inputs", {}).get("slice")
    cap = doc.get("capture", {})
    fig_h = 1.2 + 0.42 * len(rows) + (0.25 * len(skipped) if skipped else 0)
    fig, ax = plt.subplots(figsize=(11.5, fig_h), dpi=110)
    names, vals, cols = [], [], []
    for r in rows:
        name = r["tool"]
        if r["input"] == "slice" and sl:
            name += f"  [first {sl['packets'] // 1000}k pkts]"
        names.append(name)
        vals.append(r["mpkt_per_s"] * 1e6)
        cols.append(COLORS.get(r.get("group"), "#9467bd"))
    y = list(range(len(rows)))[::-1]
    # lighter bar behind: the rate without the tool's start-up cost
    net = [(r.get("mpkt_per_s_after_startup") or r["mpkt_per_s"]) * 1e6 for r in rows]
    ax.barh(y, net, color=cols, height=0.65, alpha=0.3)
    ax.barh(y, vals, color=cols, height=0.65)
    ax.set_yticks(y)
    ax.set_yticklabels(names, fontsize=8.5)
    ax.set_xscale("log")
    lo = min(vals) / 3 if vals else 1e4
    hi = max(net) * 6 if vals else 1e7
    ax.set_xlim(lo, hi)
    for yy, r, v, n in zip(y, rows, vals, net, strict=True):
        txt = f" {v / 1e6:.2f} M/s" if v >= 1e5 else f" {v / 1e3:.0f} k/s"
        if r.get("ratio_to_floor") is not None and not r.get("floor"):
            txt += f"  ({r['ratio_to_floor']:.1f}x floor)"
        ax.text(max(v, n), yy, txt, va="center", fontsize=8)
    ax.set_xlabel("packets per second (log scale, wall time incl. start-up; higher is better)")
    kind = cap.get("kind", "")
    pk = cap.get("packets")
    title = f"{'Real' if kind == 'real' else 'Synthetic'} capture"
    if pk:
        title += f": {pk:,} packets, {cap.get('connections', 0):,} TCP connections"
    env = doc.get("environment", {})
    reps = f"best of {doc.get('repeat')} runs"
    if doc.get("fast_repeat", 0) > doc.get("repeat", 0):
        reps += f" ({doc['fast_repeat']} for the quick tools)"
    ax.set_title(
        f"{title}\n{env.get('cpu', '')}, {env.get('cpus', '?')} CPUs; {reps}; {env.get('generated_at', '')}",
        fontsize=10,
    )
    ax.grid(axis="x", which="both", alpha=0.25)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=c)
        for g, c in COLORS.items()
        if any(r.get("group") == g for r in rows)
    ]
    labels = [LABELS[g] for g in COLORS if any(r.get("group") == g for r in rows)]
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#444444", alpha=0.3))
    labels.append("lighter: without\nstart-up cost")
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if skipped:
        note = "not run: " + "; ".join(f"{r['tool']} ({r['status']}: {r['error'][:60]})" for r in skipped)
        fig.text(0.01, 0.005, note, fontsize=7, wrap=True, va="bottom")
    fig.tight_layout(rect=(0, 0.03 * bool(skipped), 1, 1))
    fig.savefig(dst)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_results.py RESULTS.json OUT.png")
    sys.exit(main(sys.argv[1], sys.argv[2]))
