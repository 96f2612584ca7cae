"""What plugins get of a core: :class:`CoreView`, the documented methods
only.

Hooks (``mosfw_core_start``, ``mosfw_tick``, ``mosfw_tick_result``,
``mosfw_input_end``, ``mosfw_core_finish``, ``mosfw_core_result``) and
callbacks (the ``core`` argument) receive a :class:`CoreView`, not the
driver (:class:`~mosfw.engine.Core`, which the runner owns: ``run()``,
``open()``, the plugin manager, the C handle). Each method is the
driver's, documented there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosfw.api import Packet, Timer
    from mosfw.engine.core import Core
    from mosfw.events import Side
    from mosfw.flow import Flow
    from mosfw.runconfig import Config
    from mosfw.stats import CoreCounters, RunStats

__all__ = ["CoreView"]


class CoreView:
    """One core as plugins see it (``core`` in hooks and callbacks).

    Attributes:
        id: the core number (0-based).
        config: the run's :class:`~mosfw.runconfig.Config`.
    """

    __slots__ = ("_core", "id", "config")

    def __init__(self, core: Core) -> None:
        self._core = core
        self.id: int = core.id
        self.config: Config = core.config

    def __repr__(self) -> str:
        return f"<mosfw core {self.id}>"

    # -- time, counters, input ----------------------------------------------

    @property
    def now(self) -> float:
        """See :attr:`Core.now <mosfw.engine.Core.now>`."""
        return self._core.now

    def stats(self) -> RunStats:
        """See :meth:`Core.stats <mosfw.engine.Core.stats>`."""
        return self._core.stats()

    def api_stats(self) -> dict[str, int]:
        """See :meth:`Core.api_stats <mosfw.engine.Core.api_stats>`."""
        return self._core.api_stats()

    def event_counts(self) -> dict[str, int]:
        """See :meth:`Core.event_counts <mosfw.engine.Core.event_counts>`."""
        return self._core.event_counts()

    def counters(self) -> CoreCounters:
        """See :meth:`Core.counters <mosfw.engine.Core.counters>`."""
        return self._core.counters()

    @property
    def event_mask(self) -> int:
        """The events the engine produces now (``EventType`` bits)."""
        return self._core.event_mask

    @property
    def linktype(self) -> str:
        """The input's link type (``"EN10MB"``, ...)."""
        return self._core.linktype

    @property
    def input_shared(self) -> bool:
        """See :attr:`Core.input_shared <mosfw.engine.Core.input_shared>`."""
        return self._core.input_shared

    def input_offset(self) -> int:
        """See :meth:`Core.input_offset <mosfw.engine.Core.input_offset>`."""
        return self._core.input_offset()

    def request_stop(self) -> None:
        """See :meth:`Core.request_stop <mosfw.engine.Core.request_stop>`."""
        self._core.request_stop()

    # -- flows ------------------------------------------------------------------

    @property
    def flows(self) -> dict[int, Flow]:
        """See :attr:`Core.flows <mosfw.engine.Core.flows>`."""
        return self._core.flows

    def live_flows(self) -> list[Flow]:
        """See :meth:`Core.live_flows <mosfw.engine.Core.live_flows>`."""
        return self._core.live_flows()

    def live_rows(self) -> list[tuple[str, str, int, int, float, int, int]]:
        """See :meth:`Core.live_rows <mosfw.engine.Core.live_rows>`."""
        return self._core.live_rows()

    def keep_recent_ends(self, n: int) -> None:
        """See :meth:`Core.keep_recent_ends <mosfw.engine.Core.keep_recent_ends>`."""
        self._core.keep_recent_ends(n)

    def recent_ends(self) -> list[tuple[float, Flow]]:
        """See :meth:`Core.recent_ends <mosfw.engine.Core.recent_ends>`."""
        return self._core.recent_ends()

    def attach_observer(self, address: int, after_burst: Callable[[], None] | None = None) -> None:
        """See :meth:`Core.attach_observer <mosfw.engine.Core.attach_observer>`."""
        self._core.attach_observer(address, after_burst)

    @property
    def slots(self) -> int:
        """See :attr:`Core.slots <mosfw.engine.Core.slots>`."""
        return self._core.slots

    # -- the mOS API ------------------------------------------------------------

    def enable_bytestream(self) -> bool:
        """See :meth:`Core.enable_bytestream <mosfw.engine.Core.enable_bytestream>`."""
        return self._core.enable_bytestream()

    def set_monitor_filter(self, syn: str | None = None, orphan: str | None = None) -> None:
        """See :meth:`Core.set_monitor_filter <mosfw.engine.Core.set_monitor_filter>`."""
        self._core.set_monitor_filter(syn=syn, orphan=orphan)

    def last_packet(self) -> Packet | None:
        """See :meth:`Core.last_packet <mosfw.engine.Core.last_packet>`."""
        return self._core.last_packet()

    def register(self, event: Any, callback: Callable) -> None:
        """See :meth:`Core.register <mosfw.engine.Core.register>`."""
        self._core.register(event, callback)

    def unregister(self, event: Any, callback: Callable | None = None) -> None:
        """See :meth:`Core.unregister <mosfw.engine.Core.unregister>`."""
        self._core.unregister(event, callback)

    def subscribe(self, *events: Any) -> None:
        """See :meth:`Core.subscribe <mosfw.engine.Core.subscribe>`."""
        self._core.subscribe(*events)

    def raise_event(
        self, event: Any, flow: Flow | None = None, side: Side | None = None, data: Any = None
    ) -> None:
        """See :meth:`Core.raise_event <mosfw.engine.Core.raise_event>`."""
        self._core.raise_event(event, flow=flow, side=side, data=data)

    def settimer(
        self,
        seconds: float,
        callback: Callable | None = None,
        *,
        data: Any = None,
        flow: Flow | None = None,
        timer_id: Any = None,
    ) -> Timer:
        """See :meth:`Core.settimer <mosfw.engine.Core.settimer>`."""
        return self._core.settimer(seconds, callback, data=data, flow=flow, timer_id=timer_id)
