"""Synthetic packet encoding and capture-file writers (standard library only).

Everything here returns plain :class:`bytes`. The layers compose by hand::

    from mosfw.testing import packets as P

    seg = P.tcp("10.0.0.1", "10.0.0.2", 40000, 80, seq=1000, ack=0,
                flags="S", options=P.tcp_options(P.opt_mss(1460)))
    ip = P.ip("10.0.0.1", "10.0.0.2", P.IPPROTO_TCP, seg, ident=7)
    frame = P.link(ip, "ether", vlan=[100, 200])
    P.write_pcap("x.pcap", [(1000.0, frame)], linktype="ether")

or in one call with :func:`tcp_packet`.

Addresses are strings (or :mod:`ipaddress` objects); the IP version is taken
from the addresses. Checksums are always computed correctly; tests that want
a bad checksum patch the bytes afterwards (see :func:`corrupt_l4_checksum`).

Timestamps given to the writers are seconds: ``float``, ``int``,
:class:`fractions.Fraction` or :class:`decimal.Decimal` (the last two are
exact to the nanosecond; a float is rounded to the nearest nanosecond).
"""

from __future__ import annotations

import decimal
import fractions
import ipaddress
import os
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal

__all__ = [
    # constants
    "FIN",
    "SYN",
    "RST",
    "PSH",
    "ACK",
    "URG",
    "ECE",
    "CWR",
    "IPPROTO_HOPOPTS",
    "IPPROTO_ICMP",
    "IPPROTO_TCP",
    "IPPROTO_UDP",
    "IPPROTO_ROUTING",
    "IPPROTO_FRAGMENT",
    "IPPROTO_ICMPV6",
    "IPPROTO_NONE",
    "IPPROTO_DSTOPTS",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "ETH_P_8021Q",
    "ETH_P_8021AD",
    "LINKTYPES",
    "linktype_number",
    # helpers
    "checksum",
    "parse_flags",
    "flags_str",
    "mac",
    "ip_version",
    # TCP options
    "opt_nop",
    "opt_eol",
    "opt_mss",
    "opt_wscale",
    "opt_sack_perm",
    "opt_sack",
    "opt_timestamp",
    "tcp_options",
    # L4
    "tcp",
    "udp",
    "icmp",
    "icmpv6",
    "corrupt_l4_checksum",
    # L3
    "ExtHeader",
    "hop_by_hop",
    "dest_options",
    "routing",
    "fragment",
    "ext_final_dst",
    "ipv4",
    "ipv6",
    "ip",
    # L2
    "ethernet",
    "vlan_tags",
    "sll",
    "sll2",
    "null",
    "loop",
    "link",
    # one-shot
    "tcp_packet",
    "udp_packet",
    "icmp_packet",
    # writers
    "write_pcap",
    "write_pcapng",
    "pcap_bytes",
    "pcapng_bytes",
]

# --------------------------------------------------------------------------
# constants

FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
_FLAG_LETTERS = (
    ("F", FIN),
    ("S", SYN),
    ("R", RST),
    ("P", PSH),
    ("A", ACK),
    ("U", URG),
    ("E", ECE),
    ("C", CWR),
)

IPPROTO_HOPOPTS = 0
IPPROTO_ICMP = 1
IPPROTO_TCP = 6
IPPROTO_UDP = 17
IPPROTO_ROUTING = 43
IPPROTO_FRAGMENT = 44
IPPROTO_ICMPV6 = 58
IPPROTO_NONE = 59
IPPROTO_DSTOPTS = 60

ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8

#: link-layer framings by name -> pcap LINKTYPE_ number
LINKTYPES = {
    "null": 0,  # BSD loopback, 4-byte address family in the writer's host order
    "ether": 1,  # Ethernet II (with optional 802.1Q / QinQ tags)
    "raw": 101,  # LINKTYPE_RAW: bare IPv4/IPv6
    "loop": 108,  # OpenBSD loopback, 4-byte address family in network order
    "sll": 113,  # Linux cooked capture v1
    "sll2": 276,  # Linux cooked capture v2
}

AddrLike = str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address
Timestamp = float | int | fractions.Fraction | decimal.Decimal


