"""Build the fuzz corpora from real and synthetic captures.

    python native/fuzz/build_corpus.py OUTDIR

writes

``OUTDIR/packets/``
    inputs for ``fuzz_packets`` (the framing described at the top of
    ``fuzz_packets.c``): chunks of up to 64 packets, frames cut to 512
    bytes, from every capture below, each in two engine configurations;
``OUTDIR/pcap/``
    inputs for ``fuzz_pcap``: the capture files themselves (the synthetic
    ones also as nanosecond pcap and as pcapng).

Sources: ``native/fuzz/seeds/`` (a selection of tcpdump's test captures,
see its README.md), ``tests/data/*.pcap``, and scenarios scripted with
:mod:`mosfw.testing.flows` in every link type mosfw reads. Standard
library only, apart from mosfw.testing (run it with the project's venv).
"""

from __future__ import annotations

import hashlib
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: link type -> index byte of fuzz_packets.c's LINKTYPES table
LINK_INDEX = {
    1: 0,
    113: 1,
    276: 2,
    101: 3,
    12: 4,
    14: 5,
    0: 6,
    108: 7,
    228: 8,
    229: 9,
    147: 10,
    105: 11,
    9: 12,
    104: 13,
    127: 14,
    239: 15,
}
CHUNK = 64
MAX_FRAME = 512
MAX_CHUNKS = 4

Record = tuple[float, bytes, int]  # ts, frame, wire length


def read_pcap(blob: bytes) -> tuple[int, list[Record]] | None:
    """(linktype, records) of a classic pcap, or None if it is not one.
    Stops quietly at a damaged record."""
    if len(blob) < 24:
        return None
    magic = blob[:4]
    for endian, nano in (("<", False), (">", False), ("<", True), (">", True)):
        want = struct.pack(endian + "I", 0xA1B23C4D if nano else 0xA1B2C3D4)
        if magic == want:
            break
    else:
        return None
    linktype = struct.unpack(endian + "I", blob[20:24])[0] & 0x0FFFFFFF
    recs: list[Record] = []
    pos = 24
    while pos + 16 <= len(blob):
        sec, frac, caplen, wire = struct.unpack(endian + "IIII", blob[pos : pos + 16])
        pos += 16
        if caplen > 262144 or pos + caplen > len(blob):
            break
        recs.append((sec + frac / (1e9 if nano else 1e6), blob[pos : pos + caplen], wire))
        pos += caplen
    return linktype, recs


