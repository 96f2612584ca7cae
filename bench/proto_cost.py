"""What tracking UDP and ICMP costs a TCP-only run (issue 18: within 2%),
side by side in one run: the C engine (``mosfw-replay``, -O2 as the
Python extension is built) of the working tree against a base revision's
(default ``main``, taken with ``git archive``), on the same synthetic
TCP capture (bench/gen_capture.c), with protocols off (the default).
Reported as instructions (valgrind cachegrind: exact, not disturbed by
other load) and as the median CPU time of --repeat interleaved runs.

Then the mixed capture (bench/gen_mixed.py: the TCP capture with --udp
UDP flows and --icmp ICMP flows merged in): the working tree's engine with
protocols 0 and 3 (instructions), and the tracker (``mosfw run -p
samples/tracker``, JSON to /dev/null) against no plugin, writing all three
protocols or TCP only (``--conn-protocols tcp``): median CPU time and the
tracker's time per record.

    .venv/bin/python bench/proto_cost.py [--base main] [--connections 30000] [--repeat 7]
                                         [--udp 20000] [--icmp 5000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from frag_cost import build_base_replay, build_replay, cpu_time, instructions, plain_capture  # noqa: E402


def mixed(a, new: Path, plain: Path, work: Path) -> None:
    """The UDP/ICMP rows: the engine with and without them, the tracker."""
    mix = a.out / f"mixed-{a.connections}-{a.udp}-{a.icmp}.pcap"
    if not mix.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "bench" / "gen_mixed.py"), str(plain), str(mix), "--udp", str(a.udp),
             "--icmp", str(a.icmp)], check=True,
        )  # fmt: skip
    i0 = instructions([str(new), "-P", "0", str(mix)], work)
    i3 = instructions([str(new), "-P", "3", str(mix)], work)
    if i0 and i3:
        print(f"{mix.name}: engine instructions, TCP only {i0:,}, with UDP+ICMP {i3:,} ratio {i3 / i0:.4f}")
    run = [sys.executable, "-m", "mosfw", "run", "-r", str(mix), "-q"]
    tracker = [*run, "-p", str(ROOT / "samples" / "tracker"), "--conn-log", "/dev/null"]
    cmds = {
        "no plugin": run,
        "tracker tcp,udp,icmp": tracker,
        "tracker tcp": [*tracker, "--conn-protocols", "tcp"],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    for _ in range(a.repeat):
        for k, argv in cmds.items():
            times[k].append(cpu_time(argv))
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    records = {"tracker tcp,udp,icmp": a.connections + a.udp + a.icmp, "tracker tcp": a.connections}
    for k, t in med.items():
        extra = ""
        if k in records:
            per = (t - med["no plugin"]) / records[k] * 1e6
            whole = t / records[k] * 1e6
            extra = f", {records[k]} records: {per:.2f} us per record over no plugin, {whole:.2f} us all in"
        print(f"  {k}: CPU {t:.3f} s (median of {a.repeat}){extra}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="main", help="git revision to compare against")
    ap.add_argument("--connections", type=int, default=30000, help="TCP connections (20 packets each)")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    ap.add_argument("--udp", type=int, default=20000, help="UDP flows in the mixed capture")
    ap.add_argument("--icmp", type=int, default=5000, help="ICMP flows in the mixed capture")
    ap.add_argument("--mixed-only", action="store_true", help="skip the base comparison")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain = plain_capture(a.out, a.connections, work)  # (the capture frag_cost.py uses)
        new = build_replay(ROOT, work / "replay-new")
        if a.mixed_only:
            mixed(a, new, plain, work)
            return
        base = build_base_replay(a.base, work)
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
        mixed(a, new, plain, work)


if __name__ == "__main__":
    main()
