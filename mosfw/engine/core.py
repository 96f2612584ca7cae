"""One core: drives the C event loop and dispatches its events to plugins.

The C loop (``mosfw_core_run``) reads a bounded burst of packets with the
GIL released and fills a preallocated array of event records; this
module hands them to per-type handlers (``mosfw._dispatch``, a C loop
that builds each record as an :class:`~mosfw.events.Event`), which call
the plugins' hook implementations directly (resolved once from pluggy,
in pluggy's order).
No Python code runs per packet unless a plugin implements
``mosfw_pkt_in``.

Beyond the hooks, a core carries mOS's dynamic API (:mod:`mosfw.api`):
callbacks registered at run time or with :func:`mosfw.api.on`,
user-defined events and their filters, timers, and the bytestream and
packet accessors of :class:`~mosfw.flow.Flow`. An event with any of these
attached goes through a general dispatcher; events without keep the fast
path.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from sys import getrefcount
from typing import Any

from mosfw._dispatch import dispatch, flow_rows
from mosfw._native import ffi, lib
from mosfw.engine.adapt import adapt_callback
from mosfw.engine.bytestream import _Bytestream
from mosfw.engine.callbacks import _Callbacks
from mosfw.engine.dispatch import _DispatchTable
from mosfw.engine.errors import EngineError, InputError
from mosfw.engine.filters import _MonitorFilters
from mosfw.engine.protocols import plugin_protocols, protocol_bits
from mosfw.engine.timers import _Timers
from mosfw.engine.view import CoreView
from mosfw.events import Event, EventType
from mosfw.flow import _FLOW_SIZE, Flow
from mosfw.runconfig import Config, frag_settings_of, rmem_memcap_of
from mosfw.stats import CoreCounters, RunStats
from mosfw.tunnels import set_decap_config

__all__ = ["Core", "RunResult", "buffer_settings"]

EVENT_CAPACITY = 8192
_FINAL = {lib.MOSFW_RUN_DONE: "done", lib.MOSFW_RUN_ERROR: "error", lib.MOSFW_RUN_STOPPED: "stopped"}
_NO_SLOT = 0xFFFFFFFF
DEFAULT_RMEM_SIZE = 8192
_EV_TYPES = lib.MOSFW_EV_TYPES
#: event names by bit number (``mosfw_core_event_counts`` order)
_EV_NAMES = tuple(EventType(1 << i).label for i in range(_EV_TYPES))


class RunResult:
    """How a core's run ended: ``status`` is ``done``, ``error`` (the input
    ended with a read error: ``error`` says which; everything before it
    was processed) or ``stopped`` (interrupted)."""

    def __init__(self, status: str, error: str, stats: RunStats, input_files: list | None = None) -> None:
        self.status = status
        self.error = error
        self.stats = stats
        #: many-file input: a :class:`mosfw.inputs.InputFile` per file, in read order
        self.input_files = input_files or []


def buffer_settings(config: Config) -> tuple[int, bool]:
    """``(rmem_size, no_ring_buffers)`` of a run: the Config's own values
    when set, else the mos.conf's (``config.mos``), else the defaults
    (8192, off)."""
    rmem = getattr(config, "rmem_size", None)
    off = getattr(config, "no_ring_buffers", None)
    mos = config.mos
    if rmem is None:
        rmem = getattr(mos, "rmem_size", None) if mos is not None else None
    if off is None:
        off = getattr(mos, "no_ring_buffers", None) if mos is not None else None
    rmem = DEFAULT_RMEM_SIZE if rmem is None else int(rmem)
    if not 0 < rmem < 2**31:
        raise EngineError(f"rmem_size must be between 1 and 2^31-1 bytes, not {rmem}")
    return rmem, bool(off)


class Core(_DispatchTable, _Callbacks, _Timers, _Bytestream, _MonitorFilters):
    """One per-core event loop and the plugins' view of it.

    Attributes:
        id: the core number (0-based).
        config: the run's :class:`~mosfw.runconfig.Config`.
    """

    def __init__(
        self,
        config: Config,
        pm,
        core_id: int = 0,
        shard_count: int = 1,
        fail_fast: bool = False,
        capacity: int = EVENT_CAPACITY,
        fanout_group: int = 0,
        feed=None,
    ) -> None:
        """``shard_count``: offline, this core keeps the flows whose hash
        modulo shard_count is ``core_id``. ``fanout_group``: live, join this
        AF_PACKET fanout group (the kernel splits flows between the
        group's sockets; sharding in C is then off). ``feed``: offline
        with ``shard_count`` cores, the reader the parent made
        (:class:`mosfw.feed.Feed`): :meth:`open` takes this core's packets
        from it instead of reading the input (native/feed.c)."""
        from mosfw.api import plugin_callbacks

        self.id = core_id
        self.config = config
        self.pm = pm
        self.fail_fast = fail_fast
        #: what plugins get of this core (hooks' and callbacks' ``core``)
        self.view = CoreView(self)
        self._stop_requested = False
        self._plugin_errors = 0
        self._reported: set[tuple[str, str]] = set()
        self._error_counts: dict[tuple[str, str], int] = {}  # (plugin, hook) -> exceptions
        self._flows: dict[int, Flow] = {}
        self.rmem_size, self.no_ring_buffers = buffer_settings(config)
        # the dynamic API (mosfw.api)
        self._cur: list = [None]  # the record being dispatched
        self._timers: dict[int, Any] = {}
        self._next_handle = 1
        self._core_cbs: dict[Any, list] = {}  # key -> [(name, fn, adapted)]
        self._flow_cb_keys: set = set()  # keys some flow ever registered for
        self._active: list = []  # active UserEvents, in activation order
        self._ude_roots: dict[int, list] = {}  # built-in bit -> UserEvents on it
        self._ude_children: dict[Any, list] = {}  # UserEvent -> UserEvents on it
        self._bpf_bits: dict[Any, int] = {}  # UserEvent -> filter bit
        self._to_drop: list[Flow] = []  # flows with both sides stopped
        self._stopped_ids: set[int] = set()  # their ids, until the batch ends
        self._extra_bits = 0  # built-in events asked for with subscribe()
        self._late: list = []  # heap of timers due inside the batch being dispatched
        self._plain: dict[int, Callable] | None = None  # handlers without the late-timer check
        self._opened = False
        self._bytestream = False
        self._bytestream_asked = False
        self._after_burst: list[Callable[[], None]] = []  # attach_observer(after_burst=)
        self._live_slots = ffi.new("uint32_t[]", 1024)  # live_flows()
        self._ended_kept: list[Flow] = []  # ended in this batch and kept by a plugin
        self._recent_cap = 0  # keep_recent_ends()
        #: a plugin found stdout closed by its reader (`| head`): the run
        #: was asked to stop, and ends as if stdout had been written to
        self.stdout_closed = False
        #: where the values of ``mosfw_tick_result`` go, called as
        #: ``tick_sink(core, ts, {plugin name: value})`` at each tick: set
        #: by the runner (``mosfw_tick_merge`` in this process, or a
        #: message to the parent from a worker); None drops them
        self.tick_sink: Callable[[Core, float, dict], None] | None = None
        self._ude_hook = pm.direct_callers("mosfw_user_event")
        self._timeout_hook = pm.direct_callers("mosfw_timeout")

        cfg = ffi.new("struct mosfw_config *")
        lib.mosfw_config_defaults(cfg)
        cfg.core_id = core_id
        cfg.shard_index = core_id
        cfg.shard_count = max(1, shard_count)
        cfg.max_concurrency = int(config.max_concurrency)
        cfg.tcp_timeout = float(config.tcp_timeout)
        cfg.tcp_tw_interval = float(config.tcp_tw_interval)
        cfg.tcp_attempt_delay = float(getattr(config, "tcp_attempt_delay", 0.0) or 0.0)
        cfg.tcp_one_sided_close = 1 if getattr(config, "tcp_one_sided_close", False) else 0
        cfg.tcp_partial_open = 1 if getattr(config, "tcp_partial_open", False) else 0
        #: {plugin name: the protocols it asked for besides TCP} (mosfw_protocols)
        self._plugin_protos = plugin_protocols(pm, config)
        self._flow_protos: dict[int, str] = {}  # flow id -> protocol name, while protocols are routed
        cfg.protocols = protocol_bits(self._plugin_protos)
        cfg.udp_timeout = float(getattr(config, "udp_timeout", 60.0))
        cfg.icmp_timeout = float(getattr(config, "icmp_timeout", 60.0))
        cfg.udp_checksums = 1 if getattr(config, "udp_checksums", False) else 0
        cfg.verify_checksums = 1 if config.verify_checksums else 0
        cfg.rmem_size, cfg.rmem_memcap = self.rmem_size, rmem_memcap_of(config)
        cfg.frag_memcap, cfg.frag_timeout = frag_settings_of(config)
        cfg.no_ring_buffers = 1 if self.no_ring_buffers else 0
        cfg.fanout_group = int(fanout_group)
        cfg.input_size = int(getattr(config, "read_file_size", 0) or 0)
        set_decap_config(cfg.decap, config)
        self._pm_mask = pm.event_mask()
        # callbacks marked with mosfw.api.on() in the plugins
        seen = set()
        for plugin in pm.get_plugins():
            pname = pm.get_name(plugin) or repr(plugin)
            for ev, fn in plugin_callbacks(plugin):
                if (id(getattr(fn, "__func__", fn)), id(getattr(fn, "__self__", None)), ev) in seen:
                    continue
                seen.add((id(getattr(fn, "__func__", fn)), id(getattr(fn, "__self__", None)), ev))
                self._add_callback(ev, fn, adapt_callback(fn), pname)
        self.event_mask = self._compute_mask()
        cfg.event_mask = self.event_mask
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        c = lib.mosfw_core_new(cfg, err)
        if c == ffi.NULL:
            raise EngineError(ffi.string(err).decode(errors="replace"))
        self._c = ffi.gc(c, lib.mosfw_core_free)
        self._feed = feed
        # the packet of every event (Flow.last_packet): copies are made only
        # of packets that produce records
        lib.mosfw_core_set_packets(self._c, 1)
        lib.mosfw_core_set_filter_only(self._c, self._filter_only())
        self._cap = capacity
        self._evs = ffi.new("struct mosfw_event[]", capacity)
        self._n = ffi.new("uint32_t *")
        self._pbuf_len = max(self.rmem_size, 65536)
        self._pbuf = ffi.new("char[]", self._pbuf_len)
        self._lost = ffi.new("uint64_t *")
        self._type_counts = ffi.new("uint64_t[]", _EV_TYPES)
        self._i64 = ffi.new("int64_t *")
        self._tunbuf = ffi.new("struct mosfw_tunnel[]", lib.MOSFW_MAX_TUNNELS)  # flow_tunnels()
        self._handlers: dict[int, Callable] = {}
        self._rebuild()

    # -- input ----------------------------------------------------------------

    def open(self) -> None:
        """Open the configured input (file or interface)."""
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        bpf = (self.config.bpf or "").encode()
        files = getattr(self.config, "read_files", None)
        if self._feed is not None:
            rc = lib.mosfw_core_open_feed(self._c, self._feed.handle, err)
        elif files:
            keep = [ffi.new("char[]", os.fsencode(p)) for p in files]
            rc = lib.mosfw_core_open_files(self._c, ffi.new("char *[]", keep), len(files), bpf, err)
        elif self.config.read_file:
            rc = lib.mosfw_core_open_file(self._c, self.config.read_file.encode(), bpf, err)
        elif self.config.interface:
            rc = lib.mosfw_core_open_live(self._c, self.config.interface.encode(), bpf, err)
        else:
            raise InputError("no input: give a capture file (-r FILE) or an interface (-i IFACE)")
        if rc != 0:
            raise InputError(ffi.string(err).decode(errors="replace"))
        self._opened = True
        for u, bit in self._bpf_bits.items():
            self._compile_event_filter(u, bit)
        for which, expr in getattr(self, "_monitor_filters", {}).items():
            self._set_monitor_filter(which, expr)

    @property
    def linktype(self) -> str:
        return ffi.string(lib.mosfw_core_linktype(self._c)).decode()

    @property
    def input_shared(self) -> bool:
        """True when this core (one of ``-c N`` reading a file) takes its
        packets from the parent's reader (native/feed.c) instead of
        reading the input itself."""
        return bool(lib.mosfw_core_input_shared(self._c))

    def input_offset(self) -> int:
        """Bytes of the input file read so far (-1 live)."""
        return lib.mosfw_core_input_offset(self._c)

    def stats(self) -> RunStats:
        """Counters now (trio-style statistics snapshot)."""
        out = ffi.new("struct mosfw_stats *")
        lib.mosfw_core_stats(self._c, out)
        records = getattr(self.config, "records", None)
        lost = records.lost_total() if records is not None else 0
        return RunStats.from_c(out, self._plugin_errors, lost)

    def event_counts(self) -> dict[str, int]:
        """Event records the engine produced since the start, by event
        name (``conn_start``, ``pkt_in``, ``tick`` ...: every type, 0 for
        those nobody subscribed to, which are never produced); they add up
        to ``stats().events``."""
        out = self._type_counts
        lib.mosfw_core_event_counts(self._c, out, _EV_TYPES)
        return {name: out[i] for i, name in enumerate(_EV_NAMES)}

    def counters(self) -> CoreCounters:
        """This core's counters now, as :func:`~mosfw.hookspecs.mosfw_stats_update`
        gets them: engine counters, events by type, plugin errors by
        plugin and hook."""
        records = getattr(self.config, "records", None)
        lost = records.lost() if records is not None else {}
        return CoreCounters(
            self.id, self.stats(), self.event_counts(), dict(self._error_counts), sink_records_lost=lost
        )

    def api_stats(self) -> dict[str, int]:
        """Counters of the mOS API parts: reassembly buffers (allocated,
        live, peak, bytes, bytes lost to gaps and overruns, batches cut
        short to keep event-time reads), monitor filters, timers."""
        out = ffi.new("struct mosfw_feature_stats *")
        lib.mosfw_core_feature_stats(self._c, out)
        return {f: getattr(out, f) for f, _ in ffi.typeof("struct mosfw_feature_stats").fields}

    @property
    def flows(self) -> dict[int, Flow]:
        """Flows seen by plugins and not yet ended, by id."""
        return self._flows

    def live_flows(self) -> list[Flow]:
        """Every flow this core tracks now (not ended), in the order they
        started: the engine's flow table, whether or not a plugin saw the
        flow yet (UDP/ICMP flows too when any plugin asked for them:
        check ``flow.proto``). Their state is *state now*: inside ``mosfw_tick`` that is
        the state at the tick (the engine ends its burst there), elsewhere
        as of the end of the batch being dispatched."""
        slots, n = self._live()
        flows, keep = self._flows, bool(self.event_mask & int(EventType.CONN_END))
        flow_rec, c, out = lib.mosfw_core_flow, self._c, []
        for slot in slots[0:n]:
            rec = flow_rec(c, slot)
            f = flows.get(rec.id)
            if f is None:
                f = Flow(rec, rec.id, self.id, self, slot)
                if keep:  # dropped at its CONN_END, like a flow an event made
                    flows[rec.id] = f
            out.append(f)
        return out

    def _live(self) -> tuple[Any, int]:
        """The slots of the live flows, in start order, and how many."""
        slots = self._live_slots
        n = lib.mosfw_core_live_flows(self._c, slots, len(slots))
        if n > len(slots):
            self._live_slots = slots = ffi.new("uint32_t[]", n + n // 2)
            n = lib.mosfw_core_live_flows(self._c, slots, len(slots))
        return slots, n

    def live_rows(self) -> list[tuple[str, str, int, int, float, int, int]]:
        """The flows of :meth:`live_flows` (the same, in the same order,
        their state now) as plain tuples built in C, without a Flow view
        each: ``(client_str, server_str, client state, server state,
        first_ts, flow id, IP protocol)`` (UDP/ICMP flows too when a
        plugin asked for them: check the protocol), the states as :class:`~mosfw.events.TcpState`
        values. For apps that list the whole table every second
        (``samples/midstat``): a third of the cost of ``live_flows()`` and
        the same attributes read from each."""
        slots, n = self._live()
        if not n:
            return []
        top = max(slots[0:n]) + 1
        pool = ffi.buffer(lib.mosfw_core_flow(self._c, 0), top * _FLOW_SIZE)
        return flow_rows(pool, ffi.buffer(slots, n * 4), n)

    def keep_recent_ends(self, n: int) -> None:
        """Have the engine keep copies of the records of the last ``n``
        flows that ended before the end of the input (every reason but
        eof), with no event and no Python call per flow; read them with
        :meth:`recent_ends`. This is how ``samples/midstat`` lists the last
        connections that ended. 0 keeps none. Call it from
        ``mosfw_core_start``."""
        if n < 0:
            raise ValueError(f"keep_recent_ends: n must be >= 0, not {n}")
        if lib.mosfw_core_keep_recent_ends(self._c, n) != 0:
            raise EngineError("cannot allocate room for the records of ended flows")
        self._recent_cap = n

    def recent_ends(self) -> list[tuple[float, Flow]]:
        """The flows kept by :meth:`keep_recent_ends`, in the order they
        ended: ``(input time of the end, Flow)``, each Flow a frozen view of
        the record at its end (``end_reason``, both endpoints' last state,
        counters; its conn.log view is empty)."""
        cap = self._recent_cap
        if not cap:
            return []
        buf = ffi.new("struct mosfw_ended[]", cap)
        n = min(lib.mosfw_core_recent_ends(self._c, buf, cap), cap)
        out = []
        for i in range(n):
            f = Flow.frozen_copy(ffi.addressof(buf[i], "flow"), self.id)
            out.append((buf[i].ts, f))
        return out

    def attach_observer(self, address: int, after_burst: Callable[[], None] | None = None) -> None:
        """Attach a C observer to this core: ``address`` is that of a
        ``struct mosfw_observer`` (native/mosfw_api.h; the core copies it),
        whose callbacks the C loop calls at its fixed points (packet
        parsed, flow created, TCP updated, flow ended, burst start; see
        docs/architecture.md), with no Python call per packet. This is how
        samples/tracker keeps Zeek's conn.log view in its own C module.
        ``after_burst()``, if given, is called after each batch (e.g. to take
        what the observer wrote). Call it from ``mosfw_core_start``."""
        if lib.mosfw_core_observe(self._c, ffi.cast("const struct mosfw_observer *", address)) != 0:
            raise EngineError("cannot attach the observer: the table is full or its name is taken")
        if after_burst is not None:
            self._after_burst.append(after_burst)

    @property
    def slots(self) -> int:
        """Number of flow slots (``Flow.slot`` < slots): the size of an
        observer's per-flow array."""
        return int(lib.mosfw_core_slots(self._c))

    def add_plugin_errors(self, by: dict[tuple[str, str], int]) -> None:
        """Count exceptions plugins raised outside this core's loop (e.g.
        in ``mosfw_configure``), by (plugin, hook), into its statistics."""
        self._plugin_errors += sum(by.values())
        for key, k in by.items():
            self._error_counts[key] = self._error_counts.get(key, 0) + k

    def request_stop(self) -> None:
        """Finish soon: every open flow gets CONN_END(eof); safe from a
        signal handler."""
        self._stop_requested = True

    @property
    def now(self) -> float:
        """Input time: the time of the event being dispatched, else the
        engine's (packet time offline, wall time live when idle)."""
        rec = self._cur[0]
        if rec is not None:
            return rec[0]
        return lib.mosfw_core_now(self._c)

    # -- the loop ---------------------------------------------------------------

    def run(self, progress: Callable[[Core], None] | None = None, progress_every: float = 0.0) -> RunResult:
        """Run until the input ends (or :meth:`request_stop`), dispatching
        every event; returns how it ended. ``progress(core)`` is called
        after bursts, at most every ``progress_every`` seconds."""
        run = lib.mosfw_core_run
        c, evs, cap, n_ptr = self._c, self._evs, self._cap, self._n
        records = ffi.buffer(evs)
        handlers = self._handlers
        cur = self._cur
        to_drop = self._to_drop
        ended_kept = self._ended_kept
        stop_sent = False
        next_progress = time.monotonic() + progress_every
        self._call_lifecycle("mosfw_core_start", self.view)
        # mosfw_input_end: the C loop pauses between the end of the input
        # and the CONN_END (eof) of the flows still open
        input_end = self.pm.direct_callers("mosfw_input_end")
        lib.mosfw_core_pause_at_input_end(c, 1 if input_end else 0)
        after_burst = self._after_burst  # observers' (attach_observer() in mosfw_core_start)
        while True:
            st = run(c, evs, cap, n_ptr)
            n = n_ptr[0]
            if n:
                # each record as an Event, cur[0] = it, handlers[type](it)
                dispatch(records, n, Event, handlers, cur)
                cur[0] = None
                if self._late:  # due before anything the next batch holds
                    self._fire_late(float("inf"))
                if to_drop:
                    self._drop_stopped()
                if ended_kept:  # the slots are reused by the next run: copy what is still kept
                    for flow in ended_kept:
                        if getrefcount(flow) > 3:  # this list, the loop, the call
                            flow.host_keep_record()
                    ended_kept.clear()
            if after_burst:
                for take in after_burst:
                    take()
            if progress is not None:
                now = time.monotonic()
                if now >= next_progress:
                    progress(self)
                    next_progress = now + progress_every
            if st in _FINAL:
                break
            if st == lib.MOSFW_RUN_INPUT_END:
                self._call_lifecycle("mosfw_input_end", self.view)
            if self._stop_requested and not stop_sent:
                lib.mosfw_core_stop(c)
                stop_sent = True
        error = (
            ffi.string(lib.mosfw_core_error(c)).decode(errors="replace") if st == lib.MOSFW_RUN_ERROR else ""
        )
        self._call_lifecycle("mosfw_core_finish", self.view)
        return RunResult(_FINAL[st], error, self.stats(), self.input_files())

    def own_window(self, t0: float, t1: float) -> None:
        """Segment mode (``--dask``, :mod:`mosfw.archive`): only flows whose
        first packet falls in [t0, t1) raise events, reach observers and
        count; the run ends past t1 once they all left the flow table."""
        if lib.mosfw_core_own_window(self._c, t0, t1) != 0:
            raise MemoryError("segment mode: out of memory")

    def input_files(self) -> list:
        """Many-file input: what became of each file so far
        (:class:`mosfw.inputs.InputFile`, read order); [] otherwise."""
        files = getattr(self.config, "read_files", None)
        if not files:
            return []
        from mosfw.inputs import input_files_from_core

        out = ffi.new("struct mosfw_input_file[]", len(files))
        n = lib.mosfw_core_input_files(self._c, out, len(files))
        return input_files_from_core(out[0 : min(n, len(files))], files)
