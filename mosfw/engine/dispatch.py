"""The dispatch table of a core: one handler per event type, built from
the plugins' hook implementations (resolved once from pluggy), the
callbacks and the user-defined events attached to each event, and the
plugin error reports.
"""

from __future__ import annotations

from collections.abc import Callable
from sys import getrefcount
from typing import TYPE_CHECKING

from mosfw._native import lib
from mosfw.engine.adapt import call_text
from mosfw.engine.errors import PluginError, output_closed, raised_at
from mosfw.engine.protocols import IP_PROTO_NAMES, ProtoView, route_by_protocol
from mosfw.engine.state import CoreState
from mosfw.events import ERRORS, REASONS, SIDES, STATES, EventType
from mosfw.flow import Flow, _addr
from mosfw.manager import raised_by
from mosfw.plugin_faults import check_interrupt, describe

if TYPE_CHECKING:
    from mosfw.flowhost import FlowHost

_NO_SLOT = 0xFFFFFFFF
#: events whose records name a flow (subscribing to any needs CONN_END)
_FLOW_BITS = int(
    EventType.PKT_IN
    | EventType.CONN_START
    | EventType.TCP_STATE_CHANGE
    | EventType.CONN_NEW_DATA
    | EventType.REXMIT
    | EventType.CONN_END
    | EventType.ERROR
)
#: default reassembly buffer size (mOS's rmem_size default)


#: what each argument of the side hooks (flow, side, event) is, in a
#: handler whose record is ``rec``
_SIDE_ARGS = {"flow": "flow", "side": "SIDES[rec[8]]", "event": "rec"}
_ONE_SIDE_HANDLER = """\
def handle(rec):
    flow = get(rec[1])
    if flow is None:
        flow = get_flow(rec)
        if flow is None:
            return
    try:
        fn({call})
    except BaseException as e:  # reported, the engine goes on
        report(name, hook, flow, e)
"""


def _one_side_handler(name, hook, fn, argnames, get, get_flow, report) -> Callable:
    """The record handler of a side event (pkt_in, conn_start,
    conn_new_data, rexmit) with one subscriber, calling it with just the
    arguments it declared: one Python call per record fewer than through
    an adapter (a PKT_IN subscriber makes one per packet). The argument
    names come from the hookspec, which pluggy checked them against."""
    if not all(a in _SIDE_ARGS for a in argnames):
        raise ValueError(f"{hook}: unexpected argument names {argnames!r}")
    src = _ONE_SIDE_HANDLER.format(call=call_text(argnames, _SIDE_ARGS))
    ns = {
        "get": get,
        "get_flow": get_flow,
        "report": report,
        "fn": fn,
        "name": name,
        "hook": hook,
        "SIDES": SIDES,
    }
    exec(compile(src, f"<mosfw {hook} handler>", "exec"), ns)  # noqa: S102 - the text above, hookspec names
    return ns["handle"]


def _unmonitored(flow: Flow, side) -> bool:
    """The flow, or this side of it, was stopped (MOS_STOP_MON)."""
    return flow.host_stopped == 3 or bool(flow.host_stopped >> int(side) & 1)


