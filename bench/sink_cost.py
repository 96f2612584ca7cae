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

``--detail`` runs the same rounds with each mosfw process timed from
inside (a wrapper around ``mosfw.records.Records``): seconds until the
sinks are open, until the input is done (``Records.close`` called), inside
``Records.close`` (the Redis sink's drain) and the records it held then, the core thread's and the
sender thread's CPU time, and redis-server's CPU time during the run
(``/proc/PID/stat``); medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from run_bench import byte_compile  # noqa: E402  (a --base checkout compiled once)

#: ``python -c`` program: mosfw run with its records timed (``--detail``);
#: one JSON line on fd $DETAIL_FD at exit
DETAIL = """
import atexit, json, os, runpy, sys, threading, time
T0 = time.perf_counter()
out = {}
from mosfw.records import router, base
open_, close_, run_ = router.Records.open, router.Records.close, base.BufferedSink._run
def op(self, *a, **k):
    open_(self, *a, **k)
    out.setdefault("open", time.perf_counter() - T0)
def cl(self, *a, **k):
    if self._opened:
        t = time.perf_counter()
        out["input_done"] = t - T0
        out["core_cpu"] = time.thread_time()
        out["held"] = sum(getattr(s, "_held", 0) + getattr(s, "_sending", 0) for s in self.sinks)
        close_(self, *a, **k)
        out["close"] = time.perf_counter() - t
    else:
        close_(self, *a, **k)
def run(self):
    try:
        run_(self)
    finally:
        out["sender_cpu"] = time.thread_time()
router.Records.open, router.Records.close, base.BufferedSink._run = op, cl, run
atexit.register(lambda: os.write(int(os.environ["DETAIL_FD"]), (json.dumps(out) + chr(10)).encode()))
sys.argv = ["mosfw", *sys.argv[1:]]
runpy.run_module("mosfw", run_name="__main__", alter_sys=True)
"""


def proc_cpu(pid: int) -> float:
    """utime + stime of a process, seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def detail(argv: list[str], cwd: str, env: dict, server_pid: int) -> dict:
    """One timed run (``--detail``): the wrapper's figures plus wall time
    and redis-server's CPU seconds during it."""
    r, w = os.pipe()
    prog = [argv[0], "-c", DETAIL, *argv[3:]]  # argv = [python, -m, mosfw, ...]
    c0 = proc_cpu(server_pid)
    t0 = time.perf_counter()
    env = dict(env, DETAIL_FD=str(w))
    p = subprocess.Popen(prog, cwd=cwd, env=env, stdout=subprocess.DEVNULL, pass_fds=(w,))
    os.close(w)
    data = os.read(r, 1 << 16)
    p.wait()
    os.close(r)
    out = json.loads(data or b"{}")
    out["wall"] = time.perf_counter() - t0
    out["redis_cpu"] = proc_cpu(server_pid) - c0
    return out


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
    ap.add_argument("--detail", action="store_true", help="time each run from inside (see above)")
    ap.add_argument(
        "--url",
        default="",
        help="the Redis sink's URL query after stream=bench (&batch=...; {tmp}/redis.sock: the server's "
        "unix socket)",
    )
    ap.add_argument(
        "--alt",
        metavar="QUERY",
        help="also run the Redis sink with this URL query instead of --url's (row 'redis alt')",
    )
    ap.add_argument(
        "--base",
        metavar="DIR",
        help="also run both commands with the mosfw of DIR (a built copy of another commit; its "
        "plugins/redis_sink first on PYTHONPATH), interleaved",
    )
    a = ap.parse_args()
    if not os.path.isfile(a.pcap):
        ap.error(
            f"no capture at {a.pcap}: make it with `cc -O2 -o bench/out/gen_capture "
            "bench/gen_capture.c && bench/out/gen_capture -o bench/out/bench.pcap` "
            "(or run bench/run_bench.py once), or give --pcap"
        )
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (scripts/ensure-sysdeps.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="mosfw-sink-bench-")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", tmp]
        + ["--unixsocket", os.path.join(tmp, "redis.sock"), "--unixsocketperm", "700"]
        + ["--save", "", "--appendonly", "no"],
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
        run = [
            a.python,
            "-m",
            "mosfw",
            "run",
            "-q",
            "--no-progress",
            "-c",
            str(a.cores),
            "-p",
            "samples/tracker",
        ]
        url = f"redis://127.0.0.1:{port}/0?stream=bench{a.url}".replace("{tmp}", tmp)
        empty = os.path.join(tmp, "empty.pcap")
        with open(empty, "wb") as f:  # a pcap header, no packet
            f.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
        # name -> (argv, cwd, env)
        runs: dict[str, tuple[list[str], str, dict]] = {}
        trees = [("", ROOT, env)]
        if a.base:
            base = os.path.abspath(a.base)
            byte_compile(Path(base))
            trees.append(("@base", base, dict(env, PYTHONPATH=f"{base}:{base}/plugins/redis_sink")))
        for tag, cwd, e in trees:
            runs["stdout" + tag] = (run + ["-r", a.pcap], cwd, e)
            runs["redis" + tag] = (run + ["-r", a.pcap, "--sink", url], cwd, e)
        if a.alt is not None:
            alt = f"redis://127.0.0.1:{port}/0?stream=bench{a.alt}".replace("{tmp}", tmp)
            runs["redis alt"] = (run + ["-r", a.pcap, "--sink", alt], ROOT, env)
        if not a.detail:
            for tag, cwd, e in trees:
                runs[f"stdout{tag} (empty capture)"] = (run + ["-r", empty], cwd, e)
                runs[f"redis{tag} (empty capture)"] = (run + ["-r", empty, "--sink", url], cwd, e)
        for _, cwd, _ in trees:  # byte-code written once: the runs below do not write it
            dirs = [os.path.join(cwd, d) for d in ("mosfw", "plugins/redis_sink", "samples/tracker")]
            subprocess.run([a.python, "-m", "compileall", "-q", *dirs], check=True)
        records = subprocess.run(run + ["-r", a.pcap], cwd=ROOT, env=env, capture_output=True, check=True)
        records = records.stdout.count(b"\n")
        print(f"start {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
        if a.detail:
            rows: dict[str, list[dict]] = {k: [] for k in runs}
            for _ in range(a.n):
                for k, (argv, cwd, e) in runs.items():
                    if k.startswith("redis"):
                        redis_cli(port, "DEL", "bench")
                    rows[k].append(detail(argv, cwd, e, server.pid))
                    if k.startswith("redis") and int(redis_cli(port, "XLEN", "bench")) != records:
                        sys.exit(f"{k}: XLEN {redis_cli(port, 'XLEN', 'bench')} != {records} records")
            print(f"end {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
            keys = ["wall", "open", "input_done", "held", "close", "core_cpu", "sender_cpu", "redis_cpu"]
            print(f"{'median of ' + str(a.n):16s}" + "".join(f"{x:>11s}" for x in keys))
            for k, rs in rows.items():
                cells = [statistics.median(r.get(x, 0.0) for r in rs) for x in keys]
                print(f"{k:16s}" + "".join(f"{c:11.3f}" for c in cells))
            return
        best = {k: float("inf") for k in runs}
        for _ in range(a.n):
            for k, (argv, cwd, e) in runs.items():
                if k.startswith("redis"):
                    redis_cli(port, "DEL", "bench")
                t0 = time.perf_counter()
                r = subprocess.run(argv, cwd=cwd, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                dt = time.perf_counter() - t0
                if r.returncode != 0:
                    sys.exit(f"{k}: exit {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")
                if "empty" not in k and k.startswith("redis"):  # noqa: SIM102
                    if int(redis_cli(port, "XLEN", "bench")) != records:
                        sys.exit(f"{k}: XLEN {redis_cli(port, 'XLEN', 'bench')} != {records} records")
                best[k] = min(best[k], dt)
        print(f"end {time.strftime('%H:%M:%S', time.gmtime())} UTC, load average {os.getloadavg()}")
        for k, t in best.items():
            rate = "" if "empty" in k else f", {records / t / 1e3:.1f} k records/s"
            print(f"{k:29s} best of {a.n}: {t:.3f} s{rate}")
        if a.alt is not None:
            print(f"redis alt / stdout: x{best['redis alt'] / best['stdout']:.3f}")
        for tag, _, _ in trees:
            st, rd = best["stdout" + tag], best["redis" + tag]
            st0, rd0 = best[f"stdout{tag} (empty capture)"], best[f"redis{tag} (empty capture)"]
            print(f"redis{tag} / stdout{tag}: x{rd / st:.3f} ({records} records, -c {a.cores})")
            print(
                f"  without start-up: stdout {records / (st - st0) / 1e3:.1f} k records/s, "
                f"redis {records / (rd - rd0) / 1e3:.1f} k records/s, x{(rd - rd0) / (st - st0):.3f}"
            )
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
