"""mOS's programming model beyond the built-in events, in Python's idiom.

- **User-defined events** (``mtcp_define_event``): :func:`define_event`
  derives an event from a built-in :class:`~mosfw.events.EventType` or from
  another user-defined event, with a filter that is a Python callable or a
  BPF expression evaluated in C on the packet. Derived events chain.
  :func:`alloc_event` (``mtcp_alloc_event``) makes an event that only fires
  when an app raises it (:meth:`mosfw.engine.Core.raise_event`,
  :meth:`mosfw.flow.Flow.raise_event`).
- **Callbacks** (``mtcp_register_callback``): a function decorated with
  :func:`on` in a plugin is called for that event in every flow; at run
  time :meth:`Core.register <mosfw.engine.Core.register>` does the same and
  :meth:`Flow.register <mosfw.flow.Flow.register>` registers for one flow
  only. Every occurrence of a user-defined event also reaches the
  :func:`~mosfw.hookspecs.mosfw_user_event` hook.
- **Timers** (``mtcp_settimer``): :meth:`Core.settimer
  <mosfw.engine.Core.settimer>` and :meth:`Flow.settimer
  <mosfw.flow.Flow.settimer>` return a :class:`Timer`.
- **Records**: :class:`Packet` (``struct pkt_info``, from
  :meth:`Flow.last_packet <mosfw.flow.Flow.last_packet>`) and
  :class:`StreamInfo` (``MOS_INFO_CLIBUF``/``SVRBUF``).

Callbacks and filters take their arguments by name, like hooks: declare
any of ``flow``, ``side``, ``event`` (the record of the built-in event it
came from), ``uevent`` (the :class:`UserEvent` or ``EventType`` that
fired), ``data`` (what :meth:`~mosfw.engine.Core.raise_event` passed, or a
timer's data), ``core`` (the :class:`~mosfw.engine.CoreView`) and
``timer`` (the :class:`Timer` that fired, for
timer callbacks). Arguments that do not apply are None.

User-defined events are plain objects: define them at import time, as mOS
apps do at start-up. One becomes active in a run when something listens to
it (a decorated function in a registered plugin, a registration at run
time) or when an event derived from it is active; the
:func:`~mosfw.hookspecs.mosfw_user_event` hook alone sees only active
ones.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

# the one argument adapter, shared with hooks and timers (re-exported here)
from mosfw.engine.adapt import CALLBACK_ARGS, adapt_callback

if TYPE_CHECKING:
    from mosfw.events import EventType, Side

__all__ = [
    "UserEvent",
    "define_event",
    "alloc_event",
    "on",
    "Timer",
    "Packet",
    "StreamInfo",
    "OverlapPolicy",
    "CALLBACK_ARGS",
    "adapt_callback",
]


_ids = itertools.count(1)
_F = TypeVar("_F", bound=Callable[..., Any])


class OverlapPolicy(enum.IntEnum):
    """What a reassembly buffer keeps where a retransmission overlaps bytes
    it already holds (``MOS_CLIOVERLAP``/``MOS_SVROVERLAP``)."""

    FIRST = 0  #: the bytes first received (mOS's default)
    LAST = 1  #: the retransmitted bytes


class UserEvent:
    """A user-defined event (mOS ``event_t`` from ``mtcp_define_event`` or
    ``mtcp_alloc_event``). Make them with :func:`define_event` and
    :func:`alloc_event`.

    Attributes:
        name: for messages and repr.
        base: the built-in ``EventType`` or ``UserEvent`` it derives from
            (None for an allocated event).
        filter: the Python callable, the BPF expression (str), or None.
    """

    __slots__ = ("id", "name", "base", "filter", "bpf", "_fn", "__weakref__")

    def __init__(
        self, base: EventType | UserEvent | None, filter: Callable[..., bool] | str | None, name: str | None
    ) -> None:
        self.id = next(_ids)
        self.base = base
        self.filter = filter
        self.bpf: str | None = filter if isinstance(filter, str) else None
        self._fn = adapt_callback(filter) if callable(filter) else None
        self.name = name or (f"user_event_{self.id}")

    @property
    def root(self) -> EventType | None:
        """The built-in ``EventType`` at the bottom of the chain (None for
        a chain that starts at an allocated event)."""
        e: EventType | UserEvent | None = self
        while isinstance(e, UserEvent):
            e = e.base
        return e

    @property
    def chain(self) -> list[UserEvent]:
        """This event and the ones it derives from, innermost last."""
        out: list[UserEvent] = []
        e: EventType | UserEvent | None = self
        while isinstance(e, UserEvent):
            out.append(e)
            e = e.base
        return out

    def __repr__(self) -> str:
        base = getattr(self.base, "name", None)
        how = f"bpf {self.bpf!r}" if self.bpf else ("filter" if self._fn else "raised")
        return f"<UserEvent {self.name} on {base} ({how})>"


def define_event(
    base: EventType | UserEvent, filter: Callable[..., bool] | str, *, name: str | None = None
) -> UserEvent:
    """A new event derived from ``base`` (``mtcp_define_event``): it fires
    whenever ``base`` fires and ``filter`` accepts it.

    :param base: an :class:`~mosfw.events.EventType` (e.g. ``PKT_IN``,
        ``CONN_NEW_DATA``) or another :class:`UserEvent`: chains of any
        depth.
    :param filter: a callable taking any of :data:`CALLBACK_ARGS` by name
        and returning true to raise the event, or a BPF expression
        (``"tcp dst port 22"``) compiled with libpcap for the input's link
        type and evaluated in C on the packet of the built-in event at the
        bottom of the chain (events without a packet -- timer-driven ones
        -- never pass a BPF filter). At most 32 BPF-filtered events are
        active per core.
    :param name: shown in messages (default ``user_event_N``).
    """
    from mosfw.events import EventType

    if not isinstance(base, (UserEvent, EventType)):
        raise TypeError(f"define_event: base must be an EventType or a UserEvent, not {base!r}")
    if isinstance(base, EventType) and bin(int(base)).count("1") != 1:
        raise ValueError("define_event: base must be a single event, not a combination")
    if isinstance(base, EventType) and base == EventType.TICK:
        raise ValueError("define_event: TICK is not an mOS event and cannot be a base")
    if isinstance(filter, str):
        if not filter.strip():
            raise ValueError("define_event: an empty BPF filter")
        ev = UserEvent(base, filter, name)
        if ev.root is None:
            raise ValueError(
                "define_event: a BPF filter needs a packet, and a chain built on an "
                "allocated event has none; use a Python filter"
            )
        return ev
    if not callable(filter):
        raise TypeError("define_event: filter must be a callable or a BPF expression (str)")
    return UserEvent(base, filter, name)


def alloc_event(*, name: str | None = None) -> UserEvent:
    """A new event that fires only when an app raises it
    (``mtcp_alloc_event`` + ``mtcp_raise_event``): see
    :meth:`mosfw.engine.Core.raise_event`. Events can be derived from it
    with :func:`define_event` (Python filters only)."""
    return UserEvent(None, None, name)


def on(*events: EventType | UserEvent) -> Callable[[_F], _F]:
    """Decorate a plugin function (or method) as the callback of one or
    more events, for every flow (``mtcp_register_callback`` on the
    monitoring socket)::

        SSH = mosfw.api.define_event(EventType.PKT_IN, "tcp port 22")

        @mosfw.api.on(SSH)
        def ssh_packet(flow, side, event):
            ...

    The function is found when its plugin is registered (it must be an
    attribute of the plugin module or object). It takes any of
    :data:`CALLBACK_ARGS` by name. Built-in events are accepted too.
    """
    from mosfw.events import EventType

    for ev in events:
        if not isinstance(ev, (UserEvent, EventType)):
            raise TypeError(f"on(): {ev!r} is not an EventType or a UserEvent")

    def mark(fn: _F) -> _F:
        prev = getattr(fn, "_mosfw_on", ())
        marked: Any = fn  # a function takes attributes, which no Callable type declares
        marked._mosfw_on = tuple(prev) + tuple(events)
        return fn

    return mark


def plugin_callbacks(plugin: object) -> Iterable[tuple[EventType | UserEvent, Callable[..., Any]]]:
    """``(event, function)`` for each function of a plugin marked with
    :func:`on`."""
    for name in dir(plugin):
        if name.startswith("__"):
            continue
        try:
            obj = getattr(plugin, name)
        except Exception:  # noqa: BLE001, S112 - a property that raises is no callback
            continue
        marks = getattr(obj, "_mosfw_on", None)
        if marks and callable(obj):
            for ev in marks:
                yield ev, obj


@attrs.define(eq=False)
class Timer:
    """A one-shot timer (``mtcp_settimer``), from
    :meth:`~mosfw.engine.Core.settimer` or :meth:`~mosfw.flow.Flow.settimer`.

    When it fires, ``callback`` is called (arguments by name as for
    callbacks: ``flow``, ``data``, ``event`` -- the TIMEOUT record, ``core``,
    and ``timer`` -- this object), or, without a callback, the
    :func:`~mosfw.hookspecs.mosfw_timeout` hook.
    """

    handle: int  #: the engine's handle (unique per core)
    deadline: float  #: input time at which it fires
    flow: Any = None  #: the Flow of a per-flow timer, None for a global one
    callback: Callable[..., Any] | None = None  #: called when it fires
    data: Any = None  #: passed to the callback / hook
    timer_id: Any = None  #: the app's own id (mOS's ``id`` argument)
    cancelled: bool = False  #: set by :meth:`cancel`
    fired: bool = False  #: set when it fired
    _core: Any = attrs.field(default=None, repr=False)
    _adapted: Any = attrs.field(default=None, repr=False)

    def cancel(self) -> bool:
        """Stop it from firing; False when it already fired or was cancelled."""
        if self.cancelled or self.fired:
            return False
        self.cancelled = True
        if self._core is not None:
            self._core._timers.pop(self.handle, None)
        return True


class Packet:
    """The packet an event came from (mOS ``struct pkt_info`` as
    ``mtcp_getlastpkt`` returns it), copied out of the per-burst packet
    arena: valid after the handler returns.

    ``frame`` holds the captured bytes from the link-layer header on;
    ``l2``, ``ip``, ``tcp`` and ``payload`` are slices of it (``payload``
    is what was captured of the TCP payload).
    """

    __slots__ = (
        "ts",
        "pkt_index",
        "caplen",
        "wirelen",
        "ip_len",
        "payload_len",
        "payload_caplen",
        "seq",
        "ack",
        "window",
        "tcp_flags",
        "family",
        "frame",
        "_l3",
        "_l4",
        "_pl",
        "side",
        "offset",
        "tunnels",
    )

    def __init__(self, c: Any, frame: bytes, side: Side | None, offset: int | None) -> None:
        # c: the cffi ``struct mosfw_packet *`` (native/mosfw_api.h)
        self.ts: float = c.ts  #: capture timestamp (mOS ``cur_ts``)
        self.pkt_index: int = c.pkt_index  #: 1-based index in the input
        self.caplen: int = c.caplen  #: captured frame length
        self.wirelen: int = c.wirelen  #: frame length on the wire (mOS ``eth_len``)
        self.ip_len: int = c.ip_len  #: IP total length as the header says (mOS ``ip_len``)
        self.payload_len: int = c.payload_len  #: TCP payload length (mOS ``payloadlen``)
        self.payload_caplen: int = c.payload_caplen  #: of which captured
        self.seq: int = c.seq  #: sequence number (mOS ``seq``)
        self.ack: int = c.ack  #: acknowledgment number (mOS ``ack_seq``)
        self.window: int = c.window  #: raw window field (mOS ``window``)
        self.tcp_flags: int = c.tcp_flags  #: TCP flags byte
        self.family: int = c.family  #: 4 or 6
        self.frame = frame
        self._l3: int = c.l3_off
        self._l4: int = c.l4_off
        self._pl: int = c.payload_off
        #: the Side that sent it (None from ``Core.last_packet``)
        self.side = side
        #: stream offset of the first payload byte (mOS ``offset``: the
        #: position in the reassembly buffer), None without a buffer
        self.offset = offset
        #: the layers it came through, outermost first (:class:`mosfw.tunnels.Tunnel`;
        #: docs/encapsulation.md); () for a plain packet
        self.tunnels: tuple[Any, ...] = ()

    @property
    def l2(self) -> bytes:
        """The link-layer header (mOS ``ethh``)."""
        return self.frame[: self._l3]

    @property
    def ip(self) -> bytes:
        """The IP header and what follows (mOS ``iph``)."""
        return self.frame[self._l3 :]

    @property
    def ip_header(self) -> bytes:
        """The IP header(s) alone (IPv6: extension headers included)."""
        return self.frame[self._l3 : self._l4]

    @property
    def tcp(self) -> bytes:
        """The TCP header, options included (mOS ``tcph``)."""
        return self.frame[self._l4 : self._pl]

    @property
    def payload(self) -> bytes:
        """The captured TCP payload (mOS ``payload``)."""
        return self.frame[self._pl : self._pl + self.payload_caplen]

    def __repr__(self) -> str:
        return (
            f"<Packet #{self.pkt_index} ts={self.ts:.6f} seq={self.seq} ack={self.ack} "
            f"len={self.payload_len} flags=0x{self.tcp_flags:02x}>"
        )


@attrs.frozen
class StreamInfo:
    """One side's reassembly buffer (``MOS_INFO_CLIBUF``/``MOS_INFO_SVRBUF``).

    Offsets count bytes of the side's stream from 0 = the first byte after
    its ISN (the first payload byte seen when the handshake was not).
    """

    init_seq: int  #: sequence number of offset 0 (mOS ``tcpbi_init_seq``)
    last_byte_read: int  #: offset the consuming read (peek) continues from
    next_byte_expected: int  #: offset one past the in-order bytes
    last_byte_received: int  #: offset one past the highest byte received
    head: int  #: oldest offset still held (older bytes were overwritten)
    size: int  #: capacity in bytes (``rmem_size``)
    lost_bytes: int  #: bytes the consuming read skipped (see Flow.lost_bytes)
    gap_bytes: int  #: bytes given up in gaps (never seen by the tap)
    overrun_bytes: int  #: bytes overwritten before peek reached them
    fragments: int  #: out-of-order fragments held beyond next_byte_expected
    holes: int  #: given-up ranges inside the in-order bytes
    policy: OverlapPolicy  #: the overlap policy

    @property
    def readable(self) -> int:
        """In-order bytes the consuming read has not returned yet
        (holes included)."""
        return max(0, self.next_byte_expected - self.last_byte_read)

    @classmethod
    def from_c(cls, i: Any) -> StreamInfo:
        """From a cffi ``struct mosfw_stream_info *``."""
        return cls(
            init_seq=i.init_seq,
            last_byte_read=i.last_byte_read,
            next_byte_expected=i.next_byte_expected,
            last_byte_received=i.last_byte_received,
            head=i.head,
            size=i.size,
            lost_bytes=i.lost_read,
            gap_bytes=i.lost_gap,
            overrun_bytes=i.lost_overrun,
            fragments=i.nfrags,
            holes=i.nholes,
            policy=OverlapPolicy(i.policy),
        )