def linktype_number(linktype: str | int) -> int:
    """``"ether"`` -> 1 etc.; an int is returned unchanged."""
    if isinstance(linktype, int):
        return linktype
    try:
        return LINKTYPES[linktype]
    except KeyError:
        raise ValueError(f"unknown linktype {linktype!r}; known: {sorted(LINKTYPES)}") from None


# --------------------------------------------------------------------------
# small helpers


def checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum (ones' complement of the ones' complement sum)."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse_flags(flags: int | str) -> int:
    """TCP flags from an int or a string of letters ``"FSRPAUEC"`` (e.g. ``"SA"``, ``"PA"``)."""
    if isinstance(flags, int):
        if not 0 <= flags <= 0xFF:
            raise ValueError(f"TCP flags out of range: {flags:#x}")
        return flags
    letters = dict(_FLAG_LETTERS)
    value = 0
    for ch in flags.upper():
        if ch in " |,.":
            continue
        if ch not in letters:
            raise ValueError(f"unknown TCP flag letter {ch!r} in {flags!r}")
        value |= letters[ch]
    return value


def flags_str(flags: int) -> str:
    """``0x12`` -> ``"SA"`` (tcpdump-like letters in FSRPAUEC order)."""
    return "".join(ch for ch, bit in _FLAG_LETTERS if flags & bit)


def mac(value: str | bytes | int) -> bytes:
    """A 6-byte MAC from ``"02:00:00:00:00:01"``, 6 bytes, or an int."""
    if isinstance(value, bytes):
        if len(value) != 6:
            raise ValueError("a MAC address is 6 bytes")
        return value
    if isinstance(value, int):
        return value.to_bytes(6, "big")
    parts = value.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC address {value!r}")
    return bytes(int(p, 16) for p in parts)


def _addr(a: AddrLike):
    if isinstance(a, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return a
    if isinstance(a, bytes):
        return ipaddress.ip_address(a)
    return ipaddress.ip_address(a)


def ip_version(addr: AddrLike) -> int:
    """4 or 6."""
    return _addr(addr).version


def _pair(src: AddrLike, dst: AddrLike):
    s, d = _addr(src), _addr(dst)
    if s.version != d.version:
        raise ValueError(f"mixed IP versions: {s} -> {d}")
    return s, d


# --------------------------------------------------------------------------
# TCP options


def opt_nop() -> bytes:
    return b"\x01"


def opt_eol() -> bytes:
    return b"\x00"


def opt_mss(mss: int) -> bytes:
    return struct.pack("!BBH", 2, 4, mss)


def opt_wscale(shift: int) -> bytes:
    return struct.pack("!BBB", 3, 3, shift)


def opt_sack_perm() -> bytes:
    return b"\x04\x02"


def opt_sack(blocks: Sequence[tuple[int, int]]) -> bytes:
    """SACK blocks as (left, right) sequence numbers (masked to 32 bits)."""
    body = b"".join(struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF) for left, right in blocks)
    return struct.pack("!BB", 5, 2 + len(body)) + body


def opt_timestamp(tsval: int, tsecr: int = 0) -> bytes:
    return struct.pack("!BBII", 8, 10, tsval & 0xFFFFFFFF, tsecr & 0xFFFFFFFF)


def tcp_options(*opts: bytes) -> bytes:
    """Concatenate options and pad with NOPs to a multiple of 4 bytes."""
    raw = b"".join(opts)
    if len(raw) % 4:
        raw += b"\x01" * (4 - len(raw) % 4)
    return raw


# --------------------------------------------------------------------------
# L4


