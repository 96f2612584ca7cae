#!/usr/bin/env python3
"""The tracker with the Redis sink vs the stdout sink, side by side.

    bench/sink_cost.py [-n 7] [--pcap bench/out/bench.pcap] [-c 1]

Starts its own ``redis-server`` (127.0.0.1, a free port, a temporary
directory, no persistence), then runs, interleaved, ``-n`` rounds of

- ``mosfw run -q -r PCAP -p samples/tracker`` (JSON lines to /dev/null:
  the stdout sink), and
- the same with ``--sink redis://127.0.0.1:PORT/0?stream=bench`` (every
  record XADDed; the stream is deleted before each run so each starts
  from the same server state),

and prints the best wall time of each, the records per second and the
ratio redis / stdout; the same two commands on an empty capture (a pcap
header only) give each one's start-up (the Redis run loads the sink package
and connects), and the ratio without it. Each Redis run is checked: XLEN equals the records
the stdout run printed and the run exits 0. Default capture:
bench/out/bench.pcap (``bench/out/gen_capture -o bench/out/bench.pcap``:
60000 connections).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=7, help="rounds (best of n)")
    ap.add_argument("--pcap", default=os.path.join(ROOT, "bench", "out", "bench.pcap"))
    ap.add_argument("-c", "--cores", type=int, default=1)
    ap.add_argument("--python", default=sys.executable)
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (scripts/ensure-sysdeps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="mosfw-sink-bench-")
    port = free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            tmp,
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                if redis_cli(port, "PING") == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.05)
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        env.pop("PYTHONUNBUFFERED", None)
        base = [a.python, "-m", "mosfw", "run", "-q", "--no-progress", "-r", a.pcap, "-c", str(a.cores)]
        base += ["-p", "samples/tracker"]
        url = f"redis://127.0.0.1:{port}/0?stream=bench"
        empty = os.path.join(tmp, "empty.pcap")
        with open(empty, "wb") as f:  # a pcap header, no packet
            f.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
        start = [a.python, "-m", "mosfw", "run", "-q", "--no-progress", "-r", empty, "-p", "samples/tracker"]
        runs = {
            "stdout": base,
            "redis": base + ["--sink", url],
            "stdout (empty capture)": start,
            "redis (empty capture)": start + ["--sink", url],
        }
        best = {k: float("inf") for k in runs}
        records = int(
            subprocess.run(base, cwd=ROOT, env=env, capture_output=True, check=True).stdout.count(b"\n")
        )
        print(f"start {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
        for _ in range(a.n):
            for k, argv in runs.items():
                if k.startswith("redis"):
                    redis_cli(port, "DEL", "bench")
                t0 = time.perf_counter()
                r = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                dt = time.perf_counter() - t0
                if r.returncode != 0:
                    sys.exit(f"{k}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")
                if k == "redis" and int(redis_cli(port, "XLEN", "bench")) != records:
                    sys.exit(f"redis: XLEN {redis_cli(port, 'XLEN', 'bench')} != {records} records")
                best[k] = min(best[k], dt)
        print(f"end {time.strftime('%H:%M:%S', time.gmtime())} UTC, 1-min load {os.getloadavg()[0]:.2f}")
        for k, t in best.items():
            rate = "" if "empty" in k else f", {records / t / 1e3:.1f} k records/s"
            print(f"{k:22s} best of {a.n}: {t:.3f} s{rate}")
        st, rd = best["stdout"], best["redis"]
        st0, rd0 = best["stdout (empty capture)"], best["redis (empty capture)"]
        print(f"redis / stdout: x{rd / st:.3f} ({records} records, -c {a.cores})")
        print(
            f"without start-up: stdout {records / (st - st0) / 1e3:.1f} k records/s, "
            f"redis {records / (rd - rd0) / 1e3:.1f} k records/s, x{(rd - rd0) / (st - st0):.3f}"
        )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
