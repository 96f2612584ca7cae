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

from collections.abc import Sequence

from .headers import (
    ACK,
    CWR,
    ECE,
    ETH_P_8021AD,
    ETH_P_8021Q,
    ETH_P_IP,
    ETH_P_IPV6,
    FIN,
    IPPROTO_DSTOPTS,
    IPPROTO_FRAGMENT,
    IPPROTO_HOPOPTS,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_NONE,
    IPPROTO_ROUTING,
    IPPROTO_TCP,
    IPPROTO_UDP,
    PSH,
    RST,
    SYN,
    URG,
    AddrLike,
    ExtHeader,
    _pair,
    checksum,
    corrupt_l4_checksum,
    dest_options,
    ext_final_dst,
    flags_str,
    fragment,
    hop_by_hop,
    icmp,
    icmpv6,
    ip,
    ip_version,
    ipv4,
    ipv6,
    mac,
    opt_eol,
    opt_mss,
    opt_nop,
    opt_sack,
    opt_sack_perm,
    opt_timestamp,
    opt_wscale,
    parse_flags,
    routing,
    tcp,
    tcp_options,
    udp,
)
from .link_layers import ethernet, link, loop, null, sll, sll2, vlan_tags
from .pcap_files import (
    LINKTYPES,
    linktype_number,
    pcap_bytes,
    pcapng_bytes,
    write_pcap,
    write_pcapng,
)

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
