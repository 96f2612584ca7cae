"""Capture files for tests: classic pcap and pcapng writers (micro- or
nanosecond, either byte order) and the link-type names they take.
:mod:`mosfw.testing.packets` re-exports everything here."""

from __future__ import annotations

import decimal
import fractions
import os
import struct
from collections.abc import Iterable
from typing import BinaryIO

__all__ = [
    "LINKTYPES",
    "Record",
    "Timestamp",
    "linktype_number",
    "pcap_bytes",
    "pcapng_bytes",
    "write_pcap",
    "write_pcapng",
]

#: link-layer framings by name -> pcap LINKTYPE_ number
LINKTYPES = {
    "null": 0,  # BSD loopback, 4-byte address family in the writer's host order
    "ether": 1,  # Ethernet II (with optional 802.1Q / QinQ tags)
    "raw": 101,  # LINKTYPE_RAW: bare IPv4/IPv6
    "loop": 108,  # OpenBSD loopback, 4-byte address family in network order
    "sll": 113,  # Linux cooked capture v1
    "sll2": 276,  # Linux cooked capture v2
}

Timestamp = float | int | fractions.Fraction | decimal.Decimal


def linktype_number(linktype: str | int) -> int:
    """``"ether"`` -> 1 etc.; an int is returned unchanged."""
    if isinstance(linktype, int):
        return linktype
    try:
        return LINKTYPES[linktype]
    except KeyError:
        raise ValueError(f"unknown linktype {linktype!r}; known: {sorted(LINKTYPES)}") from None


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
