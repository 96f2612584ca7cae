"""Script TCP conversations and write them as capture files.

Example::

    from mosfw.testing.flows import Capture

    cap = Capture(linktype="ether", start=1000.0, step=0.001)
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80),
                         client_isn=1000, server_isn=5000)
    c.handshake()                          # SYN, SYN/ACK, ACK
    c.send("client", b"GET / HTTP/1.0\\r\\n\\r\\n")
    lost = c.send("server", 1000, emit=False)   # the tap never saw it
    c.send("server", 500)                  # arrives after a hole
    c.rexmit(lost)                         # the hole is filled late
    c.fin("client"); c.fin("server"); c.ack("client")
    cap.write_pcap(tmp_path / "x.pcap")

Model
-----
Each side keeps ``snd_nxt`` (its next sequence number, modulo 2**32).
A segment a side sends carries ``seq = snd_nxt`` of that side and, when it
has ACK set, ``ack = snd_nxt`` of the peer (everything the peer has sent so
far, including segments the tap did not see) unless ``ack=`` overrides it.
``send``/``fin``/``syn``/``synack`` advance the sender's ``snd_nxt``; ``ack``,
``rst``, ``keepalive``, ``zero_window``, ``segment``, ``emit`` do not.

Every method that makes a segment returns a :class:`Segment`, a small frozen
record without timestamp or addresses; :meth:`Conversation.emit` writes it
(again) with the next timestamp, so retransmissions, duplicates and
reordering are just re-emits. ``emit=False`` builds (and accounts for) a
segment without writing it: a packet lost before the tap.

Timestamps: the first packet of a :class:`Capture` is at ``start``; each
packet is ``step`` seconds after the previous one; :meth:`Capture.advance`
adds extra time before the next packet. Time is kept in integer nanoseconds.

Payload given as an int ``n`` is ``n`` bytes of a position-dependent pattern
(lowercase letters for the client, uppercase for the server, indexed by the
stream offset), so reassembled streams can be checked byte for byte; the
bytes each side sent are in :meth:`Conversation.stream`.

Scenarios and the calls that script them
-----------------------------------------
=============================  ==============================================
client/server, v4/v6, VLAN     ``cap.conversation(client, server, vlan=100)``
                               (IPv6 addresses, ``vlan=[outer, inner]``)
handshake                      ``c.handshake()``
data either way                ``c.send("client", 100)``, ``c.send_many(...)``
FIN either side                ``c.fin("server")``, ``c.close(first=...)``
RST                            ``c.rst("client")``
half-open SYN                  ``c.half_open()`` (a SYN nobody answers)
SYN retransmission             ``c.syn_retransmit(times=2)`` (1 s, 2 s backoff)
loss before the tap (gap)      ``c.send("client", 100, emit=False)``
retransmission, duplicate      ``c.rexmit(seg)``, ``c.emit(seg)``
reordering                     ``c.deliver(segs, order=[2, 0, 1])``
keep-alive                     ``c.keepalive("client")``
zero window                    ``c.zero_window("server")``, ``c.window_update``
mid-stream start               ``c.midstream()`` (handshake before capture)
sequence wrap                  ``client_isn=2**32 - 50``
many interleaved flows         ``cap.conversations(n, handshake=True)``,
                               ``cap.interleave``, ``cap.hold``/``cap.deliver``
time steps                     ``Capture(step=...)``, ``cap.step = ...``,
                               ``cap.advance(seconds)``, ``emit(seg, ts=...)``
=============================  ==============================================

:meth:`Capture.hold` collects what would be written (from every
conversation) without writing it; :func:`perturb` drops, duplicates and
delays items of such a schedule deterministically, and
:meth:`Capture.deliver` writes the result: the pieces of a property test
over random loss, duplication and reordering.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import NamedTuple

from . import packets as P

__all__ = [
    "Segment",
    "Conversation",
    "Capture",
    "Pending",
    "CLIENT",
    "SERVER",
    "pattern",
    "perturb",
    "DEFAULT_CLIENT",
    "DEFAULT_SERVER",
]

CLIENT = "client"
SERVER = "server"
_MOD = 1 << 32

Endpoint = tuple[str, int]

#: endpoints used when a conversation is made without naming them
DEFAULT_CLIENT: Endpoint = ("10.0.0.1", 40000)
DEFAULT_SERVER: Endpoint = ("10.0.0.2", 80)
Payload = int | bytes | bytearray | memoryview | str
Vlan = int | Sequence[int] | None


def _side(side) -> str:
    """Accept "client"/"server" (any case, or "c"/"s") or an enum whose name is one of them."""
    name = getattr(side, "name", side)
    if isinstance(name, str):
        n = name.lower()
        if n in ("client", "c", "cli"):
            return CLIENT
        if n in ("server", "s", "srv", "svr"):
            return SERVER
    raise ValueError(f"side must be 'client' or 'server', not {side!r}")


def _peer(side: str) -> str:
    return SERVER if side == CLIENT else CLIENT


def pattern(side, offset: int, n: int) -> bytes:
    """``n`` pattern bytes at stream ``offset``: ``abc..z`` for the client, ``ABC..Z`` for the server."""
    base = ord("a") if _side(side) == CLIENT else ord("A")
    return bytes(base + (offset + i) % 26 for i in range(n))


@dataclass(frozen=True)
class Segment:
    """One TCP segment as sent by ``side``; no timestamp, no addresses.

    Use :func:`dataclasses.replace` (or :meth:`replace`) to derive variants,
    e.g. ``seg.replace(window=0)``.
    """

    side: str
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 65535
    options: bytes = b""

    @property
    def flag_str(self) -> str:
        """Flags as tcpdump-like letters, e.g. ``"SA"``, ``"PA"``, ``"FA"``."""
        return P.flags_str(self.flags)

    @property
    def seq_len(self) -> int:
        """Sequence space consumed: payload length + 1 for SYN + 1 for FIN."""
        return len(self.payload) + bool(self.flags & P.SYN) + bool(self.flags & P.FIN)

    @property
    def end_seq(self) -> int:
        """``seq + seq_len`` modulo 2**32."""
        return (self.seq + self.seq_len) % _MOD

    def replace(self, **changes) -> Segment:
        return dataclasses.replace(self, **changes)


class Pending(NamedTuple):
    """A segment :meth:`Capture.hold` kept back: write it with
    :meth:`Capture.deliver` (``ts`` is the explicit timestamp it was emitted
    with, or None for "the next one")."""

    conv: Conversation
    seg: Segment
    ts: float | None = None


def perturb(
    items: Sequence,
    *,
    drop: Iterable[int] = (),
    duplicate: Iterable[int] | Mapping[int, int] = (),
    delay: Mapping[int, int] | None = None,
) -> list:
    """A deterministic perturbation of a schedule (any sequence, e.g. the
    :class:`Pending` list of :meth:`Capture.hold`); returns a new list.

    :param drop: indexes of items lost before the tap (left out). A dropped
        item that is also duplicated still appears once: lost, then resent.
    :param duplicate: indexes of items that appear twice: the copy right
        after the item, or, with a mapping ``index -> k``, right after the
        item originally at ``index + k``.
    :param delay: ``index -> k``: the item moves ``k`` places later (after
        the item originally at ``index + k``), or earlier for ``k < 0``
        (before that item): reordering.

    ``perturb(s, drop=[1], duplicate={2: 3}, delay={0: 2})`` on
    ``[a, b, c, d, e, f]`` gives ``[c, a, d, e, f, c]``.
    """
    delay = dict(delay or {})
    dups: dict[int, int] = dict(duplicate) if isinstance(duplicate, Mapping) else dict.fromkeys(duplicate, 0)
    dropped = set(drop)
    n = len(items)
    for i in list(dropped) + list(dups) + list(delay):
        if not 0 <= i < n:
            raise IndexError(f"perturb: index {i} out of range for {n} items")
    keyed = []
    for i, item in enumerate(items):
        d = delay.get(i, 0)
        pos = i + d
        if i not in dropped:
            keyed.append(((pos, (d > 0) - (d < 0), i, 0), item))
        if i in dups:
            k = dups[i]
            if k < 0:
                raise ValueError("perturb: a duplicate comes after its original (k >= 0)")
            keyed.append(((pos + k, 2, i, 1), item))
    keyed.sort(key=lambda kv: kv[0])
    return [item for _, item in keyed]


class Conversation:
    """One TCP connection between ``client`` and ``server`` on a :class:`Capture`.

    Create it with :meth:`Capture.conversation`. Side arguments are
    ``"client"`` or ``"server"``.
    """

    def __init__(
        self,
        capture: Capture,
        client: Endpoint,
        server: Endpoint,
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        vlan: Vlan = None,
        window: int = 65535,
        mss: int | None = None,
        ttl: int = 64,
        ext_headers: Sequence[str | P.ExtHeader] = (),
        client_mac: str = "02:00:00:00:00:01",
        server_mac: str = "02:00:00:00:00:02",
        ip_id: tuple[int, int] = (0x1000, 0x8000),
    ):
        self.capture = capture
        caddr, saddr = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
        if caddr.version != saddr.version:
            raise ValueError("client and server must both be IPv4 or both IPv6")
        self.version = caddr.version
        self.addr = {CLIENT: str(caddr), SERVER: str(saddr)}
        self.port = {CLIENT: int(client[1]), SERVER: int(server[1])}
        self.mac = {CLIENT: client_mac, SERVER: server_mac}
        self.isn = {CLIENT: client_isn % _MOD, SERVER: server_isn % _MOD}
        #: next sequence number each side will send
        self.snd_nxt = {CLIENT: self.isn[CLIENT], SERVER: self.isn[SERVER]}
        #: window each side advertises unless a call overrides it
        self.window = {CLIENT: window, SERVER: window}
        self.vlan = vlan
        self.mss = mss
        self.ttl = ttl
        self.ext_headers = tuple(ext_headers)
        if self.ext_headers and self.version != 6:
            raise ValueError("ext_headers need IPv6 addresses")
        self._checksum_dst = P.ext_final_dst(self.ext_headers)
        self._ip_id = {CLIENT: ip_id[0], SERVER: ip_id[1]}
        self._stream = {CLIENT: bytearray(), SERVER: bytearray()}
        #: every Segment built, emitted or not, in order
        self.history: list[Segment] = []

    # -- state --------------------------------------------------------

    @property
    def client_nxt(self) -> int:
        return self.snd_nxt[CLIENT]

    @property
    def server_nxt(self) -> int:
        return self.snd_nxt[SERVER]

    def stream(self, side) -> bytes:
        """All payload bytes ``side`` has sent (emitted or not), in sequence order."""
        return bytes(self._stream[_side(side)])

    def endpoints(self, side) -> tuple[Endpoint, Endpoint]:
        """((src ip, src port), (dst ip, dst port)) for packets sent by ``side``."""
        s = _side(side)
        p = _peer(s)
        return (self.addr[s], self.port[s]), (self.addr[p], self.port[p])

    # -- building blocks ----------------------------------------------

    def _payload(self, side: str, data: Payload) -> bytes:
        if isinstance(data, int):
            if data < 0:
                raise ValueError("payload length must be >= 0")
            offset = (self.snd_nxt[side] - self.isn[side] - 1) % _MOD
            return pattern(side, offset, data)
        if isinstance(data, str):
            return data.encode()
        return bytes(data)

    def _syn_options(self, mss, wscale, sack_perm, timestamp, options) -> bytes:
        mss = self.mss if mss is None else mss
        opts = []
        if mss is not None:
            opts.append(P.opt_mss(mss))
        if sack_perm:
            opts.append(P.opt_sack_perm())
        if timestamp is not None:
            opts.append(P.opt_timestamp(*((timestamp, 0) if isinstance(timestamp, int) else timestamp)))
        if wscale is not None:
            opts.append(P.opt_nop() + P.opt_wscale(wscale))
        opts.append(bytes(options))
        return P.tcp_options(*opts)

    def _make(
        self,
        side: str,
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
        window: int | None = None,
        options: bytes = b"",
        emit: bool = True,
    ) -> Segment:
        seg = Segment(
            side=side,
            seq=seq % _MOD,
            ack=ack % _MOD,
            flags=flags,
            payload=payload,
            window=self.window[side] if window is None else window,
            options=options,
        )
        self.history.append(seg)
        if emit:
            self.emit(seg)
        return seg

    def _ack_for(self, side: str, ack: int | None) -> int:
        return self.snd_nxt[_peer(side)] if ack is None else ack

    def frame(self, seg: Segment, *, ip_id: int | None = None) -> bytes:
        """The link-layer frame for ``seg`` (does not emit; does not use up an IP id
        unless ``ip_id`` is None)."""
        side = _side(seg.side)
        peer = _peer(side)
        if ip_id is None:
            ip_id = self._ip_id[side]
            self._ip_id[side] = (ip_id + 1) & 0xFFFF
        l4 = P.tcp(
            self.addr[side],
            self.addr[peer],
            self.port[side],
            self.port[peer],
            seg.seq,
            seg.ack,
            seg.flags,
            window=seg.window,
            payload=seg.payload,
            options=seg.options,
            checksum_dst=self._checksum_dst,
        )
        pkt = P.ip(
            self.addr[side],
            self.addr[peer],
            P.IPPROTO_TCP,
            l4,
            ident=ip_id,
            ttl=self.ttl,
            ext_headers=self.ext_headers,
        )
        return P.link(
            pkt,
            self.capture.linktype,
            vlan=self.vlan,
            src_mac=self.mac[side],
            dst_mac=self.mac[peer],
            outgoing=(side == CLIENT),
        )

    # -- emitting -----------------------------------------------------

    def emit(self, seg: Segment, *, ts: float | None = None) -> Segment:
        """Write ``seg`` to the capture with the next timestamp (or at ``ts``).

        Emitting a segment again is a retransmission/duplicate; emitting one
        built with ``emit=False`` later is late (reordered) delivery. The IP id
        is fresh each time. Inside :meth:`Capture.hold` nothing is written:
        the segment is appended to the held list. Returns ``seg``.
        """
        held = self.capture._held
        if held is not None:
            held.append(Pending(self, seg, ts))
            return seg
        self.capture.add(self.frame(seg), ts=ts)
        return seg

    def deliver(self, segs: Sequence[Segment], order: Iterable[int] | None = None) -> list[Segment]:
        """Emit ``segs`` in ``order`` (indexes into ``segs``): a missing index
        is a segment lost before the tap, a repeated one a duplicate; by
        default in the given order. Returns what was emitted.

        ``segs = c.send_many("client", [100] * 3, emit=False)``
        ``c.deliver(segs, order=[2, 0, 1])`` is reordering.
        """
        picked = [segs[i] for i in (range(len(segs)) if order is None else order)]
        for seg in picked:
            self.emit(seg)
        return picked

    def rexmit(self, seg: Segment, *, ts: float | None = None) -> Segment:
        """Same as :meth:`emit`; reads better for retransmissions."""
        return self.emit(seg, ts=ts)

    # -- handshake ----------------------------------------------------

    def syn(
        self,
        *,
        mss: int | None = None,
        wscale: int | None = None,
        sack_perm: bool = False,
        timestamp=None,
        options: bytes = b"",
        window: int | None = None,
        emit: bool = True,
    ) -> Segment:
        """Client SYN at the client's ISN (calling it again repeats the same SYN)."""
        s = CLIENT
        seg = self._make(
            s,
            self.isn[s],
            0,
            P.SYN,
            window=window,
            emit=emit,
            options=self._syn_options(mss, wscale, sack_perm, timestamp, options),
        )
        self.snd_nxt[s] = (self.isn[s] + 1) % _MOD
        return seg

    def synack(
        self,
        *,
        mss: int | None = None,
        wscale: int | None = None,
        sack_perm: bool = False,
        timestamp=None,
        options: bytes = b"",
        ack: int | None = None,
        window: int | None = None,
        emit: bool = True,
    ) -> Segment:
        """Server SYN/ACK at the server's ISN, acking the client's SYN."""
        s = SERVER
        seg = self._make(
            s,
            self.isn[s],
            self._ack_for(s, ack),
            P.SYN | P.ACK,
            window=window,
            emit=emit,
            options=self._syn_options(mss, wscale, sack_perm, timestamp, options),
        )
        self.snd_nxt[s] = (self.isn[s] + 1) % _MOD
        return seg

    def handshake(self, **syn_kw) -> tuple[Segment, Segment, Segment]:
        """``syn(**syn_kw); synack(**syn_kw); ack("client")``."""
        emit = syn_kw.get("emit", True)
        return (self.syn(**syn_kw), self.synack(**syn_kw), self.ack(CLIENT, emit=emit))

    def midstream(self) -> None:
        """The handshake happened before the capture started: both sides
        move past their SYNs and nothing is written, so the next segment is
        the first one the tap sees (the engine picks the flow up
        mid-stream)."""
        self.handshake(emit=False)

    def half_open(
        self, retries: int = 0, *, rto: float = 1.0, backoff: float = 2.0, **syn_kw
    ) -> list[Segment]:
        """A SYN nobody answers (a scan, a dead or filtered server),
        retransmitted ``retries`` times (see :meth:`syn_retransmit`).
        Returns every SYN written."""
        first = self.syn(**syn_kw)
        return [first] + self.syn_retransmit(retries, rto=rto, backoff=backoff)

    def syn_retransmit(self, times: int = 1, *, rto: float = 1.0, backoff: float = 2.0) -> list[Segment]:
        """Write the client's last SYN again ``times`` times, as a stack
        whose SYN goes unanswered does: copy ``i`` (from 0) comes
        ``rto * backoff**i`` seconds after the packet before it (Linux:
        1 s, 2 s, 4 s, ...). Call :meth:`syn` first."""
        syns = [s for s in self.history if s.side == CLIENT and s.flags & (P.SYN | P.ACK) == P.SYN]
        if not syns:
            raise ValueError("syn_retransmit() needs a SYN: call syn() first")
        out = []
        for i in range(times):
            gap = rto * backoff**i
            self.capture.advance(max(0.0, gap - self.capture.step))
            out.append(self.emit(syns[-1]))
        return out

    # -- data and control ---------------------------------------------

    def ack(
        self,
        side,
        *,
        ack: int | None = None,
        window: int | None = None,
        options: bytes = b"",
        emit: bool = True,
    ) -> Segment:
        """Pure ACK from ``side`` with its current seq and ack (``ack=`` for a stale one)."""
        s = _side(side)
        return self._make(
            s, self.snd_nxt[s], self._ack_for(s, ack), P.ACK, window=window, options=options, emit=emit
        )

    def send(
        self,
        side,
        data: Payload,
        *,
        push: bool = True,
        ack: int | None = None,
        window: int | None = None,
        options: bytes = b"",
        emit: bool = True,
    ) -> Segment:
        """Data from ``side`` (ACK, and PSH unless ``push=False``); advances its seq.

        ``data`` is bytes/str, or an int length of pattern bytes.
        """
        s = _side(side)
        payload = self._payload(s, data)
        seg = self._make(
            s,
            self.snd_nxt[s],
            self._ack_for(s, ack),
            P.ACK | (P.PSH if push and payload else 0),
            payload,
            window=window,
            options=options,
            emit=emit,
        )
        self._stream[s] += payload
        self.snd_nxt[s] = (self.snd_nxt[s] + len(payload)) % _MOD
        return seg

    def send_many(self, side, sizes: Iterable[Payload], *, emit: bool = True, **send_kw) -> list[Segment]:
        """One :meth:`send` per item of ``sizes`` (ints or bytes), back to
        back; with ``emit=False`` none is written (deliver them later with
        :meth:`deliver`, in any order)."""
        return [self.send(side, d, emit=emit, **send_kw) for d in sizes]

    def fin(
        self,
        side,
        data: Payload = b"",
        *,
        ack: int | None = None,
        window: int | None = None,
        emit: bool = True,
    ) -> Segment:
        """FIN|ACK from ``side`` (with optional payload, then also PSH); consumes
        one sequence number after the payload."""
        s = _side(side)
        payload = self._payload(s, data)
        seg = self._make(
            s,
            self.snd_nxt[s],
            self._ack_for(s, ack),
            P.FIN | P.ACK | (P.PSH if payload else 0),
            payload,
            window=window,
            emit=emit,
        )
        self._stream[s] += payload
        self.snd_nxt[s] = (self.snd_nxt[s] + len(payload) + 1) % _MOD
        return seg

    def rst(
        self,
        side,
        *,
        with_ack: bool = True,
        ack: int | None = None,
        seq: int | None = None,
        window: int | None = 0,
        emit: bool = True,
    ) -> Segment:
        """RST|ACK (or bare RST with ``with_ack=False``, ack field 0) at ``side``'s
        current seq (``seq=`` to send an out-of-window one). Window 0 by default,
        as Linux sends."""
        s = _side(side)
        flags = P.RST | (P.ACK if with_ack else 0)
        return self._make(
            s,
            self.snd_nxt[s] if seq is None else seq,
            self._ack_for(s, ack) if with_ack else 0,
            flags,
            window=window,
            emit=emit,
        )

    def keepalive(
        self, side, one_byte: bool = False, *, ack: int | None = None, emit: bool = True
    ) -> Segment:
        """Keep-alive probe: ACK at ``snd_nxt - 1``, no payload (Linux), or one
        garbage byte (``b"\\x00"``, BSD/Windows style) with ``one_byte=True``.
        Does not advance the seq."""
        s = _side(side)
        return self._make(
            s, self.snd_nxt[s] - 1, self._ack_for(s, ack), P.ACK, b"\x00" if one_byte else b"", emit=emit
        )

    def zero_window(self, side, *, ack: int | None = None, emit: bool = True) -> Segment:
        """Pure ACK from ``side`` advertising window 0."""
        return self.ack(side, ack=ack, window=0, emit=emit)

    def window_update(
        self, side, window: int | None = None, *, ack: int | None = None, emit: bool = True
    ) -> Segment:
        """Pure ACK from ``side`` reopening its window (to ``window``, by
        default the conversation's window)."""
        s = _side(side)
        return self.ack(s, ack=ack, window=self.window[s] if window is None else window, emit=emit)

    def segment(
        self,
        side,
        flags: int | str,
        *,
        seq: int | None = None,
        ack: int | None = None,
        payload: Payload = b"",
        window: int | None = None,
        options: bytes = b"",
        emit: bool = True,
    ) -> Segment:
        """Any segment (escape hatch): ``flags`` as int or letters (``"SA"``,
        ``"FPA"``); seq defaults to ``side``'s snd_nxt, ack to the peer's.
        Changes no state: nothing advances, nothing is added to the stream."""
        s = _side(side)
        return self._make(
            s,
            self.snd_nxt[s] if seq is None else seq,
            self._ack_for(s, ack),
            P.parse_flags(flags),
            self._payload(s, payload),
            window=window,
            options=options,
            emit=emit,
        )

    # -- shortcuts ----------------------------------------------------

    def close(self, first="client") -> None:
        """Orderly close: FIN from ``first``, FIN from the other, last ACK."""
        a = _side(first)
        b = _peer(a)
        self.fin(a)
        self.fin(b)
        self.ack(a)

    def __repr__(self) -> str:
        c, s = self.endpoints(CLIENT)
        return (
            f"<Conversation {c[0]}:{c[1]} -> {s[0]}:{s[1]} "
            f"client_nxt={self.client_nxt} server_nxt={self.server_nxt}>"
        )


