"""Link layers for tests: Ethernet with 802.1Q/QinQ tags, Linux SLL and
SLL2, BSD NULL and OpenBSD loopback framings. :mod:`mosfw.testing.packets`
re-exports everything here."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Literal

from mosfw.testing.pcap_files import (
    linktype_number,
)

from .headers import ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, mac

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
