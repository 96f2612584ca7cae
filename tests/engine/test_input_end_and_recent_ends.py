"""``mosfw_input_end`` (the flow table at the end of the input, before the
flows still open end with reason eof) and ``Core.keep_recent_ends`` /
``Core.recent_ends`` (the records of the last flows that ended, kept by
the engine with no event per flow): what samples/midstat's final table
and digest are made of. Each is checked against the CONN_END events of
the same run."""

from __future__ import annotations

import mosfw
from mosfw import EndReason
from mosfw.engine import PluginError

SRV = ("10.0.0.2", 80)


class Probe:
    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.at_input_end = None
        self.input_end_calls = 0
        self.eof_before_input_end = None
        self.recent = None

    @mosfw.hookimpl
    def mosfw_core_start(self, core):
        core.keep_recent_ends(self.keep)

    @mosfw.hookimpl
    def mosfw_input_end(self, core):
        self.input_end_calls += 1
        flows = core.live_flows()
        self.at_input_end = [(f.client_str, f.client_state.name, f.server_state.name) for f in flows]
        self.eof_before_input_end = core.stats().flows_ended_eof
        # the same table as plain rows (what midstat reads)
        self.rows = core.live_rows()
        self.rows_from_flows = [
            (
                f.client_str,
                f.server_str,
                int(f.client_state),
                int(f.server_state),
                f.first_ts,
                f.id,
                f.ip_proto,
            )
            for f in flows
        ]

    @mosfw.hookimpl
    def mosfw_core_finish(self, core):
        self.recent = core.recent_ends()


def five_conversations(cap):
    convs = [cap.conversation(client=(f"10.0.0.{i}", 40000 + i), server=SRV) for i in range(10, 15)]
    for c in convs:
        c.handshake()
        c.send("client", 100)
    cap.advance(0.5)
    convs[0].close()  # fin
    convs[1].rst("server")  # rst
    cap.advance(0.5)
    convs[2].close(first="server")  # fin
    convs[3].send("server", 50)  # 3 and 4 are still open at the end
    convs[4].fin("client")  # (half closed)
    return convs


def test_input_end_sees_the_flows_the_end_of_input_ends(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=100.0)
    five_conversations(cap)
    probe = Probe(keep=8)
    rec = mosfw_run(cap, plugins=[probe], events=["conn_end"])
    eof = [(e.client, e.client_state, e.server_state) for e in rec.of("conn_end") if e.reason == "eof"]
    assert probe.input_end_calls == 1 and probe.eof_before_input_end == 0
    assert probe.at_input_end == eof
    assert [row[0] for row in eof] == ["10.0.0.13:40013", "10.0.0.14:40014"]
    assert eof[1][1:] == ("FIN_WAIT_1", "CLOSE_WAIT")
    assert probe.rows == probe.rows_from_flows and len(probe.rows) == 2


def test_live_rows_of_ipv6_and_many_flows(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=50.0)
    for i in range(300):
        client = (
            (f"fd00::{i + 1:x}", 30000 + i) if i % 3 == 0 else (f"10.1.{i // 250}.{i % 250 + 1}", 30000 + i)
        )
        server = ("fd00::ffff", 443) if i % 3 == 0 else SRV
        cap.conversation(client=client, server=server).handshake()
    probe = Probe(keep=0)
    mosfw_run(cap, plugins=[probe])
    assert len(probe.rows) == 300 and probe.rows == probe.rows_from_flows
    assert probe.rows[0][:2] == ("[fd00::1]:30000", "[fd00::ffff]:443")


def test_recent_ends_are_the_last_flows_that_ended_before_the_end(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=100.0)
    five_conversations(cap)
    everything = Probe(keep=8)
    rec = mosfw_run(cap, plugins=[everything], events=["conn_end"])
    ended = [
        (e.client, e.reason, e.ts, e.client_state, e.server_state)
        for e in rec.of("conn_end")
        if e.reason != "eof"
    ]
    assert len(ended) == 3
    got = [
        (f.client_str, f.end_reason.label, ts, f.client_state.name, f.server_state.name)
        for ts, f in everything.recent
    ]
    assert got == ended  # the same flows, order, end times and last states as their CONN_END
    assert all(f.ended for _, f in everything.recent)
    # frozen copies: readable after the run, with the counters at their end
    f = everything.recent[0][1]
    assert f.end_reason == EndReason.FIN and f.pkts(0) >= 4 and f.payload_bytes(0) == 100
    assert f.duration > 0.4

    two = Probe(keep=2)  # a ring: the oldest go
    mosfw_run(cap, plugins=[two])
    assert [(ts, f.client_str) for ts, f in two.recent] == [
        (ts, f.client_str) for ts, f in everything.recent[-2:]
    ]

    none = Probe(keep=0)
    mosfw_run(cap, plugins=[none])
    assert none.recent == []


def test_keep_recent_ends_refuses_a_negative_count(mosfw_capture, mosfw_run):
    import pytest

    cap = mosfw_capture()
    cap.conversation().handshake()
    with pytest.raises(PluginError, match="keep_recent_ends"):
        mosfw_run(cap, plugins=[Probe(keep=-1)])
