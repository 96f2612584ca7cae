"""Fragment the IP packets of a real capture, for the reassembly tests
(docs/fragments.md).

Reads a classic pcap of Ethernet frames (IPv4 or IPv6, no extension
headers), and writes one where every TCP packet whose IP payload is longer
than ``size`` bytes is cut into IP fragments of ``size`` bytes (a multiple
of 8) at the same timestamp, so that a reassembler that works gives back
exactly the original packets. ``to_ipv6`` turns an IPv4 capture into the
same traffic over IPv6 (addresses mapped into fd00::/96, TCP checksums
recomputed), so one real capture serves both families.

Orders and extras, for the edge cases:

* ``order="reverse"``: the fragments of each packet last first;
* ``dup=True``: the second fragment is sent twice (an overlap with the
  same bytes);
* ``conflict=True``: after the fragments, a copy of the second fragment
  with its bytes flipped (an overlap with different bytes: the first copy
  wins, so the engine's view of the traffic is unchanged, and it must
  raise the frag_overlap ERROR);
* ``tiny=True``: the first fragment carries only 8 bytes (part of the TCP
  header: the "tiny fragment" evasion).

Run as a script: ``python tests/fragtool.py IN OUT [--size N] [--v6]
[--order reverse] [--dup] [--conflict] [--tiny]``.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

ETH_IP, ETH_IP6 = 0x0800, 0x86DD


def read_pcap(path: Path) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """(global header, [(record header, frame)]) of a classic pcap."""
    data = Path(path).read_bytes()
    magic = data[:4]
    if magic not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        raise ValueError(f"{path}: not a little-endian classic pcap")
    out, pos = [], 24
    while pos + 16 <= len(data):
        hdr = data[pos : pos + 16]
        incl = struct.unpack("<I", hdr[8:12])[0]
        out.append((hdr, data[pos + 16 : pos + 16 + incl]))
        pos += 16 + incl
    return data[:24], out


def write_pcap(path: Path, ghdr: bytes, recs: list[tuple[bytes, bytes]]) -> None:
    parts = [ghdr]
    for hdr, frame in recs:
        parts.append(hdr[:8] + struct.pack("<II", len(frame), len(frame) + orig_extra(hdr)) + frame)
    Path(path).write_bytes(b"".join(parts))


def orig_extra(hdr: bytes) -> int:
    """Bytes the record's frame had on the wire beyond those captured."""
    incl, orig = struct.unpack("<II", hdr[8:16])
    return max(0, orig - incl)


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _v6addr(v4: bytes) -> bytes:
    return b"\xfd" + b"\0" * 11 + v4


def to_ipv6(frame: bytes) -> bytes:
    """An Ethernet IPv4 frame as the same packet over IPv6 (TCP checksum
    recomputed); anything else unchanged."""
    if len(frame) < 34 or struct.unpack("!H", frame[12:14])[0] != ETH_IP:
        return frame
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack("!H", ip[2:4])[0]
    proto, ttl = ip[9], ip[8]
    l4 = bytearray(ip[ihl:total])
    src, dst = _v6addr(ip[12:16]), _v6addr(ip[16:20])
    if proto == 6 and len(l4) >= 20:
        l4[16:18] = b"\0\0"
        pseudo = src + dst + struct.pack("!IxxxB", len(l4), 6)
        l4[16:18] = struct.pack("!H", csum(pseudo + bytes(l4)))
    v6 = struct.pack("!IHBB", 6 << 28, len(l4), proto, ttl) + src + dst
    return frame[:12] + struct.pack("!H", ETH_IP6) + v6 + bytes(l4)


def fragment_frame(
    frame: bytes,
    size: int,
    ident: int,
    order: str = "inorder",
    dup: bool = False,
    conflict: bool = False,
    tiny: bool = False,
) -> list[bytes]:
    """The fragments of one Ethernet frame (or [frame] when it is not a
    TCP packet longer than size)."""
    if size % 8 or size < 8:
        raise ValueError("size must be a positive multiple of 8")
    eth, etype = frame[:14], struct.unpack("!H", frame[12:14])[0]
    if etype == ETH_IP:
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        total = struct.unpack("!H", ip[2:4])[0]
        if ip[9] != 6 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
            return [frame]
        hdr, payload = ip[:ihl], ip[ihl:total]
    elif etype == ETH_IP6:
        ip = frame[14:]
        if ip[6] != 6:
            return [frame]
        hdr, payload = ip[:40], ip[40 : 40 + struct.unpack("!H", ip[4:6])[0]]
    else:
        return [frame]
    if len(payload) <= size and not (tiny and len(payload) > 8):
        return [frame]
    cuts, off = [], 0
    if tiny:
        cuts.append((0, 8))
        off = 8
    while off < len(payload):
        n = min(size, len(payload) - off)
        cuts.append((off, n))
        off += n
    pieces = []
    for off, n in cuts:
        more = off + n < len(payload)
        pieces.append(_piece(eth, etype, hdr, payload[off : off + n], off, more, ident))
    idx = list(range(len(pieces)))
    if order == "reverse":
        idx.reverse()
    if idx[-1] == 1:  # the copies of fragment 1 must come before the datagram is complete
        idx[-1], idx[-2] = idx[-2], idx[-1]
    out = [pieces[i] for i in idx]
    at = idx.index(1) + 1
    if conflict:
        off, n = cuts[1]
        bad = bytes(b ^ 0xFF for b in payload[off : off + n])
        out.insert(at, _piece(eth, etype, hdr, bad, off, off + n < len(payload), ident))
    if dup:
        out.insert(at, pieces[1])
    return out


