"""Every hook a mosfw plugin can implement.

Implement a hook by writing a function with the hook's name, decorated
with :data:`mosfw.hookimpl`, in a module or object passed with ``-p``.
Arguments are opt-in: an implementation may accept any subset of the
arguments listed in the spec, by name, so new arguments can be added
without breaking existing apps.

Event hooks are called from the engine's dispatch loop, after the C loop
has filled a batch of event records; within a batch they are called in
event order, and for each packet the sender's events come before the
receiver's (as in mOS). Only events that at least one plugin implements
are produced by the C engine at all.

"State at event time" is in the :class:`~mosfw.events.Event` record
(``event.client_state``, ``event.server_state``, ``event.seq`` ...).
The :class:`~mosfw.flow.Flow` view reads the engine's live flow record:
*state now*, i.e. as of the end of the batch being dispatched (for
CONN_END, the final state).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from mosfw.engine import CoreView
    from mosfw.events import EndReason, Event, Side, TcpState
    from mosfw.flow import Flow
    from mosfw.runconfig import Config, OptionParser
    from mosfw.runner import CoreResult
    from mosfw.stats import CoreCounters, RunStats

hookspec = pluggy.HookspecMarker("mosfw")

# ---------------------------------------------------------------------------
# Initialisation: options and configuration (in the parent process)
# ---------------------------------------------------------------------------


@hookspec
def mosfw_addoption(parser: OptionParser) -> None:
    """Register command-line options for this plugin.

    Called once, right after the plugin is loaded and before the command
    line is parsed, for every plugin named with ``-p``. Options are added
    to ``mosfw run`` (and the sample launchers) and their values are
    available as ``config.getoption(name)``.

    :param parser: call ``parser.addoption("--name", ...)`` with the
        arguments of :func:`click.option`.
    """


@hookspec
def mosfw_configure(config: Config) -> None:
    """Configure the plugin before any packet is read.

    Called once per run after the command line and mos.conf are parsed,
    in the process that will run the cores, before
    :func:`mosfw_core_start`. Raise :class:`mosfw.UsageError` to stop the
    run with a message.

    With ``-c N`` (N > 1) each core runs in its own worker process, and
    this hook is called once in every worker (after the fork, before its
    core starts), never in the parent: each worker gets its own plugin
    state. ``config.stdout``/``config.stderr`` are then the worker's
    line-aligned streams (a line is never split between two writes), and
    objects registered here exist in that worker only.

    :param config: the run's :class:`~mosfw.runconfig.Config`.
    """


@hookspec
def mosfw_protocols(config: Config) -> set[str] | None:
    """The protocols this plugin wants flows of, besides TCP.

    Called once per core when the core is made (after
    :func:`mosfw_configure`, in the process that runs the core), once per
    plugin. Return a set of ``"udp"``, ``"icmp"`` (ICMP and ICMPv6) and
    ``"other"`` (any other IP protocol: a flow per address pair and
    protocol number, ports 0, ended by ``udp_timeout``);
    None or an empty set: TCP only (the default, also for plugins that do
    not implement this hook). The engine tracks the union of what the
    plugins asked for, and only a plugin that asked for a protocol gets
    the events of its flows (``mosfw_pkt_in``, ``mosfw_conn_start``,
    ``mosfw_conn_end``, ``mosfw_error`` about such a flow): a TCP-only
    plugin never sees a UDP flow, even when another plugin asked. TCP
    flows go to every plugin. A run where nobody asks tracks TCP only
    and pays nothing for the others (docs/hooks.md, "Protocols").

    :param config: the run's :class:`~mosfw.runconfig.Config`.
    :returns: a set of protocol names, or None.
    """


# ---------------------------------------------------------------------------
# Per-core life cycle
# ---------------------------------------------------------------------------


@hookspec
def mosfw_core_start(core: CoreView) -> None:
    """A core's event loop is about to read its first packet.

    Called once per core, after its input is open and before the first
    event of that core is dispatched.

    :param core: the core, as plugins see it: a
        :class:`~mosfw.engine.CoreView` (``core.id``,
        ``core.config``, ``core.stats()``).
    """


@hookspec
def mosfw_tick(core: CoreView, ts: float) -> None:
    """Input time reached a new whole second.

    Called in order with the events: after every event of packets
    timestamped before ``ts`` and before any event of a packet at or
    after it. On files it follows packet time (a gap in the capture
    gives one tick, at the first packet after the gap); live, wall time
    (it fires even when no packets arrive). Only produced when some
    plugin implements it.

    The engine ends its burst at the tick (the packet that crossed the
    second is processed after the hook returns), so every flow's *state
    now* read here, :meth:`core.live_flows() <mosfw.engine.CoreView.live_flows>`
    included, is the state at the tick: the way ``samples/midstat`` reads
    its table.

    :param core: the core.
    :param ts: the whole second (float) that was reached.
    """


@hookspec
def mosfw_tick_result(core: CoreView, ts: float) -> Any:
    """Return this plugin's result of one core for the second ``ts``, to
    be merged with the other cores' by :func:`mosfw_tick_merge`.

    Called on each core at every tick, right after the
    :func:`mosfw_tick` implementations of that tick (same moment: the
    engine ends its burst there, so
    :meth:`core.live_flows() <mosfw.engine.CoreView.live_flows>` is the flow
    table at the second boundary). Implementing it subscribes to ticks.
    Every plugin implementing it is called; each value is kept under the
    plugin's registered name. With ``-c N`` the value is pickled and sent
    to the parent process, so it must be picklable (an unpicklable value
    is reported as a plugin error and dropped). None means nothing for
    this second.

    :param core: the core.
    :param ts: the whole second (float) that was reached.
    :return: any picklable value, or None.
    """


@hookspec
def mosfw_tick_merge(config: Config, ts: float, results: list[Any]) -> None:
    """Combine what this plugin's cores returned from
    :func:`mosfw_tick_result` for the second ``ts``: how an app prints
    one per-second report for all cores (``samples/midstat``'s table).

    Called once per second for which some core returned a value (not
    None), in the parent process (with ``-c 1``: in the one process,
    right after the core's ``mosfw_tick_result``), seconds in increasing
    order, all of them before :func:`mosfw_merge`.
    With ``-c N`` a second is merged when every core has reported it
    (or a later one, or finished). Reading a file, every core ticks at
    every second of the file, so each second has every core's value;
    live, the cores' clocks tick apart, and a second some core has not
    reported within :data:`mosfw.runner.TICK_MERGE_WAIT` seconds of the
    first report is merged without it (that core's late value is then
    dropped); a core that has not ticked yet (it ticks from its first
    packet on) is not waited for. Called on the plugins registered in the parent, as
    :func:`mosfw_merge` (a plugin module's own functions, not objects
    registered from :func:`mosfw_configure`).

    Raising :class:`BrokenPipeError` (its output was closed: ``| head``)
    stops the run as when the reader of stdout goes away.

    :param config: the run's configuration.
    :param ts: the whole second.
    :param results: one entry per core, in core order: what this plugin
        (same registered name) returned from ``mosfw_tick_result`` in
        that core for ``ts``, or None.
    """


@hookspec
def mosfw_input_end(core: CoreView) -> None:
    """The core's input ended (end of file, read error, Ctrl-C/SIGTERM)
    and the flows still open have not ended yet.

    Called once per core, after the events of the last packet and before
    the CONN_END events (reason eof) of the flows still open:
    :meth:`core.live_flows() <mosfw.engine.CoreView.live_flows>` is the flow
    table at the end of the input, the connections the next CONN_END
    events will end (``samples/midstat``'s final table). Then come those
    events and :func:`mosfw_core_finish`.

    :param core: the core.
    """


@hookspec
def mosfw_core_finish(core: CoreView) -> None:
    """A core's input ended and every flow got its CONN_END.

    Called once per core after the last event of that core, also when
    the input ended with a read error or the run was interrupted.

    :param core: the core; ``core.stats()`` has the final counters.
    """


@hookspec
def mosfw_core_result(core: CoreView) -> Any:
    """Return this plugin's result of one core, to be merged by
    :func:`mosfw_merge`.

    Called once per core, in the process that ran that core (a worker
    with ``-c N``), right after :func:`mosfw_core_finish`; not called for
    a core whose run failed (setup error, ``--fail-fast``). Every plugin
    implementing it is called (not firstresult); each value is kept under
    the plugin's registered name. With ``-c N`` the value is pickled and
    sent to the parent, so it must be picklable (an unpicklable value is
    reported as a plugin error and dropped). None means nothing to merge.

    :param core: the core that finished; ``core.id``, ``core.stats()``.
    :return: any picklable value, or None.
    """


@hookspec
def mosfw_merge(config: Config, results: list[Any], cores: list[CoreResult]) -> None:
    """Combine what this plugin's cores returned from
    :func:`mosfw_core_result`.

    Called once per run, in the parent process (the only process with
    ``-c 1``), after every core finished and before :func:`mosfw_report`,
    also when the run was interrupted by Ctrl-C/SIGTERM (the cores then
    ended every flow with reason eof). Not called when a core failed (a
    setup error, --fail-fast) or every core died: the run then fails
    instead. When some cores died (``-c N``), it is called with the others'
    values: a lost core's entry in ``results`` is None and its
    ``CoreResult`` has status ``lost``.
    Called on the plugins registered in the parent, with each its own
    values: with ``-c N``, objects a plugin registered from
    :func:`mosfw_configure` live in the workers only and are not called
    (their values are in ``cores[i].values``).
    With ``--dask`` it is called in the run's process (``config.segmented``)
    with one entry per time segment, in time order; a file a task wrote
    for it belongs in ``config.parts_dir`` (the task's; a parts directory
    the run made itself is removed after this call).

    :param config: the run's configuration.
    :param results: one entry per core, in core order: what this plugin
        (same registered name) returned from ``mosfw_core_result`` in
        that core, or None.
    :param cores: one :class:`mosfw.runner.CoreResult` per core, in core
        order (``id``, ``status``, ``error``, ``stats``, ``values``: every
        plugin's value by plugin name).
    """


@hookspec
def mosfw_report(config: Config, stats: RunStats) -> None:
    """The run is over: print or write final results.

    Called once per run, in the parent process, after every core
    finished, before mosfw exits.

    :param config: the run's configuration.
    :param stats: engine counters summed over cores.
    """


@hookspec
def mosfw_stats_update(config: Config, stats: RunStats, cores: list[CoreCounters], final: bool) -> None:
    """The engine counters of the whole run, merged and per core, while it
    runs: for live metrics (``plugins/prometheus``).

    Called in the process that merges the cores (the parent with
    ``-c N``, the one process with ``-c 1``, the run's process with
    ``--dask``, a time segment a core), never in a worker or a task:

    - first, once, before any core starts: in ``run_job``, before
      :func:`mosfw_configure` with ``-c 1`` and before the workers are
      forked with ``-c N`` (so they inherit what it opened: a plugin
      that listens on a socket closes its copy in its own
      :func:`mosfw_configure`, which runs in each worker). Every counter
      is 0. A :class:`mosfw.UsageError` raised here stops the run before
      it starts (exit 2), like one from :func:`mosfw_configure`;
    - then about every :data:`mosfw.merge.STATS_UPDATE_EVERY` seconds of
      wall time while the cores run: with ``-c N`` from the parent's
      loop, with the counters of each worker's latest progress report
      (sent every :data:`mosfw.workers.PROGRESS_EVERY` seconds); with
      ``-c 1`` between two bursts of the engine (never while another
      hook runs). Live and idle, it still comes (the engine returns
      every 50 ms);
    - last, once, with ``final`` true, after every core finished and
      returned its :func:`mosfw_core_result`, before :func:`mosfw_merge`:
      the run's final counters (those of ``--stats-json``, but for
      exceptions raised later, in the merge and report hooks). A run that
      fails (a setup error, ``--fail-fast``, every core lost) gets no
      final call.

    Other exceptions it raises are reported once per plugin and counted
    as plugin errors; the run goes on.

    :param config: the run's configuration.
    :param stats: the counters merged over the cores, as ``mosfw_report``
        and ``--stats-json`` get them (offline with ``-c N`` the input
        counters -- packets, bytes ... -- are one reading of the file's).
    :param cores: one :class:`~mosfw.stats.CoreCounters` per core, in core
        order: its engine counters (offline with ``-c N`` every core reads
        the whole file, so each core's input counters are the file's),
        event records by type, plugin errors by plugin and hook; a lost
        core (``-c N``, its worker died) keeps its last report, with
        ``lost`` true.
    :param final: True on the last call.
    """


# ---------------------------------------------------------------------------
# Events (mOS MOS_ON_*)
# ---------------------------------------------------------------------------


@hookspec
def mosfw_pkt_in(flow: Flow, side: Side, event: Event) -> None:
    """A packet of a tracked flow was seen (``MOS_ON_PKT_IN``).

    Fires for every TCP packet that belongs to a tracked flow, before any
    other event of that packet, with ``side`` = the sender; and for every
    packet of a UDP or ICMP flow, to the plugins that asked for that
    protocol (:func:`mosfw_protocols`). Costly: subscribing makes the
    engine produce one record per packet.

    :param flow: the flow.
    :param side: the endpoint that sent the packet.
    :param event: the record (``event.seq``, ``event.ack``, ``event.len``,
        ``event.tcp_flags``, ``event.window``, ``event.ts``; for UDP
        ``event.len`` is the datagram's payload length, for ICMP the
        message's length after its 8-byte header, and seq/ack/flags/window
        are 0; ``flow.last_packet`` reads the packet, ``flow.icmp_type``
        the ICMP type).
    """


@hookspec
def mosfw_conn_start(flow: Flow, side: Side, event: Event) -> None:
    """An endpoint of a connection starts (``MOS_ON_CONN_START``).

    Client side: the client's first SYN (its state becomes SYN_SENT).
    Server side: the server's first SYN/ACK (SYN_RCVD). Never for
    retransmitted SYNs. A flow picked up without its handshake raises it
    once per side with ``event.midstream`` true, so every flow an app
    sees starts; a server that never answers raises none. A UDP or ICMP
    flow (:func:`mosfw_protocols`) raises it once, on its first packet,
    ``side`` = that packet's sender.

    :param flow: the flow.
    :param side: the endpoint that starts.
    :param event: the record; ``event.new_state`` is the side's state.
    """


@hookspec
def mosfw_tcp_state_change(flow: Flow, side: Side, old: TcpState, new: TcpState, event: Event) -> None:
    """An emulated endpoint changed TCP state (``MOS_ON_TCP_STATE_CHANGE``).

    Fires once per transition, for the endpoint whose state changed; a
    packet can move both endpoints (sender first) and move one endpoint
    twice (a FIN/ACK takes FIN_WAIT_1 to FIN_WAIT_2 to TIME_WAIT). TCP
    only: UDP and ICMP flows have no state machine and never raise it.

    :param flow: the flow.
    :param side: the endpoint whose state changed.
    :param old: the state before.
    :param new: the state after.
    :param event: the record.
    """


@hookspec
def mosfw_conn_new_data(flow: Flow, side: Side, event: Event) -> None:
    """New bytes of a side's stream are readable (``MOS_ON_CONN_NEW_DATA``).

    With reassembly buffers (the default: implementing this hook turns
    them on, ``rmem_size`` bytes per side), it fires when the in-order
    end of ``side``'s stream advances: a segment extends it, fills a gap
    (after its REXMIT), or a gap is given up (the buffer overflowed, or
    the receiver acknowledged bytes the tap never saw). ``event.seq`` is
    the first newly readable byte and ``event.len`` runs to the new
    in-order end (bytes given up in between read as lost);
    ``flow.peek(side)`` returns them. Out-of-order segments raise nothing
    until the gap before them closes. With ``no_ring_buffers = 1`` it
    fires when a segment carries payload beyond the highest sequence
    number seen from ``side``, ``seq``/``len`` being the new bytes only.
    (mOS raises it on the receiving stack; mosfw names the sending
    endpoint, whose stream grew.) TCP only (a UDP datagram's payload is
    in ``mosfw_pkt_in``: ``flow.last_packet.payload``).

    :param flow: the flow.
    :param side: the endpoint that sent the bytes.
    :param event: the record.
    """


@hookspec
def mosfw_rexmit(flow: Flow, side: Side, event: Event) -> None:
    """A retransmission was seen (``MOS_ON_REXMIT``).

    Fires for a segment (payload, SYN or FIN) that starts before the
    highest sequence end already seen from its sender: retransmitted or
    duplicated data, a fill of a gap the tap saw, a reordered segment, a
    repeated SYN or FIN. Keep-alive probes are not retransmissions. TCP
    only.

    :param flow: the flow.
    :param side: the endpoint that (re)sent the segment.
    :param event: the record: ``event.seq`` and ``event.len`` are the
        segment's.
    """


@hookspec
def mosfw_conn_end(flow: Flow, reason: EndReason, event: Event) -> None:
    """A connection is torn down (``MOS_ON_CONN_END``).

    Fires exactly once per flow that started: after both FINs are seen
    and the last one is acknowledged (``fin``), on a RST (``rst``), after
    ``tcp_timeout`` seconds without packets (``timeout``), when the flow
    is evicted to make room (``evicted``), at the end of the input
    (``eof``), or when a new SYN reuses the 5-tuple of a closing flow
    (``reused``). The flow's per-flow context is dropped afterwards. A
    UDP or ICMP flow (:func:`mosfw_protocols`) ends after ``udp_timeout``
    or ``icmp_timeout`` seconds of packet time without packets
    (``timeout``), ``evicted`` or ``eof``.

    :param flow: the flow, with its final states and counters.
    :param reason: the :class:`~mosfw.events.EndReason`.
    :param event: the record.
    """


@hookspec
def mosfw_orphan(event: Event, src: tuple[str, int], dst: tuple[str, int]) -> None:
    """A TCP packet that belongs to no tracked flow (``MOS_ON_ORPHAN``).

    TCP only: a UDP/ICMP packet always starts a flow when its protocol is
    tracked (or is refused with ``mosfw_error`` table_full).

    Fires for a packet that neither matches a tracked flow nor can start
    one: a RST or a non-ACK segment without a flow, a packet that arrives
    after its flow ended (within ``tcp_tw_interval``), or a new flow
    refused because the table is full of established flows.
    ``event.late`` is true for the packets after a FIN/RST end (within
    ``tcp_tw_interval``), which the tracker counts in that connection's
    record as Zeek does within its close delay.

    :param event: the record (seq, ack, len, flags of the packet).
    :param src: ``(ip, port)`` of the sender.
    :param dst: ``(ip, port)`` of the receiver.
    """


@hookspec
def mosfw_error(flow: Flow | None, code: Any, event: Event) -> None:
    """A protocol or resource error (``MOS_ON_ERROR``).

    Fires for a segment whose sequence number jumps more than 2**30 from
    what its sender sent before (``bad_sequence``, the segment is then
    ignored), when the flow table is full (``table_full``: ``flow``
    is the flow evicted to make room, or None when the new flow was
    refused), and when a reassembly buffer overflows (``buffer_overrun``,
    side = the stream's sender: a gap was given up to make room, or bytes
    the app had not peeked yet were overwritten), and for a packet
    reassembled from IP fragments that overlapped with different bytes
    (``frag_overlap``, raised just before that packet's own events; the
    first copy of each byte was kept; ``flow`` is the packet's flow, or
    None when it has none yet: docs/fragments.md).

    :param flow: the flow concerned, or None.
    :param code: the :class:`~mosfw.events.ErrorCode`.
    :param event: the record.
    """


# ---------------------------------------------------------------------------
# Timers and user-defined events (mosfw.api)
# ---------------------------------------------------------------------------


@hookspec
def mosfw_timeout(flow: Flow | None, timer: Any, data: Any, event: Event) -> None:
    """A timer set without a callback fired (``MOS_ON_TIMEOUT``).

    Fires once per timer set with :meth:`mosfw.engine.Core.settimer` or
    :meth:`mosfw.flow.Flow.settimer` and no ``callback``, when input time
    reaches its deadline (packet time offline, wall time live), before
    the first packet at or after the deadline. A per-flow timer whose
    flow ended first, a cancelled timer, and timers still pending when
    the input ends never fire.

    :param flow: the timer's flow, or None for a global timer.
    :param timer: the :class:`~mosfw.api.Timer` (``timer.timer_id``,
        ``timer.deadline``).
    :param data: the ``data`` given to ``settimer``.
    :param event: the TIMEOUT record (``event.ts`` is the deadline).
    """


@hookspec
def mosfw_user_event(flow: Flow | None, side: Side, event: Event, uevent: Any, data: Any) -> None:
    """A user-defined event fired (``mtcp_define_event``/``mtcp_raise_event``).

    Fires for every occurrence of an *active* user-defined event (see
    :mod:`mosfw.api`): after the built-in event it derives from fired and
    its filter accepted it (for each link of a chain, innermost first), or
    when an app raised it. Called after the event's own callbacks.

    :param flow: the flow of the underlying event, or None.
    :param side: the side of the underlying event.
    :param event: the record of the built-in event at the bottom of the
        chain (the one being dispatched).
    :param uevent: the :class:`~mosfw.api.UserEvent` that fired.
    :param data: what ``raise_event`` passed, else None.
    """