def _pseudo_header(src, dst, proto: int, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def tcp(
    src: AddrLike,
    dst: AddrLike,
    sport: int,
    dport: int,
    seq: int,
    ack: int = 0,
    flags: int | str = ACK,
    *,
    window: int = 65535,
    payload: bytes = b"",
    options: bytes = b"",
    urgent: int = 0,
    checksum_dst: AddrLike | None = None,
) -> bytes:
    """A TCP segment (header + payload) with a correct checksum.

    ``seq`` and ``ack`` are masked to 32 bits; ``options`` are padded to a
    multiple of 4 bytes with NOPs (at most 40 bytes). ``src``/``dst`` are only
    used for the pseudo-header; ``checksum_dst`` overrides the destination
    used there (IPv6 with a routing header that still has segments left).
    """
    s, d = _pair(src, dst if checksum_dst is None else checksum_dst)
    options = tcp_options(options) if options else b""
    if len(options) > 40:
        raise ValueError(f"TCP options too long: {len(options)} > 40 bytes")
    if not 0 <= window <= 0xFFFF:
        raise ValueError(f"TCP window out of range: {window}")
    payload = bytes(payload)
    offset = (20 + len(options)) // 4
    hdr = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        offset << 4,
        parse_flags(flags),
        window,
        0,
        urgent,
    )
    seg = hdr + options + payload
    csum = checksum(_pseudo_header(s, d, IPPROTO_TCP, len(seg)) + seg)
    return seg[:16] + struct.pack("!H", csum) + seg[18:]


def udp(src: AddrLike, dst: AddrLike, sport: int, dport: int, payload: bytes = b"") -> bytes:
    """A UDP datagram with a correct checksum (0 is sent as 0xffff)."""
    s, d = _pair(src, dst)
    payload = bytes(payload)
    length = 8 + len(payload)
    dgram = struct.pack("!HHHH", sport, dport, length, 0) + payload
    csum = checksum(_pseudo_header(s, d, IPPROTO_UDP, length) + dgram) or 0xFFFF
    return dgram[:6] + struct.pack("!H", csum) + dgram[8:]


def icmp(type_: int = 8, code: int = 0, payload: bytes = b"", rest: bytes = b"\x00\x01\x00\x01") -> bytes:
    """An ICMPv4 message (default: echo request id 1 seq 1)."""
    msg = struct.pack("!BBH", type_, code, 0) + rest + bytes(payload)
    return msg[:2] + struct.pack("!H", checksum(msg)) + msg[4:]


def icmpv6(
    src: AddrLike,
    dst: AddrLike,
    type_: int = 128,
    code: int = 0,
    payload: bytes = b"",
    rest: bytes = b"\x00\x01\x00\x01",
) -> bytes:
    """An ICMPv6 message (default: echo request), checksum over the pseudo-header."""
    s, d = _pair(src, dst)
    msg = struct.pack("!BBH", type_, code, 0) + rest + bytes(payload)
    csum = checksum(_pseudo_header(s, d, IPPROTO_ICMPV6, len(msg)) + msg)
    return msg[:2] + struct.pack("!H", csum) + msg[4:]


def corrupt_l4_checksum(ip_packet: bytes, xor: int = 0x5555) -> bytes:
    """Return ``ip_packet`` (bare IPv4/IPv6 + TCP/UDP) with the L4 checksum XORed.

    Only IPv6 without extension headers and IPv4 are supported; meant for
    tests that need one bad checksum.
    """
    version = ip_packet[0] >> 4
    if version == 4:
        off, proto = (ip_packet[0] & 0xF) * 4, ip_packet[9]
    elif version == 6:
        off, proto = 40, ip_packet[6]
    else:
        raise ValueError("not an IP packet")
    pos = off + {IPPROTO_TCP: 16, IPPROTO_UDP: 6}[proto]
    (old,) = struct.unpack_from("!H", ip_packet, pos)
    return ip_packet[:pos] + struct.pack("!H", old ^ xor) + ip_packet[pos + 2 :]


# --------------------------------------------------------------------------
# L3: IPv6 extension headers