class _DispatchTable(CoreState):
    """Building the dispatch table (a part of :class:`~mosfw.engine.Core`)."""

    # -- dispatch ---------------------------------------------------------------

    def _report(self, plugin: str, hook: str, flow, exc: BaseException) -> None:
        check_interrupt(exc)  # a real Ctrl-C is not the plugin's: it goes on up
        if isinstance(exc, BrokenPipeError) and output_closed(self.config.stdout):
            # the reader of stdout went away (`mosfw run ... | head`): not
            # a plugin error; the run finishes (the runner says so)
            self.stdout_closed = True
            self.request_stop()
            return
        plugin = raised_by(exc, plugin)
        self._plugin_errors += 1
        key = (plugin, hook)
        self._error_counts[key] = self._error_counts.get(key, 0) + 1
        if self.fail_fast:
            raise PluginError(f"plugin {plugin!r} raised in {hook}: {describe(exc)}") from exc
        if key in self._reported:
            return
        self._reported.add(key)
        where = ""
        if flow is not None:
            where = f" for flow {flow.client_str} -> {flow.server_str}"
        seg = getattr(self.config, "segment", None)  # a --dask task: its segment, not "core 0"
        who = f"segment {seg[0]}" if seg else f"core {self.id}"
        print(
            f"mosfw: {who}: plugin {plugin!r} raised in {hook}{where}: "
            f"{describe(exc)}{raised_at(exc)} (further errors from it in {hook} are only counted)",
            file=self.config.stderr,
        )

    def _compute_mask(self) -> int:
        mask = self._pm_mask | self._extra_bits
        for key in list(self._core_cbs) + list(self._flow_cb_keys):
            if isinstance(key, int):
                mask |= key
        for bit in self._ude_roots:
            mask |= bit
        if self._timers or self._timeout_hook:
            mask |= int(EventType.TIMEOUT)
        if mask & _FLOW_BITS:
            mask |= int(EventType.CONN_END)  # per-flow state is dropped there
        return mask

    def _filter_only(self) -> int:
        """Event bits wanted only by BPF-filtered user events: the engine
        then keeps just the records whose packet matched (Python never
        sees the others)."""
        bits = 0
        for bit, roots in self._ude_roots.items():
            if (
                roots
                and all(u in self._bpf_bits for u in roots)
                and not (
                    (self._pm_mask | self._extra_bits) & bit
                    or bit in self._core_cbs
                    or bit in self._flow_cb_keys
                    or bit == int(EventType.CONN_END)
                )
            ):
                bits |= bit
        return bits

    def _update_mask(self) -> None:
        mask = self._compute_mask()
        if self._timers:
            mask |= int(EventType.TIMEOUT)
        lib.mosfw_core_set_filter_only(self._c, self._filter_only())
        if mask != self.event_mask:
            self.event_mask = mask
            lib.mosfw_core_set_event_mask(self._c, mask)

    def _rebuild(self) -> None:
        """(Re)build the dispatch table in place (run() holds a reference)."""
        new = self._build_handlers()
        self._handlers.clear()
        self._handlers.update(new)
        if self._plain is not None:  # late timers pending: keep checking
            self._plain = None
            self._arm_late()

    def _extras(self, bit: int) -> Callable | None:
        """What runs after the hooks for an event: callbacks registered for
        it (core-wide and per flow) and the user events derived from it."""
        core_cbs = tuple(self._core_cbs.get(bit, ()))
        roots = tuple(self._ude_roots.get(bit, ()))
        per_flow = bit in self._flow_cb_keys
        if not (core_cbs or roots or per_flow):
            return None
        uevent = EventType(bit)
        call, eval_ude = self._call, self._eval_ude
        what = f"callback of {uevent.name}"

        def extra(rec, flow) -> None:
            side = SIDES[rec[8]]
            for name, _fn, ad in core_cbs:
                if flow is not None and flow.host_stopped and _unmonitored(flow, side):
                    return
                call(name, what, ad, flow, side, rec, uevent, None)
            if flow is not None and flow.host_stopped and _unmonitored(flow, side):
                return
            if per_flow and flow is not None and flow.host_callbacks:
                for name, _fn, ad in list(flow.host_callbacks.get(bit, ())):
                    call(name, what, ad, flow, side, rec, uevent, None)
            for u in roots:
                eval_ude(u, rec, flow, side, None)

        return extra

    def _build_handlers(self) -> dict[int, Callable]:
        """The table for TCP flows from every plugin; with UDP/ICMP tracked,
        records about those flows go to tables built from the plugins that
        asked for them (mosfw.engine.protocols)."""
        base = self._build_for(self.pm)
        asked = self._plugin_protos
        if not asked:
            return base
        by_name: dict[str, dict[int, Callable]] = {}
        for name in sorted({n for names in asked.values() for n in names}):
            view = ProtoView(self.pm, {p for p, names in asked.items() if name in names})
            by_name[name] = self._build_for(view)
        kinds = self._flow_protos
        c, flow_rec = self._c, lib.mosfw_core_flow
        end_bit = int(EventType.CONN_END)

        def proto_of(rec) -> str:
            p = kinds.get(rec[1])
            if p is None:
                p = kinds[rec[1]] = IP_PROTO_NAMES.get(flow_rec(c, rec[2]).tuple.proto, "other")
            if rec[3] == end_bit:
                del kinds[rec[1]]
            return p

        bits = (EventType.PKT_IN, EventType.CONN_START, EventType.CONN_END, EventType.ERROR)
        return route_by_protocol(base, by_name, tuple(int(b) for b in bits), proto_of)

    def _build_for(self, pm) -> dict[int, Callable]:
        flows = self._flows
        c = self._c
        core_id = self.id
        flow_rec = lib.mosfw_core_flow
        report = self._report
        handlers: dict[int, Callable] = {}

        stopped = self._stopped_ids
        host: FlowHost = self  # type: ignore[assignment]  # Core is one (with the other parts)

        def get_flow(rec) -> Flow | None:
            f = flows.get(rec[1])
            if f is None:
                if stopped and rec[1] in stopped:
                    return None  # not monitored any more: this batch's records are skipped
                f = Flow(flow_rec(c, rec[2]), rec[1], core_id, host, rec[2])
                flows[rec[1]] = f
            return f

        def side_event(hook: str, bit: int) -> Callable | None:
            calls = pm.direct_callers(hook)
            extra = self._extras(bit)
            get = flows.get
            if not calls and extra is None:
                return None
            if len(calls) == 1 and extra is None and not pm.through_pluggy(hook):
                # the common case, one subscriber: no loop, and the
                # implementation called with just the arguments it declared
                ((name, fn, argnames),) = pm.direct_impls(hook)
                return _one_side_handler(name, hook, fn, argnames, get, get_flow, report)

            def handle(rec) -> None:
                flow = get(rec[1])
                if flow is None:
                    flow = get_flow(rec)
                    if flow is None:
                        return
                side = SIDES[rec[8]]
                for name, fn in calls:
                    try:
                        fn(flow, side, rec)
                    except BaseException as e:  # noqa: BLE001 - reported, engine goes on
                        report(name, hook, flow, e)
                if extra is not None:  # callbacks, user-defined events
                    extra(rec, flow)

            return handle

        for hook, bit in (
            ("mosfw_pkt_in", EventType.PKT_IN),
            ("mosfw_conn_start", EventType.CONN_START),
            ("mosfw_conn_new_data", EventType.CONN_NEW_DATA),
            ("mosfw_rexmit", EventType.REXMIT),
        ):
            h = side_event(hook, int(bit))
            if h:
                handlers[int(bit)] = h

        calls_sc = pm.direct_callers("mosfw_tcp_state_change")
        extra_sc = self._extras(int(EventType.TCP_STATE_CHANGE))
        if calls_sc or extra_sc:

            def on_state_change(rec) -> None:
                flow = get_flow(rec)
                if flow is None:
                    return
                side, old, new = SIDES[rec[8]], STATES[rec[9]], STATES[rec[10]]
                for name, fn in calls_sc:
                    try:
                        fn(flow, side, old, new, rec)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_tcp_state_change", flow, e)
                if extra_sc:
                    extra_sc(rec, flow)

            handlers[int(EventType.TCP_STATE_CHANGE)] = on_state_change

        calls_end = pm.direct_callers("mosfw_conn_end")
        extra_end = self._extras(int(EventType.CONN_END))
        timers = self._timers
        ended = self._ended_kept

        def on_conn_end(rec) -> None:
            flow = flows.pop(rec[1], None)
            if flow is None:
                if stopped and rec[1] in stopped:
                    return
                flow = Flow(flow_rec(c, rec[2]), rec[1], core_id, host, rec[2])
            if calls_end or extra_end:
                reason = REASONS[rec[11]]
                for name, fn in calls_end:
                    try:
                        fn(flow, reason, rec)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_conn_end", flow, e)
                if extra_end:
                    extra_end(rec, flow)
            if flow.host_timers:
                for h in flow.host_timers:
                    timers.pop(h, None)
            flow.host_end()
            if getrefcount(flow) > 2:  # a plugin kept it: copied if still kept when the batch ends
                ended.append(flow)

        handlers[int(EventType.CONN_END)] = on_conn_end

        calls_orphan = pm.direct_callers("mosfw_orphan")
        extra_orphan = self._extras(int(EventType.ORPHAN))
        if calls_orphan or extra_orphan:

            def on_orphan(rec) -> None:
                t = lib.mosfw_core_orphan_tuple(c, rec[2])
                src = (_addr(t.cli_addr, t.family), t.cli_port)
                dst = (_addr(t.srv_addr, t.family), t.srv_port)
                for name, fn in calls_orphan:
                    try:
                        fn(rec, src, dst)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_orphan", None, e)
                if extra_orphan:
                    extra_orphan(rec, None)

            handlers[int(EventType.ORPHAN)] = on_orphan

        calls_err = pm.direct_callers("mosfw_error")
        extra_err = self._extras(int(EventType.ERROR))
        if calls_err or extra_err:

            def on_error(rec) -> None:
                flow = get_flow(rec) if rec[1] else None
                if flow is None and rec[1]:
                    return
                code = ERRORS.get(rec[11])
                for name, fn in calls_err:
                    try:
                        fn(flow, code, rec)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_error", flow, e)
                if extra_err:
                    extra_err(rec, flow)

            handlers[int(EventType.ERROR)] = on_error

        calls_tick = pm.direct_callers("mosfw_tick")
        calls_tick_result = pm.direct_callers("mosfw_tick_result")
        extra_tick = self._extras(int(EventType.TICK))
        if calls_tick or extra_tick or calls_tick_result:
            view = self.view

            def on_tick(rec) -> None:
                for name, fn in calls_tick:
                    try:
                        fn(view, rec[0])
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_tick", None, e)
                if calls_tick_result:
                    values = {}
                    for name, fn in calls_tick_result:
                        try:
                            value = fn(view, rec[0])
                        except BaseException as e:  # noqa: BLE001
                            report(name, "mosfw_tick_result", None, e)
                            continue
                        if value is not None:
                            values[name] = value
                    if self.tick_sink is not None:
                        self.tick_sink(self, rec[0], values)
                if extra_tick:
                    extra_tick(rec, None)

            handlers[int(EventType.TICK)] = on_tick

        timeout_hook = self._timeout_hook
        extra_timeout = self._extras(int(EventType.TIMEOUT))
        call = self._call

        def on_timeout(rec) -> None:
            t = timers.pop(rec[4], None)
            if t is None or t.cancelled:
                return
            t.fired = True
            flow = t.flow
            if flow is not None and flow.host_timers:
                flow.host_timers.pop(t.handle, None)
            if t.callback is not None:
                call(
                    getattr(t.callback, "__qualname__", "timer"),
                    "timer callback",
                    t._adapted,
                    flow,
                    None,
                    rec,
                    EventType.TIMEOUT,
                    t.data,
                    t,
                )
            else:
                for name, fn in timeout_hook:
                    try:
                        fn(flow, t, t.data, rec)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_timeout", flow, e)
            if extra_timeout:
                extra_timeout(rec, flow)

        handlers[int(EventType.TIMEOUT)] = on_timeout

        ignore = lambda rec: None  # noqa: E731 - subscribed only for cleanup
        for bit in EventType:
            handlers.setdefault(int(bit), ignore)
        return handlers

    def flow_stop_monitoring(self, flow: Flow, sides: int) -> None:
        if lib.mosfw_core_stop_monitor(self._c, flow.slot, flow.id, sides) < 0:
            return
        flow.host_stopped |= sides
        if flow.host_stopped == 3:
            # gone for Python at once: the rest of this batch's records
            # about it are skipped; its state goes at the end of the batch
            if self._flows.get(flow.id) is flow:
                del self._flows[flow.id]
            self._stopped_ids.add(flow.id)
            self._to_drop.append(flow)

    def _drop_stopped(self) -> None:
        for flow in self._to_drop:
            if flow.host_timers:
                for h in list(flow.host_timers):
                    self._timers.pop(h, None)
            flow.host_detach()
        self._to_drop.clear()
        self._stopped_ids.clear()

    def _call_lifecycle(self, hook: str, *args) -> None:
        for name, fn in self.pm.direct_callers(hook):
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001
                self._report(name, hook, None, e)
