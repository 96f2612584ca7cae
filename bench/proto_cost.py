"""What tracking UDP and ICMP costs a TCP-only run (issue 18: within 2%),
side by side in one run: the C engine (``mosfw-replay``, -O2 as the
Python extension is built) of the working tree against a base revision's
(default ``main``, taken with ``git archive``), on the same synthetic
TCP capture (bench/gen_capture.c), with protocols off (the default).
Reported as instructions (valgrind cachegrind: exact, not disturbed by
other load) and as the median CPU time of --repeat interleaved runs.

    .venv/bin/python bench/proto_cost.py [--base main] [--connections 30000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from frag_cost import build_replay, cpu_time, instructions  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="main", help="git revision to compare against")
    ap.add_argument("--connections", type=int, default=30000, help="TCP connections (20 packets each)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        gen = work / "gen"
        subprocess.run(["gcc", "-O2", "-o", str(gen), str(ROOT / "bench" / "gen_capture.c")], check=True)
        plain = a.out / f"frag-plain-{a.connections}.pcap"  # (the capture frag_cost.py uses)
        if not plain.exists():
            subprocess.run(
                [str(gen), "-o", str(plain), "-n", str(a.connections), "-p", "100", "-q"], check=True
            )
        base_src = work / "base"
        base_src.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", a.base, "native"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive.stdout, check=True)
        base = build_replay(base_src, work / "replay-base")
        new = build_replay(ROOT, work / "replay-new")
        print(f"capture: {plain.name}; base {a.base} vs working tree, TCP only (protocols 0)")
        ib, inew = instructions([str(base), str(plain)], work), instructions([str(new), str(plain)], work)
        if ib and inew:
            print(f"instructions: base {ib:,} new {inew:,} ratio {inew / ib:.4f}")
        times: dict[str, list[float]] = {"base": [], "new": []}
        for _ in range(a.repeat):
            times["base"].append(cpu_time([str(base), str(plain)]))
            times["new"].append(cpu_time([str(new), str(plain)]))
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(
            f"CPU s (median of {a.repeat}): base {med['base']:.3f} new {med['new']:.3f} "
            f"ratio {med['new'] / med['base']:.4f}"
        )


if __name__ == "__main__":
    main()
