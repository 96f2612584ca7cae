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
    frame: bytes, size: int, ident: int, order: str = "inorder", dup: bool = False,
    conflict: bool = False, tiny: bool = False,
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


def fragment_capture(
    src: Path, dst: Path, size: int = 512, v6: bool = False, **kw
) -> tuple[int, int]:
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
