#!/usr/bin/env python3
"""The tracker's cost over the no-plugin run, for one or two built trees.

    bench/tracker_cost.py [-n 15] [--cap NAME=PCAP ...] TREE [TREE]

Runs ``mosfw run -r PCAP`` and ``mosfw run -r PCAP -p TREE/samples/tracker``
(JSON conn.log to /dev/null, as run_bench.py runs them; ``--app DIR``
instead, repeatable: other apps, e.g. samples/midstat) for every tree and
capture, all commands interleaved, ``-n`` rounds; prints the best wall
time and the best CPU time (user + system, from wait4: less sensitive to
other load on the machine) of each and the ratios (app / no plugin; with
two trees, the second's times over the first's). Each tree runs with its own code (the command's
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


def _timed(argv, cwd, env) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        sys.exit(
            f"tracker_cost: exit {p.returncode} from: {' '.join(argv)} (in {cwd}); run it by hand to see why"
        )
    return wall, ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trees", nargs="+", help="built trees (one or two)")
    ap.add_argument("-n", type=int, default=15, help="rounds (best of n)")
    ap.add_argument("--cap", action="append", default=None, metavar="NAME=PCAP")
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument(
        "--app",
        action="append",
        default=None,
        metavar="DIR",
        help="the app(s) to time, relative to each tree (default samples/tracker)",
    )
    a = ap.parse_args()
    caps = dict(c.split("=", 1) for c in (a.cap or ["bench=bench.pcap", "small=small.pcap"]))
    for name, cap in caps.items():
        if not os.path.isfile(cap):
            ap.error(
                f"capture {name}={cap}: no such file (make it with bench/out/gen_capture, see the docstring)"
            )
    trees = [os.path.abspath(t) for t in a.trees]
    for t in trees:
        if not os.path.isdir(os.path.join(t, "mosfw")):
            ap.error(f"{t}: not a mosfw tree (no mosfw/ folder)")
    apps = [None, *(a.app or ["samples/tracker"])]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    cmds = []
    for name, cap in caps.items():
        for t in trees:
            for app in apps:
                argv = [a.python, "-m", "mosfw", "run", "-r", os.path.abspath(cap)]
                cmds.append(((name, t, app), argv + (["-p", f"{t}/{app}"] if app else []), t))
    best = {k: float("inf") for k, _, _ in cmds}
    cpu = {k: float("inf") for k, _, _ in cmds}
    print(f"start {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
    for _ in range(a.n):
        for k, argv, t in cmds:
            wall, used = _timed(argv, t, env)
            best[k] = min(best[k], wall)
            cpu[k] = min(cpu[k], used)
    print(f"end {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
    for name in caps:
        for t in trees:
            nop = best[(name, t, None)]
            cols = [f"no plugin {nop:.3f} s (cpu {cpu[(name, t, None)]:.3f})"]
            for app in apps[1:]:
                w = best[(name, t, app)]
                cols.append(
                    f"{os.path.basename(app)} {w:.3f} s x{w / nop:.3f} (cpu {cpu[(name, t, app)]:.3f})"
                )
            print(f"{name} {os.path.basename(t)}: " + ", ".join(cols))
        if len(trees) == 2:
            ratios = []
            for app in apps:
                w = best[(name, trees[1], app)] / best[(name, trees[0], app)]
                c = cpu[(name, trees[1], app)] / cpu[(name, trees[0], app)]
                ratios.append(f"{os.path.basename(app) if app else 'no plugin'} wall {w:.3f} cpu {c:.3f}")
            print(f"{name} second/first: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
