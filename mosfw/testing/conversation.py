"""One synthetic TCP connection on a capture (:class:`Conversation`),
tracking both sides' sequence numbers. :mod:`mosfw.testing.flows`
re-exports it; see that module for the whole builder."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from . import packets as P
from .segments import (
    _MOD,
    CLIENT,
    SERVER,
    Endpoint,
    Payload,
    Pending,
    Segment,
    Vlan,
    _peer,
    _side,
    pattern,
)

if TYPE_CHECKING:
    from .flows import Capture


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
