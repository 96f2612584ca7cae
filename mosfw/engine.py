"""One core: drives the C event loop and dispatches its events to plugins.

The C loop (``mosfw_core_run``) reads a bounded burst of packets with the
GIL released and fills a preallocated array of event records; this
module unpacks the array in bulk and calls the plugins' hook
implementations directly (resolved once from pluggy, in pluggy's order).
No Python code runs per packet unless a plugin implements
``mosfw_pkt_in``.
"""

from __future__ import annotations

import time
import traceback
from typing import Callable

from mosfw._native import ffi, lib
from mosfw.events import (
    ERRORS,
    EVENT_STRUCT,
    REASONS,
    SIDES,
    STATES,
    Event,
    EventType,
)
from mosfw.flow import Flow, _addr
from mosfw.options import Config
from mosfw.stats import RunStats

__all__ = ["Core", "EngineError", "InputError", "PluginError", "RunResult"]

EVENT_CAPACITY = 8192
_FINAL = {lib.MOSFW_RUN_DONE: "done", lib.MOSFW_RUN_ERROR: "error", lib.MOSFW_RUN_STOPPED: "stopped"}


class EngineError(Exception):
    """The engine could not be set up (bad settings, out of memory)."""


class InputError(EngineError):
    """The input could not be opened (missing file, not a capture, bad
    BPF filter, missing interface, no permission)."""


class PluginError(Exception):
    """A plugin raised while ``fail_fast`` was set."""


class RunResult:
    """How a core's run ended: ``status`` is ``done``, ``error`` (the input
    ended with a read error: ``error`` says which; everything before it
    was processed) or ``stopped`` (interrupted)."""

    def __init__(self, status: str, error: str, stats: RunStats) -> None:
        self.status = status
        self.error = error
        self.stats = stats


