"""What a :class:`~mosfw.flow.Flow` needs from the core that owns it.

:class:`FlowHost` is the whole of what a live flow asks its core; the
engine's :class:`~mosfw.engine.Core` implements it with public
``flow_*`` methods (and ``settimer``/``raise_event``), and a Flow uses
nothing else of it. A test double or another engine can host flows by
implementing these methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mosfw.api import Packet, StreamInfo, Timer
    from mosfw.events import Side
    from mosfw.flow import Flow

__all__ = ["FlowHost"]


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
