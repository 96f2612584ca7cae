"""UDP and ICMP flows in the engine (issue 18): tracked only when a plugin
asks (``mosfw_protocols``), keyed as Zeek keys them (UDP by 5-tuple; ICMP
by addresses, type and counterpart type, a one-way message by direction
and code; the echo id is not part of the key), CONN_START on the first
packet, PKT_IN with the payload, per-direction counters, CONN_END by
``udp_timeout``/``icmp_timeout`` on packet time and at the end of input;
through IP fragments and tunnels; only the plugins that asked see them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mosfw
from mosfw import Side
from mosfw.testing import encap
from mosfw.testing.headers import icmp, ipv4, udp as udp_dgram
from mosfw.testing.packets import udp_packet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fragtool

A, B, C = "10.0.0.1", "10.0.0.2", "10.0.0.3"


class Log:
    """Records what it sees; asks for ``protocols``."""

    def __init__(self, protocols=("udp", "icmp")) -> None:
        self.protocols = set(protocols)
        self.seen: list[tuple] = []
        self.ended: dict[int, dict] = {}

    @mosfw.hookimpl
    def mosfw_protocols(self, config):
        return self.protocols

    @mosfw.hookimpl
    def mosfw_conn_start(self, flow, side, event):
        self.seen.append(("start", flow.proto, flow.client, flow.server, side.label))

    @mosfw.hookimpl
    def mosfw_pkt_in(self, flow, side, event):
        pkt = flow.last_packet()
        self.seen.append(("pkt", flow.proto, side.label, event.len, pkt.payload if pkt else None))

    @mosfw.hookimpl
    def mosfw_tcp_state_change(self, flow, side, old, new, event):
        self.seen.append(("state", flow.proto))

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason, event):
        self.seen.append(("end", flow.proto, reason.label, event.ts))
        self.ended[flow.id] = {
            "proto": flow.proto,
            "client": flow.client,
            "server": flow.server,
            "reason": reason.label,
            "end": event.ts,
            "first": flow.first_ts,
            "pkts": (flow.pkts(Side.CLIENT), flow.pkts(Side.SERVER)),
            "ip_bytes": (flow.ip_bytes(Side.CLIENT), flow.ip_bytes(Side.SERVER)),
            "payload": (flow.payload_bytes(Side.CLIENT), flow.payload_bytes(Side.SERVER)),
            "icmp": (flow.icmp_type, flow.icmp_code, flow.icmp_counterpart),
        }

    def records(self, proto=None) -> list[dict]:
        return [r for r in self.ended.values() if proto is None or r["proto"] == proto]


class TcpOnly:
    """A plugin that asked for nothing: TCP flows only."""

    def __init__(self) -> None:
        self.protos: list[str] = []

    @mosfw.hookimpl
    def mosfw_pkt_in(self, flow, side, event):
        self.protos.append(flow.proto)

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason, event):
        self.protos.append(flow.proto)


def test_udp_request_reply_is_one_flow_with_counters_and_payload(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=10.0, step=0.5)
    cap.udp((A, 40000), (B, 53), b"query")
    cap.udp((B, 53), (A, 40000), b"answer!")
    cap.udp((A, 40000), (B, 53), b"q2")
    log = Log()
    rec = mosfw_run(cap, plugins=[log])
    assert log.seen[:4] == [
        ("start", "udp", (A, 40000), (B, 53), "client"),
        ("pkt", "udp", "client", 5, b"query"),
        ("pkt", "udp", "server", 7, b"answer!"),
        ("pkt", "udp", "client", 2, b"q2"),
    ]
    (r,) = log.records()
    # IP bytes: 20 (IPv4) + 8 (UDP) + payload, per direction
    assert r["pkts"] == (2, 1) and r["payload"] == (7, 7) and r["ip_bytes"] == (28 + 5 + 28 + 2, 28 + 7)
    assert r["reason"] == "eof" and r["first"] == 10.0
    assert rec.stats.flows_created == 1 and rec.stats.ip_protos == {17: 3}
    assert not any(s[0] == "state" for s in log.seen)


def test_udp_reply_seen_first_flips_roles_by_likely_server_port(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=10.0)
    cap.udp((B, 53), (A, 40000), b"answer")  # (Zeek's UDP role flip)
    cap.udp((A, 40001), (B, 40002), b"x")  # neither side a server port: the sender is the client
    log = Log()
    mosfw_run(cap, plugins=[log])
    starts = [s for s in log.seen if s[0] == "start"]
    assert starts == [
        ("start", "udp", (A, 40000), (B, 53), "server"),
        ("start", "udp", (A, 40001), (B, 40002), "client"),
    ]


def test_icmp_echo_request_and_reply_are_one_flow_whatever_the_echo_id(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.icmp(A, B, 8, 0, b"ping-1")  # echo id 1 (mosfw.testing.headers.icmp)
    cap.icmp(B, A, 0, 0, b"ping-1")
    cap.add_ip(ipv4(A, B, 1, icmp(8, 0, b"ping-2", rest=b"\x00\x02\x00\x01")))  # echo id 2
    log = Log()
    rec = mosfw_run(cap, plugins=[log])
    (r,) = log.records("icmp")
    assert r["client"] == (A, 8) and r["server"] == (B, 0)
    assert r["icmp"] == (8, 0, 0)
    # ICMP bytes after the 8-byte header, as Zeek counts them
    assert r["pkts"] == (2, 1) and r["payload"] == (12, 6)
    assert rec.stats.ip_protos == {1: 3}


def test_icmp_one_way_messages_are_keyed_by_direction_and_code(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.icmp(B, A, 3, 3, b"port unreachable")
    cap.icmp(A, B, 3, 3, b"port unreachable")  # the other way: another flow (not a reply)
    cap.icmp(B, A, 3, 1, b"host unreachable")  # another code: another flow
    cap.icmp(B, A, 3, 3, b"again")
    log = Log()
    mosfw_run(cap, plugins=[log])
    got = sorted((r["client"], r["server"], r["pkts"], r["icmp"]) for r in log.records())
    assert got == [
        ((A, 3), (B, 3), (1, 0), (3, 3, None)),
        ((B, 3), (A, 1), (1, 0), (3, 1, None)),
        ((B, 3), (A, 3), (2, 0), (3, 3, None)),
    ]


def test_icmpv6_echo_is_one_flow(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.icmp("fd00::1", "fd00::2", 128, 0, b"x" * 10)
    cap.icmp("fd00::2", "fd00::1", 129, 0, b"x" * 10)
    log = Log()
    rec = mosfw_run(cap, plugins=[log])
    (r,) = log.records()
    assert r["proto"] == "icmp" and r["client"] == ("fd00::1", 128) and r["server"] == ("fd00::2", 129)
    assert r["pkts"] == (1, 1) and r["payload"] == (10, 10) and r["ip_bytes"] == (58, 58)
    assert rec.stats.ip_protos == {58: 2}


def test_tcp_and_udp_on_the_same_ports_are_two_flows(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.conversation(client=(A, 40000), server=(B, 80)).handshake()
    cap.udp((A, 40000), (B, 80), b"u")
    log = Log()
    rec = mosfw_run(cap, plugins=[log])
    assert sorted(r["proto"] for r in log.records()) == ["tcp", "udp"]
    assert rec.stats.flows_created == 2


@pytest.mark.parametrize("proto", ["udp", "icmp"])
def test_idle_timeout_on_packet_time_ends_the_flow(mosfw_capture, mosfw_run, proto):
    cap = mosfw_capture(start=100.0)

    def send(ts):
        if proto == "udp":
            cap.udp((A, 5000), (B, 6000), b"x", ts=ts)
        else:
            cap.icmp(A, B, 8, 0, b"x", ts=ts)

    send(100.0)
    send(109.0)  # 9 s idle: same flow (timeout 10)
    send(120.0)  # 11 s idle: the first ended at 119.0, a new flow
    log = Log()
    mosfw_run(cap, plugins=[log], **{f"{proto}_timeout": 10.0})
    got = sorted((r["first"], r["pkts"], r["reason"], r["end"]) for r in log.records())
    assert got == [(100.0, (2, 0), "timeout", 119.0), (120.0, (1, 0), "eof", 120.0)]


def test_nobody_asks_no_udp_flow_is_tracked(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.udp((A, 40000), (B, 53), b"query")
    cap.icmp(A, B)
    tcp = TcpOnly()
    rec = mosfw_run(cap, plugins=[tcp], events=None)
    assert rec.stats.flows_created == 0 and tcp.protos == []
    assert rec.stats.ip_protos == {17: 1, 1: 1}


def test_a_tcp_only_plugin_never_sees_a_udp_flow_another_plugin_asked_for(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.conversation(client=(A, 40000), server=(B, 80)).handshake()
    cap.udp((A, 40000), (B, 53), b"query")
    cap.icmp(A, B)
    tcp, udp_only = TcpOnly(), Log(protocols=("udp",))
    mosfw_run(cap, plugins=[tcp, udp_only], events=None)
    assert set(tcp.protos) == {"tcp"}
    assert sorted(r["proto"] for r in udp_only.records()) == ["tcp", "udp"]  # no icmp: not asked


def test_unknown_protocol_is_a_usage_error(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.udp((A, 1), (B, 2))
    with pytest.raises(mosfw.UsageError, match="sctp"):
        mosfw_run(cap, plugins=[Log(protocols=("sctp",))])


def test_udp_datagram_in_ip_fragments_is_reassembled(mosfw_run):
    payload = bytes(range(256)) * 6  # 1536 bytes
    dgram = udp_dgram(A, B, 7000, 7001, payload)
    frames = [
        (1.0, fragtool.ipv4_fragment(A, B, 99, 0, True, dgram[:800], proto=17)),
        (1.1, fragtool.ipv4_fragment(A, B, 99, 800, False, dgram[800:], proto=17)),
        (1.2, udp_packet(B, 7001, A, 7000, b"ok")),
    ]
    log = Log()
    rec = mosfw_run(frames, plugins=[log])
    pkts = [s for s in log.seen if s[0] == "pkt"]
    assert pkts == [("pkt", "udp", "client", 1536, payload), ("pkt", "udp", "server", 2, b"ok")]
    (r,) = log.records()
    assert r["ip_bytes"] == (20 + 8 + 1536, 30) and rec.stats.frag_reassembled == 1


def test_vxlan_inner_udp_is_the_flow_unless_decapsulation_is_off(mosfw_run):
    inner = udp_packet(A, 33000, B, 53, b"inner query")
    frames = [(1.0, encap.vxlan(inner))]
    log = Log()
    mosfw_run(frames, plugins=[log])
    (r,) = log.records()
    assert r["client"] == (A, 33000) and r["server"] == (B, 53) and r["payload"] == (11, 0)
    off = Log()
    mosfw_run(frames, plugins=[off], decap={"tunnel_max_depth": 0})
    (o,) = off.records()
    assert o["server"][1] == 4789 and o["payload"][0] == 8 + len(inner)


def test_hooks_that_never_fire_for_udp(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    for _ in range(3):
        cap.udp((A, 40000), (B, 9999), b"same")  # duplicates: no rexmit for UDP
    rec = mosfw_run(
        cap,
        plugins=[Log()],
        protocols=("udp",),
        events=("tcp_state_change", "rexmit", "conn_new_data", "orphan", "conn_start", "conn_end"),
    )
    assert [e.event for e in rec.events] == ["conn_start", "conn_end"]
    assert all(e.proto == "udp" for e in rec.events)


def test_tcp_packet_counts_unchanged_with_udp_tracked(mosfw_capture, mosfw_run):
    def capture():
        cap = mosfw_capture(start=5.0)
        conv = cap.conversation(client=(A, 40000), server=(B, 80))
        conv.handshake()
        cap.udp((C, 1000), (B, 53), b"q")
        conv.send("client", b"GET / HTTP/1.0\r\n\r\n")
        conv.close()
        return cap

    plain = mosfw_run(capture(), plugins=[TcpOnly()])
    with_udp = mosfw_run(capture(), plugins=[TcpOnly(), Log()])
    tcp_events = [e.short for e in plain.events]
    assert [e.short for e in with_udp.events if e.proto in (None, "tcp")] == tcp_events


def test_other_ip_protocols_are_flows_by_address_pair_and_protocol(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0)
    cap.add_ip(ipv4(A, B, 50, b"e" * 40))  # ESP
    cap.add_ip(ipv4(B, A, 50, b"f" * 60))
    cap.add_ip(ipv4(A, B, 132, b"s" * 12))  # SCTP: another protocol, another flow
    cap.udp((A, 1), (B, 2), b"u")  # not asked for: not tracked
    log = Log(protocols=("other",))
    rec = mosfw_run(cap, plugins=[log])
    got = sorted((r["proto"], r["client"], r["server"], r["pkts"], r["payload"]) for r in log.records())
    assert got == [("other", (A, 0), (B, 0), (1, 0), (12, 0)), ("other", (A, 0), (B, 0), (1, 1), (40, 60))]
    assert rec.stats.flows_created == 2 and rec.stats.ip_protos == {50: 2, 132: 1, 17: 1}