def _piece(eth: bytes, etype: int, hdr: bytes, data: bytes, off: int, more: bool, ident: int) -> bytes:
    if etype == ETH_IP:
        h = bytearray(hdr)
        h[2:4] = struct.pack("!H", len(hdr) + len(data))
        h[4:6] = struct.pack("!H", ident & 0xFFFF)
        flags = (struct.unpack("!H", hdr[6:8])[0] & 0x4000) & ~0x4000  # DF cleared
        h[6:8] = struct.pack("!H", flags | (0x2000 if more else 0) | (off // 8))
        h[10:12] = b"\0\0"
        h[10:12] = struct.pack("!H", csum(bytes(h)))
        return eth + bytes(h) + data
    h = bytearray(hdr)
    h[4:6] = struct.pack("!H", 8 + len(data))
    nh = h[6]
    h[6] = 44
    fh = struct.pack("!BxHI", nh, off | (1 if more else 0), ident)
    return eth + bytes(h) + fh + data


def fragment_capture(src: Path, dst: Path, size: int = 512, v6: bool = False, **kw) -> tuple[int, int]:
    """Write src's packets, fragmented, to dst. Returns (packets cut,
    fragments written)."""
    ghdr, recs = read_pcap(src)
    out, cut, frags, ident = [], 0, 0, 0x1000
    for hdr, frame in recs:
        if v6:
            frame = to_ipv6(frame)
        ident += 1
        pieces = fragment_frame(frame, size, ident, **kw)
        if len(pieces) > 1:
            cut += 1
            frags += len(pieces)
        out += [(hdr, p) for p in pieces]
    write_pcap(dst, ghdr, out)
    return cut, frags


def ipv6_capture(src: Path, dst: Path) -> None:
    """src's packets over IPv6, not fragmented (the plain reference)."""
    ghdr, recs = read_pcap(src)
    write_pcap(dst, ghdr, [(h, to_ipv6(f)) for h, f in recs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--v6", action="store_true")
    ap.add_argument("--order", default="inorder", choices=("inorder", "reverse"))
    ap.add_argument("--dup", action="store_true")
    ap.add_argument("--conflict", action="store_true")
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args()
    cut, frags = fragment_capture(
        a.src, a.dst, a.size, a.v6, order=a.order, dup=a.dup, conflict=a.conflict, tiny=a.tiny
    )
    print(f"{cut} packets cut into {frags} fragments")


if __name__ == "__main__":
    main()


# ---- constructed fragments, for the edge cases ------------------------------


def tcp_segment(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"") -> bytes:
    """A TCP header (checksum left 0: not verified by default) and payload."""
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4_fragment(src: str, dst: str, ident: int, off: int, more: bool, data: bytes, proto: int = 6) -> bytes:
    """An Ethernet frame holding one IPv4 fragment (off in bytes)."""
    import ipaddress

    h = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(data),
            ident & 0xFFFF,
            (0x2000 if more else 0) | (off // 8),
            64,
            proto,
            0,
            ipaddress.IPv4Address(src).packed,
            ipaddress.IPv4Address(dst).packed,
        )
    )
    h[10:12] = struct.pack("!H", csum(bytes(h)))
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00" + bytes(h) + data


def ipv6_fragment(src: str, dst: str, ident: int, off: int, more: bool, data: bytes, nh: int = 6) -> bytes:
    """An Ethernet frame holding one IPv6 fragment (off in bytes)."""
    import ipaddress

    fh = struct.pack("!BxHI", nh, off | (1 if more else 0), ident)
    h = struct.pack("!IHBB", 6 << 28, 8 + len(data), 44, 64)
    h += ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x86\xdd" + h + fh + data


def write_frames(path: Path, frames: list[tuple[float, bytes]]) -> None:
    """A classic Ethernet pcap of (time, frame)."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    for ts, f in frames:
        sec = int(ts)
        parts.append(struct.pack("<IIII", sec, round((ts - sec) * 1e6), len(f), len(f)) + f)
    Path(path).write_bytes(b"".join(parts))


def edge_captures(folder: Path) -> dict[str, tuple[Path, dict[str, int]]]:
    """Constructed fragment captures, each with the counters the engine
    must report for it with the default settings (frag_memcap 32 MiB,
    frag_timeout 30 s)."""
    folder = Path(folder)
    out: dict[str, tuple[Path, dict[str, int]]] = {}
    seg = tcp_segment(40000, 80, 1000, 0x02, bytes(range(256)) * 8)[:2048]  # a SYN, 2048 bytes in all
    a4, b4, a6, b6 = "10.9.0.1", "10.9.0.2", "fd09::1", "fd09::2"

    def cut(make, ident, order, data=seg, size=512):
        pieces = [(o, data[o : o + size]) for o in range(0, len(data), size)]
        return [make(ident, o, o + len(d) < len(data), d) for o, d in (pieces[i] for i in order)]

    v4 = lambda i, o, m, d: ipv4_fragment(a4, b4, i, o, m, d)  # noqa: E731
    v6 = lambda i, o, m, d: ipv6_fragment(a6, b6, i, o, m, d)  # noqa: E731

    # out of order, both families; a duplicate (same bytes); a conflict
    frames = cut(v4, 1, [2, 0, 3, 1]) + cut(v6, 1, [3, 1, 2, 0])
    dup = cut(v4, 2, [0, 1, 2, 3])
    frames += dup[:2] + [dup[1]] + dup[2:]
    bad = bytearray(seg)
    bad[600] ^= 0xFF
    frames += cut(v4, 3, [0, 1]) + [cut(v4, 3, [1], bytes(bad))[0]] + cut(v4, 3, [2, 3])
    p = folder / "frag-order-overlap.pcap"
    write_frames(p, [(1000.0 + i * 1e-3, f) for i, f in enumerate(frames)])
    out["order-overlap"] = (
        p,
        {"fragments": len(frames), "frag_reassembled": 4, "frag_overlaps": 2, "frag_conflicts": 1},
    )

    # a missing fragment: dropped when a fragment 31 s later arrives; the
    # later one never completes (pending at the end)
    frames = [(1000.0, cut(v4, 5, [0])[0]), (1000.5, cut(v6, 5, [1])[0]), (1031.0, cut(v4, 6, [1])[0])]
    p = folder / "frag-timeout.pcap"
    write_frames(p, frames)
    out["timeout"] = (p, {"fragments": 3, "frag_timeouts": 2, "frag_pending": 1, "frag_reassembled": 0})

    # malformed: past 65535 bytes, a non-last fragment not a multiple of
    # 8, a fragment with no data, a truncated one (caplen < its length)
    frames = [
        ipv4_fragment(a4, b4, 7, 65512, False, b"x" * 100),
        ipv6_fragment(a6, b6, 7, 65528, False, b"x" * 100),
        ipv4_fragment(a4, b4, 8, 0, True, b"x" * 100),
        ipv4_fragment(a4, b4, 9, 8, True, b""),
        ipv4_fragment(a4, b4, 10, 8, True, b"x" * 64)[:-10],
    ]
    p = folder / "frag-malformed.pcap"
    write_frames(p, [(1000.0 + i, f) for i, f in enumerate(frames)])
    # (the truncated one claims more bytes than its frame had on the wire:
    # the parser calls it malformed before it is a fragment)
    out["malformed"] = (p, {"fragments": 4, "malformed": 1, "frag_malformed": 4, "frag_reassembled": 0})

    # tiny first fragment (8 bytes: half a TCP header), then the rest
    frames = [
        v4(11, 0, True, seg[:8]),
        v4(11, 8, False, seg[8:]),
        v6(11, 8, False, seg[8:]),
        v6(11, 0, True, seg[:8]),
    ]
    p = folder / "frag-tiny.pcap"
    write_frames(p, [(1000.0 + i * 1e-3, f) for i, f in enumerate(frames)])
    out["tiny"] = (p, {"fragments": 4, "frag_reassembled": 2})

    # a train of 60000 first fragments of datagrams that never complete:
    # the cap drops the oldest, memory stays bounded
    n = 60000
    frames = [
        (
            1000.0 + i * 1e-5,
            ipv4_fragment(f"10.{8 + i // 65536}.{(i // 256) % 256}.{i % 256}", b4, i, 0, True, seg[:1024]),
        )
        for i in range(n)
    ]
    p = folder / "frag-train.pcap"
    write_frames(p, frames)
    out["train"] = (p, {"fragments": n, "frag_reassembled": 0})
    return out
