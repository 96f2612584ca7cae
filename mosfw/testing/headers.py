"""Packet headers for tests: TCP/UDP/ICMP, TCP options, IPv4, IPv6 and its
extension headers, with correct checksums. :mod:`mosfw.testing.packets`
re-exports everything here."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

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

AddrLike = str | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address


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
