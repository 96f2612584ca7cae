"""The engine's ``tcp_partial_open`` (mosfw_config; off by default, the
tracker sets it): a first TCP packet that is neither a SYN, a SYN/ACK nor
an ACK without RST (a lone RST, RST+ACK, a FIN without ACK, a packet
without flags, SYN+RST) starts a mid-stream flow, as Zeek's
``partial_connection_ok`` (src/packet_analysis/protocol/tcp/TCP.cc
``WantConnection``); without it such a packet is an orphan, as in mOS.
"""

from __future__ import annotations

import pytest

CLI, SRV = ("10.0.0.1", 40000), ("10.0.0.2", 80)

FIRST = {
    "lone_rst": lambda c: c.rst("client", with_ack=False),
    "rst_ack": lambda c: c.rst("client"),
    "fin": lambda c: c.segment("client", "F"),
    "null_flags": lambda c: c.segment("client", 0),
    "syn_rst": lambda c: c.segment("client", "SR"),
}
ENDS = {"lone_rst": "rst", "rst_ack": "rst", "fin": "eof", "null_flags": "eof", "syn_rst": "rst"}


@pytest.fixture
def conv(mosfw_capture):
    def make(client=CLI, server=SRV):
        cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
        c = cap.conversation(client=client, server=server)
        c.midstream()
        return cap, c

    return make


@pytest.mark.parametrize("first", sorted(FIRST))
def test_first_packet_without_syn_or_ack_is_an_orphan_by_default(conv, mosfw_run, first):
    cap, c = conv()
    FIRST[first](c)
    rec = mosfw_run(cap)
    assert rec.short() == [("orphan",)]
    assert (rec.stats.orphans, rec.stats.flows_created) == (1, 0)


@pytest.mark.parametrize("first", sorted(FIRST))
def test_first_packet_without_syn_or_ack_starts_a_flow_when_asked(conv, mosfw_run, first):
    cap, c = conv()
    FIRST[first](c)
    rec = mosfw_run(cap, tcp_partial_open=True, events=["conn_start", "conn_end", "pkt_in", "orphan"])
    assert rec.short()[:2] == [("conn_start", "client", "midstream"), ("conn_start", "server", "midstream")]
    assert [e.event for e in rec.events].count("pkt_in") == 1
    assert rec.short()[-1] == ("conn_end", ENDS[first])
    assert (rec.stats.orphans, rec.stats.flows_created, rec.stats.flows_midstream) == (0, 1, 1)
    assert rec.of("conn_start")[0].client == "10.0.0.1:40000"


def test_partial_flow_from_a_likely_server_port_has_its_receiver_as_client(conv, mosfw_run):
    # the rule of the other mid-stream starts: a likely server port to an
    # unlikely one makes the receiver the client
    cap, c = conv()
    c.rst("server", with_ack=False)
    rec = mosfw_run(cap, tcp_partial_open=True)
    assert rec.of("conn_start")[0].client == "10.0.0.1:40000"
    assert rec.stats.flows_created == 1


@pytest.mark.parametrize(
    "first, reply, want_late",
    [
        # ended on the RST: a late packet of the ended flow (the tracker
        # counts it: Zeek's close delay)
        ("lone_rst", lambda c: c.send("server", 10), 1),
        ("null_flags", lambda c: c.ack("server"), 0),  # the same flow
        ("fin", lambda c: c.ack("server"), 0),
    ],
)
def test_reply_to_a_partial_first_packet_is_the_same_flow(conv, mosfw_run, first, reply, want_late):
    cap, c = conv()
    FIRST[first](c)
    reply(c)
    rec = mosfw_run(cap, tcp_partial_open=True)
    assert rec.stats.flows_created == 1
    assert (len(rec.of("orphan")), rec.stats.orphans) == (want_late, want_late)


def test_the_option_leaves_syn_starts_alone(conv, mosfw_run):
    # a handshake gives the same events with and without it
    cap, c = conv()
    c.rst("client", with_ack=False)  # the old connection's end ...
    cap.advance(10.0)
    d = cap.conversation(client=("10.0.0.3", 40001), server=SRV)
    d.handshake()
    d.close("client")
    off, on = mosfw_run(cap), mosfw_run(cap, tcp_partial_open=True)
    assert on.short()[-len(off.short()) + 1 :] == off.short()[1:]  # all but the orphan
    assert (off.stats.flows_created, on.stats.flows_created) == (1, 2)