class Capture:
    """An ordered list of timestamped frames of one link type, and writers for it.

    ``linktype`` is a name from :data:`mosfw.testing.packets.LINKTYPES`
    (``"ether"``, ``"raw"``, ``"sll"``, ``"sll2"``, ``"null"``, ``"loop"``).
    Frames are stored in call order (that is the order in the file, even if
    an explicit ``ts`` makes time go backwards).
    """

    def __init__(
        self, linktype: str = "ether", start: float = 1000.0, step: float = 0.001, snaplen: int = 65535
    ):
        P.linktype_number(linktype)  # validate
        self.linktype = linktype
        self.snaplen = snaplen
        self.step_ns = P._to_ns(step)
        self._next_ns = P._to_ns(start)
        #: (timestamp in integer nanoseconds, frame bytes), in file order
        self.records: list[tuple[int, bytes]] = []
        self.conversations_made: list[Conversation] = []
        self._held: list[Pending] | None = None

    # -- time ---------------------------------------------------------

    @property
    def now(self) -> float:
        """The timestamp (seconds) the next packet will get."""
        return self._next_ns / 1e9

    @property
    def step(self) -> float:
        """Seconds between consecutive packets; assigning it changes the
        gap before the next packet and those after it (``cap.step = 0.5``;
        :meth:`advance` silences are kept)."""
        return self.step_ns / 1e9

    @step.setter
    def step(self, seconds: float) -> None:
        ns = P._to_ns(seconds)
        if ns < 0:
            raise ValueError("step must not be negative")
        if self.records:  # the gap after the last packet is the new step
            self._next_ns += ns - self.step_ns
        self.step_ns = ns

    def advance(self, seconds: float) -> None:
        """Add ``seconds`` of silence before the next packet (it applies at
        once, also inside :meth:`hold`)."""
        self._next_ns += P._to_ns(seconds)

    # -- schedules ----------------------------------------------------

    @contextlib.contextmanager
    def hold(self) -> Iterator[list[Pending]]:
        """Collect instead of write: inside ``with cap.hold() as held:``
        every segment any conversation of this capture emits is appended to
        ``held`` as a :class:`Pending` (sequence numbers still advance), and
        nothing reaches the capture. Write them afterwards, in any order,
        with :meth:`deliver` (e.g. after :func:`perturb`). Raw frames
        (:meth:`add`, :meth:`udp`, :meth:`icmp`) are written at once."""
        if self._held is not None:
            raise RuntimeError("Capture.hold() does not nest")
        held: list[Pending] = []
        self._held = held
        try:
            yield held
        finally:
            self._held = None

    def deliver(self, items: Iterable) -> int:
        """Write held segments: :class:`Pending` items or ``(conversation,
        segment)`` pairs, in the given order, each with the next timestamp
        (or its own ``ts``). Returns how many were written."""
        n = 0
        for item in items:
            conv, seg, ts = (tuple(item) + (None,))[:3]
            conv.emit(seg, ts=ts)
            n += 1
        return n

    # -- frames -------------------------------------------------------

    def add(self, frame: bytes, *, ts: float | None = None) -> None:
        """Append an already framed packet (for this capture's link type).
        With ``ts`` (seconds) it gets that timestamp and time continues from there."""
        if ts is not None:
            self._next_ns = P._to_ns(ts)
        self.records.append((self._next_ns, bytes(frame)))
        self._next_ns += self.step_ns

    def add_ip(self, ip_packet: bytes, *, ts: float | None = None, **link_kw) -> None:
        """Frame a bare IP packet for this link type and append it (``vlan=`` etc.)."""
        self.add(P.link(ip_packet, self.linktype, **link_kw), ts=ts)

    def udp(
        self,
        src: Endpoint,
        dst: Endpoint,
        payload: bytes = b"",
        *,
        vlan: Vlan = None,
        ts: float | None = None,
    ) -> None:
        """Append one UDP datagram ``src`` -> ``dst`` (each ``(ip, port)``)."""
        pkt = P.udp_packet(src[0], src[1], dst[0], dst[1], payload, linktype=None)
        self.add_ip(pkt, vlan=vlan, ts=ts)

    def icmp(
        self,
        src: str,
        dst: str,
        type_: int | None = None,
        code: int = 0,
        payload: bytes = b"",
        *,
        vlan: Vlan = None,
        ts: float | None = None,
    ) -> None:
        """Append one ICMP/ICMPv6 message (default echo request)."""
        pkt = P.icmp_packet(src, dst, type_, code, payload, linktype=None)
        self.add_ip(pkt, vlan=vlan, ts=ts)

    @property
    def packets(self) -> list[tuple[float, bytes]]:
        """``[(ts seconds as float, frame bytes), ...]`` in file order."""
        return [(ns / 1e9, frame) for ns, frame in self.records]

    def __len__(self) -> int:
        return len(self.records)

    # -- conversations ------------------------------------------------

    def conversation(
        self,
        client: Endpoint = DEFAULT_CLIENT,
        server: Endpoint = DEFAULT_SERVER,
        client_isn: int = 1000,
        server_isn: int = 5000,
        vlan: Vlan = None,
        **kw,
    ) -> Conversation:
        """A new :class:`Conversation` (default endpoints 10.0.0.1:40000 ->
        10.0.0.2:80); extra keywords: ``window``, ``mss``, ``ttl``,
        ``ext_headers`` (IPv6), ``client_mac``, ``server_mac``, ``ip_id``."""
        conv = Conversation(
            self, client, server, client_isn=client_isn, server_isn=server_isn, vlan=vlan, **kw
        )
        self.conversations_made.append(conv)
        return conv

    def conversations(
        self,
        n: int,
        *,
        client: Endpoint = ("10.0.0.1", 40000),
        server: Endpoint = ("10.0.0.2", 80),
        client_isn: int = 1000,
        server_isn: int = 5000,
        isn_step: int = 100_003,
        handshake: bool = False,
        **kw,
    ) -> list[Conversation]:
        """``n`` conversations to one server: flow ``i`` uses client port
        ``client[1] + i % 20000`` and client address ``client[0] + i // 20000``;
        ISNs are spaced by ``isn_step``. With ``handshake=True`` the handshakes
        are interleaved: all SYNs, then all SYN/ACKs, then all ACKs."""
        base_ip = ipaddress.ip_address(client[0])
        convs = [
            self.conversation(
                (str(base_ip + i // 20000), client[1] + i % 20000),
                server,
                client_isn=client_isn + i * isn_step,
                server_isn=server_isn + i * isn_step,
                **kw,
            )
            for i in range(n)
        ]
        if handshake:
            self.interleave(convs, Conversation.syn, Conversation.synack, lambda c: c.ack(CLIENT))
        return convs

    def interleave(self, convs: Iterable[Conversation], *actions: Callable[[Conversation], object]) -> None:
        """Round-robin: apply each action to every conversation before the next action.

        ``cap.interleave(cs, lambda c: c.send("client", 100), lambda c: c.fin("client"))``
        """
        convs = list(convs)
        for action in actions:
            for c in convs:
                action(c)

    # -- writers ------------------------------------------------------

    def _recs(self):
        return [(Fraction(ns, 1_000_000_000), frame) for ns, frame in self.records]

    def write(self, path, **kw) -> int:
        """:meth:`write_pcapng` when ``path`` ends in ``.pcapng``, else
        :meth:`write_pcap`. Returns the packet count."""
        if os.fspath(path).endswith(".pcapng"):
            return self.write_pcapng(path, **kw)
        return self.write_pcap(path, **kw)

    def write_pcap(
        self, path, nanosecond: bool = False, snaplen: int | None = None, endian: str = "<"
    ) -> int:
        """Write a classic pcap (µs, or ns with ``nanosecond=True``); ``snaplen``
        defaults to the capture's. Returns the packet count."""
        return P.write_pcap(
            path,
            self._recs(),
            linktype=self.linktype,
            snaplen=self.snaplen if snaplen is None else snaplen,
            nanosecond=nanosecond,
            endian=endian,
        )

    def write_pcapng(
        self, path, nanosecond: bool = False, snaplen: int | None = None, endian: str = "<"
    ) -> int:
        """Write a pcapng (SHB, one IDB, EPBs). Returns the packet count."""
        return P.write_pcapng(
            path,
            self._recs(),
            linktype=self.linktype,
            snaplen=self.snaplen if snaplen is None else snaplen,
            nanosecond=nanosecond,
            endian=endian,
        )