class Core:
    """One per-core event loop and the plugins' view of it.

    Attributes:
        id: the core number (0-based).
        config: the run's :class:`~mosfw.options.Config`.
    """

    def __init__(
        self,
        config: Config,
        pm,
        core_id: int = 0,
        shard_count: int = 1,
        fail_fast: bool = False,
        capacity: int = EVENT_CAPACITY,
    ) -> None:
        self.id = core_id
        self.config = config
        self.pm = pm
        self.fail_fast = fail_fast
        self._stop_requested = False
        self._plugin_errors = 0
        self._reported: set[tuple[str, str]] = set()
        self._flows: dict[int, Flow] = {}
        cfg = ffi.new("struct mosfw_config *")
        lib.mosfw_config_defaults(cfg)
        cfg.core_id = core_id
        cfg.shard_index = core_id
        cfg.shard_count = max(1, shard_count)
        cfg.max_concurrency = int(config.max_concurrency)
        cfg.tcp_timeout = float(config.tcp_timeout)
        cfg.tcp_tw_interval = float(config.tcp_tw_interval)
        cfg.verify_checksums = 1 if config.verify_checksums else 0
        self.event_mask = pm.event_mask()
        cfg.event_mask = self.event_mask
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        c = lib.mosfw_core_new(cfg, err)
        if c == ffi.NULL:
            raise EngineError(ffi.string(err).decode(errors="replace"))
        self._c = ffi.gc(c, lib.mosfw_core_free)
        self._cap = capacity
        self._evs = ffi.new("struct mosfw_event[]", capacity)
        self._view = memoryview(ffi.buffer(self._evs))
        self._n = ffi.new("uint32_t *")
        self._handlers = self._build_handlers()

    # -- input ----------------------------------------------------------------

    def open(self) -> None:
        """Open the configured input (file or interface)."""
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        bpf = (self.config.bpf or "").encode()
        if self.config.read_file:
            rc = lib.mosfw_core_open_file(self._c, self.config.read_file.encode(), bpf, err)
        elif self.config.interface:
            rc = lib.mosfw_core_open_live(self._c, self.config.interface.encode(), bpf, err)
        else:
            raise InputError("no input: give a capture file (-r FILE) or an interface (-i IFACE)")
        if rc != 0:
            raise InputError(ffi.string(err).decode(errors="replace"))

    @property
    def linktype(self) -> str:
        return ffi.string(lib.mosfw_core_linktype(self._c)).decode()

    def input_offset(self) -> int:
        """Bytes of the input file read so far (-1 live)."""
        return lib.mosfw_core_input_offset(self._c)

    def stats(self) -> RunStats:
        """Counters now (trio-style statistics snapshot)."""
        out = ffi.new("struct mosfw_stats *")
        lib.mosfw_core_stats(self._c, out)
        return RunStats.from_c(out, self._plugin_errors)

    @property
    def flows(self) -> dict[int, Flow]:
        """Flows seen by plugins and not yet ended, by id."""
        return self._flows

    def request_stop(self) -> None:
        """Finish soon: every open flow gets CONN_END(eof); safe from a
        signal handler."""
        self._stop_requested = True

    # -- dispatch ---------------------------------------------------------------

    def _report(self, plugin: str, hook: str, flow, exc: BaseException) -> None:
        self._plugin_errors += 1
        if self.fail_fast:
            raise PluginError(f"plugin {plugin!r} raised in {hook}: {type(exc).__name__}: {exc}") from exc
        key = (plugin, hook)
        if key in self._reported:
            return
        self._reported.add(key)
        where = ""
        if flow is not None:
            where = f" for flow {flow.client_str} -> {flow.server_str}"
        tb = traceback.extract_tb(exc.__traceback__)
        loc = f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""
        print(
            f"mosfw: core {self.id}: plugin {plugin!r} raised in {hook}{where}: "
            f"{type(exc).__name__}: {exc}{loc} (further errors from it in {hook} are only counted)",
            file=self.config.stderr,
        )

    def _build_handlers(self) -> dict[int, Callable]:
        pm = self.pm
        flows = self._flows
        c = self._c
        core_id = self.id
        flow_rec = lib.mosfw_core_flow
        report = self._report
        handlers: dict[int, Callable] = {}

        def get_flow(rec) -> Flow:
            f = flows.get(rec[1])
            if f is None:
                f = Flow(flow_rec(c, rec[2]), rec[1], core_id)
                flows[rec[1]] = f
            return f

        def side_event(hook: str) -> Callable | None:
            calls = pm.direct_callers(hook)
            if not calls:
                return None
            get = flows.get
            if len(calls) == 1:
                # the common case, one subscriber: no loop
                (name, fn), = calls

                def handle_one(rec) -> None:
                    flow = get(rec[1])
                    if flow is None:
                        flow = get_flow(rec)
                    try:
                        fn(flow, SIDES[rec[8]], Event(rec))
                    except Exception as e:  # noqa: BLE001 - reported, engine goes on
                        report(name, hook, flow, e)

                return handle_one

            def handle(rec) -> None:
                flow = get(rec[1])
                if flow is None:
                    flow = get_flow(rec)
                ev = Event(rec)
                side = SIDES[rec[8]]
                for name, fn in calls:
                    try:
                        fn(flow, side, ev)
                    except Exception as e:  # noqa: BLE001 - reported, engine goes on
                        report(name, hook, flow, e)

            return handle

        for hook, bit in (
            ("mosfw_pkt_in", EventType.PKT_IN),
            ("mosfw_conn_start", EventType.CONN_START),
            ("mosfw_conn_new_data", EventType.CONN_NEW_DATA),
            ("mosfw_rexmit", EventType.REXMIT),
        ):
            h = side_event(hook)
            if h:
                handlers[int(bit)] = h

        calls_sc = pm.direct_callers("mosfw_tcp_state_change")
        if calls_sc:

            def on_state_change(rec) -> None:
                flow = get_flow(rec)
                ev = Event(rec)
                side, old, new = SIDES[rec[8]], STATES[rec[9]], STATES[rec[10]]
                for name, fn in calls_sc:
                    try:
                        fn(flow, side, old, new, ev)
                    except Exception as e:  # noqa: BLE001
                        report(name, "mosfw_tcp_state_change", flow, e)

            handlers[int(EventType.TCP_STATE_CHANGE)] = on_state_change

        calls_end = pm.direct_callers("mosfw_conn_end")

        def on_conn_end(rec) -> None:
            flow = flows.pop(rec[1], None)
            if flow is None:
                flow = Flow(flow_rec(c, rec[2]), rec[1], core_id)
            if calls_end:
                ev = Event(rec)
                reason = REASONS[rec[11]]
                for name, fn in calls_end:
                    try:
                        fn(flow, reason, ev)
                    except Exception as e:  # noqa: BLE001
                        report(name, "mosfw_conn_end", flow, e)
            flow._freeze()

        handlers[int(EventType.CONN_END)] = on_conn_end

        calls_orphan = pm.direct_callers("mosfw_orphan")
        if calls_orphan:

            def on_orphan(rec) -> None:
                t = lib.mosfw_core_orphan_tuple(c, rec[2])
                src = (_addr(t.cli_addr, t.family), t.cli_port)
                dst = (_addr(t.srv_addr, t.family), t.srv_port)
                ev = Event(rec)
                for name, fn in calls_orphan:
                    try:
                        fn(ev, src, dst)
                    except Exception as e:  # noqa: BLE001
                        report(name, "mosfw_orphan", None, e)

            handlers[int(EventType.ORPHAN)] = on_orphan

        calls_err = pm.direct_callers("mosfw_error")
        if calls_err:

            def on_error(rec) -> None:
                flow = get_flow(rec) if rec[1] else None
                ev = Event(rec)
                code = ERRORS.get(rec[11])
                for name, fn in calls_err:
                    try:
                        fn(flow, code, ev)
                    except Exception as e:  # noqa: BLE001
                        report(name, "mosfw_error", flow, e)

            handlers[int(EventType.ERROR)] = on_error

        calls_tick = pm.direct_callers("mosfw_tick")
        if calls_tick:

            def on_tick(rec) -> None:
                for name, fn in calls_tick:
                    try:
                        fn(self, rec[0])
                    except Exception as e:  # noqa: BLE001
                        report(name, "mosfw_tick", None, e)

            handlers[int(EventType.TICK)] = on_tick

        ignore = lambda rec: None  # noqa: E731 - subscribed only for cleanup
        for bit in EventType:
            handlers.setdefault(int(bit), ignore)
        return handlers

    def _call_lifecycle(self, hook: str, *args) -> None:
        for name, fn in self.pm.direct_callers(hook):
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001
                self._report(name, hook, None, e)

    # -- the loop ---------------------------------------------------------------

    def run(self, progress: Callable[["Core"], None] | None = None, progress_every: float = 0.0) -> RunResult:
        """Run until the input ends (or :meth:`request_stop`), dispatching
        every event; returns how it ended. ``progress(core)`` is called
        after bursts, at most every ``progress_every`` seconds."""
        run = lib.mosfw_core_run
        c, evs, cap, n_ptr = self._c, self._evs, self._cap, self._n
        view = self._view
        size = EVENT_STRUCT.size
        unpack = EVENT_STRUCT.iter_unpack
        handlers = self._handlers
        stop_sent = False
        next_progress = time.monotonic() + progress_every
        self._call_lifecycle("mosfw_core_start", self)
        while True:
            st = run(c, evs, cap, n_ptr)
            n = n_ptr[0]
            if n:
                for rec in unpack(view[: n * size]):
                    handlers[rec[3]](rec)
            if progress is not None:
                now = time.monotonic()
                if now >= next_progress:
                    progress(self)
                    next_progress = now + progress_every
            if st in _FINAL:
                break
            if self._stop_requested and not stop_sent:
                lib.mosfw_core_stop(c)
                stop_sent = True
        error = ffi.string(lib.mosfw_core_error(c)).decode(errors="replace") if st == lib.MOSFW_RUN_ERROR else ""
        self._call_lifecycle("mosfw_core_finish", self)
        return RunResult(_FINAL[st], error, self.stats())

