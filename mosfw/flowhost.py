"""What a :class:`~mosfw.flow.Flow` needs from the core that owns it.

:class:`FlowHost` is the whole of what a live flow asks its core; the
engine's :class:`~mosfw.engine.Core` implements it with public
``flow_*`` methods (and ``settimer``/``raise_event``), and a Flow uses
nothing else of it. A test double or another engine can host flows by
implementing these methods.

:class:`HostedFlow` is the other direction: what the core uses of a Flow
beyond its public accessors (the host side it keeps in the flow). Neither
side touches the other's private members (tests/unit/test_flowhost.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mosfw.api import Packet, StreamInfo, Timer
    from mosfw.events import Side
    from mosfw.flow import Flow

__all__ = ["FlowHost", "HostedFlow"]


class FlowHost(Protocol):
    """What a :class:`~mosfw.flow.Flow` needs from the core that owns it:
    all a live flow asks its core, and nothing else
    (:class:`mosfw.engine.Core` implements it). Each method answers for
    one flow, ``flow``, which the host owns; ``side`` is 0 (client) or 1
    (server). A flow that ended or was detached asks nothing: its own
    state answers.
    """

    def flow_peek(self, flow: Flow, side: int, n: int | None, with_lost: bool) -> bytes | tuple[int, bytes]:
        """:meth:`Flow.peek`: ``bytes``, or ``(lost, bytes)`` with ``with_lost``."""

    def flow_ppeek(self, flow: Flow, side: int, offset: int, n: int) -> bytes:
        """:meth:`Flow.ppeek`."""

    def flow_stream_info(self, flow: Flow, side: int) -> StreamInfo | None:
        """:meth:`Flow.stream_info`."""

    def flow_fragments(self, flow: Flow, side: int) -> list[tuple[int, int]]:
        """:meth:`Flow.fragments`."""

    def flow_stream_offset(self, flow: Flow, side: int, seq: int) -> int | None:
        """:meth:`Flow.stream_offset`."""

    def flow_set_overlap(self, flow: Flow, side: int, policy: int) -> None:
        """:meth:`Flow.set_overlap_policy` (``policy``: an OverlapPolicy value)."""

    def flow_last_packet(self, flow: Flow) -> Packet | None:
        """:meth:`Flow.last_packet`: the packet of the event being
        dispatched when it is about ``flow``."""

    def flow_tunnels(self, flow: Flow) -> tuple[Any, ...]:
        """:attr:`Flow.tunnels`: the layers stored when the flow was created."""

    def flow_register(self, flow: Flow, event: Any, callback: Any) -> None:
        """:meth:`Flow.register`."""

    def flow_unregister(self, flow: Flow, event: Any, callback: Any) -> None:
        """:meth:`Flow.unregister`."""

    def flow_stop_monitoring(self, flow: Flow, sides: int) -> None:
        """:meth:`Flow.stop_monitoring` (``sides``: bit 1 client, bit 2 server)."""

    def settimer(
        self,
        seconds: float,
        callback: Any = None,
        *,
        data: Any = None,
        flow: Flow | None = None,
        timer_id: Any = None,
    ) -> Timer:
        """:meth:`Flow.settimer` (with ``flow``)."""

    def raise_event(
        self, event: Any, flow: Flow | None = None, side: Side | None = None, data: Any = None
    ) -> None:
        """:meth:`Flow.raise_event` (with ``flow``)."""


class HostedFlow(Protocol):
    """What the core that owns a :class:`~mosfw.flow.Flow` uses of it
    besides the public accessors: the host side, kept in the flow so that
    the per-event checks cost one attribute load. Plugins never touch it.
    """

    #: the flow's slot in its core's table
    slot: int
    #: per-flow callbacks (``Flow.register``): {event key: [(name, fn, adapted)]}; None: none
    host_callbacks: dict[Any, list[Any]] | None
    #: the flow's pending timers: {handle: Timer}; None: none
    host_timers: dict[int, Any] | None
    #: ``MOS_STOP_MON`` bits: 1 client side stopped, 2 server side
    host_stopped: int

    @property
    def ended(self) -> bool:
        """The flow's CONN_END was dispatched."""

    @property
    def record(self) -> Any:
        """The flow's ``struct mosfw_flow`` (cffi cdata)."""

    def host_end(self) -> None:
        """After the flow's CONN_END was dispatched: drop its context,
        callbacks and timers; the record stays readable until the batch ends."""

    def host_detach(self) -> None:
        """Both sides stopped: keep a private copy of the record, drop the
        context, forget the host."""

    def host_keep_record(self) -> None:
        """The batch that ended the flow is over and a view is still held:
        keep a private copy of the record (the table slot will be reused)."""
