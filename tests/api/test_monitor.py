"""Monitor filters (stream_syn_filter, stream_orphan_filter:
mtcp_bind_monitor_filter) and MOS_STOP_MON (flow.stop_monitoring)."""

from __future__ import annotations

import pytest

import mosfw
from mosfw import Side
from mosfw.engine import EngineError, PluginError

C, S = Side.CLIENT, Side.SERVER


def flows(mosfw_capture):
    cap = mosfw_capture()
    web = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    ssh = cap.conversation(client=("10.0.0.3", 50000), server=("10.0.0.2", 22))
    mid = cap.conversation(client=("10.0.0.4", 50001), server=("10.0.0.2", 443))
    web.handshake()
    ssh.handshake()
    mid.midstream()
    for c in (web, ssh, mid):
        c.send("client", 10)
        c.send("server", 20)
    web.close()
    ssh.close()
    cap.conversation(client=("10.0.0.9", 9), server=("10.0.0.2", 80)).rst("client")
    cap.conversation(client=("10.0.0.9", 9), server=("10.0.0.2", 25)).rst("client")
    return cap


class Filters:
    def __init__(self, syn=None, orphan=None):
        self.syn, self.orphan = syn, orphan
        self.stats = {}

    @mosfw.hookimpl
    def mosfw_core_start(self, core):
        core.set_monitor_filter(syn=self.syn, orphan=self.orphan)

    @mosfw.hookimpl
    def mosfw_core_finish(self, core):
        self.stats = core.api_stats()


def test_syn_filter_decides_which_flows_are_tracked(mosfw_capture, mosfw_run):
    cap = flows(mosfw_capture)
    f = Filters(syn="tcp port 80 or tcp port 443")
    rec = mosfw_run(cap, plugins=[f])
    servers = {e.server for e in rec.events if e.flow_id}
    assert servers == {"10.0.0.2:80", "10.0.0.2:443"}  # ssh never tracked, not an orphan
    assert rec.stats.flows_created == 2
    assert f.stats["syn_filtered"] == 8  # every packet of the ssh connection
    assert len(rec.of("orphan")) == 2


def test_orphan_filter(mosfw_capture, mosfw_run):
    cap = flows(mosfw_capture)
    f = Filters(orphan="tcp dst port 25")
    rec = mosfw_run(cap, plugins=[f])
    assert [e.server for e in rec.of("orphan")] == ["10.0.0.2:25"]
    assert f.stats["orphan_filtered"] == 1 and rec.stats.orphans == 2
    assert rec.stats.flows_created == 3


def test_bad_monitor_filter(mosfw_capture, mosfw_run):
    # raised in mosfw_core_start: a plugin error (fail_fast in tests), naming the filter
    with pytest.raises((EngineError, PluginError), match=r"stream_syn_filter.*syntax error"):
        mosfw_run(flows(mosfw_capture), plugins=[Filters(syn="port and and")])


def test_stop_monitoring_one_side(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 10)
    c.send("server", 20)
    c.send("client", 10)
    c.send("server", 20)
    c.close()
    got = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            got.append((side.label, len(flow.peek(side))))
            if side == S:
                flow.stop_monitoring(S)
                assert flow.stream_info(S) is None  # its buffer is gone

    rec = mosfw_run(cap, plugins=[App()])
    assert got == [("client", 10), ("server", 20), ("client", 10)]
    # no more server-side events; client ones and CONN_END still come
    assert ("tcp_state_change", "server", "ESTABLISHED", "CLOSE_WAIT") not in rec.short()
    assert ("tcp_state_change", "client", "ESTABLISHED", "FIN_WAIT_1") in rec.short()
    assert rec.short()[-1] == ("conn_end", "fin")


def test_stop_monitoring_both_sides(mosfw_capture, mosfw_run):
    """No events at all afterwards, not even CONN_END; the flow is still
    tracked (its later packets are no mid-stream pickups)."""
    cap = mosfw_capture()
    a = cap.conversation()
    b = cap.conversation(client=("10.0.0.7", 7777))
    a.handshake()
    b.handshake()
    a.send("client", 10)
    b.send("client", 10)
    a.send("server", 10)
    b.send("server", 10)
    a.close()
    b.close()
    kept = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            if flow.client[0] == "10.0.0.1":
                flow.uctx = "x"
                flow.settimer(100, lambda: kept.append("timer fired"))
                flow.stop_monitoring()
                kept.append(flow)

    rec = mosfw_run(cap, plugins=[App()])
    a_events = [e.short for e in rec.events if e.client == "10.0.0.1:40000"]
    assert a_events[-1] == ("conn_new_data", "client", 1001, 10) and ("conn_end", "fin") not in a_events
    assert rec.stats.flows_created == 2 and rec.stats.flows_ended_fin == 2
    f = kept[0]
    assert not f.monitored and f.uctx is None and f.peek(C) == b""
    assert [e.short for e in rec.events if e.client == "10.0.0.7:7777"][-1] == ("conn_end", "fin")
