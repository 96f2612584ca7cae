#!/usr/bin/env python3
"""What decapsulation costs (docs/encapsulation.md), side by side in one run.

    .venv/bin/python bench/decap_cost.py                 # 100k connections (~2M packets)
    .venv/bin/python bench/decap_cost.py --conns 50000 --repeat 7
    .venv/bin/python bench/decap_cost.py --base main     # the git revision to compare with

Generates the synthetic bench capture (bench/gen_capture.c, cached in
bench/out/), writes a VXLAN-wrapped copy of it (every frame inside outer
Ethernet/IPv4/UDP 4789/VXLAN, UDP checksum 0 as RFC 7348 allows), builds
the engine of ``--base`` (a ``git archive`` of that revision, built in
bench/out/base-REV with this venv's interpreter), and runs, interleaved
``--repeat`` times, no plugin and ``-q``:

- the base engine on the plain capture,
- this tree's engine on the plain capture (the no-tunnel fast path),
- this tree's engine on the VXLAN copy.

Each row keeps its best run of the engine time (``--stats-json``'s
``seconds``: the run without interpreter start-up). Ratios: this tree /
base on the plain capture (must stay within 2 %), VXLAN / plain on this
tree (within 1.3x).

How a file lies in the page cache moves these times by more than the
decapsulation does (the same bytes, copied with ``cp``, read 25 % faster or
slower than the original: larger or smaller page-cache folios, hence
fewer or more page faults of the mapping). ``--fresh-copies K`` measures
that out: K rounds, each on new ``cp`` copies of both captures (made by
the same writer, one after the other), and prints the median of the
per-round VXLAN / plain ratios next to the best-of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUT = BENCH / "out"
PY = sys.executable
WRITE_PIECE = 8 << 20


def gen_capture(conns: int) -> Path:
    OUT.mkdir(exist_ok=True)
    exe = OUT / "gen_capture"
    src = BENCH / "gen_capture.c"
    if not exe.exists() or exe.stat().st_mtime < src.stat().st_mtime:
        subprocess.run(["cc", "-O2", "-Wall", "-Wextra", "-o", str(exe), str(src)], check=True)
    pcap = OUT / f"decap-plain-{conns}.pcap"
    if not pcap.exists():
        subprocess.run([str(exe), "-o", str(pcap), "-n", str(conns), "-q"], check=True)
    return pcap


def _ip_csum(h: bytes) -> int:
    s = sum(struct.unpack("!10H", h))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def vxlan_copy(plain: Path) -> Path:
    out = plain.with_name(plain.name.replace("plain", "vxlan"))
    if out.exists() and out.stat().st_mtime >= plain.stat().st_mtime:
        return out
    blob = plain.read_bytes()
    e = "<" if blob[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    eth = b"\x02\x00\x00\x00\xaa\x02\x02\x00\x00\x00\xaa\x01\x08\x00"
    vx = struct.pack("!II", 0x08000000, 4242 << 8)
    # written in 8 MiB pieces, as gen_capture.c writes the plain capture:
    # the size of the writes decides the page-cache folios the file gets,
    # and with them the cost of reading it through a mapping (8 KiB writes
    # made this copy read ~40 % slower, whatever was in it)
    buf = bytearray(blob[:16] + struct.pack(e + "I", 262144) + blob[20:24])
    with open(out, "wb") as f:
        pos = 24
        n = len(blob)
        while pos + 16 <= n:
            sec, frac, caplen, wire = struct.unpack(e + "IIII", blob[pos : pos + 16])
            frame = blob[pos + 16 : pos + 16 + caplen]
            pos += 16 + caplen
            ulen = 8 + 8 + len(frame)
            sport = 49152 + (zlib.crc32(frame[26:34]) & 0x3FFF)
            ip = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0, 64, 17, 0, b"\xc0\x00\x02\x01", b"\xc0\x00\x02\x02"
            )
            ip = ip[:10] + struct.pack("!H", _ip_csum(ip)) + ip[12:]
            hdr = eth + ip + struct.pack("!HHHH", sport, 4789, ulen, 0) + vx
            buf += struct.pack(e + "IIII", sec, frac, len(hdr) + caplen, len(hdr) + wire)
            buf += hdr
            buf += frame
            if len(buf) >= WRITE_PIECE:
                f.write(buf)
                buf.clear()
        f.write(buf)
    return out


def build_base(rev: str) -> Path:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, capture_output=True, text=True, check=True
    )
    d = OUT / f"base-{sha.stdout.strip()}"
    if (d / "mosfw").is_dir() and any((d / "mosfw").glob("_native*.so")):
        return d
    d.mkdir(parents=True, exist_ok=True)
    arc = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(d)], input=arc.stdout, check=True)
    subprocess.run([PY, "setup.py", "-q", "build_ext", "--inplace"], cwd=d, check=True, capture_output=True)
    return d


def engine_seconds(tree: Path, pcap: Path) -> tuple[float, int]:
    with tempfile.NamedTemporaryFile(suffix=".json") as tf:
        env = dict(os.environ, PYTHONPATH=str(tree))
        env.pop("PYTHONUNBUFFERED", None)
        subprocess.run(
            [PY, "-m", "mosfw", "run", "-r", str(pcap), "-q", "--stats-json", tf.name],
            cwd=tree,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        doc = json.loads(Path(tf.name).read_text())
    return float(doc["seconds"]), int(doc["flows_created"])


def fresh_copy_ratios(plain: Path, vx: Path, rounds: int) -> list[float]:
    """VXLAN / plain engine time, per round, on new cp copies of both files
    (best of 3 runs each): the page-cache layout is drawn anew each round."""
    ratios = []
    for k in range(rounds):
        copies = []
        for src in (plain, vx):
            dst = OUT / f"fresh-{k}-{src.name}"
            subprocess.run(["cp", str(src), str(dst)], check=True)
            copies.append(dst)
        times = [min(engine_seconds(ROOT, c)[0] for _ in range(3)) for c in copies]
        ratios.append(times[1] / times[0])
        for c in copies:
            c.unlink()
    return ratios


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--base", default="main")
    ap.add_argument("--fresh-copies", type=int, default=0, metavar="K", help="K rounds on fresh cp copies")
    a = ap.parse_args()
    plain = gen_capture(a.conns)
    vx = vxlan_copy(plain)
    base = build_base(a.base)
    rows = {"base plain": (base, plain), "this plain": (ROOT, plain), "this vxlan": (ROOT, vx)}
    best: dict[str, float] = {}
    flows: dict[str, int] = {}
    for _ in range(a.repeat):
        for name, (tree, pcap) in rows.items():
            s, f = engine_seconds(tree, pcap)
            best[name] = min(best.get(name, s), s)
            flows[name] = f
    print(
        f"capture: {plain.name} ({plain.stat().st_size >> 20} MiB), VXLAN copy {vx.stat().st_size >> 20} MiB"
    )
    for name in rows:
        print(f"{name:12s} best of {a.repeat}: {best[name]:.3f} s  ({flows[name]} flows)")
    print(f"this / base, plain capture: {best['this plain'] / best['base plain']:.3f}")
    print(f"vxlan / plain, this tree:   {best['this vxlan'] / best['this plain']:.3f}")
    if a.fresh_copies:
        ratios = fresh_copy_ratios(plain, vx, a.fresh_copies)
        ratios.sort()
        print(
            f"vxlan / plain on {len(ratios)} rounds of fresh cp copies: median {ratios[len(ratios) // 2]:.3f}"
            f" (min {ratios[0]:.3f}, max {ratios[-1]:.3f})"
        )
    return 0 if len(set(flows.values())) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
