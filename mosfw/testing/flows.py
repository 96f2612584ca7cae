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
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable, Iterable, List, Optional, Sequence, Tuple, Union

from . import packets as P

__all__ = ["Segment", "Conversation", "Capture", "CLIENT", "SERVER", "pattern"]

CLIENT = "client"
SERVER = "server"
_MOD = 1 << 32

Endpoint = Tuple[str, int]
Payload = Union[int, bytes, bytearray, memoryview, str]
Vlan = Union[None, int, Sequence[int]]


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

    def replace(self, **changes) -> "Segment":
        return dataclasses.replace(self, **changes)


class Conversation:
    """One TCP connection between ``client`` and ``server`` on a :class:`Capture`.

    Create it with :meth:`Capture.conversation`. Side arguments are
    ``"client"`` or ``"server"``.
    """

    def __init__(self, capture: "Capture", client: Endpoint, server: Endpoint, *,
                 client_isn: int = 1000, server_isn: int = 5000, vlan: Vlan = None,
                 window: int = 65535, mss: Optional[int] = None, ttl: int = 64,
                 ext_headers: Sequence[Union[str, P.ExtHeader]] = (),
                 client_mac: str = "02:00:00:00:00:01", server_mac: str = "02:00:00:00:00:02",
                 ip_id: Tuple[int, int] = (0x1000, 0x8000)):
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
        self.history: List[Segment] = []

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

    def endpoints(self, side) -> Tuple[Endpoint, Endpoint]:
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

    def _make(self, side: str, seq: int, ack: int, flags: int, payload: bytes = b"",
              window: Optional[int] = None, options: bytes = b"", emit: bool = True) -> Segment:
        seg = Segment(side=side, seq=seq % _MOD, ack=ack % _MOD, flags=flags, payload=payload,
                      window=self.window[side] if window is None else window, options=options)
        self.history.append(seg)
        if emit:
            self.emit(seg)
        return seg

    def _ack_for(self, side: str, ack: Optional[int]) -> int:
        return self.snd_nxt[_peer(side)] if ack is None else ack

    def frame(self, seg: Segment, *, ip_id: Optional[int] = None) -> bytes:
        """The link-layer frame for ``seg`` (does not emit; does not use up an IP id
        unless ``ip_id`` is None)."""
        side = _side(seg.side)
        peer = _peer(side)
        if ip_id is None:
            ip_id = self._ip_id[side]
            self._ip_id[side] = (ip_id + 1) & 0xFFFF
        l4 = P.tcp(self.addr[side], self.addr[peer], self.port[side], self.port[peer],
                   seg.seq, seg.ack, seg.flags, window=seg.window, payload=seg.payload,
                   options=seg.options, checksum_dst=self._checksum_dst)
        pkt = P.ip(self.addr[side], self.addr[peer], P.IPPROTO_TCP, l4, ident=ip_id,
                   ttl=self.ttl, ext_headers=self.ext_headers)
        return P.link(pkt, self.capture.linktype, vlan=self.vlan, src_mac=self.mac[side],
                      dst_mac=self.mac[peer], outgoing=(side == CLIENT))

    # -- emitting -----------------------------------------------------

    def emit(self, seg: Segment, *, ts: Optional[float] = None) -> Segment:
        """Write ``seg`` to the capture with the next timestamp (or at ``ts``).

        Emitting a segment again is a retransmission/duplicate; emitting one
        built with ``emit=False`` later is late (reordered) delivery. The IP id
        is fresh each time. Returns ``seg``.
        """
        self.capture.add(self.frame(seg), ts=ts)
        return seg

    def rexmit(self, seg: Segment, *, ts: Optional[float] = None) -> Segment:
        """Same as :meth:`emit`; reads better for retransmissions."""
        return self.emit(seg, ts=ts)

    # -- handshake ----------------------------------------------------

    def syn(self, *, mss: Optional[int] = None, wscale: Optional[int] = None,
            sack_perm: bool = False, timestamp=None, options: bytes = b"",
            window: Optional[int] = None, emit: bool = True) -> Segment:
        """Client SYN at the client's ISN (calling it again repeats the same SYN)."""
        s = CLIENT
        seg = self._make(s, self.isn[s], 0, P.SYN, window=window, emit=emit,
                         options=self._syn_options(mss, wscale, sack_perm, timestamp, options))
        self.snd_nxt[s] = (self.isn[s] + 1) % _MOD
        return seg

    def synack(self, *, mss: Optional[int] = None, wscale: Optional[int] = None,
               sack_perm: bool = False, timestamp=None, options: bytes = b"",
               ack: Optional[int] = None, window: Optional[int] = None,
               emit: bool = True) -> Segment:
        """Server SYN/ACK at the server's ISN, acking the client's SYN."""
        s = SERVER
        seg = self._make(s, self.isn[s], self._ack_for(s, ack), P.SYN | P.ACK, window=window,
                         emit=emit,
                         options=self._syn_options(mss, wscale, sack_perm, timestamp, options))
        self.snd_nxt[s] = (self.isn[s] + 1) % _MOD
        return seg

    def handshake(self, **syn_kw) -> Tuple[Segment, Segment, Segment]:
        """``syn(**syn_kw); synack(**syn_kw); ack("client")``."""
        return (self.syn(**syn_kw), self.synack(**syn_kw), self.ack(CLIENT))

    # -- data and control ---------------------------------------------

    def ack(self, side, *, ack: Optional[int] = None, window: Optional[int] = None,
            options: bytes = b"", emit: bool = True) -> Segment:
        """Pure ACK from ``side`` with its current seq and ack (``ack=`` for a stale one)."""
        s = _side(side)
        return self._make(s, self.snd_nxt[s], self._ack_for(s, ack), P.ACK, window=window,
                          options=options, emit=emit)

    def send(self, side, data: Payload, *, push: bool = True, ack: Optional[int] = None,
             window: Optional[int] = None, options: bytes = b"", emit: bool = True) -> Segment:
        """Data from ``side`` (ACK, and PSH unless ``push=False``); advances its seq.

        ``data`` is bytes/str, or an int length of pattern bytes.
        """
        s = _side(side)
        payload = self._payload(s, data)
        seg = self._make(s, self.snd_nxt[s], self._ack_for(s, ack),
                         P.ACK | (P.PSH if push and payload else 0), payload,
                         window=window, options=options, emit=emit)
        self._stream[s] += payload
        self.snd_nxt[s] = (self.snd_nxt[s] + len(payload)) % _MOD
        return seg

    def fin(self, side, data: Payload = b"", *, ack: Optional[int] = None,
            window: Optional[int] = None, emit: bool = True) -> Segment:
        """FIN|ACK from ``side`` (with optional payload, then also PSH); consumes
        one sequence number after the payload."""
        s = _side(side)
        payload = self._payload(s, data)
        seg = self._make(s, self.snd_nxt[s], self._ack_for(s, ack),
                         P.FIN | P.ACK | (P.PSH if payload else 0), payload,
                         window=window, emit=emit)
        self._stream[s] += payload
        self.snd_nxt[s] = (self.snd_nxt[s] + len(payload) + 1) % _MOD
        return seg

    def rst(self, side, *, with_ack: bool = True, ack: Optional[int] = None,
            seq: Optional[int] = None, window: Optional[int] = 0, emit: bool = True) -> Segment:
        """RST|ACK (or bare RST with ``with_ack=False``, ack field 0) at ``side``'s
        current seq (``seq=`` to send an out-of-window one). Window 0 by default,
        as Linux sends."""
        s = _side(side)
        flags = P.RST | (P.ACK if with_ack else 0)
        return self._make(s, self.snd_nxt[s] if seq is None else seq,
                          self._ack_for(s, ack) if with_ack else 0, flags,
                          window=window, emit=emit)

    def keepalive(self, side, one_byte: bool = False, *, ack: Optional[int] = None,
                  emit: bool = True) -> Segment:
        """Keep-alive probe: ACK at ``snd_nxt - 1``, no payload (Linux), or one
        garbage byte (``b"\\x00"``, BSD/Windows style) with ``one_byte=True``.
        Does not advance the seq."""
        s = _side(side)
        return self._make(s, self.snd_nxt[s] - 1, self._ack_for(s, ack), P.ACK,
                          b"\x00" if one_byte else b"", emit=emit)

    def zero_window(self, side, *, ack: Optional[int] = None, emit: bool = True) -> Segment:
        """Pure ACK from ``side`` advertising window 0."""
        return self.ack(side, ack=ack, window=0, emit=emit)

    def segment(self, side, flags: Union[int, str], *, seq: Optional[int] = None,
                ack: Optional[int] = None, payload: Payload = b"",
                window: Optional[int] = None, options: bytes = b"",
                emit: bool = True) -> Segment:
        """Any segment (escape hatch): ``flags`` as int or letters (``"SA"``,
        ``"FPA"``); seq defaults to ``side``'s snd_nxt, ack to the peer's.
        Changes no state: nothing advances, nothing is added to the stream."""
        s = _side(side)
        return self._make(s, self.snd_nxt[s] if seq is None else seq,
                          self._ack_for(s, ack), P.parse_flags(flags),
                          self._payload(s, payload), window=window, options=options,
                          emit=emit)

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
        return (f"<Conversation {c[0]}:{c[1]} -> {s[0]}:{s[1]} "
                f"client_nxt={self.client_nxt} server_nxt={self.server_nxt}>")


