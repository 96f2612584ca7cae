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
import ipaddress
import os
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction

from . import packets as P
from .conversation import Conversation
from .pcap_files import _to_ns
from .segments import (
    CLIENT,
    DEFAULT_CLIENT,
    DEFAULT_SERVER,
    SERVER,
    Endpoint,
    Pending,
    Segment,
    Vlan,
    pattern,
    perturb,
)

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
        self.step_ns = _to_ns(step)
        self._next_ns = _to_ns(start)
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
        ns = _to_ns(seconds)
        if ns < 0:
            raise ValueError("step must not be negative")
        if self.records:  # the gap after the last packet is the new step
            self._next_ns += ns - self.step_ns
        self.step_ns = ns

    def advance(self, seconds: float) -> None:
        """Add ``seconds`` of silence before the next packet (it applies at
        once, also inside :meth:`hold`)."""
        self._next_ns += _to_ns(seconds)

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
            self._next_ns = _to_ns(ts)
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
