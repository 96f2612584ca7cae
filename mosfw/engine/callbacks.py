"""Callbacks (``mtcp_register_callback``) and user-defined events
(``mtcp_define_event``, ``mtcp_raise_event``) of a core."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mosfw._native import ffi, lib
from mosfw.engine.adapt import adapt_callback
from mosfw.engine.dispatch import _NO_SLOT, _unmonitored
from mosfw.engine.errors import EngineError
from mosfw.engine.state import CoreState
from mosfw.events import SIDES, Event, EventType, Side
from mosfw.flow import Flow


def _key(event) -> Any:
    """The registry key of an event: the int bit of an EventType, or the
    UserEvent itself."""
    from mosfw.api import UserEvent

    if isinstance(event, UserEvent):
        return event
    if isinstance(event, EventType) and bin(int(event)).count("1") == 1:
        return int(event)
    raise TypeError(f"not a single EventType or a UserEvent: {event!r}")


class _Callbacks(CoreState):
    """Callbacks and user-defined events (a part of :class:`~mosfw.engine.Core`)."""

    # -- callbacks and user-defined events -----------------------------------------

    def register(self, event, callback: Callable) -> None:
        """Call ``callback`` whenever ``event`` fires, on every flow
        (``mtcp_register_callback`` on the monitoring socket): ``event`` is
        an ``EventType`` or a :class:`~mosfw.api.UserEvent`; arguments by
        name as in :mod:`mosfw.api`. Takes effect for the events produced
        after the current batch (the engine starts producing an event
        nobody subscribed to before)."""
        name = getattr(callback, "__qualname__", repr(callback))
        self._add_callback(event, callback, adapt_callback(callback), name)
        self._update_mask()
        self._rebuild()

    def subscribe(self, *events) -> None:
        """Have the engine produce these built-in events (``EventType``
        bits) from now on, although no hook implements them: callbacks
        that :meth:`Flow.register <mosfw.flow.Flow.register>` adds at run
        time then see them from the first packet. (An event nobody
        subscribed to is never produced; registering for it at run time
        subscribes it, but only for the packets read after the current
        batch.) Subscribing to CONN_NEW_DATA turns reassembly buffers on."""
        for e in events:
            self._extra_bits |= int(e)
        self._update_mask()

    def unregister(self, event, callback: Callable | None = None) -> None:
        """Undo :meth:`register` (every callback of ``event`` when
        ``callback`` is None)."""
        key = _key(event)
        lst = self._core_cbs.get(key)
        if not lst:
            return
        lst[:] = [x for x in lst if callback is not None and x[1] != callback]
        if not lst:
            del self._core_cbs[key]
        self._update_mask()
        self._rebuild()

    def _add_callback(self, event, fn, adapted, name: str) -> None:
        key = _key(event)
        lst = self._core_cbs.setdefault(key, [])
        if any(x[1] == fn for x in lst):
            return
        lst.append((name, fn, adapted))
        if not isinstance(key, int):
            self._activate(key)

    def flow_register(self, flow: Flow, event, callback) -> None:
        key = _key(event)
        if flow.host_callbacks is None:
            flow.host_callbacks = {}
        lst = flow.host_callbacks.setdefault(key, [])
        if any(x[1] == callback for x in lst):
            return
        lst.append((getattr(callback, "__qualname__", repr(callback)), callback, adapt_callback(callback)))
        if not isinstance(key, int):
            self._activate(key)
        if key not in self._flow_cb_keys:
            self._flow_cb_keys.add(key)
            self._update_mask()
            self._rebuild()

    def flow_unregister(self, flow: Flow, event, callback) -> None:
        key = _key(event)
        if not flow.host_callbacks:
            return
        lst = flow.host_callbacks.get(key)
        if not lst:
            return
        lst[:] = [x for x in lst if callback is not None and x[1] != callback]
        if not lst:
            del flow.host_callbacks[key]

    def _activate(self, u) -> None:
        """Make a user-defined event (and the ones it derives from) live in
        this core: its filter is evaluated when its base fires."""
        from mosfw.api import UserEvent

        if u in self._active:
            return
        if isinstance(u.base, UserEvent):
            self._activate(u.base)
            self._ude_children.setdefault(u.base, []).append(u)
        elif u.base is not None:
            self._ude_roots.setdefault(int(u.base), []).append(u)
        self._active.append(u)
        if u.bpf:
            used = set(self._bpf_bits.values())
            free = [b for b in range(lib.MOSFW_FILTER_EVENTS) if b not in used]
            if not free:
                raise EngineError(f"{u.name}: at most {lib.MOSFW_FILTER_EVENTS} BPF-filtered events per core")
            self._bpf_bits[u] = free[0]
            if self._opened:
                self._compile_event_filter(u, free[0])
        if hasattr(self, "_c"):
            self._update_mask()
            self._rebuild()

    def _compile_event_filter(self, u, bit: int) -> None:
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        if lib.mosfw_core_set_filter(self._c, bit, int(u.root), u.bpf.encode(), err) < 0:
            raise EngineError(f"user event {u.name}: {ffi.string(err).decode(errors='replace')}")

    def raise_event(
        self, event, flow: Flow | None = None, side: Side | None = None, data: Any = None
    ) -> None:
        """Raise a user event now (``mtcp_raise_event``): its callbacks run
        at once (before this call returns), with ``flow``, ``side`` and
        ``data``; events derived from it are then evaluated (their filters
        see ``data`` too). ``event`` is an :func:`~mosfw.api.alloc_event`
        event or any :class:`~mosfw.api.UserEvent` (its own filter is not
        applied: raising is the app's decision). The ``event`` argument
        callbacks get is the record being dispatched (outside dispatch, a
        TICK-typed record carrying only the time)."""
        from mosfw.api import UserEvent

        if not isinstance(event, UserEvent):
            raise TypeError(f"raise_event: {event!r} is not a UserEvent (see mosfw.api.alloc_event)")
        self._activate(event)
        rec = self._cur[0]
        if rec is None:
            rec = Event(
                (self.now, 0, _NO_SLOT, int(EventType.TICK), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            )
        if side is None:
            side = SIDES[rec[8]]
        self._fire_ude(event, rec, flow, side, data)

    def _call(self, name: str, what: str, adapted, flow, side, ev, uevent, data, timer=None) -> None:
        try:
            adapted(flow, side, ev, uevent, data, self.view, timer)
        except BaseException as e:  # noqa: BLE001 - reported, engine goes on
            self._report(name, what, flow, e)

    def _fire_ude(self, u, rec, flow, side, data) -> None:
        what = f"callback of {u.name}"
        for name, _fn, ad in self._core_cbs.get(u, ()):
            self._call(name, what, ad, flow, side, rec, u, data)
        if flow is not None and flow.host_callbacks:
            for name, _fn, ad in list(flow.host_callbacks.get(u, ())):
                self._call(name, what, ad, flow, side, rec, u, data)
        for name, fn in self._ude_hook:
            try:
                fn(flow, side, rec, u, data)
            except BaseException as e:  # noqa: BLE001
                self._report(name, "mosfw_user_event", flow, e)
        for child in self._ude_children.get(u, ()):
            self._eval_ude(child, rec, flow, side, data)

    def _eval_ude(self, u, rec, flow, side, data) -> None:
        if flow is not None and flow.host_stopped and _unmonitored(flow, side):
            return
        bit = self._bpf_bits.get(u)
        if bit is not None and not (rec[18] >> bit) & 1:
            return
        if u._fn is not None:
            try:
                if not u._fn(flow, side, rec, u, data, self.view, None):
                    return
            except BaseException as e:  # noqa: BLE001
                self._report(getattr(u.filter, "__module__", None) or u.name, f"filter of {u.name}", flow, e)
                return
        self._fire_ude(u, rec, flow, side, data)
