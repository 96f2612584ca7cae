"""The Flow view: one tracked flow (TCP, or UDP/ICMP: flow_proto.py) as plugins see it.

A :class:`Flow` reads the engine's flow record in place (no copy per
event). What it returns is *state now*: as of the end of the batch of
events being dispatched. The state at the moment of an event is in the
:class:`~mosfw.events.Event` passed with it. After its CONN_END the flow
is frozen: the record is copied once and the view keeps working.

Two kinds of accessors answer for the moment of the event being
dispatched rather than for the end of the batch:

- the **bytestream** (:meth:`Flow.peek`, :meth:`Flow.ppeek`,
  :meth:`Flow.stream_info`, :meth:`Flow.fragments`, :meth:`Flow.lost_bytes`):
  the engine never changes a flow's reassembly buffers while records
  about that flow wait for dispatch (it ends the batch before such a
  packet), so during any event of a flow they show the stream as it was
  right after the packet that caused the event;
- the **packet** (:meth:`Flow.last_packet`): the packet of the event
  being dispatched, kept in the batch's packet arena.

The rest of the mOS socket API is here too: per-flow callbacks
(:meth:`Flow.register`), timers (:meth:`Flow.settimer`), user events
(:meth:`Flow.raise_event`), ``MOS_STOP_MON`` (:meth:`Flow.stop_monitoring`)
and the overlap policy (:meth:`Flow.set_overlap_policy`).
"""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop  # the C module: socket.py costs 3 ms at start-up
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

from mosfw._dispatch import endpoints as _endpoints
from mosfw._native import ffi
from mosfw.events import STATES, EndReason, Side, TcpState
from mosfw.flow_proto import FlowProto

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mosfw.api import OverlapPolicy, Packet, StreamInfo, Timer, UserEvent
    from mosfw.events import EventType
    from mosfw.flowhost import FlowHost

    # ``struct mosfw_flow`` (native/mosfw_api.h) as cffi reads it: the fields a Flow uses
    class _CTuple(Protocol):
        cli_addr: Sequence[int]
        srv_addr: Sequence[int]
        cli_port: int
        srv_port: int
        family: int
        proto: int

    class _CHalf(Protocol):
        isn: int
        seq_hi: int
        pkts: int
        ip_bytes: int
        payload_bytes: int
        rexmit_pkts: int
        rexmit_bytes: int
        state: int
        flags: int
        hist: int

    class _CFlow(Protocol):
        tuple: _CTuple
        id: int
        first_ts: float
        last_ts: float
        side: Sequence[_CHalf]
        end_reason: int
        midstream: int
        first_dir: int


__all__ = ["Flow", "format_endpoint"]

_new, _memmove, _buffer = ffi.new, ffi.memmove, ffi.buffer
_FLOW_PTR = ffi.typeof("struct mosfw_flow *")
_FLOW_SIZE = ffi.sizeof("struct mosfw_flow")


def _addr(raw: Sequence[int], family: int) -> str:
    if family == 4:
        return inet_ntop(AF_INET, bytes(raw[0:4]))
    return inet_ntop(AF_INET6, bytes(raw[0:16]))