class Capture:
    """An ordered list of timestamped frames of one link type, and writers for it.

    ``linktype`` is a name from :data:`mosfw.testing.packets.LINKTYPES`
    (``"ether"``, ``"raw"``, ``"sll"``, ``"sll2"``, ``"null"``, ``"loop"``).
    Frames are stored in call order (that is the order in the file, even if
    an explicit ``ts`` makes time go backwards).
    """

    def __init__(self, linktype: str = "ether", start: float = 1000.0, step: float = 0.001,
                 snaplen: int = 65535):
        P.linktype_number(linktype)  # validate
        self.linktype = linktype
        self.snaplen = snaplen
        self.step_ns = P._to_ns(step)
        self._next_ns = P._to_ns(start)
        #: (timestamp in integer nanoseconds, frame bytes), in file order
        self.records: List[Tuple[int, bytes]] = []
        self.conversations_made: List[Conversation] = []

    # -- time ---------------------------------------------------------

    @property
    def now(self) -> float:
        """The timestamp (seconds) the next packet will get."""
        return self._next_ns / 1e9

    def advance(self, seconds: float) -> None:
        """Add ``seconds`` of silence before the next packet."""
        self._next_ns += P._to_ns(seconds)

    # -- frames -------------------------------------------------------

    def add(self, frame: bytes, *, ts: Optional[float] = None) -> None:
        """Append an already framed packet (for this capture's link type).
        With ``ts`` (seconds) it gets that timestamp and time continues from there."""
        if ts is not None:
            self._next_ns = P._to_ns(ts)
        self.records.append((self._next_ns, bytes(frame)))
        self._next_ns += self.step_ns

    def add_ip(self, ip_packet: bytes, *, ts: Optional[float] = None, **link_kw) -> None:
        """Frame a bare IP packet for this link type and append it (``vlan=`` etc.)."""
        self.add(P.link(ip_packet, self.linktype, **link_kw), ts=ts)

    def udp(self, src: Endpoint, dst: Endpoint, payload: bytes = b"", *,
            vlan: Vlan = None, ts: Optional[float] = None) -> None:
        """Append one UDP datagram ``src`` -> ``dst`` (each ``(ip, port)``)."""
        pkt = P.udp_packet(src[0], src[1], dst[0], dst[1], payload, linktype=None)
        self.add_ip(pkt, vlan=vlan, ts=ts)

    def icmp(self, src: str, dst: str, type_: Optional[int] = None, code: int = 0,
             payload: bytes = b"", *, vlan: Vlan = None, ts: Optional[float] = None) -> None:
        """Append one ICMP/ICMPv6 message (default echo request)."""
        pkt = P.icmp_packet(src, dst, type_, code, payload, linktype=None)
        self.add_ip(pkt, vlan=vlan, ts=ts)

    @property
    def packets(self) -> List[Tuple[float, bytes]]:
        """``[(ts seconds as float, frame bytes), ...]`` in file order."""
        return [(ns / 1e9, frame) for ns, frame in self.records]

    def __len__(self) -> int:
        return len(self.records)

    # -- conversations ------------------------------------------------

    def conversation(self, client: Endpoint, server: Endpoint, client_isn: int = 1000,
                     server_isn: int = 5000, vlan: Vlan = None, **kw) -> Conversation:
        """A new :class:`Conversation`; extra keywords: ``window``, ``mss``,
        ``ttl``, ``ext_headers`` (IPv6), ``client_mac``, ``server_mac``, ``ip_id``."""
        conv = Conversation(self, client, server, client_isn=client_isn, server_isn=server_isn,
                            vlan=vlan, **kw)
        self.conversations_made.append(conv)
        return conv

    def conversations(self, n: int, *, client: Endpoint = ("10.0.0.1", 40000),
                      server: Endpoint = ("10.0.0.2", 80), client_isn: int = 1000,
                      server_isn: int = 5000, isn_step: int = 100_003,
                      handshake: bool = False, **kw) -> List[Conversation]:
        """``n`` conversations to one server: flow ``i`` uses client port
        ``client[1] + i % 20000`` and client address ``client[0] + i // 20000``;
        ISNs are spaced by ``isn_step``. With ``handshake=True`` the handshakes
        are interleaved: all SYNs, then all SYN/ACKs, then all ACKs."""
        base_ip = ipaddress.ip_address(client[0])
        convs = [self.conversation((str(base_ip + i // 20000), client[1] + i % 20000), server,
                                   client_isn=client_isn + i * isn_step,
                                   server_isn=server_isn + i * isn_step, **kw)
                 for i in range(n)]
        if handshake:
            self.interleave(convs, Conversation.syn, Conversation.synack,
                            lambda c: c.ack(CLIENT))
        return convs

    def interleave(self, convs: Iterable[Conversation],
                   *actions: Callable[[Conversation], object]) -> None:
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

    def write_pcap(self, path, nanosecond: bool = False, snaplen: Optional[int] = None,
                   endian: str = "<") -> int:
        """Write a classic pcap (µs, or ns with ``nanosecond=True``); ``snaplen``
        defaults to the capture's. Returns the packet count."""
        return P.write_pcap(path, self._recs(), linktype=self.linktype,
                            snaplen=self.snaplen if snaplen is None else snaplen,
                            nanosecond=nanosecond, endian=endian)

    def write_pcapng(self, path, nanosecond: bool = False, snaplen: Optional[int] = None,
                     endian: str = "<") -> int:
        """Write a pcapng (SHB, one IDB, EPBs). Returns the packet count."""
        return P.write_pcapng(path, self._recs(), linktype=self.linktype,
                              snaplen=self.snaplen if snaplen is None else snaplen,
                              nanosecond=nanosecond, endian=endian)
