"""The Flow view plugins get: identity, states, counters, uctx, freezing."""

from __future__ import annotations

import mosfw
from mosfw import Side, TcpState


class Probe:
    """Records what the Flow view says at each event."""

    def __init__(self):
        self.seen = []
        self.ended = []

    @mosfw.hookimpl
    def mosfw_conn_start(self, flow, side):
        if side == Side.CLIENT:
            flow.uctx = {"starts": 1}
        else:
            flow.uctx["starts"] += 1

    @mosfw.hookimpl
    def mosfw_rexmit(self, flow, side, event):
        self.seen.append((side, event.seq, event.len, flow.rexmit_pkts(side)))

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason, event):
        self.ended.append((flow, dict(flow.uctx), reason, event.client_state, event.server_state))


def test_flow_counters_and_context(mosfw_capture, mosfw_run):
    cap = mosfw_capture(step=0.5)
    c = cap.conversation(client=("10.1.1.1", 40000), server=("10.2.2.2", 8080))
    c.handshake()
    c.send("client", 100)
    seg = c.send("server", 1000)
    c.rexmit(seg)
    c.fin("client")
    c.fin("server")
    c.ack("client")
    probe = Probe()
    rec = mosfw_run(cap, plugins=[probe])
    assert rec.status == "done"
    assert probe.seen == [(Side.SERVER, 5001, 1000, 1)]
    ((flow, uctx, reason, cst, sst),) = probe.ended
    assert uctx == {"starts": 2}
    assert reason == mosfw.EndReason.FIN
    assert (cst, sst) == (TcpState.TIME_WAIT, TcpState.CLOSED)
    # the view survives the end of the flow (frozen copy), uctx dropped
    assert flow.ended and flow.uctx is None
    assert flow.client == ("10.1.1.1", 40000) and flow.server == ("10.2.2.2", 8080)
    assert flow.client_str == "10.1.1.1:40000" and flow.family == 4
    assert flow.pkts(Side.CLIENT) == 5 and flow.pkts(Side.SERVER) == 4
    assert flow.payload_bytes(Side.CLIENT) == 100 and flow.payload_bytes(Side.SERVER) == 2000
    assert flow.rexmit_pkts(Side.SERVER) == 1 and flow.rexmit_bytes(Side.SERVER) == 1000
    assert flow.ip_bytes(Side.CLIENT) == 5 * 40 + 100  # 20 IP + 20 TCP each, no options
    assert flow.isn(Side.CLIENT) == 1000 and flow.isn(Side.SERVER) == 5000
    assert flow.first_ts == 1000.0 and flow.duration == 4.0
    assert flow.end_reason == mosfw.EndReason.FIN and not flow.midstream
    assert flow.state(Side.CLIENT) == TcpState.TIME_WAIT


def test_flows_with_same_tuple_get_distinct_ids(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    for isn in (1000, 900000):
        c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80), client_isn=isn)
        c.handshake()
        c.rst("client")
    probe = Probe()
    mosfw_run(cap, plugins=[probe])
    a, b = (e[0] for e in probe.ended)
    assert a.id != b.id and a.isn(Side.CLIENT) == 1000 and b.isn(Side.CLIENT) == 900000


class TableAtTicks:
    """What Core.live_flows() says at each tick, and what the events say."""

    def __init__(self):
        self.tables = []
        self.states = {}  # flow id -> (client, server) from the event records

    @mosfw.hookimpl
    def mosfw_tick(self, core, ts):
        self.tables.append(
            (
                ts,
                [(f.id, f.client_state, f.server_state) for f in core.live_flows()],
                sorted((i, s) for i, s in self.states.items()),
            )
        )

    @mosfw.hookimpl
    def mosfw_tcp_state_change(self, flow, event):
        self.states[flow.id] = (event.client_state, event.server_state)

    @mosfw.hookimpl
    def mosfw_conn_start(self, flow, event):
        self.states[flow.id] = (event.client_state, event.server_state)

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow):
        self.states.pop(flow.id, None)