def read_pcapng(blob: bytes) -> tuple[int, list[Record]] | None:
    """(linktype of the first interface, records) of a pcapng, or None.
    Enhanced and simple packet blocks; microsecond timestamps assumed
    (only the order and rough spacing matter here)."""
    if len(blob) < 28 or blob[:4] != b"\x0a\x0d\x0d\x0a":
        return None
    endian = "<" if blob[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    linktypes: list[int] = []
    recs: list[Record] = []
    pos = 0
    while pos + 12 <= len(blob):
        btype, blen = struct.unpack(endian + "II", blob[pos : pos + 8])
        if blen < 12 or blen % 4 or pos + blen > len(blob):
            break
        body = blob[pos + 8 : pos + blen - 4]
        if btype == 1 and len(body) >= 8:
            linktypes.append(struct.unpack(endian + "H", body[:2])[0])
        elif btype == 6 and len(body) >= 20:
            _, hi, lo, caplen, wire = struct.unpack(endian + "IIIII", body[:20])
            recs.append((((hi << 32) | lo) / 1e6, body[20 : 20 + caplen], wire))
        elif btype == 3 and len(body) >= 4:
            wire = struct.unpack(endian + "I", body[:4])[0]
            recs.append((recs[-1][0] if recs else 0.0, body[4 : 4 + wire], wire))
        pos += blen
    if not linktypes:
        return None
    return linktypes[0], recs


def frame_input(linktype: int, recs: list[Record], cfg1: int, cfg2: int, cfg3: int) -> bytes:
    """Encode records in fuzz_packets' framing."""
    out = bytearray([LINK_INDEX.get(linktype, 10), cfg1, cfg2, cfg3])
    prev = recs[0][0] if recs else 0.0
    for ts, frame, wire in recs:
        dt = ts - prev
        prev = ts
        if dt < 0:
            code = 255
        elif dt < 0.128:
            code = int(dt * 1000)
        elif dt < 120.5:
            code = 127 + max(1, round(dt))
        else:
            code = 247 + min(7, max(1, round(dt / 100)))
        frame = frame[:MAX_FRAME]
        n = len(frame) | (0x8000 if wire > len(frame) else 0)
        out += bytes([code]) + struct.pack("<H", n) + frame
    return bytes(out)


# the two engine configurations each chunk is written in (see fuzz_packets.c)
CONFIGS = (
    # max_concurrency 32, timeout 30 s, all events, array 4096, burst 4096;
    # rmem 1500, buffers and packet copies on, API poked, event filter
    (0x05, 0x1F, 0x3E),
    # max_concurrency 3, checksums, timeout 1 s, all events, array 64, burst 1;
    # rmem 64, buffers on, API poked, SYN and orphan filters
    (0x1A, 0x14, 0xD5),
)


def synthetic(outdir: Path) -> list[Path]:
    """Scripted scenarios in every link type, v4 and v6; returns the pcaps."""
    sys.path.insert(0, str(ROOT))
    from mosfw.testing.flows import Capture

    files = []
    for lt in ("ether", "raw", "sll", "sll2", "null", "loop"):
        for v6 in (False, True):
            tag = f"{lt}-{'v6' if v6 else 'v4'}"
            cli, srv = (
                (("fd00::1", 40000), ("fd00::2", 80)) if v6 else (("10.0.0.1", 40000), ("10.0.0.2", 80))
            )
            cap = Capture(linktype=lt, start=1_700_000_000.0)
            kw = {"vlan": [100, 200]} if lt == "ether" and not v6 else {}
            if v6 and lt == "ether":
                kw = {"ext_headers": ("hbh", "dest")}
            c = cap.conversation(client=cli, server=srv, client_isn=2**32 - 30, **kw)
            c.handshake(mss=1460, wscale=7, sack_perm=True, timestamp=(1, 0))
            lost = c.send("client", 100, emit=False)
            c.send("client", 100)
            c.emit(lost)
            c.send("server", 300)
            c.keepalive("server")
            c.zero_window("client")
            c.fin("client")
            c.fin("server")
            c.ack("client")
            c.ack("client")
            c.rst("server")
            d = cap.conversation(client=(cli[0], 40001), server=srv)
            d.half_open(retries=1)
            m = cap.conversation(client=(cli[0], 40002), server=srv)
            m.midstream()
            m.send("server", 200)
            m.send("client", 10)
            cap.advance(40)
            m.send("server", 10)
            r = cap.conversation(client=(cli[0], 40003), server=srv)
            r.handshake()
            r.rst("client")
            r2 = cap.conversation(client=(cli[0], 40003), server=srv, client_isn=99999)
            r2.handshake()
            r2.close(first="server")
            cap.udp(cli, (srv[0], 53), b"q")
            for x in cap.conversations(6, client=(cli[0], 41000), server=srv, handshake=True):
                x.send("server", 50)
            p = outdir / f"syn-{tag}.pcap"
            cap.write_pcap(p)
            files.append(p)
            if lt in ("ether", "raw"):
                q = outdir / f"syn-{tag}-ns.pcap"
                cap.write_pcap(q, nanosecond=True, snaplen=60)
                files.append(q)
                g = outdir / f"syn-{tag}.pcapng"
                cap.write_pcapng(g)
                files.append(g)
    return files


def fragments(outdir: Path) -> list[Path]:
    """IP fragment seeds (docs/fragments.md): the constructed edge cases
    of tests/fragtool.py but its 60,000-datagram train, and
    tests/data/http-loss.pcap fragmented (IPv4 tiny first fragments; IPv6
    last fragment first, duplicated and conflicting copies)."""
    sys.path.insert(0, str(ROOT / "tests"))
    import fragtool

    files = [p for name, (p, _) in fragtool.edge_captures(outdir).items() if name != "train"]
    (outdir / "frag-train.pcap").unlink(missing_ok=True)
    plain = ROOT / "tests" / "data" / "http-loss.pcap"
    for name, kw in (
        ("frag-http-v4-tiny.pcap", {"size": 256, "tiny": True}),
        (
            "frag-http-v6-mixed.pcap",
            {"size": 64, "v6": True, "order": "reverse", "dup": True, "conflict": True},
        ),
    ):
        fragtool.fragment_capture(plain, outdir / name, **kw)
        files.append(outdir / name)
    return files


def encapsulated(outdir: Path) -> list[Path]:
    """tests/data/http-loss.pcap in every encapsulation and link type of
    mosfw.testing.encap (docs/encapsulation.md), and nested 3 deep."""
    sys.path.insert(0, str(ROOT))
    from mosfw.testing.encap import KINDS, NESTABLE, wrap_capture

    made = []
    src = ROOT / "tests" / "data" / "http-loss.pcap"
    for kind in sorted(KINDS):
        if kind == "teredo":
            src6 = ROOT / "tests" / "multicore" / "data" / "http_ipv6.pcap"
            wrap_capture(src6, outdir / "encap-teredo.pcap", kind)
            made.append(outdir / "encap-teredo.pcap")
            continue
        wrap_capture(src, outdir / f"encap-{kind}.pcap", kind)
        made.append(outdir / f"encap-{kind}.pcap")
        if kind in NESTABLE:
            wrap_capture(src, outdir / f"encap-{kind}-x3.pcap", kind, depth=3)
            made.append(outdir / f"encap-{kind}-x3.pcap")
    return made


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: build_corpus.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    pk, pc = out / "packets", out / "pcap"
    pk.mkdir(parents=True, exist_ok=True)
    pc.mkdir(parents=True, exist_ok=True)
    sources = sorted((HERE / "seeds").glob("*.pcap*"))
    sources += sorted((ROOT / "tests" / "data").glob("*.pcap*"))
    sources += synthetic(pc)
    sources += fragments(pc)
    sources += encapsulated(pc)
    n_pk = n_pc = 0
    for src in sources:
        blob = src.read_bytes()
        if src.parent != pc:
            (pc / src.name).write_bytes(blob)
        n_pc += 1
        parsed = read_pcap(blob) or read_pcapng(blob)
        if not parsed or not parsed[1]:
            continue
        linktype, recs = parsed
        for k in range(0, min(len(recs), CHUNK * MAX_CHUNKS), CHUNK):
            for cfg1, cfg2, cfg3 in CONFIGS:
                data = frame_input(linktype, recs[k : k + CHUNK], cfg1, cfg2, cfg3)
                name = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:16]
                (pk / f"{src.stem}-{k // CHUNK}-{name}").write_bytes(data)
                n_pk += 1
    print(f"build_corpus: {n_pk} packet-sequence inputs in {pk}, {n_pc} capture files in {pc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
