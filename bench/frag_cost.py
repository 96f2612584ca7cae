"""What IP fragment reassembly costs (docs/fragments.md), side by side in
one run.

1. The fast path: the C engine (`mosfw-replay`, -O2 as the Python
   extension is built) of the working tree against the one of a base
   revision (default ``main``, taken with ``git archive``: no checkout is
   touched), on the same synthetic capture with no fragments (bench/
   gen_capture.c). Reported as instructions (valgrind cachegrind, exact
   and not disturbed by other load on the machine) and as the best CPU
   time of --repeat interleaved runs.
2. The cost of fragments: the same capture with every TCP packet cut in
   IP fragments of --frag-size bytes (tests/fragtool.py), through the
   working tree's engine: CPU time and per-packet figures.

    .venv/bin/python bench/frag_cost.py [--base main] [--connections 30000] [--repeat 11]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import fragtool  # noqa: E402

CFLAGS = ["-std=gnu11", "-O2", "-fno-strict-aliasing", "-Wall", "-Wextra", "-Wno-unused-parameter"]


def build_replay(src: Path, out: Path) -> Path:
    """mosfw-replay of checkout ``src``'s native/, built at ``out`` with the
    extension's optimisation (frag_cost.py, proto_cost.py, scaling.py)."""
    files = sorted(str(p) for p in (src / "native").glob("*.c")) + [str(src / "native/tools/replay.c")]
    subprocess.run(["gcc", *CFLAGS, *files, "-o", str(out), "-lpcap", "-lm", "-lpthread"], check=True)
    return out


def plain_capture(out: Path, connections: int, work: Path) -> Path:
    """gen_capture.c's capture of ``connections`` connections (100-byte
    payloads), made once in ``out`` (frag_cost.py and proto_cost.py share it)."""
    plain = out / f"frag-plain-{connections}.pcap"
    if not plain.exists():
        gen = work / "gen"
        subprocess.run(["gcc", "-O2", "-o", str(gen), str(ROOT / "bench" / "gen_capture.c")], check=True)
        subprocess.run([str(gen), "-o", str(plain), "-n", str(connections), "-p", "100", "-q"], check=True)
    return plain


def build_base_replay(rev: str, work: Path) -> Path:
    """mosfw-replay of git revision ``rev``'s native/ (``git archive``), in work/."""
    base_src = work / "base"
    base_src.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "native"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(base_src)], input=archive.stdout, check=True)
    return build_replay(base_src, work / "replay-base")


def cpu_time(argv: list[str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def instructions(argv: list[str], work: Path) -> int | None:
    if not shutil.which("valgrind"):
        return None
    out = work / "cg.out"
    r = subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", *argv],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in r.stderr.splitlines():
        if "I" in line and "refs:" in line:
            return int(line.split("refs:")[1].replace(",", "").strip())
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="main", help="git revision to compare against")
    ap.add_argument(
        "--connections", type=int, default=30000, help="connections in the capture (20 packets each)"
    )
    ap.add_argument("--repeat", type=int, default=11)
    ap.add_argument("--frag-size", type=int, default=64)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plain = plain_capture(a.out, a.connections, work)
        frag = a.out / f"frag-cut{a.frag_size}-{a.connections}.pcap"
        if not frag.exists():
            fragtool.fragment_capture(plain, frag, size=a.frag_size)
        base = build_base_replay(a.base, work)
        new = build_replay(ROOT, work / "replay-new")
        print(f"capture: {plain.name}; base {a.base} vs working tree")
        ib, inew = instructions([str(base), str(plain)], work), instructions([str(new), str(plain)], work)
        if ib and inew:
            print(f"instructions, no fragments: base {ib:,} new {inew:,} ratio {inew / ib:.4f}")
        times: dict[str, list[float]] = {"base": [], "new": [], "new-frag": []}
        for _ in range(a.repeat):
            times["base"].append(cpu_time([str(base), str(plain)]))
            times["new"].append(cpu_time([str(new), str(plain)]))
            times["new-frag"].append(cpu_time([str(new), str(frag)]))
        best = {k: min(v) for k, v in times.items()}
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        print(
            f"CPU s, no fragments (best of {a.repeat}): base {best['base']:.3f} new {best['new']:.3f} "
            f"ratio {best['new'] / best['base']:.4f} (medians {med['new'] / med['base']:.4f})"
        )
        line = subprocess.run([str(new), str(frag)], capture_output=True, text=True, check=True).stdout
        print(f"fragmented copy (--frag-size {a.frag_size}): {line.strip()}")
        print(
            f"CPU s, fragmented copy: {best['new-frag']:.3f} = "
            f"{best['new-frag'] / best['new']:.2f}x the plain capture"
        )


if __name__ == "__main__":
    main()