def format_endpoint(ip: str, port: int) -> str:
    """``ip:port``, with IPv6 addresses in brackets (``[fd00::1]:80``)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Flow(FlowProto):
    """A tracked flow (mOS: the monitoring socket of a flow): a TCP
    connection, or a UDP or ICMP flow (:attr:`proto`).

    Attributes:
        id: stable per-core flow id.
        core: the core that owns the flow.
        uctx: mOS's ``mtcp_set_uctx`` slot: any object, ``None`` until set;
            dropped after CONN_END. **One slot shared by every plugin**: two
            plugins that both use it overwrite each other. It is there for
            single-app ports of mOS code; a plugin keeps its per-flow state
            in :meth:`store`, which is its own.
        slot: the flow's slot in its core's table (a C observer's per-flow
            index, Core.attach_observer); reused by another flow after this
            one's CONN_END batch. Read-only for plugins.

    The host side (``host_*`` attributes and methods) is what the core that
    owns the flow keeps in it and calls on it, and all it uses of a Flow
    besides the public accessors (:class:`mosfw.flowhost.HostedFlow` lists
    it): plugins never touch it.
    """

    __slots__ = (
        "id",
        "core",
        "uctx",
        "_store",
        "_rec",
        "_ended",
        "_client",
        "_server",
        "_client_str",
        "_server_str",
        "_eng",
        "slot",
        "host_callbacks",
        "host_timers",
        "host_stopped",
        "_tunnels",
        "__weakref__",
    )

    def __init__(
        self, rec: Any, flow_id: int, core: int, engine: FlowHost | None = None, slot: int = 0xFFFFFFFF
    ) -> None:
        self._rec: _CFlow = rec  # a cffi ``struct mosfw_flow *``
        self.id = flow_id
        self.core = core
        self.uctx: Any = None
        self._store: dict[Any, Any] | None = None  # per-plugin storage {owner: value}, made on first use
        self._ended = False
        self._eng: FlowHost | None = engine  # its core (None: a detached view)
        self.slot = slot
        # host side (HostedFlow): kept here by the core that owns the flow
        self.host_callbacks: dict[Any, list[Any]] | None = (
            None  # per-flow callbacks: {event key: [(fn, adapted)]}
        )
        self.host_timers: dict[int, Any] | None = None  # per-flow timers pending: {handle: Timer}
        self.host_stopped = 0  # MOS_STOP_MON bits (1 client, 2 server)
        self._client: tuple[str, int] | None = None
        self._server: tuple[str, int] | None = None
        self._client_str: str | None = None
        self._server_str: str | None = None
        self._tunnels: tuple[Any, ...] | None = None  # read from the core on first use

    # -- identity -----------------------------------------------------------

    @property
    def family(self) -> int:
        """4 or 6."""
        return self._rec.tuple.family

    @property
    def client(self) -> tuple[str, int]:
        """``(ip, port)`` of the client (the side that sent the first SYN,
        or the likely client when picked up mid-stream)."""
        if self._client is None:
            t = self._rec.tuple
            self._client = (_addr(t.cli_addr, t.family), t.cli_port)
        return self._client

    @property
    def server(self) -> tuple[str, int]:
        """``(ip, port)`` of the server (of an ICMP flow: the type that
        answers the client's, or the code of a one-way message)."""
        if self._server is None:
            t = self._rec.tuple
            port = t.srv_port & 0xFF if t.proto in (1, 58) and t.srv_port & 0x100 else t.srv_port
            self._server = (_addr(t.srv_addr, t.family), port)
        return self._server

    def endpoint(self, side: Side) -> tuple[str, int]:
        """``(ip, port)`` of one side."""
        return self.client if side == Side.CLIENT else self.server

    @property
    def client_str(self) -> str:
        """The client as ``ip:port`` (``[ip]:port`` for IPv6)."""
        if self._client_str is None:
            self._client_str, self._server_str = _endpoints(_buffer(self._rec))
        return self._client_str

    @property
    def server_str(self) -> str:
        """The server as ``ip:port`` (``[ip]:port`` for IPv6)."""
        if self._server_str is None:
            self._client_str, self._server_str = _endpoints(_buffer(self._rec))
        return self._server_str

    # -- per-plugin storage -------------------------------------------------------

    def store(self, owner: Any, factory: Callable[[], Any] | None = dict) -> Any:
        """This flow's storage for one plugin (Zeek's per-script connection
        fields, NFStream's ``udps``, mOS's ``uctx`` -- but one per plugin).

        ``owner`` names the plugin whose storage it is: ``__name__`` in a
        module plugin, ``self`` in a class plugin (any hashable object;
        use the same one in all of a plugin's hooks and callbacks). The
        first call for an owner makes the value with ``factory()`` (a new
        ``dict`` by default: ``flow.store(__name__)["n"] = 1``; pass your
        own class for a per-flow object) and later calls return that same
        object; ``factory=None`` only looks: ``None`` when nothing is stored.
        Plugins with different owners never see each other's values.

        Dropped with the rest of the flow's Python state after its
        CONN_END (still there in CONN_END's hooks); returns ``None``
        afterwards. Nothing is made, and nothing costs, for a plugin that
        does not call it.
        """
        s = self._store
        if s is None:
            if factory is None or self._ended:
                return None
            s = self._store = {}
        try:
            return s[owner]
        except KeyError:
            if factory is None or self._ended:
                return None
            v = s[owner] = factory()
            return v

    # -- state (now) --------------------------------------------------------

    def state(self, side: Side) -> TcpState:
        """Emulated TCP state of one endpoint, now."""
        return STATES[self._rec.side[side].state]

    @property
    def client_state(self) -> TcpState:
        return STATES[self._rec.side[0].state]

    @property
    def server_state(self) -> TcpState:
        return STATES[self._rec.side[1].state]

    @property
    def midstream(self) -> bool:
        """True when the flow was picked up without its handshake."""
        return bool(self._rec.midstream)

    @property
    def ended(self) -> bool:
        """True once CONN_END has been dispatched for this flow."""
        return self._ended

    @property
    def end_reason(self) -> EndReason | None:
        r = self._rec.end_reason
        return EndReason(r) if r else None

    @property
    def first_side(self) -> Side:
        """The side that sent the first packet the tap saw."""
        return Side(self._rec.first_dir)

    # -- counters -----------------------------------------------------------

    def pkts(self, side: Side) -> int:
        """Packets sent by ``side``."""
        return self._rec.side[side].pkts

    def ip_bytes(self, side: Side) -> int:
        """IP bytes (headers included) sent by ``side``."""
        return self._rec.side[side].ip_bytes

    def payload_bytes(self, side: Side) -> int:
        """TCP payload bytes sent by ``side``, retransmissions included."""
        return self._rec.side[side].payload_bytes

    def rexmit_pkts(self, side: Side) -> int:
        """Segments from ``side`` classified as retransmissions (REXMIT)."""
        return self._rec.side[side].rexmit_pkts

    def rexmit_bytes(self, side: Side) -> int:
        """Payload bytes in those segments."""
        return self._rec.side[side].rexmit_bytes

    def isn(self, side: Side) -> int | None:
        """Initial sequence number of ``side`` (None if its SYN was not seen)."""
        h = self._rec.side[side]
        return h.isn if h.flags & 0x12 else None  # SYN_SEEN | SYNACK_SEEN

    def seq_hi(self, side: Side) -> int | None:
        """Highest sequence end sent by ``side`` (None before it sent)."""
        h = self._rec.side[side]
        return h.seq_hi if h.flags & 0x01 else None

    def history_bits(self, side: Side) -> int:
        """Bit set of what ``side`` sent (``MOSFW_HIST_*`` in tcp_state.h)."""
        return self._rec.side[side].hist

    @property
    def tunnels(self) -> tuple[Any, ...]:
        """The layers the flow came through, outermost first: a tuple of
        :class:`mosfw.tunnels.Tunnel` (``kind``, ``id`` -- VLAN id, MPLS
        label, VNI, GRE key, TEID ... --, the outer ``src``/``dst`` and
        UDP ``sport``/``dport``), () for a plain flow. Those of the
        flow's first packet, stored once when it was created
        (docs/encapsulation.md): later packets may come through other
        tunnels (the two directions of a GTP-U flow do, by TEID)."""
        if self._tunnels is None:
            eng = self._eng
            if eng is None:
                return ()
            self._tunnels = eng.flow_tunnels(self)
        return self._tunnels

    @property
    def first_ts(self) -> float:
        """Time of the first packet."""
        return self._rec.first_ts

    @property
    def last_ts(self) -> float:
        """Input time of the last packet (for ended flows: when it ended):
        the packet's time, or the latest packet time read before it when
        the capture's time went back (docs/robustness.md). Idle timeouts
        count from it; so a flow opened by a packet from the past has a
        :attr:`duration` that includes the step."""
        return self._rec.last_ts

    @property
    def duration(self) -> float:
        return self._rec.last_ts - self._rec.first_ts

    # -- bytestream (mtcp_peek, mtcp_ppeek, MOS_INFO_*BUF, MOS_FRAGINFO_*BUF) --

    def _live(self) -> FlowHost | None:
        """The core of a live flow; None once it ended or was detached."""
        return None if self._ended else self._eng

    @overload
    def peek(self, side: Side, n: int | None = None, *, with_lost: Literal[False] = False) -> bytes: ...
    @overload
    def peek(self, side: Side, n: int | None = None, *, with_lost: Literal[True]) -> tuple[int, bytes]: ...
    @overload
    def peek(self, side: Side, n: int | None = None, *, with_lost: bool) -> bytes | tuple[int, bytes]: ...
    def peek(self, side: Side, n: int | None = None, *, with_lost: bool = False) -> bytes | tuple[int, bytes]:
        """Read in-order bytes of ``side``'s stream and consume them
        (``mtcp_peek``): up to ``n`` bytes (all that are readable when
        None), from where the previous peek stopped.

        Bytes the read position can no longer get -- overwritten because
        the buffer (``rmem_size``) overflowed before they were read, or
        given up in a gap the tap never saw -- are skipped and counted in
        :meth:`lost_bytes`, never raised as errors; one call never returns
        bytes from both sides of such a hole (call again to continue after
        it). Returns ``b""`` when nothing is readable, when the side has no
        buffer (no payload yet, ``no_ring_buffers = 1``, or the flow
        ended), and outside the engine's dispatch.

        With ``with_lost=True`` returns ``(lost, data)``: the bytes skipped
        just before ``data``.

        The read position is the flow side's, as in mOS: one per side,
        shared by every plugin. A plugin that runs next to others reads
        with :meth:`ppeek` from its own offset (kept in :meth:`store`), so
        that it neither consumes bytes another plugin has yet to read nor
        misses those another one consumed.
        """
        eng = self._eng
        if eng is None or self._ended:
            return (0, b"") if with_lost else b""
        return eng.flow_peek(self, side, n, with_lost)

    def ppeek(self, side: Side, offset: int, n: int) -> bytes:
        """Read up to ``n`` bytes of ``side``'s stream at ``offset``
        without consuming anything (``mtcp_ppeek``); offset 0 is the first
        byte after the side's ISN. Returns the contiguous bytes held from
        there -- in-order data or an out-of-order fragment -- or ``b""``
        when the byte at ``offset`` is not held (not received yet, given
        up, or overwritten)."""
        eng = self._live()
        if eng is None or n <= 0 or offset < 0:
            return b""
        return eng.flow_ppeek(self, int(side), int(offset), int(n))

    def lost_bytes(self, side: Side) -> int:
        """Bytes of ``side``'s stream the consuming read (:meth:`peek`)
        skipped so far: overwritten before they were read, or never seen
        (gaps given up)."""
        info = self.stream_info(side)
        return info.lost_bytes if info else 0

    def stream_info(self, side: Side) -> StreamInfo | None:
        """The reassembly buffer of ``side`` as a
        :class:`~mosfw.api.StreamInfo` (``MOS_INFO_CLIBUF``/``SVRBUF``:
        ``init_seq``, ``last_byte_read``, ``next_byte_expected``,
        ``last_byte_received``, loss counters), or None when the side has
        no buffer."""
        eng = self._live()
        if eng is None:
            return None
        return eng.flow_stream_info(self, int(side))

    def fragments(self, side: Side) -> list[tuple[int, int]]:
        """Contiguous ranges of ``side``'s stream held in its buffer, as
        ``(offset, length)`` in offset order (``MOS_FRAGINFO_*BUF``): the
        in-order bytes (split where gaps were given up), then the
        out-of-order fragments waiting for a gap to fill."""
        eng = self._live()
        if eng is None:
            return []
        return eng.flow_fragments(self, int(side))

    def stream_offset(self, side: Side, seq: int) -> int | None:
        """The stream offset of sequence number ``seq`` of ``side`` (None
        without a buffer)."""
        eng = self._live()
        if eng is None:
            return None
        return eng.flow_stream_offset(self, int(side), seq)

    def set_overlap_policy(self, side: Side, policy: OverlapPolicy | str) -> None:
        """Which bytes ``side``'s buffer keeps where a retransmission
        overlaps bytes it holds (``MOS_CLIOVERLAP``/``MOS_SVROVERLAP``):
        ``"first"`` (default) or ``"last"`` (or an
        :class:`~mosfw.api.OverlapPolicy`). Takes effect for the next
        segment."""
        from mosfw.api import OverlapPolicy

        if isinstance(policy, str):
            try:
                policy = OverlapPolicy[policy.upper()]
            except KeyError:
                raise ValueError(f"overlap policy must be 'first' or 'last', not {policy!r}") from None
        policy = OverlapPolicy(policy)
        eng = self._live()
        if eng is not None:
            eng.flow_set_overlap(self, int(side), int(policy))

    # -- the packet of the event (mtcp_getlastpkt) -----------------------------

    def last_packet(self, side: Side | None = None) -> Packet | None:
        """The packet that caused the event being dispatched, as a
        :class:`~mosfw.api.Packet` (mOS ``mtcp_getlastpkt``: headers,
        lengths, seq/ack/window/flags, payload), or None when the event
        came from no packet (a timeout, the end of the input, a timer) or
        outside dispatch.

        ``side`` is accepted for mOS's signature: like mOS (which returns
        the packet being processed whatever side is asked), the packet is
        returned as is; ``packet.side`` says who sent it.
        """
        if self._eng is None:
            return None
        return self._eng.flow_last_packet(self)

    # -- callbacks, timers, user events, monitoring ------------------------------

    def register(self, event: EventType | UserEvent, callback: Callable[..., Any]) -> None:
        """Call ``callback`` when ``event`` (an ``EventType`` or a
        :class:`~mosfw.api.UserEvent`) fires on this flow only
        (``mtcp_register_callback`` on the flow's socket). Arguments by
        name as in :mod:`mosfw.api`. Registering the same function twice
        for an event is a no-op. Dropped at CONN_END."""
        if self._eng is None or self._ended:
            raise RuntimeError("register() needs a live flow (inside an event handler)")
        self._eng.flow_register(self, event, callback)

    def unregister(self, event: EventType | UserEvent, callback: Callable[..., Any] | None = None) -> None:
        """Undo :meth:`register` (every callback of ``event`` when
        ``callback`` is None)."""
        if self._eng is not None and self.host_callbacks:
            self._eng.flow_unregister(self, event, callback)

    def settimer(
        self,
        seconds: float,
        callback: Callable[..., Any] | None = None,
        *,
        data: Any = None,
        timer_id: Any = None,
    ) -> Timer:
        """A one-shot timer for this flow (``mtcp_settimer``): fires
        ``seconds`` after the event being dispatched (input time: packet
        time offline, wall time live), unless the flow ends first. Returns
        a :class:`~mosfw.api.Timer`; see :meth:`mosfw.engine.Core.settimer`."""
        if self._eng is None or self._ended:
            raise RuntimeError("settimer() needs a live flow")
        return self._eng.settimer(seconds, callback, data=data, flow=self, timer_id=timer_id)

    def raise_event(self, event: UserEvent, side: Side | None = None, data: Any = None) -> None:
        """Raise a user event on this flow (``mtcp_raise_event``); see
        :meth:`mosfw.engine.Core.raise_event`."""
        if self._eng is None:
            raise RuntimeError("raise_event() needs a live flow")
        self._eng.raise_event(event, flow=self, side=side, data=data)

    def stop_monitoring(self, side: Side | None = None) -> None:
        """Stop monitoring one side, or the whole flow with None
        (``MOS_STOP_MON``). The engine keeps tracking the connection's TCP
        state (so it ends and is not picked up again), but produces no
        more events about a stopped side and drops its reassembly buffer.
        With both sides stopped there are no more events at all, not even
        CONN_END: the flow's Python state (``store``, ``uctx``, callbacks, timers) is
        dropped at the end of the current batch, whose remaining records
        are still delivered."""
        sides = 3 if side is None else (1 << int(side))
        if self._eng is not None and not self._ended and (self.host_stopped | sides) != self.host_stopped:
            self._eng.flow_stop_monitoring(self, sides)

    @property
    def monitored(self) -> bool:
        """False once both sides were stopped with :meth:`stop_monitoring`."""
        return self.host_stopped != 3

    # -- host side (HostedFlow) ----------------------------------------------

    @classmethod
    def frozen_copy(cls, rec: Any, core: int) -> Flow:
        """A frozen view of a copy of ``rec`` (a ``struct mosfw_flow *``):
        a flow that ended, detached from any engine; its conn.log view is
        empty."""
        copy = _new(_FLOW_PTR)
        _memmove(copy, rec, _FLOW_SIZE)
        f = cls(copy, copy.id, core)
        f._ended = True
        return f

    def host_keep_record(self) -> None:
        """Keep a private copy of the record: the table slot will be reused."""
        if self._tunnels is None and self._eng is not None:
            self._tunnels = self._eng.flow_tunnels(self)
        copy = _new(_FLOW_PTR)
        _memmove(copy, self._rec, _FLOW_SIZE)
        self._rec = copy

    def _copy_out(self) -> None:
        """Keep a private copy of the record and drop the per-flow
        context, callbacks and timers."""
        self.host_keep_record()
        self._drop_context()

    def _drop_context(self) -> None:
        self.uctx = None
        self._store = None
        self.host_callbacks = None
        if self.host_timers:
            for t in list(self.host_timers.values()):
                t.cancel()
            self.host_timers = None

    def host_detach(self) -> None:
        """Forget the engine (both sides stopped)."""
        self._copy_out()
        self._eng = None

    def host_end(self) -> None:
        """Called after CONN_END: the flow is over and its context,
        callbacks and timers are dropped. Its record stays readable until
        the batch ends; a view kept past that is copied then
        (engine: the batch's ended flows)."""
        self._drop_context()
        self._ended = True

    def __repr__(self) -> str:
        return (
            f"<Flow {self.id} {self.client_str} {self.client_state.name} -> "
            f"{self.server_str} {self.server_state.name}>"
        )

    # -- for C observers (Core.attach_observer) ----------------------------------

    @property
    def record(self) -> Any:
        """The flow's ``struct mosfw_flow`` (native/mosfw_api.h) as cffi
        cdata: the table's record while the flow lives, a private copy once
        ended. Read-only for plugins."""
        return self._rec

    @property
    def c_address(self) -> int:
        """Address of the flow's ``struct mosfw_flow`` (native/mosfw_api.h),
        for a C observer's own module to read (samples/tracker does): the
        table's record while the flow lives, a private copy once ended."""
        return int(ffi.cast("uintptr_t", self._rec))
