"""Event sequences on hand-built captures: a capture in, the exact events out.

Written with the app-writer fixtures (``mosfw_capture``, ``mosfw_run``),
as every mosfw test is. ``short()`` tuples: ("conn_start", side[,
"midstream"]), ("tcp_state_change", side, old, new), ("rexmit"|
"conn_new_data", side, seq, len), ("conn_end", reason), ("orphan",).
"""

from __future__ import annotations

import pytest

from mosfw.testing.expected import CLIENT_CLOSE, HANDSHAKE

CLI, SRV = ("10.0.0.1", 40000), ("10.0.0.2", 80)


@pytest.fixture
def conv(mosfw_capture):
    """A capture with one conversation: returns (capture, conversation)."""

    def make(client=CLI, server=SRV, linktype="ether", **kw):
        cap = mosfw_capture(linktype=linktype)
        return cap, cap.conversation(client=client, server=server, **kw)

    return make


def close_client_first(c):
    c.fin("client")
    c.fin("server")
    c.ack("client")


def test_three_way_handshake(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [("conn_end", "eof")]
    start = rec.of("conn_start")
    assert [e.new for e in start] == ["SYN_SENT", "SYN_RCVD"]
    assert all(e.client == "10.0.0.1:40000" and e.server == "10.0.0.2:80" for e in rec.events)


def test_data_both_ways_and_fin_fin(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    c.send("server", 1000)
    c.send("server", 500)
    close_client_first(c)
    rec = mosfw_run(cap)
    assert (
        rec.short()
        == HANDSHAKE
        + [
            ("conn_new_data", "client", 1001, 100),
            ("conn_new_data", "server", 5001, 1000),
            ("conn_new_data", "server", 6001, 500),
        ]
        + CLIENT_CLOSE
    )
    assert rec.stats.flows_ended_fin == 1 and rec.stats.rexmits == 0


def test_server_closes_first(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.fin("server")
    c.fin("client")
    c.ack("server")
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [
        ("tcp_state_change", "server", "ESTABLISHED", "FIN_WAIT_1"),
        ("tcp_state_change", "client", "ESTABLISHED", "CLOSE_WAIT"),
        ("tcp_state_change", "client", "CLOSE_WAIT", "LAST_ACK"),
        ("tcp_state_change", "server", "FIN_WAIT_1", "FIN_WAIT_2"),
        ("tcp_state_change", "server", "FIN_WAIT_2", "TIME_WAIT"),
        ("tcp_state_change", "client", "LAST_ACK", "CLOSED"),
        ("conn_end", "fin"),
    ]


def test_fin_acked_separately(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.fin("client")
    c.ack("server")  # acks the FIN: client to FIN_WAIT_2
    c.fin("server")
    c.ack("client")
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [
        ("tcp_state_change", "client", "ESTABLISHED", "FIN_WAIT_1"),
        ("tcp_state_change", "server", "ESTABLISHED", "CLOSE_WAIT"),
        ("tcp_state_change", "client", "FIN_WAIT_1", "FIN_WAIT_2"),
        ("tcp_state_change", "server", "CLOSE_WAIT", "LAST_ACK"),
        ("tcp_state_change", "client", "FIN_WAIT_2", "TIME_WAIT"),
        ("tcp_state_change", "server", "LAST_ACK", "CLOSED"),
        ("conn_end", "fin"),
    ]


def test_rst_from_server(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.rst("server")
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [
        ("conn_new_data", "client", 1001, 10),
        ("tcp_state_change", "server", "ESTABLISHED", "CLOSED"),
        ("tcp_state_change", "client", "ESTABLISHED", "CLOSED"),
        ("conn_end", "rst"),
    ]


def test_rejected_syn(conv, mosfw_run):
    """SYN answered by RST: the server never starts (no server CONN_START)."""
    cap, c = conv()
    c.syn()
    c.rst("server")
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client"),
        ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
        ("tcp_state_change", "server", "LISTEN", "CLOSED"),
        ("tcp_state_change", "client", "SYN_SENT", "CLOSED"),
        ("conn_end", "rst"),
    ]


def test_simultaneous_open(conv, mosfw_run):
    """Both send SYN; each then sends SYN/ACK with its own ISN again (a
    repeated SYN in sequence space: REXMIT, as tshark also marks it)."""
    cap, c = conv()
    c.syn()
    c.segment("server", "S", seq=5000)
    c.segment("client", "SA", seq=1000, ack=5001)
    c.segment("server", "SA", seq=5000, ack=1001)
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client"),
        ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
        ("conn_start", "server"),
        ("tcp_state_change", "server", "LISTEN", "SYN_SENT"),
        ("tcp_state_change", "client", "SYN_SENT", "SYN_RCVD"),
        ("rexmit", "client", 1000, 0),
        ("tcp_state_change", "server", "SYN_SENT", "ESTABLISHED"),
        ("rexmit", "server", 5000, 0),
        ("tcp_state_change", "client", "SYN_RCVD", "ESTABLISHED"),
        ("conn_end", "eof"),
    ]


def test_simultaneous_close(conv, mosfw_run):
    """FINs cross: each FIN does not ack the other; both go CLOSING."""
    cap, c = conv()
    c.handshake()
    fin_c = c.fin("client", emit=False)
    c.fin("server", ack=c.client_nxt - 1)  # sent before the client's FIN arrived
    c.emit(fin_c)
    c.ack("client")
    c.ack("server")
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [
        ("tcp_state_change", "server", "ESTABLISHED", "FIN_WAIT_1"),
        ("tcp_state_change", "client", "ESTABLISHED", "CLOSE_WAIT"),
        ("tcp_state_change", "client", "CLOSE_WAIT", "CLOSING"),
        ("tcp_state_change", "server", "FIN_WAIT_1", "CLOSING"),
        ("tcp_state_change", "server", "CLOSING", "TIME_WAIT"),
        ("tcp_state_change", "client", "CLOSING", "TIME_WAIT"),
        ("conn_end", "fin"),
    ]


def test_retransmitted_syn_raises_no_second_conn_start(conv, mosfw_run):
    cap, c = conv()
    syn = c.syn()
    c.rexmit(syn)
    c.rexmit(syn)
    c.synack()
    c.ack("client")
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client"),
        ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
        ("rexmit", "client", 1000, 0),
        ("rexmit", "client", 1000, 0),
    ] + HANDSHAKE[2:] + [("conn_end", "eof")]
    assert len(rec.of("conn_start")) == 2


def test_retransmitted_data_and_fin(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    seg = c.send("server", 1000)
    c.rexmit(seg)
    fin = c.fin("client")
    c.rexmit(fin)
    rec = mosfw_run(cap)
    assert ("rexmit", "server", 5001, 1000) in rec.short()
    assert ("rexmit", "client", 1001, 0) in rec.short()
    assert rec.short("rexmit", "conn_new_data") == [
        ("conn_new_data", "server", 5001, 1000),
        ("rexmit", "server", 5001, 1000),
        ("rexmit", "client", 1001, 0),
    ]
    assert rec.stats.rexmits == 2


def test_partial_overlap_is_rexmit_and_new_data(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    c.segment("client", "PA", seq=1051, payload=b"x" * 100)  # 50 old + 50 new bytes
    rec = mosfw_run(cap)
    assert rec.short("rexmit", "conn_new_data") == [
        ("conn_new_data", "client", 1001, 100),
        ("rexmit", "client", 1051, 100),
        ("conn_new_data", "client", 1101, 50),
    ]


def test_out_of_order_then_fill(conv, mosfw_run):
    """A gap (first segment delayed), data beyond it, then the fill: the
    fill starts below the highest sequence end, so it is a REXMIT.

    With reassembly buffers (on whenever CONN_NEW_DATA is subscribed),
    CONN_NEW_DATA means "new in-order bytes readable": nothing for the
    segment beyond the gap, then one event for all 200 bytes after the
    fill. With ``no_ring_buffers = 1`` it is "payload beyond the highest
    sequence number seen": the segment beyond the gap raises it."""
    cap, c = conv()
    c.handshake()
    late = c.send("client", 100, emit=False)
    c.send("client", 100)
    c.emit(late)
    close_client_first(c)
    rec = mosfw_run(cap)
    assert (
        rec.short()
        == HANDSHAKE
        + [
            ("rexmit", "client", 1001, 100),
            ("conn_new_data", "client", 1001, 200),
        ]
        + CLIENT_CLOSE
    )
    rec = mosfw_run(cap, no_ring_buffers=1)
    assert (
        rec.short()
        == HANDSHAKE
        + [
            ("conn_new_data", "client", 1101, 100),
            ("rexmit", "client", 1001, 100),
        ]
        + CLIENT_CLOSE
    )


def test_gap_never_filled_does_not_wedge(conv, mosfw_run):
    """A segment the tap never saw: the connection still closes normally."""
    cap, c = conv()
    c.handshake()
    c.send("server", 1000, emit=False)
    c.send("server", 1000)
    close_client_first(c)
    rec = mosfw_run(cap)
    assert rec.short()[-7:] == CLIENT_CLOSE
    assert rec.stats.rexmits == 0


def test_keepalive_is_not_a_rexmit(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.keepalive("client")
    c.keepalive("client", one_byte=True)
    c.ack("server")
    rec = mosfw_run(cap)
    assert rec.of("rexmit") == []
    assert rec.short() == HANDSHAKE + [("conn_new_data", "client", 1001, 10), ("conn_end", "eof")]


def test_duplicate_packet_is_rexmit(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    seg = c.send("client", 300)
    c.emit(seg)
    rec = mosfw_run(cap)
    assert rec.short("rexmit") == [("rexmit", "client", 1001, 300)]


def test_midstream_pickup(conv, mosfw_run):
    cap, c = conv()
    c.syn(emit=False)
    c.synack(emit=False)
    c.ack("client", emit=False)
    c.send("server", 100)
    c.send("client", 50)
    c.fin("server")
    c.fin("client")
    c.ack("server")
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client", "midstream"),
        ("conn_start", "server", "midstream"),
        ("conn_new_data", "server", 5001, 100),
        ("conn_new_data", "client", 1001, 50),
        ("tcp_state_change", "server", "ESTABLISHED", "FIN_WAIT_1"),
        ("tcp_state_change", "client", "ESTABLISHED", "CLOSE_WAIT"),
        ("tcp_state_change", "client", "CLOSE_WAIT", "LAST_ACK"),
        ("tcp_state_change", "server", "FIN_WAIT_1", "FIN_WAIT_2"),
        ("tcp_state_change", "server", "FIN_WAIT_2", "TIME_WAIT"),
        ("tcp_state_change", "client", "LAST_ACK", "CLOSED"),
        ("conn_end", "fin"),
    ]
    # first packet came from port 80: the likely server, so roles are kept
    assert rec.events[0].client == "10.0.0.1:40000"
    assert rec.stats.flows_midstream == 1


def test_midstream_roles_from_ports_when_first_packet_is_from_client(conv, mosfw_run):
    cap, c = conv(client=("10.0.0.1", 51000), server=("10.0.0.2", 443))
    c.syn(emit=False)
    c.synack(emit=False)
    c.send("client", 20)
    rec = mosfw_run(cap)
    assert rec.events[0].client == "10.0.0.1:51000"
    assert rec.events[0].server == "10.0.0.2:443"


def test_synack_seen_first(conv, mosfw_run):
    """The client's SYN was missed: the client is assumed SYN_SENT."""
    cap, c = conv()
    c.syn(emit=False)
    c.synack()
    c.ack("client")
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client", "midstream"),
        ("conn_start", "server"),
        ("tcp_state_change", "server", "LISTEN", "SYN_RCVD"),
        ("tcp_state_change", "client", "SYN_SENT", "ESTABLISHED"),
        ("tcp_state_change", "server", "SYN_RCVD", "ESTABLISHED"),
        ("conn_end", "eof"),
    ]


def test_missed_synack_is_inferred(conv, mosfw_run):
    """SYN, (SYN/ACK lost before the tap), ACK + data from the client."""
    cap, c = conv()
    c.syn()
    c.synack(emit=False)
    c.ack("client")
    c.send("server", 10)
    rec = mosfw_run(cap)
    assert rec.short() == [
        ("conn_start", "client"),
        ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
        ("tcp_state_change", "client", "SYN_SENT", "ESTABLISHED"),
        ("conn_start", "server", "midstream"),
        ("tcp_state_change", "server", "LISTEN", "ESTABLISHED"),
        ("conn_new_data", "server", 5001, 10),
        ("conn_end", "eof"),
    ]


def test_sequence_wraparound(conv, mosfw_run):
    cap, c = conv(client_isn=2**32 - 50, server_isn=2**32 - 2)
    c.handshake()
    c.send("client", 100)  # crosses 2**32
    seg = c.send("client", 100)
    c.rexmit(seg)
    close_client_first(c)
    rec = mosfw_run(cap)
    assert (
        rec.short()
        == HANDSHAKE
        + [
            ("conn_new_data", "client", 2**32 - 49, 100),
            ("conn_new_data", "client", 51, 100),
            ("rexmit", "client", 51, 100),
        ]
        + CLIENT_CLOSE
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"client": ("fd00::1", 40000), "server": ("fd00::2", 80)},
        {"vlan": 100},
        {"vlan": [100, 200]},
        {"client": ("fd00::1", 40000), "server": ("fd00::2", 80), "vlan": [7, 8]},
        {
            "client": ("fd00::1", 40000),
            "server": ("fd00::2", 80),
            "ext_headers": ["hbh", "dstopts", "routing"],
        },
    ],
    ids=["ipv6", "vlan", "qinq", "ipv6-qinq", "ipv6-ext-headers"],
)
def test_encapsulations(conv, mosfw_run, kw):
    cap, c = conv(**kw)
    c.handshake()
    c.send("client", 100)
    close_client_first(c)
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + [("conn_new_data", "client", 1001, 100)] + CLIENT_CLOSE
    if "fd00" in kw.get("client", ("",))[0]:
        assert rec.events[0].client == "[fd00::1]:40000"


@pytest.mark.parametrize("linktype", ["raw", "sll", "sll2", "null", "loop"])
def test_link_types(conv, mosfw_run, linktype):
    for client, server in ((CLI, SRV), (("fd00::1", 40000), ("fd00::2", 80))):
        cap, c = conv(client=client, server=server, linktype=linktype)
        c.handshake()
        close_client_first(c)
        rec = mosfw_run(cap)
        assert rec.short() == HANDSHAKE + CLIENT_CLOSE, (linktype, client)


def test_idle_timeout_on_packet_time(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    a = cap.conversation(client=CLI, server=SRV)
    a.syn()  # half-open, never answered
    cap.advance(100)
    b = cap.conversation(client=("10.0.0.3", 1234), server=SRV)
    b.handshake()
    rec = mosfw_run(cap, tcp_timeout=30)
    assert rec.short() == [
        ("conn_start", "client"),
        ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
        ("conn_end", "timeout"),  # before the later flow's first packet
    ] + HANDSHAKE + [("conn_end", "eof")]
    end = rec.of("conn_end")[0]
    assert end.ts == pytest.approx(1030.0)  # deadline, on packet time


def test_late_packet_after_close_is_orphan(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    close_client_first(c)
    c.ack("client")  # a duplicate of the last ACK, after the end
    c.rst("server")
    rec = mosfw_run(cap)
    assert rec.short()[-3:] == [("conn_end", "fin"), ("orphan",), ("orphan",)]
    assert rec.stats.orphans == 2 and rec.stats.flows_created == 1


def test_stray_rst_is_orphan(conv, mosfw_run):
    cap, c = conv()
    c.rst("server")
    rec = mosfw_run(cap)
    assert rec.short() == [("orphan",)]
    assert rec.events[0].client == "10.0.0.2:80"  # orphans: sender first


def test_new_syn_after_close_is_a_new_flow(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    close_client_first(c)
    d = cap.conversation(client=CLI, server=SRV, client_isn=777777, server_isn=888888)
    d.handshake()
    rec = mosfw_run(cap)
    assert rec.short() == HANDSHAKE + CLIENT_CLOSE + HANDSHAKE + [("conn_end", "eof")]
    assert len(rec.flows()) == 2


def test_port_reuse_while_closing(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    c.fin("client")  # server never answers the FIN
    d = cap.conversation(client=CLI, server=SRV, client_isn=777777, server_isn=888888)
    d.handshake()
    rec = mosfw_run(cap)
    ends = rec.short("conn_end")
    assert ends == [("conn_end", "reused"), ("conn_end", "eof")]


def test_every_flow_ends_once_with_many_interleaved(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    convs = cap.conversations(50, handshake=True)
    for i, c in enumerate(convs):
        c.send("client", 10 + i)
    for c in convs[::2]:
        close_client_first(c)
    for c in convs[1::4]:
        c.rst("client")
    rec = mosfw_run(cap)
    flows = rec.flows()
    assert len(flows) == 50
    for evs in flows.values():
        assert [e.event for e in evs].count("conn_end") == 1
        assert evs[-1].event == "conn_end"
    reasons = sorted(e.reason for e in rec.of("conn_end"))
    assert reasons.count("fin") == 25 and reasons.count("rst") == 13 and reasons.count("eof") == 12


def test_table_full_evicts_half_open_first(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    est = cap.conversation(client=CLI, server=SRV)
    est.handshake()
    for i in range(3):
        cap.conversation(client=("10.0.1.1", 1000 + i), server=SRV).syn()
    rec = mosfw_run(cap, max_concurrency=2)
    # the established flow survives; half-open ones are evicted oldest first
    assert rec.stats.flows_evicted == 2
    ends = [(e.client, e.reason) for e in rec.of("conn_end")]
    assert ends[:2] == [("10.0.1.1:1000", "evicted"), ("10.0.1.1:1001", "evicted")]
    assert ("10.0.0.1:40000", "eof") in ends
    assert rec.short("error") == [("error", "table_full"), ("error", "table_full")]


def test_table_full_of_established_refuses_new_syn(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    for i in range(2):
        cap.conversation(client=("10.0.0.1", 2000 + i), server=SRV).handshake()
    cap.conversation(client=("10.0.9.9", 3000), server=SRV).syn()
    rec = mosfw_run(cap, max_concurrency=2)
    assert rec.stats.flows_refused == 1 and rec.stats.flows_evicted == 0
    assert ("orphan",) in rec.short()
    assert [e.reason for e in rec.of("conn_end")] == ["eof", "eof"]


def test_non_tcp_is_counted_and_skipped(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    cap.udp(("10.0.0.1", 53), ("10.0.0.2", 5353), b"hello")
    cap.icmp("10.0.0.1", "10.0.0.2")
    c = cap.conversation(client=CLI, server=SRV)
    c.handshake()
    rec = mosfw_run(cap)
    assert rec.stats.non_tcp == 2 and rec.stats.tcp_packets == 3
    assert rec.short() == HANDSHAKE + [("conn_end", "eof")]


def test_bpf_filter(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    cap.conversation(client=CLI, server=SRV).handshake()
    cap.conversation(client=("10.0.0.5", 5555), server=("10.0.0.2", 443)).handshake()
    rec = mosfw_run(cap, bpf="tcp port 443")
    assert {e.server for e in rec.events} == {"10.0.0.2:443"}
    assert rec.stats.packets == 3


def test_checksums_not_verified_by_default(mosfw_capture, mosfw_run, tmp_path):
    from mosfw.testing import packets as P

    cap = mosfw_capture()
    c = cap.conversation(client=CLI, server=SRV)
    c.handshake()
    # corrupt the TCP checksum of every packet (what offload captures look like)
    recs = cap.packets
    bad = mosfw_capture()
    for ts, frame in recs:
        ip = frame[14:]
        bad.add(frame[:14] + P.corrupt_l4_checksum(ip), ts=ts)
    assert mosfw_run(bad).short() == HANDSHAKE + [("conn_end", "eof")]
    checked = mosfw_run(bad, verify_checksums=True)
    assert checked.short() == [] and checked.stats.bad_checksum == 3
