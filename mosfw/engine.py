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

import heapq
import time
from sys import getrefcount
from typing import Any, Callable

from mosfw._dispatch import dispatch, flow_rows
from mosfw._native import ffi, lib
from mosfw.events import (
    ERRORS,
    REASONS,
    SIDES,
    STATES,
    Event,
    EventType,
    Side,
)
from mosfw.flow import _FLOW_SIZE, Flow, _addr
from mosfw.options import Config
from mosfw.plugin_faults import check_interrupt, describe, raised_at  # raised_at: also from here
from mosfw.stats import RunStats

__all__ = ["Core", "EngineError", "InputError", "PluginError", "RunResult", "buffer_settings", "raised_at"]

EVENT_CAPACITY = 8192
_FINAL = {lib.MOSFW_RUN_DONE: "done", lib.MOSFW_RUN_ERROR: "error", lib.MOSFW_RUN_STOPPED: "stopped"}
_NO_SLOT = 0xFFFFFFFF
#: events whose records name a flow (subscribing to any needs CONN_END)
_FLOW_BITS = int(EventType.PKT_IN | EventType.CONN_START | EventType.TCP_STATE_CHANGE
                 | EventType.CONN_NEW_DATA | EventType.REXMIT | EventType.CONN_END | EventType.ERROR)
#: default reassembly buffer size (mOS's rmem_size default)
DEFAULT_RMEM_SIZE = 8192


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
        fn({args})
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
    src = _ONE_SIDE_HANDLER.format(args=", ".join(_SIDE_ARGS[a] for a in argnames))
    ns = {"get": get, "get_flow": get_flow, "report": report, "fn": fn, "name": name, "hook": hook,
          "SIDES": SIDES}
    exec(compile(src, f"<mosfw {hook} handler>", "exec"), ns)  # noqa: S102 - the text above, hookspec names
    return ns["handle"]


