"""Wrap every frame of a real capture in an encapsulation, for tests of
decapsulation (docs/encapsulation.md): ``wrap_capture(src, dst, kind)``
reads an Ethernet pcap and writes the same packets, with the same
timestamps, inside ``kind`` (one of :data:`KINDS`). Header layouts follow
the RFCs (GRE 2784/2890, VXLAN 7348, Geneve 8926, Teredo 4380, MPLS
3032/4385, PPPoE 2516), 3GPP TS 29.281 (GTP-U), the ERSPAN draft and the
libpcap link-type pages; tshark decodes every result (tests check it).

Standard library and :mod:`mosfw.testing.headers` only.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from mosfw.testing.headers import ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, ipv4, ipv6, udp
from mosfw.testing.pcap_files import write_pcap

__all__ = ["KINDS", "read_pcap", "wrap_capture", "wrap_frame"]

ETH_HDR = b"\x02\x00\x00\x00\xaa\x01\x02\x00\x00\x00\xaa\x02"  # outer dst, src MACs
OUT4 = ("192.0.2.1", "192.0.2.2")  # outer addresses (TEST-NET-1)
OUT6 = ("2001:db8::1", "2001:db8::2")


def read_pcap(path: str | Path) -> tuple[int, list[tuple[Fraction, bytes]]]:
    """(link type, [(ts, frame)]) of a classic pcap file (either byte order,
    micro- or nanosecond); ts exact (a Fraction of seconds)."""
    blob = Path(path).read_bytes()
    magic = blob[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        e = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(e + "I", blob[20:24])[0] & 0xFFFF
    out, pos = [], 24
    while pos + 16 <= len(blob):
        sec, frac, caplen, _wire = struct.unpack(e + "IIII", blob[pos : pos + 16])
        out.append((sec + Fraction(frac, 10**9 if nano else 10**6), blob[pos + 16 : pos + 16 + caplen]))
        pos += 16 + caplen
    return linktype, out


def _ip_of(frame: bytes) -> bytes:
    """The IP packet of a plain Ethernet frame (no tags)."""
    t = struct.unpack("!H", frame[12:14])[0]
    if t not in (ETH_P_IP, ETH_P_IPV6):
        raise ValueError(f"not a plain Ethernet/IP frame (ethertype 0x{t:04x})")
    ip = frame[14:]
    # drop Ethernet padding: the IP length says where the packet ends
    n = struct.unpack("!H", ip[2:4])[0] if ip[0] >> 4 == 4 else 40 + struct.unpack("!H", ip[4:6])[0]
    return ip[:n]


def _is_ip(frame: bytes) -> bool:
    return len(frame) >= 34 and frame[12:14] in (b"\x08\x00", b"\x86\xdd")


def _etype(ip: bytes) -> int:
    return ETH_P_IP if ip[0] >> 4 == 4 else ETH_P_IPV6


def _flow_port(frame: bytes) -> int:
    """A UDP source port from the inner frame's addresses (the same both
    ways, as a tunnel endpoint's hash of the inner flow would be)."""
    if not _is_ip(frame):
        return 49152
    ip = _ip_of(frame)
    a, b = (ip[12:16], ip[16:20]) if ip[0] >> 4 == 4 else (ip[8:24], ip[24:40])
    return 49152 + zlib.crc32(min(a, b) + max(a, b)) % 16384


def _outer(payload: bytes, proto: int, v6: bool = False) -> bytes:
    """Ethernet + outer IP (v4 or v6) around payload."""
    if v6:
        return ETH_HDR + struct.pack("!H", ETH_P_IPV6) + ipv6(OUT6[0], OUT6[1], proto, payload)
    return ETH_HDR + struct.pack("!H", ETH_P_IP) + ipv4(OUT4[0], OUT4[1], proto, payload, df=False)


def _over_udp(frame: bytes, dport: int, payload: bytes, v6: bool = False, sport: int | None = None) -> bytes:
    src, dst = OUT6 if v6 else OUT4
    sp = _flow_port(frame) if sport is None else sport
    return _outer(udp(src, dst, sp, dport, payload), IPPROTO_UDP, v6)


def vxlan(frame: bytes, vni: int = 4242, v6: bool = False) -> bytes:
    return _over_udp(frame, 4789, struct.pack("!II", 0x08000000, vni << 8) + frame, v6)


