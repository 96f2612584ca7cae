"""Capture archive throughput: one process, ``-c 2`` and ``--dask`` with 2
local workers over the same archive, side by side in one run.

The archive is written by bench/gen_capture.c into a temporary directory
(not kept, not committed) and cut into FILES files with editcap::

    .venv/bin/python bench/archive_bench.py [--packets 10000000] [--files 32]

Each configuration runs samples/tracker (records to /dev/null) over
``-r DIR``; the Mpkt/s are the archive's packets over the wall time of the
run (process start to exit, Dask's cluster start included for the CLI
row). A second Dask measurement uses the Python API, then the command line
with ``--dask ADDRESS``, against a LocalCluster started beforehand (as a
real cluster is), to split Dask's own overhead per segment
(scheduling, serialisation, result transfer: the wall time times the
workers minus the time spent inside the tasks, over the segments) from
the cluster's start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACKER = ROOT / "samples" / "tracker"


def load() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def cli(*args) -> tuple[float, dict]:
    t = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", *map(str, args), "-q", "--stats-json", "-"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        check=False,
    )
    wall = time.monotonic() - t
    if r.returncode != 0:
        raise SystemExit(f"mosfw {' '.join(map(str, args))}: rc={r.returncode}\n{r.stderr[-2000:]}")
    stats = next(json.loads(x) for x in r.stderr.splitlines() if x.startswith("{"))
    return wall, stats


def api_rows(arch: Path, segments: int) -> list[tuple[str, float, int]]:
    """run_archive() then the command line (--dask ADDRESS) on a LocalCluster
    started beforehand, as a real cluster is: no cluster to start or stop."""
    from distributed import LocalCluster

    from mosfw.archive import run_archive

    rows = []
    t = time.monotonic()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        started = time.monotonic() - t
        with open(os.devnull, "w") as out:
            res = run_archive(
                [arch],
                plugins=[str(TRACKER)],
                address=lc.scheduler_address,
                segments=segments,
                stdout=out,
            )
        wall, st = cli("-r", arch, "-p", TRACKER, "--dask", lc.scheduler_address, "--segments", segments)
        rows.append(("--dask ADDRESS (running cluster)", wall, st["packets"]))
        rate = st["packets"] / wall / 1e6
        print(f"{'--dask ADDRESS, running':28s} {wall:7.2f} s  {rate:6.2f} Mpkt/s  (load {load()})")
    inside = sum(s.seconds for s in res.segments)
    overhead = (res.seconds * 2 - inside) / len(res.segments)
    rate = res.stats.packets / res.seconds / 1e6
    print(
        f"dask API on a running LocalCluster: {res.seconds:.2f} s wall ({rate:.2f} Mpkt/s), "
        f"cluster start {started:.2f} s, {len(res.segments)} segments, {inside:.2f} s inside tasks, "
        f"overhead {overhead:.3f} s per segment (wall x 2 workers - task time, over segments)"
    )
    rows.append(("run_archive() (running cluster)", res.seconds, res.stats.packets))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--packets", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=32)
    ap.add_argument("--step-us", type=int, default=200, help="gen_capture -t: microseconds between packets")
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--keep", metavar="DIR", help="build the archive in DIR and keep it (reused when there)")
    ap.add_argument(
        "--rows",
        default="one,c2,dask,api",
        help="comma-separated rows to run: one (one process), c2 (-c 2), dask (--dask, own LocalCluster), "
        "api (run_archive() and --dask ADDRESS on a running cluster); empty: only build the archive",
    )
    a = ap.parse_args()

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="mosfw-archive-bench-"))
    arch = work / "arch"
    try:
        if not arch.exists():
            work.mkdir(parents=True, exist_ok=True)
            exe = work / "gen_capture"
            subprocess.run(["cc", "-O2", "-o", exe, ROOT / "bench" / "gen_capture.c"], check=True)
            conns = a.packets // 20  # 20 packets a connection with the defaults
            src = work / "whole.pcap"
            subprocess.run(
                [exe, "-q", "-o", src, "-n", str(conns), "-c", "2000", "-p", "64", "-t", str(a.step_us)],
                check=True,
            )
            arch.mkdir()
            per = -(-(conns * 20) // a.files)
            subprocess.run(["editcap", "-F", "pcap", "-c", str(per), src, arch / "part.pcap"], check=True)
            src.unlink()
        files = sorted(arch.iterdir())
        size = sum(f.stat().st_size for f in files)
        print(f"archive: {len(files)} files, {size / 1e9:.2f} GB, in {arch}; load before: {load()}")

        want = {r for r in a.rows.split(",") if r}
        rows = []
        for key, name, args in (
            ("one", "one process", ["-r", arch, "-p", TRACKER]),
            ("c2", "-c 2", ["-r", arch, "-p", TRACKER, "-c", "2"]),
            (
                "dask",
                "--dask, 2 local workers",
                ["-r", arch, "-p", TRACKER, "--dask", "-c", "2", "--segments", a.segments],
            ),
        ):
            if key not in want:
                continue
            wall, st = cli(*args)
            rows.append((name, wall, st["packets"]))
            print(f"{name:28s} {wall:7.2f} s  {st['packets'] / wall / 1e6:6.2f} Mpkt/s  (load {load()})")
        if "api" in want:
            rows += api_rows(arch, a.segments)
        if "one" in want and len(rows) > 1:
            base = rows[0][1]
            print("speed-up over one process: " + ", ".join(f"{n}: {base / w:.2f}x" for n, w, _ in rows[1:]))
        print(f"load after: {load()}")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