def test_live_flows_at_a_tick_are_the_table_at_that_second(mosfw_capture, mosfw_run):
    """A tick ends the engine's burst: the flow table read in mosfw_tick
    holds every packet before the second and none after it, even when the
    packets of several seconds are read in one burst."""
    cap = mosfw_capture(step=0.25)
    convs = [cap.conversation(client=("10.1.1.1", 40000 + i), server=("10.2.2.2", 80)) for i in range(3)]
    for i, c in enumerate(convs):  # opened one after another, closed in reverse
        c.handshake()
        c.send("client", 10 + i)
    for c in reversed(convs):
        c.close(first="client")
    probe = TableAtTicks()
    rec = mosfw_run(cap, plugins=[probe])
    assert rec.status == "done"
    assert len(probe.tables) >= 4
    for ts, table, from_events in probe.tables:
        assert sorted((i, (c, s)) for i, c, s in table) == from_events, ts
        assert [i for i, _, _ in table] == sorted(i for i, _, _ in table)  # start order
    assert any(len(t) == 3 for _, t, _ in probe.tables)
    assert any(
        TcpState.FIN_WAIT_1 in (c, s) or TcpState.CLOSE_WAIT in (c, s)
        for _, t, _ in probe.tables
        for _, c, s in t
    )


def test_live_flows_leave_out_flows_stopped_on_both_sides(mosfw_capture, mosfw_run):
    class Stopper(TableAtTicks):
        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side, event):
            if flow.client[1] == 40001 and side == Side.SERVER:
                flow.stop_monitoring()

    cap = mosfw_capture(step=0.3)
    for port in (40000, 40001):
        c = cap.conversation(client=("10.1.1.1", port), server=("10.2.2.2", 80))
        c.handshake()
        c.send("client", 10)
        c.send("server", 10)
    probe = Stopper()
    mosfw_run(cap, plugins=[probe])
    ids = {i for _, t, _ in probe.tables for i, _, _ in t}
    assert ids == {1}


def test_ended_flows_kept_by_a_plugin_outlive_their_slots(mosfw_capture, mosfw_run):
    """Ended flows' records are copied at the end of their batch when a
    plugin still holds them (not at CONN_END: a flow dropped again within
    the batch costs no copy). Thousands of short flows reuse the same
    slots across many bursts; every view kept, in a list or in a small
    deque, still shows its own connection afterwards."""
    import collections

    class Keeper:
        def __init__(self):
            self.all, self.last = [], collections.deque(maxlen=3)

        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            flow.uctx = side

        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            assert not flow.ended and flow.uctx is not None  # still readable in its CONN_END
            self.all.append(flow)
            self.last.append(flow)

    cap = mosfw_capture(step=0.0001)
    n = 1500  # about 10,000 packets: several bursts of 4096
    for i in range(n):
        c = cap.conversation(client=("10.3.0.1", 20000 + i), server=("10.3.0.2", 80))
        c.handshake()
        c.send("client", 1 + i % 50)
        c.close(first="client")
    keeper = Keeper()
    rec = mosfw_run(cap, plugins=[keeper], tcp_tw_interval=0)  # no zombies: slots reused at once
    assert rec.status == "done" and len(keeper.all) == n
    for i, flow in enumerate(sorted(keeper.all, key=lambda f: f.client[1])):
        assert flow.client == ("10.3.0.1", 20000 + i)
        assert flow.payload_bytes(Side.CLIENT) == 1 + i % 50
        assert flow.pkts(Side.CLIENT) + flow.pkts(Side.SERVER) == 7
        assert flow.ended and flow.uctx is None and flow.end_reason == mosfw.EndReason.FIN
    assert [f.client[1] for f in keeper.last] == [20000 + n - 3, 20000 + n - 2, 20000 + n - 1]
