"""The cost of reassembly buffers: the bench capture through a bytestream
reader with ``no_ring_buffers = 0`` and ``= 1``.

    .venv/bin/python bench/stream_buffers.py [--pcap F] [--repeat 3]

Rows (each run ``--repeat`` times, interleaved, best time kept; ratios are
against the read floor measured in the same run):

- ``tcpdump -r F -w /dev/null``: the read floor (PERF.md);
- ``mosfw run``: no plugin (nothing reaches Python);
- ``stream_hook, no_ring_buffers = 1``: ``bench/stream_hook.py`` (a
  ``mosfw_conn_new_data`` hook that peeks every event) without buffers:
  the events still reach Python, peek returns nothing;
- ``stream_hook, no_ring_buffers = 0``: the same with buffers (rmem_size
  8192): every payload byte is copied into a per-side buffer and read
  back by peek.

The difference between the last two rows is what buffering costs. Prints
a Markdown table (and the stream_hook counters as evidence).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent


def default_pcap() -> Path | None:
    caps = sorted((BENCH / "out").glob("capture-n*.pcap"), key=lambda p: p.stat().st_size, reverse=True)
    return caps[0] if caps else None


def timed(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    cp = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    dt = time.perf_counter() - t0
    if cp.returncode != 0:
        raise SystemExit(f"failed ({cp.returncode}): {' '.join(argv)}\n{cp.stderr[-2000:]}")
    return dt, cp.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcap", type=Path, default=default_pcap())
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.pcap is None or not args.pcap.exists():
        raise SystemExit(
            "no capture: run `.venv/bin/python bench/run_bench.py --only floor` first, or --pcap F"
        )
    py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
    f = str(args.pcap)
    hook = str(BENCH / "stream_hook.py")
    rows = [
        ("tcpdump -r F -w /dev/null (read floor)", ["tcpdump", "-r", f, "-w", "/dev/null"]),
        ("mosfw run (no plugin)", [py, "-m", "mosfw", "run", "-q", "-r", f]),
        (
            "stream_hook, no_ring_buffers = 1",
            [py, "-m", "mosfw", "run", "-q", "-r", f, "-p", hook, "-f", str(BENCH / "no_ring_buffers.conf")],
        ),
        (
            "stream_hook, no_ring_buffers = 0",
            [py, "-m", "mosfw", "run", "-q", "-r", f, "-p", hook, "-f", str(BENCH / "ring_buffers.conf")],
        ),
    ]
    if not shutil.which("tcpdump"):
        rows = rows[1:]
    subprocess.run(["cat", f], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    best: dict[str, float] = {}
    notes: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, argv in rows:
            dt, err = timed(argv)
            best[name] = min(best.get(name, dt), dt)
            for line in err.splitlines():
                if line.startswith("stream_hook:"):
                    notes[name] = line
    packets = None
    try:
        out = subprocess.run(["capinfos", "-M", "-c", f], capture_output=True, text=True).stdout
        packets = int(out.split(":")[-1].strip())
    except (OSError, ValueError):
        pass
    floor = best.get(rows[0][0]) if rows[0][0].startswith("tcpdump") else None
    print(
        f"capture: {args.pcap.name} ({os.path.getsize(f) / 1e6:.0f} MB"
        + (f", {packets:,} packets" if packets else "")
        + f"), best of {args.repeat}\n"
    )
    print("| row | seconds | Mpkt/s | x read floor |\n|---|---|---|---|")
    for name, _ in rows:
        t = best[name]
        rate = f"{packets / t / 1e6:.2f}" if packets else "-"
        ratio = f"{t / floor:.2f}" if floor else "-"
        print(f"| {name} | {t:.2f} | {rate} | {ratio} |")
    b0, b1 = best[rows[-1][0]], best[rows[-2][0]]
    print(
        f"\nbuffering cost: {b0 - b1:+.2f} s "
        f"({(b0 / b1 - 1) * 100:+.0f}% over the same events without buffers)"
    )
    for name, line in notes.items():
        print(f"{name}: {line}")


if __name__ == "__main__":
    main()
