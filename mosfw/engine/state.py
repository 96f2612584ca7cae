"""What the parts of :class:`~mosfw.engine.Core` share: the attributes
``Core.__init__`` sets and the methods one part calls in another,
declared once for type checkers (nothing here exists at run time but
the class itself: bare annotations make no attributes, and the method
declarations are under ``TYPE_CHECKING``).

Each part (dispatch table, callbacks, timers, bytestream, monitor
filters) is a class deriving from :class:`CoreState`; ``Core`` derives
from all of them and sets the attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosfw.engine.view import CoreView
    from mosfw.events import Event, Side
    from mosfw.flow import Flow
    from mosfw.manager import MosfwPluginManager
    from mosfw.runconfig import Config


class CoreState:
    """The state of one core, shared by the parts of ``Core``."""

    # set by Core.__init__ (see there for what each holds)
    id: int
    config: Config
    pm: MosfwPluginManager
    fail_fast: bool
    view: CoreView
    event_mask: int
    stdout_closed: bool
    tick_sink: Callable[[Any, float, dict[str, Any]], None] | None
    _c: Any  # the C core (cdata)
    _cur: list[Event | None]
    _flows: dict[int, Flow]
    _plugin_protos: dict[str, frozenset[str]]
    _flow_protos: dict[int, str]
    _handlers: dict[int, Callable[[Event], None]]
    _plain: dict[int, Callable[[Event], None]] | None
    _timers: dict[int, Any]
    _late: list[Any]
    _next_handle: int
    _core_cbs: dict[Any, list[Any]]
    _flow_cb_keys: set[Any]
    _active: list[Any]
    _ude_roots: dict[int, list[Any]]
    _ude_children: dict[Any, list[Any]]
    _bpf_bits: dict[Any, int]
    _to_drop: list[Flow]
    _stopped_ids: set[int]
    _ended_kept: list[Flow]
    _extra_bits: int
    _pm_mask: int
    _opened: bool
    _bytestream: bool
    _bytestream_asked: bool
    _pbuf: Any
    _pbuf_len: int
    _lost: Any
    _i64: Any
    _tunbuf: Any  # struct mosfw_tunnel[MOSFW_MAX_TUNNELS] (flow_tunnels, packet tunnels)
    _plugin_errors: int
    _reported: set[tuple[str, str]]
    _error_counts: dict[tuple[str, str], int]
    _ude_hook: list[tuple[str, Callable[..., Any]]]
    _timeout_hook: list[tuple[str, Callable[..., Any]]]
    _monitor_filters: dict[int, str]

    if TYPE_CHECKING:
        # -- the methods one part calls in another ---------------------------

        @property
        def now(self) -> float: ...

        def request_stop(self) -> None: ...

        def enable_bytestream(self) -> bool: ...

        def _report(self, plugin: str, hook: str, flow: Flow | None, exc: BaseException) -> None: ...

        def _update_mask(self) -> None: ...

        def _rebuild(self) -> None: ...

        def _call(
            self,
            name: str,
            what: str,
            adapted: Callable[..., Any],
            flow: Flow | None,
            side: Side | None,
            ev: Any,
            uevent: Any,
            data: Any,
            timer: Any = None,
        ) -> None: ...

        def _eval_ude(self, u: Any, rec: Any, flow: Flow | None, side: Side | None, data: Any) -> None: ...

        def _arm_late(self) -> None: ...

        def _fire_late(self, upto: float) -> None: ...

        def _compile_event_filter(self, u: Any, bit: int) -> None: ...

        def _set_monitor_filter(self, which: int, expr: str) -> None: ...