def geneve(frame: bytes, vni: int = 77) -> bytes:
    # one 8-byte option (class 0x0103, type 0x80, 4 bytes of data): skipped by its length
    opt = struct.pack("!HBB", 0x0103, 0x80, 1) + b"\x00\x00\x00\x01"
    hdr = struct.pack("!BBHI", len(opt) // 4, 0, 0x6558, vni << 8) + opt
    return _over_udp(frame, 6081, hdr + frame)


def _gre_hdr(proto: int, key: int | None = 0x1234, seq: int | None = 7, csum: bool = True) -> bytes:
    flags = (0x8000 if csum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    h = struct.pack("!HH", flags, proto)
    if csum:
        h += b"\x00\x00\x00\x00"  # checksum (not verified by the engine) + reserved
    if key is not None:
        h += struct.pack("!I", key)
    if seq is not None:
        h += struct.pack("!I", seq)
    return h


def gre(frame: bytes, v6: bool = False) -> bytes:
    ip = _ip_of(frame)
    return _outer(_gre_hdr(_etype(ip)) + ip, 47, v6)


def gre_teb(frame: bytes) -> bytes:
    return _outer(_gre_hdr(0x6558, key=99, seq=None, csum=False) + frame, 47)


def erspan1(frame: bytes) -> bytes:
    return _outer(_gre_hdr(0x88BE, key=None, seq=None, csum=False) + frame, 47)


def erspan2(frame: bytes, session: int = 5) -> bytes:
    # version 1, VLAN 0, COS 0, En 0, T 0, session; reserved + index 0
    hdr = struct.pack("!HHI", 0x1000, session & 0x3FF, 0)
    return _outer(_gre_hdr(0x88BE, key=None, seq=1, csum=False) + hdr + frame, 47)


def erspan3(frame: bytes, session: int = 9) -> bytes:
    # version 2; timestamp; SGT, P, FT 0 (Ethernet), HW id, D, Gra, O = 1; then
    # an 8-byte platform-specific subheader (platform id 3)
    hdr = struct.pack("!HHIHH", 0x2000, session & 0x3FF, 0x01020304, 0, 0x0001)
    sub = struct.pack("!II", 3 << 26, 0)
    return _outer(_gre_hdr(0x22EB, key=None, seq=1, csum=False) + hdr + sub + frame, 47)


def gtpu(frame: bytes, teid: int = 0xABCDEF) -> bytes:
    ip = _ip_of(frame)
    # E flag: one PDU session container extension (type 0x85, 1 unit of 4 bytes)
    ext = struct.pack("!BBBB", 1, 0x00, 0x01, 0x00)  # length 1, QFI, next type 0
    opt = struct.pack("!HBB", 0, 0, 0x85)  # sequence, N-PDU, next extension type
    body = opt + ext + ip
    hdr = struct.pack("!BBHI", 0x34, 0xFF, len(body), teid)
    return _over_udp(frame, 2152, hdr + body, sport=2152)


def ipip(frame: bytes, v6: bool = False) -> bytes:
    ip = _ip_of(frame)
    return _outer(ip, 4 if ip[0] >> 4 == 4 else 41, v6)


def teredo(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    if ip[0] >> 4 != 6:
        raise ValueError("Teredo carries IPv6 only")
    auth = struct.pack("!HBB", 0x0001, 0, 0) + b"\x11" * 8 + b"\x00"  # no id, no auth value
    origin = struct.pack("!HH", 0x0000, 0xFFFF ^ 3544) + bytes(b ^ 0xFF for b in bytes([192, 0, 2, 9]))
    return _over_udp(frame, 3544, auth + origin + ip, sport=3544)


def ayiya(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    nh = 4 if ip[0] >> 4 == 4 else 41
    # identity 16 bytes (length 2^4, type 1), signature 20 bytes (5 words,
    # SHA-1), auth method 2, opcode 1 (forward)
    hdr = struct.pack("!BBBBI", 0x41, 0x52, 0x21, nh, 0x5F000000) + b"\x20" * 16 + b"\x00" * 20
    return _over_udp(frame, 5072, hdr + ip, sport=5072)


def mpls(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    labels = struct.pack("!II", (1000 << 12) | 64, (2000 << 12) | 0x100 | 64)  # 2 labels, S on the last
    return ETH_HDR + struct.pack("!H", 0x8847) + labels + ip


def mpls_pw(frame: bytes) -> bytes:
    """Ethernet pseudowire with a control word (engine: mpls_pseudowire = 2)."""
    label = struct.pack("!I", (3000 << 12) | 0x100 | 64)
    return ETH_HDR + struct.pack("!H", 0x8847) + label + b"\x00\x00\x00\x00" + frame


def pppoe(frame: bytes, session: int = 0x2A) -> bytes:
    ip = _ip_of(frame)
    ppp = struct.pack("!H", 0x0021 if ip[0] >> 4 == 4 else 0x0057) + ip
    return ETH_HDR + struct.pack("!HBBHH", 0x8864, 0x11, 0, session, len(ppp)) + ppp


def qinq(frame: bytes, tags: tuple[int, ...] = (100, 200)) -> bytes:
    out = frame[:12]
    for i, vid in enumerate(tags):
        out += struct.pack("!HH", 0x88A8 if i == 0 and len(tags) > 1 else 0x8100, vid)
    return out + frame[12:]


def pbb(frame: bytes, isid: int = 0x10203) -> bytes:
    return ETH_HDR + struct.pack("!HI", 0x88E7, isid & 0xFFFFFF) + frame


def fabricpath(frame: bytes, ftag: int = 1) -> bytes:
    return ETH_HDR + struct.pack("!HH", 0x8903, (ftag << 6) | 32) + frame


def vntag(frame: bytes, dvif: int = 17) -> bytes:
    return frame[:12] + struct.pack("!HHH", 0x8926, dvif & 0x3FFF, 5) + frame[12:]


# -- link types -------------------------------------------------------------


def ppp_link(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    return b"\xff\x03" + struct.pack("!H", 0x0021 if ip[0] >> 4 == 4 else 0x0057) + ip


def hdlc_link(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    return struct.pack("!BBH", 0x0F, 0, _etype(ip)) + ip


def nflog_link(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    fam = 2 if ip[0] >> 4 == 4 else 10

    def tlv(t: int, v: bytes) -> bytes:
        b = struct.pack("<HH", 4 + len(v), t) + v
        return b + b"\x00" * (-len(b) % 4)

    return struct.pack("!BBH", fam, 0, 7) + tlv(1, struct.pack("!HBB", _etype(ip), 3, 0)) + tlv(9, ip)


def sll2_link(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    return struct.pack("!HHIHBB", _etype(ip), 0, 2, 1, 0, 6) + frame[6:12] + b"\x00\x00" + ip


def wlan_link(frame: bytes) -> bytes:
    ip = _ip_of(frame)
    # QoS data, from DS: addr1 = dst, addr2 = BSSID, addr3 = src; QoS control
    hdr = struct.pack("!BBH", 0x88, 0x02, 0) + frame[0:6] + b"\x02\x00\x00\x00\xbb\x01" + frame[6:12]
    hdr += struct.pack("<H", 0) + struct.pack("<H", 0)
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack("!H", _etype(ip)) + ip


def radiotap_link(frame: bytes) -> bytes:
    # version 0, length 8, present: none but the flags field bit... (none)
    return struct.pack("<BBHI", 0, 0, 8, 0) + wlan_link(frame)


#: kinds that carry an IP packet, not an Ethernet frame: the capture's
#: other frames (ARP ...) are left out of the result
IP_ONLY = frozenset(
    {"gre", "gre6", "gtpu", "ipip4", "ipip6", "teredo", "ayiya", "mpls", "pppoe"}
    | {"ppp", "c_hdlc", "nflog", "sll2", "ieee802_11", "radiotap"}
)

#: kind -> (link type of the result, wrapper of one Ethernet frame)
KINDS: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
    "vxlan": (1, vxlan),
    "vxlan6": (1, lambda f: vxlan(f, v6=True)),
    "geneve": (1, geneve),
    "gre": (1, gre),
    "gre6": (1, lambda f: gre(f, v6=True)),
    "gre_teb": (1, gre_teb),
    "erspan1": (1, erspan1),
    "erspan2": (1, erspan2),
    "erspan3": (1, erspan3),
    "gtpu": (1, gtpu),
    "ipip4": (1, ipip),
    "ipip6": (1, lambda f: ipip(f, v6=True)),
    "teredo": (1, teredo),
    "ayiya": (1, ayiya),
    "mpls": (1, mpls),
    "mpls_pw": (1, mpls_pw),
    "pppoe": (1, pppoe),
    "qinq": (1, qinq),
    "pbb": (1, pbb),
    "fabricpath": (1, fabricpath),
    "vntag": (1, vntag),
    "ppp": (9, ppp_link),
    "c_hdlc": (104, hdlc_link),
    "nflog": (239, nflog_link),
    "sll2": (276, sll2_link),
    "ieee802_11": (105, wlan_link),
    "radiotap": (127, radiotap_link),
}


#: kinds that can wrap their own result (depth > 1)
NESTABLE = frozenset(k for k, (lt, _) in KINDS.items() if lt == 1 and k not in ("mpls", "pppoe", "teredo"))


def wrap_frame(kind: str, frame: bytes) -> bytes:
    """One Ethernet frame wrapped in ``kind``."""
    return KINDS[kind][1](frame)


def wrap_capture(src: str | Path, dst: str | Path, kind: str, depth: int = 1) -> int:
    """Write ``src`` (an Ethernet pcap) to ``dst`` with every frame wrapped
    ``depth`` times in ``kind``; returns the link type written."""
    linktype, recs = read_pcap(src)
    if linktype != 1:
        raise ValueError(f"{src}: link type {linktype}, expected Ethernet (1)")
    out_link, fn = KINDS[kind]
    if depth > 1 and kind not in NESTABLE:
        raise ValueError(f"{kind}: only kinds whose result is Ethernet/IP or carries Ethernet nest")
    out = []
    for ts, frame in recs:
        if kind in IP_ONLY and not _is_ip(frame):
            continue
        if kind == "teredo" and frame[12:14] != b"\x86\xdd":
            continue  # Teredo carries IPv6 only
        for _ in range(depth):
            frame = fn(frame)
        out.append((ts, frame))
    write_pcap(str(dst), out, linktype=out_link, snaplen=262144)
    return out_link