def output_closed(stream) -> bool:
    """True when ``stream`` writes to a pipe or socket whose reader went
    away (POLLERR on its file descriptor); False for anything else."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    import select

    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


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


def _unmonitored(flow: Flow, side) -> bool:
    """The flow, or this side of it, was stopped (MOS_STOP_MON)."""
    return flow._stopped == 3 or bool(flow._stopped >> int(side) & 1)


def _key(event) -> Any:
    """The registry key of an event: the int bit of an EventType, or the
    UserEvent itself."""
    from mosfw.api import UserEvent

    if isinstance(event, UserEvent):
        return event
    if isinstance(event, EventType) and bin(int(event)).count("1") == 1:
        return int(event)
    raise TypeError(f"not a single EventType or a UserEvent: {event!r}")


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
        fanout_group: int = 0,
        share=None,
    ) -> None:
        """``shard_count``: offline, this core keeps the flows whose hash
        modulo shard_count is ``core_id``. ``fanout_group``: live, join this
        AF_PACKET fanout group (the kernel splits flows between the
        group's sockets; sharding in C is then off). ``share``: offline
        with ``shard_count`` cores, the shared index the parent made
        (``mosfw_share_new``): the cores split the parsing of the file
        (native/shared_input.h)."""
        from mosfw.api import adapt_callback, plugin_callbacks

        self.id = core_id
        self.config = config
        self.pm = pm
        self.fail_fast = fail_fast
        self._stop_requested = False
        self._plugin_errors = 0
        self._reported: set[tuple[str, str]] = set()
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
        self._conn_log: Callable[[bytes], None] | None = None
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
        self.tick_sink: Callable[["Core", float, dict], None] | None = None
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
        cfg.verify_checksums = 1 if config.verify_checksums else 0
        cfg.rmem_size = self.rmem_size
        cfg.no_ring_buffers = 1 if self.no_ring_buffers else 0
        cfg.fanout_group = int(fanout_group)
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
        if share is not None:
            lib.mosfw_core_set_share(self._c, share)
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
        self._i64 = ffi.new("int64_t *")
        self._handlers: dict[int, Callable] = {}
        self._rebuild()

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
        packets from the index the cores build together
        (native/shared_input.h) instead of reading the whole file."""
        return bool(lib.mosfw_core_input_shared(self._c))

    def input_offset(self) -> int:
        """Bytes of the input file read so far (-1 live)."""
        return lib.mosfw_core_input_offset(self._c)

    def stats(self) -> RunStats:
        """Counters now (trio-style statistics snapshot)."""
        out = ffi.new("struct mosfw_stats *")
        lib.mosfw_core_stats(self._c, out)
        return RunStats.from_c(out, self._plugin_errors)

    def api_stats(self) -> dict[str, int]:
        """Counters of the mOS API parts: reassembly buffers (allocated,
        live, peak, bytes, bytes lost to gaps and overruns, batches cut
        short to keep event-time reads), monitor filters, timers."""
        out = ffi.new("struct mosfw_ext_stats *")
        lib.mosfw_core_ext_stats(self._c, out)
        return {f: getattr(out, f) for f, _ in ffi.typeof("struct mosfw_ext_stats").fields}

    @property
    def flows(self) -> dict[int, Flow]:
        """Flows seen by plugins and not yet ended, by id."""
        return self._flows

    def live_flows(self) -> list[Flow]:
        """Every flow this core tracks now (not ended), in the order they
        started: the engine's flow table, whether or not a plugin saw the
        flow yet. Their state is *state now*: inside ``mosfw_tick`` that is
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

    def live_rows(self) -> list[tuple[str, str, int, int, float, int]]:
        """The flows of :meth:`live_flows` (the same, in the same order,
        their state now) as plain tuples built in C, without a Flow view
        each: ``(client_str, server_str, client state, server state,
        first_ts, flow id)``, the states as :class:`~mosfw.events.TcpState`
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

    def set_conn_log(self, fmt: str | None, write: Callable[[bytes], None] | None = None) -> None:
        """Have the engine write Zeek conn.log records itself: ``fmt`` is
        ``"json"`` or ``"zeek"`` (TSV line), ``write(data)`` is called after
        each batch with the records (bytes, one per line) of the flows that
        ended in it. No Python call per connection: this is how
        samples/tracker keeps up with the engine. Call it from
        ``mosfw_core_start``; ``None`` turns it off."""
        if fmt is None:
            lib.mosfw_core_set_conn_log(self._c, -1)
            self._conn_log = None
            return
        code = {"json": lib.MOSFW_CONN_JSON, "zeek": lib.MOSFW_CONN_ZEEK}.get(fmt)
        if code is None or write is None:
            raise ValueError(f"set_conn_log: format must be 'json' or 'zeek' with a writer, not {fmt!r}")
        if lib.mosfw_core_set_conn_log(self._c, code) != 0:
            raise EngineError("cannot allocate the conn.log buffer")
        self._conn_log = write

    def add_plugin_errors(self, n: int) -> None:
        """Count exceptions plugins raised outside this core's loop (e.g.
        in ``mosfw_configure``) into its statistics."""
        self._plugin_errors += n

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

    # -- monitor filters (mtcp_bind_monitor_filter) ----------------------------

    def set_monitor_filter(self, syn: str | None = None, orphan: str | None = None) -> None:
        """BPF monitor filters (mOS ``stream_syn_filter`` and
        ``stream_orphan_filter``, ``mtcp_bind_monitor_filter``), evaluated
        in C on the packet.

        :param syn: which new connections are tracked at all: applied to
            every packet that would start a flow (a SYN, or a SYN/ACK or
            data packet of a connection picked up mid-stream); a packet
            that does not match is neither tracked nor an orphan. Later
            packets of an untracked connection are tested again as they
            would start it. "" removes the filter.
        :param orphan: which orphan packets raise ORPHAN ("" removes it).

        Call from ``mosfw_configure``/``mosfw_core_start`` (before the first
        packet) or later; a bad expression raises :class:`EngineError`.
        """
        if not hasattr(self, "_monitor_filters"):
            self._monitor_filters: dict[int, str] = {}
        for which, expr in ((lib.MOSFW_FILTER_SYN, syn), (lib.MOSFW_FILTER_ORPHAN, orphan)):
            if expr is None:
                continue
            self._monitor_filters[which] = expr
            if self._opened:
                self._set_monitor_filter(which, expr)

    def _set_monitor_filter(self, which: int, expr: str) -> None:
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        if lib.mosfw_core_set_filter(self._c, which, 0, expr.encode(), err) < 0:
            kind = "stream_syn_filter" if which == lib.MOSFW_FILTER_SYN else "stream_orphan_filter"
            raise EngineError(f"{kind}: {ffi.string(err).decode(errors='replace')}")

    # -- bytestream ---------------------------------------------------------------

    def enable_bytestream(self) -> bool:
        """Keep reassembly buffers (``rmem_size`` bytes per side) for flows'
        payload from now on, although no plugin implements
        ``mosfw_conn_new_data`` (which turns them on by itself). Call it in
        ``mosfw_core_start`` when a plugin peeks from other events. Returns
        False when buffers are off (``no_ring_buffers = 1``)."""
        self._bytestream_asked = True
        self._bytestream = bool(lib.mosfw_core_set_bytestream(self._c, 1))
        return self._bytestream

    def _ppeek(self, flow: Flow, side: int, offset: int, n: int) -> bytes:
        r = lib.mosfw_core_ppeek(self._c, flow._slot, flow.id, side, offset, self._pbuf,
                                 min(n, self._pbuf_len))
        if r == -2 and not self._bytestream_asked:
            self.enable_bytestream()
        return ffi.unpack(self._pbuf, r) if r > 0 else b""

    def _stream_info(self, flow: Flow, side: int):
        from mosfw.api import StreamInfo

        out = ffi.new("struct mosfw_stream_info *")
        if lib.mosfw_core_stream_info(self._c, flow._slot, flow.id, side, out) != 0:
            return None
        return StreamInfo.from_c(out)

    def _fragments(self, flow: Flow, side: int) -> list[tuple[int, int]]:
        out = ffi.new("struct mosfw_stream_frag[]", 40)
        n = lib.mosfw_core_stream_frags(self._c, flow._slot, flow.id, side, out, 40)
        if n > 40:
            out = ffi.new("struct mosfw_stream_frag[]", n)
            n = lib.mosfw_core_stream_frags(self._c, flow._slot, flow.id, side, out, n)
        return [(out[i].offset, out[i].len) for i in range(max(0, n))]

    def _stream_offset(self, flow: Flow, side: int, seq: int) -> int | None:
        if lib.mosfw_core_stream_offset(self._c, flow._slot, flow.id, side, seq & 0xFFFFFFFF, self._i64):
            return None
        return self._i64[0]

    def _set_overlap(self, flow: Flow, side: int, policy: int) -> None:
        if not self._bytestream and not (self.event_mask & int(EventType.CONN_NEW_DATA)):
            self.enable_bytestream()
        lib.mosfw_core_set_overlap(self._c, flow._slot, flow.id, side, policy)

    # -- the packet of the event ----------------------------------------------------

    def last_packet(self):
        """The packet of the event being dispatched, whatever it is about
        (an ORPHAN's packet too), as a :class:`~mosfw.api.Packet`; None for
        events that came from no packet and outside dispatch. ``side`` and
        ``offset`` are None (see :meth:`Flow.last_packet
        <mosfw.flow.Flow.last_packet>` for a flow's view)."""
        from mosfw.api import Packet

        rec = self._cur[0]
        if rec is None or not rec[16]:
            return None
        p = lib.mosfw_core_packet(self._c, rec[17])
        if p == ffi.NULL:
            return None
        return Packet(p, ffi.buffer(p.frame, p.caplen)[:], None, None)

    def _last_packet(self, flow: Flow):
        from mosfw.api import Packet

        rec = self._cur[0]
        if rec is None or rec[1] != flow.id or not rec[16]:
            return None
        p = lib.mosfw_core_packet(self._c, rec[17])
        if p == ffi.NULL:
            return None
        frame = ffi.buffer(p.frame, p.caplen)[:]
        t = flow._rec.tuple
        # the sender: compare the source port and address with the client's
        l3, l4 = p.l3_off, p.l4_off
        sport = int.from_bytes(frame[l4:l4 + 2], "big") if len(frame) >= l4 + 2 else 0
        if p.family == 4:
            src = frame[l3 + 12:l3 + 16]
            cli = bytes(t.cli_addr[0:4])
        else:
            src = frame[l3 + 8:l3 + 24]
            cli = bytes(t.cli_addr[0:16])
        side = Side.CLIENT if (sport == t.cli_port and src == cli) else Side.SERVER
        offset = None
        if p.payload_len:
            seq = (p.seq + (1 if p.tcp_flags & 0x02 else 0)) & 0xFFFFFFFF
            offset = self._stream_offset(flow, int(side), seq)
        return Packet(p, frame, side, offset)

    # -- callbacks and user-defined events -----------------------------------------

    def register(self, event, callback: Callable) -> None:
        """Call ``callback`` whenever ``event`` fires, on every flow
        (``mtcp_register_callback`` on the monitoring socket): ``event`` is
        an ``EventType`` or a :class:`~mosfw.api.UserEvent`; arguments by
        name as in :mod:`mosfw.api`. Takes effect for the events produced
        after the current batch (the engine starts producing an event
        nobody subscribed to before)."""
        from mosfw.api import adapt_callback

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

    def _flow_register(self, flow: Flow, event, callback) -> None:
        from mosfw.api import adapt_callback

        key = _key(event)
        if flow._cbs is None:
            flow._cbs = {}
        lst = flow._cbs.setdefault(key, [])
        if any(x[1] == callback for x in lst):
            return
        lst.append((getattr(callback, "__qualname__", repr(callback)), callback, adapt_callback(callback)))
        if not isinstance(key, int):
            self._activate(key)
        if key not in self._flow_cb_keys:
            self._flow_cb_keys.add(key)
            self._update_mask()
            self._rebuild()

    def _flow_unregister(self, flow: Flow, event, callback) -> None:
        key = _key(event)
        lst = flow._cbs.get(key)
        if not lst:
            return
        lst[:] = [x for x in lst if callback is not None and x[1] != callback]
        if not lst:
            del flow._cbs[key]

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

    def raise_event(self, event, flow: Flow | None = None, side: Side | None = None, data: Any = None) -> None:
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
            rec = Event((self.now, 0, _NO_SLOT, int(EventType.TICK), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         0))
        if side is None:
            side = SIDES[rec[8]]
        self._fire_ude(event, rec, flow, side, data)

    def _call(self, name: str, what: str, adapted, flow, side, ev, uevent, data, timer=None) -> None:
        try:
            adapted(flow, side, ev, uevent, data, self, timer)
        except BaseException as e:  # noqa: BLE001 - reported, engine goes on
            self._report(name, what, flow, e)

    def _fire_ude(self, u, rec, flow, side, data) -> None:
        what = f"callback of {u.name}"
        for name, _fn, ad in self._core_cbs.get(u, ()):
            self._call(name, what, ad, flow, side, rec, u, data)
        if flow is not None and flow._cbs:
            for name, _fn, ad in list(flow._cbs.get(u, ())):
                self._call(name, what, ad, flow, side, rec, u, data)
        for name, fn in self._ude_hook:
            try:
                fn(flow, side, rec, u, data)
            except BaseException as e:  # noqa: BLE001
                self._report(name, "mosfw_user_event", flow, e)
        for child in self._ude_children.get(u, ()):
            self._eval_ude(child, rec, flow, side, data)

    def _eval_ude(self, u, rec, flow, side, data) -> None:
        if flow is not None and flow._stopped and _unmonitored(flow, side):
            return
        bit = self._bpf_bits.get(u)
        if bit is not None and not (rec[18] >> bit) & 1:
            return
        if u._fn is not None:
            try:
                if not u._fn(flow, side, rec, u, data, self, None):
                    return
            except BaseException as e:  # noqa: BLE001
                self._report(getattr(u.filter, "__module__", None) or u.name, f"filter of {u.name}", flow, e)
                return
        self._fire_ude(u, rec, flow, side, data)

    # -- timers ------------------------------------------------------------------

    def settimer(self, seconds: float, callback: Callable | None = None, *, data: Any = None,
                 flow: Flow | None = None, timer_id: Any = None):
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
        from mosfw.api import Timer, adapt_callback

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
        slot, fid = (_NO_SLOT, 0) if flow is None else (flow._slot, flow.id)
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
            if flow._timers is None:
                flow._timers = {}
            flow._timers[handle] = t
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
            if t.cancelled or (t.flow is not None and (t.flow._ended or t.flow._stopped == 3)):
                self._timers.pop(handle, None)
                continue
            fid, slot = (t.flow.id, t.flow._slot) if t.flow is not None else (0, _NO_SLOT)
            rec = Event((deadline, fid, slot, int(EventType.TIMEOUT), handle, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                         0, 0, 0, 0, 0))
            cur[0] = rec
            plain[int(EventType.TIMEOUT)](rec)
        cur[0] = outer
        if not late and self._plain is not None:
            self._handlers.update(self._plain)
            self._plain = None

    # -- dispatch ---------------------------------------------------------------

    def _report(self, plugin: str, hook: str, flow, exc: BaseException) -> None:
        check_interrupt(exc)  # a real Ctrl-C is not the plugin's: it goes on up
        if isinstance(exc, BrokenPipeError) and output_closed(self.config.stdout):
            # the reader of stdout went away (`mosfw run ... | head`): not
            # a plugin error; the run finishes (the runner says so)
            self.stdout_closed = True
            self.request_stop()
            return
        self._plugin_errors += 1
        if self.fail_fast:
            raise PluginError(f"plugin {plugin!r} raised in {hook}: {describe(exc)}") from exc
        key = (plugin, hook)
        if key in self._reported:
            return
        self._reported.add(key)
        where = ""
        if flow is not None:
            where = f" for flow {flow.client_str} -> {flow.server_str}"
        print(
            f"mosfw: core {self.id}: plugin {plugin!r} raised in {hook}{where}: "
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
            if roots and all(u in self._bpf_bits for u in roots) and not (
                    (self._pm_mask | self._extra_bits) & bit or bit in self._core_cbs
                    or bit in self._flow_cb_keys or bit == int(EventType.CONN_END)):
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
                if flow is not None and flow._stopped and _unmonitored(flow, side):
                    return
                call(name, what, ad, flow, side, rec, uevent, None)
            if flow is not None and flow._stopped and _unmonitored(flow, side):
                return
            if per_flow and flow is not None and flow._cbs:
                for name, _fn, ad in list(flow._cbs.get(bit, ())):
                    call(name, what, ad, flow, side, rec, uevent, None)
            for u in roots:
                eval_ude(u, rec, flow, side, None)

        return extra

    def _build_handlers(self) -> dict[int, Callable]:
        pm = self.pm
        flows = self._flows
        c = self._c
        core_id = self.id
        flow_rec = lib.mosfw_core_flow
        report = self._report
        handlers: dict[int, Callable] = {}

        stopped = self._stopped_ids

        def get_flow(rec) -> Flow | None:
            f = flows.get(rec[1])
            if f is None:
                if stopped and rec[1] in stopped:
                    return None  # not monitored any more: this batch's records are skipped
                f = Flow(flow_rec(c, rec[2]), rec[1], core_id, self, rec[2])
                flows[rec[1]] = f
            return f

        def side_event(hook: str, bit: int) -> Callable | None:
            calls = pm.direct_callers(hook)
            extra = self._extras(bit)
            get = flows.get
            if not calls and extra is None:
                return None
            if len(calls) == 1 and extra is None:
                # the common case, one subscriber: no loop, and the
                # implementation called with just the arguments it declared
                (name, fn, argnames), = pm.direct_impls(hook)
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
                flow = Flow(flow_rec(c, rec[2]), rec[1], core_id, self, rec[2])
            if calls_end or extra_end:
                reason = REASONS[rec[11]]
                for name, fn in calls_end:
                    try:
                        fn(flow, reason, rec)
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_conn_end", flow, e)
                if extra_end:
                    extra_end(rec, flow)
            if flow._timers:
                for h in flow._timers:
                    timers.pop(h, None)
            flow._end()
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

            def on_tick(rec) -> None:
                for name, fn in calls_tick:
                    try:
                        fn(self, rec[0])
                    except BaseException as e:  # noqa: BLE001
                        report(name, "mosfw_tick", None, e)
                if calls_tick_result:
                    values = {}
                    for name, fn in calls_tick_result:
                        try:
                            value = fn(self, rec[0])
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
            if flow is not None and flow._timers:
                flow._timers.pop(t.handle, None)
            if t.callback is not None:
                call(getattr(t.callback, "__qualname__", "timer"), "timer callback", t._adapted,
                     flow, None, rec, EventType.TIMEOUT, t.data, t)
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

    def _stop_monitoring(self, flow: Flow, sides: int) -> None:
        if lib.mosfw_core_stop_monitor(self._c, flow._slot, flow.id, sides) < 0:
            return
        flow._stopped |= sides
        if flow._stopped == 3:
            # gone for Python at once: the rest of this batch's records
            # about it are skipped; its state goes at the end of the batch
            if self._flows.get(flow.id) is flow:
                del self._flows[flow.id]
            self._stopped_ids.add(flow.id)
            self._to_drop.append(flow)

    def _drop_stopped(self) -> None:
        for flow in self._to_drop:
            if flow._timers:
                for h in list(flow._timers):
                    self._timers.pop(h, None)
            flow._detach()
        self._to_drop.clear()
        self._stopped_ids.clear()

    def _call_lifecycle(self, hook: str, *args) -> None:
        for name, fn in self.pm.direct_callers(hook):
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001
                self._report(name, hook, None, e)

    # -- the loop ---------------------------------------------------------------

    def run(self, progress: Callable[["Core"], None] | None = None, progress_every: float = 0.0) -> RunResult:
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
        self._call_lifecycle("mosfw_core_start", self)
        # mosfw_input_end: the C loop pauses between the end of the input
        # and the CONN_END (eof) of the flows still open
        input_end = self.pm.direct_callers("mosfw_input_end")
        lib.mosfw_core_pause_at_input_end(c, 1 if input_end else 0)
        conn_log = self._conn_log  # set by set_conn_log() in mosfw_core_start
        conn_log_take = lib.mosfw_core_conn_log
        conn_log_ptr = ffi.new("const char **")
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
                            flow._copy_record()
                    ended_kept.clear()
            if conn_log is not None:
                k = conn_log_take(c, conn_log_ptr)
                if k:
                    conn_log(ffi.buffer(conn_log_ptr[0], k)[:])
            if progress is not None:
                now = time.monotonic()
                if now >= next_progress:
                    progress(self)
                    next_progress = now + progress_every
            if st in _FINAL:
                break
            if st == lib.MOSFW_RUN_INPUT_END:
                self._call_lifecycle("mosfw_input_end", self)
            if self._stop_requested and not stop_sent:
                lib.mosfw_core_stop(c)
                stop_sent = True
        error = ffi.string(lib.mosfw_core_error(c)).decode(errors="replace") if st == lib.MOSFW_RUN_ERROR else ""
        self._call_lifecycle("mosfw_core_finish", self)
        return RunResult(_FINAL[st], error, self.stats())
