"""Timers (``mtcp_settimer``) of a core, on input time."""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Any

from mosfw._native import lib
from mosfw.engine.adapt import adapt_callback
from mosfw.engine.dispatch import _NO_SLOT
from mosfw.engine.state import CoreState
from mosfw.events import Event, EventType
from mosfw.flow import Flow


class _Timers(CoreState):
    """Timers (a part of :class:`~mosfw.engine.Core`)."""

    # -- timers ------------------------------------------------------------------

    def settimer(
        self,
        seconds: float,
        callback: Callable | None = None,
        *,
        data: Any = None,
        flow: Flow | None = None,
        timer_id: Any = None,
    ):
        """A one-shot timer (``mtcp_settimer``): fires ``seconds`` after
        now -- the time of the event being dispatched, on input time
        (packet time when reading a file, wall time live). Set before the
        first packet of a file, it counts from that packet's time.

        When it fires (a TIMEOUT record, ordered before the first packet
        at or after its deadline), ``callback`` is called with any of
        ``flow``, ``data``, ``timer``, ``event``, ``core`` by name, or,
        without a callback, the :func:`~mosfw.hookspecs.mosfw_timeout`
        hook. A per-flow timer (``flow=``, or :meth:`Flow.settimer
        <mosfw.flow.Flow.settimer>`) is dropped when its flow ends first.
        Timers still pending when the input ends do not fire. A deadline
        that falls inside the batch already read (the engine reads ahead
        of dispatch) fires while that batch is dispatched, before its
        first record at or after the deadline, or at the end of the batch
        when no such record is left (its record carries its deadline as
        ``ts``).

        :return: a :class:`~mosfw.api.Timer` (``timer.cancel()``).
        """
        from mosfw.api import Timer

        seconds = float(seconds)
        if not seconds >= 0:
            raise ValueError(f"settimer: seconds must be >= 0, not {seconds!r}")
        rec = self._cur[0]
        if rec is not None:
            deadline = rec[0] + seconds
        else:
            now = lib.mosfw_core_now(self._c)
            if now == 0.0 and self.config.interface:
                now = time.time()
            deadline = now + seconds  # offline before the first packet: C counts from it
        slot, fid = (_NO_SLOT, 0) if flow is None else (flow.slot, flow.id)
        handle = self._next_handle
        self._next_handle = handle % 0xFFFFFFFF + 1
        t = Timer(handle, deadline, flow, callback, data, timer_id, core=self)
        if rec is not None and deadline <= lib.mosfw_core_now(self._c):
            # the engine already read past the deadline in this batch: fire
            # it here, before the first record at or after it
            heapq.heappush(self._late, (deadline, handle, t))
            self._arm_late()
        elif lib.mosfw_core_timer_add(self._c, deadline, slot, fid, handle) < 0:
            raise RuntimeError("settimer: the flow is gone or out of memory")
        if callback is not None:
            t._adapted = adapt_callback(callback)
        self._timers[handle] = t
        if flow is not None:
            if flow.host_timers is None:
                flow.host_timers = {}
            flow.host_timers[handle] = t
        if not self.event_mask & int(EventType.TIMEOUT):
            self._update_mask()
        return t

    def _arm_late(self) -> None:
        """Route every record through a check of the late timers (only
        while there are some: the plain handlers come back after)."""
        if self._plain is not None:
            return
        plain = dict(self._handlers)
        self._plain = plain
        late = self._late
        fire = self._fire_late

        def wrap(h):
            def checked(rec) -> None:
                if late and rec[0] >= late[0][0]:
                    fire(rec[0])
                h(rec)

            return checked

        self._handlers.update({bit: wrap(h) for bit, h in plain.items()})

    def _fire_late(self, upto: float) -> None:
        late, cur = self._late, self._cur
        plain = self._plain or self._handlers
        outer = cur[0]
        while late and late[0][0] <= upto:
            deadline, handle, t = heapq.heappop(late)
            if t.cancelled or (t.flow is not None and (t.flow.ended or t.flow.host_stopped == 3)):
                self._timers.pop(handle, None)
                continue
            fid, slot = (t.flow.id, t.flow.slot) if t.flow is not None else (0, _NO_SLOT)
            rec = Event(
                (
                    deadline,
                    fid,
                    slot,
                    int(EventType.TIMEOUT),
                    handle,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                )
            )
            cur[0] = rec
            plain[int(EventType.TIMEOUT)](rec)
        cur[0] = outer
        if not late and self._plain is not None:
            self._handlers.update(self._plain)
            self._plain = None
