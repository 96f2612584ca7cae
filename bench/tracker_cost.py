#!/usr/bin/env python3
"""The tracker's cost over the no-plugin run, for one or two built trees.

    bench/tracker_cost.py [-n 15] [--cap NAME=PCAP ...] TREE [TREE]

Runs ``mosfw run -r PCAP`` and ``mosfw run -r PCAP -p TREE/samples/tracker``
(JSON conn.log to /dev/null, as run_bench.py runs them) for every tree and
capture, all commands interleaved, ``-n`` rounds; prints the best wall time
of each and the ratios (tracker / no plugin; with two trees, the second's
times over the first's). Each tree runs with its own code (the command's
working directory is the tree: ``python -m mosfw`` imports from there), with
this interpreter unless ``--python`` says otherwise. Default captures:
bench.pcap (``gen_capture``) and small.pcap (``gen_capture -p 64``) in the
current directory.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="built trees (one or two)")
    ap.add_argument("-n", type=int, default=15, help="rounds (best of n)")
    ap.add_argument("--cap", action="append", default=None, metavar="NAME=PCAP")
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    caps = dict(c.split("=", 1) for c in (a.cap or ["bench=bench.pcap", "small=small.pcap"]))
    trees = [os.path.abspath(t) for t in a.trees]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmds = []
    for name, cap in caps.items():
        for t in trees:
            for plug in (False, True):
                argv = [a.python, "-m", "mosfw", "run", "-r", os.path.abspath(cap)]
                cmds.append(((name, t, plug), argv + (["-p", t + "/samples/tracker"] if plug else []), t))
    best = {k: float("inf") for k, _, _ in cmds}
    print(f"start {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
    for _ in range(a.n):
        for k, argv, t in cmds:
            t0 = time.perf_counter()
            subprocess.run(
                argv, cwd=t, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True
            )
            best[k] = min(best[k], time.perf_counter() - t0)
    print(f"end {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
    for name in caps:
        cols = []
        for t in trees:
            nop, trk = best[(name, t, False)], best[(name, t, True)]
            cols.append(
                f"{os.path.basename(t)}: no plugin {nop:.3f} s, tracker {trk:.3f} s, x{trk / nop:.3f}"
            )
        if len(trees) == 2:
            r = best[(name, trees[1], True)] / best[(name, trees[0], True)]
            n = best[(name, trees[1], False)] / best[(name, trees[0], False)]
            cols.append(f"second/first: tracker {r:.3f}, no plugin {n:.3f}")
        print(f"{name}: " + " | ".join(cols))


if __name__ == "__main__":
    main()