@dataclass(frozen=True)
class ExtHeader:
    """One IPv6 extension header: its protocol number and its body.

    ``body`` is everything after the Next Header and Hdr Ext Len bytes; it is
    padded to make the header a multiple of 8 bytes when encoded.
    ``final_dst`` is set by :func:`routing` when segments are left, so the
    upper-layer checksum uses the final destination.
    """

    proto: int
    body: bytes
    final_dst: str | None = None

    def encode(self, next_header: int) -> bytes:
        total = 2 + len(self.body)
        pad = -total % 8
        body = self.body
        if pad:
            if self.proto in (IPPROTO_HOPOPTS, IPPROTO_DSTOPTS):
                body += b"\x00" if pad == 1 else bytes([1, pad - 2]) + b"\x00" * (pad - 2)
            else:
                body += b"\x00" * pad
        total += pad
        if self.proto == IPPROTO_FRAGMENT:
            if total != 8:
                raise ValueError("fragment header body must be 6 bytes")
            return bytes([next_header, 0]) + body
        return bytes([next_header, total // 8 - 1]) + body


def hop_by_hop(options: bytes = b"") -> ExtHeader:
    """Hop-by-Hop Options header; ``options`` are TLV options (padded with PadN)."""
    return ExtHeader(IPPROTO_HOPOPTS, bytes(options))


def dest_options(options: bytes = b"") -> ExtHeader:
    """Destination Options header; ``options`` are TLV options (padded with PadN)."""
    return ExtHeader(IPPROTO_DSTOPTS, bytes(options))


def routing(
    addresses: Sequence[AddrLike] = ("2001:db8::ff",), segments_left: int = 0, routing_type: int = 4
) -> ExtHeader:
    """Routing header: type 4 (Segment Routing, default) or type 0 layout.

    With ``segments_left == 0`` (the default) the packet is at its final
    destination and nothing changes for the checksum. With segments left, the
    final destination (segment list entry 0 for type 4, last address for
    type 0) is used in the upper-layer pseudo-header.
    """
    addrs = [_addr(a) for a in addresses]
    if any(a.version != 6 for a in addrs):
        raise ValueError("routing header addresses must be IPv6")
    if routing_type == 4:
        fixed = struct.pack("!BBBBH", routing_type, segments_left, max(len(addrs) - 1, 0), 0, 0)
        final = addrs[0] if addrs else None
    else:
        fixed = struct.pack("!BBI", routing_type, segments_left, 0)
        final = addrs[-1] if addrs else None
    body = fixed + b"".join(a.packed for a in addrs)
    return ExtHeader(IPPROTO_ROUTING, body, str(final) if (segments_left and final is not None) else None)


def fragment(offset: int = 0, more: bool = False, ident: int = 0x1234) -> ExtHeader:
    """Fragment header. The default (offset 0, M=0) is an "atomic fragment"."""
    if offset % 8:
        raise ValueError("fragment offset is in bytes and must be a multiple of 8")
    return ExtHeader(IPPROTO_FRAGMENT, struct.pack("!HI", offset | int(more), ident))


_EXT_BY_NAME: dict[str, Callable[[], ExtHeader]] = {
    "hbh": hop_by_hop,
    "hopopts": hop_by_hop,
    "hop-by-hop": hop_by_hop,
    "dstopts": dest_options,
    "dest": dest_options,
    "destination": dest_options,
    "routing": routing,
    "rh": routing,
    "fragment": fragment,
    "frag": fragment,
}


def _ext(e: str | ExtHeader) -> ExtHeader:
    if isinstance(e, ExtHeader):
        return e
    try:
        return _EXT_BY_NAME[e.lower()]()
    except KeyError:
        raise ValueError(f"unknown IPv6 extension header {e!r}; known: {sorted(_EXT_BY_NAME)}") from None


def ext_final_dst(ext_headers: Iterable[str | ExtHeader]) -> str | None:
    """The destination to use in the upper-layer pseudo-header, if a routing header changes it."""
    final = None
    for e in ext_headers:
        e = _ext(e)
        if e.final_dst:
            final = e.final_dst
    return final


# --------------------------------------------------------------------------
# L3


def ipv4(
    src: AddrLike,
    dst: AddrLike,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0,
    ttl: int = 64,
    df: bool = True,
    tos: int = 0,
    options: bytes = b"",
    frag_offset: int = 0,
    more_fragments: bool = False,
) -> bytes:
    """An IPv4 packet with a correct header checksum."""
    s, d = _addr(src), _addr(dst)
    if s.version != 4 or d.version != 4:
        raise ValueError("ipv4() needs IPv4 addresses")
    if len(options) % 4:
        options += b"\x00" * (4 - len(options) % 4)
    ihl = 5 + len(options) // 4
    if ihl > 15:
        raise ValueError("IPv4 options too long")
    total = ihl * 4 + len(payload)
    if total > 0xFFFF:
        raise ValueError(f"IPv4 packet too long: {total}")
    if frag_offset % 8:
        raise ValueError("fragment offset is in bytes and must be a multiple of 8")
    frag = (0x4000 if df else 0) | (0x2000 if more_fragments else 0) | (frag_offset // 8)
    hdr = (
        struct.pack(
            "!BBHHHBBH4s4s", 0x40 | ihl, tos, total, ident & 0xFFFF, frag, ttl, proto, 0, s.packed, d.packed
        )
        + options
    )
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + bytes(payload)


def ipv6(
    src: AddrLike,
    dst: AddrLike,
    next_header: int,
    payload: bytes,
    *,
    hop_limit: int = 64,
    traffic_class: int = 0,
    flow_label: int = 0,
    ext_headers: Sequence[str | ExtHeader] = (),
) -> bytes:
    """An IPv6 packet; ``ext_headers`` (in order) are chained before ``payload``.

    Each entry is an :class:`ExtHeader` or a name: ``"hbh"``, ``"dstopts"``,
    ``"routing"``, ``"fragment"``. Hop-by-Hop must come first (not enforced:
    tests may want the wrong order).
    """
    s, d = _addr(src), _addr(dst)
    if s.version != 6 or d.version != 6:
        raise ValueError("ipv6() needs IPv6 addresses")
    exts = [_ext(e) for e in ext_headers]
    chain = b""
    nxt = next_header
    for e in reversed(exts):
        chain = e.encode(nxt) + chain
        nxt = e.proto
    body = chain + bytes(payload)
    if len(body) > 0xFFFF:
        raise ValueError("IPv6 payload too long (jumbograms not supported)")
    vtf = (6 << 28) | ((traffic_class & 0xFF) << 20) | (flow_label & 0xFFFFF)
    return struct.pack("!IHBB16s16s", vtf, len(body), nxt, hop_limit, s.packed, d.packed) + body


def ip(
    src: AddrLike,
    dst: AddrLike,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0,
    ttl: int = 64,
    df: bool = True,
    tos: int = 0,
    ext_headers: Sequence[str | ExtHeader] = (),
    flow_label: int = 0,
) -> bytes:
    """IPv4 or IPv6 by address family. ``ttl``/``tos`` map to hop limit/traffic class
    for IPv6; ``ident``/``df`` are ignored there, ``ext_headers`` for IPv4."""
    s, d = _pair(src, dst)
    if s.version == 4:
        if ext_headers:
            raise ValueError("extension headers are IPv6 only")
        return ipv4(s, d, proto, payload, ident=ident, ttl=ttl, df=df, tos=tos)
    return ipv6(
        s, d, proto, payload, hop_limit=ttl, traffic_class=tos, flow_label=flow_label, ext_headers=ext_headers
    )


# --------------------------------------------------------------------------
# L2

DEFAULT_SRC_MAC = "02:00:00:00:00:01"
DEFAULT_DST_MAC = "02:00:00:00:00:02"


def _ethertype_of(ip_packet: bytes) -> int:
    if not ip_packet:
        raise ValueError("empty packet")
    v = ip_packet[0] >> 4
    if v == 4:
        return ETH_P_IP
    if v == 6:
        return ETH_P_IPV6
    raise ValueError(f"not an IP packet (version nibble {v})")


def vlan_tags(vlan: int | Sequence[int] | None) -> bytes:
    """The 802.1Q tag bytes (TPID + TCI each) for ``vlan``, outermost first, not
    including the final EtherType. One tag: TPID 0x8100. Several tags (QinQ):
    the outermost uses 0x88a8 (802.1ad), the inner ones 0x8100. A tag is a VLAN
    id or a ``(vid, pcp)`` pair."""
    if vlan is None:
        return b""
    tags = [vlan] if isinstance(vlan, int) else list(vlan)
    out = b""
    for i, tag in enumerate(tags):
        vid, pcp = (tag, 0) if isinstance(tag, int) else tag
        if not 0 <= vid <= 0xFFF:
            raise ValueError(f"VLAN id out of range: {vid}")
        tpid = ETH_P_8021AD if (len(tags) > 1 and i == 0) else ETH_P_8021Q
        out += struct.pack("!HH", tpid, ((pcp & 7) << 13) | vid)
    return out


def ethernet(
    payload: bytes,
    *,
    src: str | bytes | int = DEFAULT_SRC_MAC,
    dst: str | bytes | int = DEFAULT_DST_MAC,
    vlan: int | Sequence[int] | None = None,
    ethertype: int | None = None,
) -> bytes:
    """Ethernet II frame (no FCS). ``ethertype`` defaults from the IP version."""
    et = _ethertype_of(payload) if ethertype is None else ethertype
    return mac(dst) + mac(src) + vlan_tags(vlan) + struct.pack("!H", et) + bytes(payload)


#: SLL packet types
SLL_HOST, SLL_BROADCAST, SLL_MULTICAST, SLL_OTHERHOST, SLL_OUTGOING = 0, 1, 2, 3, 4


def sll(
    payload: bytes,
    *,
    pkttype: int = SLL_HOST,
    src: str | bytes | int = DEFAULT_SRC_MAC,
    protocol: int | None = None,
    hatype: int = 1,
) -> bytes:
    """Linux cooked capture v1 header (16 bytes) + payload."""
    proto = _ethertype_of(payload) if protocol is None else protocol
    addr = mac(src)
    return struct.pack("!HHH8sH", pkttype, hatype, len(addr), addr, proto) + bytes(payload)


def sll2(
    payload: bytes,
    *,
    pkttype: int = SLL_HOST,
    src: str | bytes | int = DEFAULT_SRC_MAC,
    protocol: int | None = None,
    ifindex: int = 1,
    hatype: int = 1,
) -> bytes:
    """Linux cooked capture v2 header (20 bytes) + payload."""
    proto = _ethertype_of(payload) if protocol is None else protocol
    addr = mac(src)
    return struct.pack("!HHIHBB8s", proto, 0, ifindex, hatype, pkttype, len(addr), addr) + bytes(payload)


def _family(payload: bytes, af_inet6: int) -> int:
    return 2 if _ethertype_of(payload) == ETH_P_IP else af_inet6


def null(payload: bytes, *, af_inet6: int = 30, byteorder: Literal["little", "big"] = "little") -> bytes:
    """BSD loopback (DLT_NULL): 4-byte address family in the capturing host's
    byte order (``byteorder``, default little-endian). IPv4 is 2; IPv6 is
    ``af_inet6`` (24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS; default 30)."""
    return _family(payload, af_inet6).to_bytes(4, byteorder) + bytes(payload)


def loop(payload: bytes, *, af_inet6: int = 30) -> bytes:
    """OpenBSD loopback (DLT_LOOP): 4-byte address family in network byte order."""
    return _family(payload, af_inet6).to_bytes(4, "big") + bytes(payload)


def link(
    ip_packet: bytes,
    linktype: str | int = "ether",
    *,
    vlan: int | Sequence[int] | None = None,
    src_mac: str | bytes | int = DEFAULT_SRC_MAC,
    dst_mac: str | bytes | int = DEFAULT_DST_MAC,
    outgoing: bool = False,
    af_inet6: int = 30,
) -> bytes:
    """Frame a bare IP packet for ``linktype`` (a name from :data:`LINKTYPES`
    or its number). ``vlan`` is Ethernet only. For SLL/SLL2 the sender's MAC
    is ``src_mac`` and ``outgoing`` picks packet type 4 (sent by this host)
    instead of 0 (to us)."""
    lt = linktype_number(linktype)
    if vlan is not None and lt != 1:
        raise ValueError("VLAN tags need the 'ether' link type")
    if lt == 1:
        return ethernet(ip_packet, src=src_mac, dst=dst_mac, vlan=vlan)
    if lt == 101:
        _ethertype_of(ip_packet)
        return bytes(ip_packet)
    if lt == 113:
        return sll(ip_packet, src=src_mac, pkttype=SLL_OUTGOING if outgoing else SLL_HOST)
    if lt == 276:
        return sll2(ip_packet, src=src_mac, pkttype=SLL_OUTGOING if outgoing else SLL_HOST)
    if lt == 0:
        return null(ip_packet, af_inet6=af_inet6)
    if lt == 108:
        return loop(ip_packet, af_inet6=af_inet6)
    raise ValueError(f"cannot frame for linktype {linktype!r}")


# --------------------------------------------------------------------------
# one-shot builders


def tcp_packet(
    src: AddrLike,
    sport: int,
    dst: AddrLike,
    dport: int,
    seq: int = 0,
    ack: int = 0,
    flags: int | str = ACK,
    payload: bytes = b"",
    *,
    window: int = 65535,
    options: bytes = b"",
    ident: int = 0,
    ttl: int = 64,
    df: bool = True,
    ext_headers: Sequence[str | ExtHeader] = (),
    linktype: str | int | None = "ether",
    **link_kw,
) -> bytes:
    """A complete TCP frame. ``linktype=None`` returns the bare IP packet;
    ``link_kw`` go to :func:`link` (``vlan``, ``src_mac``, ...)."""
    seg = tcp(
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags,
        window=window,
        payload=payload,
        options=options,
        checksum_dst=ext_final_dst(ext_headers),
    )
    pkt = ip(src, dst, IPPROTO_TCP, seg, ident=ident, ttl=ttl, df=df, ext_headers=ext_headers)
    return pkt if linktype is None else link(pkt, linktype, **link_kw)


def udp_packet(
    src: AddrLike,
    sport: int,
    dst: AddrLike,
    dport: int,
    payload: bytes = b"",
    *,
    ident: int = 0,
    ttl: int = 64,
    ext_headers: Sequence[str | ExtHeader] = (),
    linktype: str | int | None = "ether",
    **link_kw,
) -> bytes:
    """A complete UDP frame (see :func:`tcp_packet`)."""
    dgram = udp(src, ext_final_dst(ext_headers) or dst, sport, dport, payload)
    pkt = ip(src, dst, IPPROTO_UDP, dgram, ident=ident, ttl=ttl, ext_headers=ext_headers)
    return pkt if linktype is None else link(pkt, linktype, **link_kw)


def icmp_packet(
    src: AddrLike,
    dst: AddrLike,
    type_: int | None = None,
    code: int = 0,
    payload: bytes = b"",
    *,
    ident: int = 0,
    ttl: int = 64,
    linktype: str | int | None = "ether",
    **link_kw,
) -> bytes:
    """A complete ICMP (IPv4) or ICMPv6 frame; default type is echo request."""
    s, d = _pair(src, dst)
    if s.version == 4:
        msg = icmp(8 if type_ is None else type_, code, payload)
        pkt = ipv4(s, d, IPPROTO_ICMP, msg, ident=ident, ttl=ttl)
    else:
        msg = icmpv6(s, d, 128 if type_ is None else type_, code, payload)
        pkt = ipv6(s, d, IPPROTO_ICMPV6, msg, hop_limit=ttl)
    return pkt if linktype is None else link(pkt, linktype, **link_kw)


# --------------------------------------------------------------------------
# capture writers

Record = tuple[Timestamp, bytes]


def _to_ns(ts: Timestamp) -> int:
    """Seconds -> integer nanoseconds (exact for int/Fraction/Decimal)."""
    if isinstance(ts, float):
        return round(ts * 1_000_000_000)
    if isinstance(ts, int):
        return ts * 1_000_000_000
    if isinstance(ts, (fractions.Fraction, decimal.Decimal)):
        return round(fractions.Fraction(ts) * 1_000_000_000)
    raise TypeError(f"timestamp must be seconds (float/int/Fraction/Decimal), got {type(ts).__name__}")


def _endian(endian: str) -> str:
    if endian not in ("<", ">", "="):
        raise ValueError("endian must be '<', '>' or '='")
    return endian


class _Sink:
    """Open a path for writing, or use an already-open binary file."""

    def __init__(self, target):
        self.target = target
        self.own = isinstance(target, (str, bytes, os.PathLike))

    def __enter__(self) -> BinaryIO:
        self.f = open(self.target, "wb") if self.own else self.target
        return self.f

    def __exit__(self, *exc):
        if self.own:
            self.f.close()


def write_pcap(
    target,
    packets: Iterable[Record],
    *,
    linktype: str | int = "ether",
    snaplen: int = 65535,
    nanosecond: bool = False,
    endian: str = "<",
) -> int:
    """Write a classic pcap file; returns the number of records written.

    ``target`` is a path or a binary file object. Magic 0xa1b2c3d4
    (microseconds, timestamps truncated) or 0xa1b23c4d (``nanosecond=True``).
    Frames longer than ``snaplen`` are stored truncated (caplen < wirelen).
    ``endian`` ``"<"``/``">"``/``"="`` picks the byte order of the headers
    (``">"`` makes a byte-swapped file on x86).
    """
    e = _endian(endian)
    if snaplen <= 0:
        raise ValueError("snaplen must be positive")
    magic = 0xA1B23C4D if nanosecond else 0xA1B2C3D4
    unit = 1 if nanosecond else 1000
    n = 0
    with _Sink(target) as f:
        f.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype_number(linktype)))
        for ts, frame in packets:
            sec, frac = divmod(_to_ns(ts), 1_000_000_000)
            caplen = min(len(frame), snaplen)
            f.write(struct.pack(e + "IIII", sec, frac // unit, caplen, len(frame)))
            f.write(frame[:caplen])
            n += 1
    return n


def _pcapng_option(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def _pcapng_block(e: str, btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack(e + "II", btype, total) + body + struct.pack(e + "I", total)


def write_pcapng(
    target,
    packets: Iterable[Record],
    *,
    linktype: str | int = "ether",
    snaplen: int = 65535,
    nanosecond: bool = False,
    endian: str = "<",
    if_name: str | None = "mosfw0",
    comment: str | None = None,
) -> int:
    """Write a pcapng file: one SHB, one IDB, one EPB per packet.

    With ``nanosecond=True`` the IDB carries ``if_tsresol`` = 9; otherwise
    no ``if_tsresol`` (the default, microseconds). ``snaplen`` 0 means no
    limit, as in pcapng. Returns the number of packets written.
    """
    e = _endian(endian)
    if snaplen < 0:
        raise ValueError("snaplen must not be negative")
    end = struct.pack(e + "HH", 0, 0)
    shb_opts = _pcapng_option(e, 4, b"mosfw.testing")  # shb_userappl
    if comment:
        shb_opts = _pcapng_option(e, 1, comment.encode()) + shb_opts
    shb = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + shb_opts + end
    idb_opts = b""
    if if_name:
        idb_opts += _pcapng_option(e, 2, if_name.encode())
    if nanosecond:
        idb_opts += _pcapng_option(e, 9, b"\x09")
    idb = struct.pack(e + "HHI", linktype_number(linktype), 0, snaplen) + (
        idb_opts + end if idb_opts else b""
    )
    unit = 1 if nanosecond else 1000
    n = 0
    with _Sink(target) as f:
        f.write(_pcapng_block(e, 0x0A0D0D0A, shb))
        f.write(_pcapng_block(e, 0x00000001, idb))
        for ts, frame in packets:
            t = _to_ns(ts) // unit
            caplen = len(frame) if snaplen == 0 else min(len(frame), snaplen)
            data = frame[:caplen]
            body = (
                struct.pack(e + "IIIII", 0, t >> 32, t & 0xFFFFFFFF, caplen, len(frame))
                + data
                + b"\x00" * (-caplen % 4)
            )
            f.write(_pcapng_block(e, 0x00000006, body))
            n += 1
    return n


def pcap_bytes(packets: Iterable[Record], **kw) -> bytes:
    """:func:`write_pcap` into memory."""
    import io

    buf = io.BytesIO()
    write_pcap(buf, packets, **kw)
    return buf.getvalue()


def pcapng_bytes(packets: Iterable[Record], **kw) -> bytes:
    """:func:`write_pcapng` into memory."""
    import io

    buf = io.BytesIO()
    write_pcapng(buf, packets, **kw)
    return buf.getvalue()
