"""Zeek's UDP and ICMP rules in the tracker, one constructed capture per
rule (docs/zeek-rules.md, "UDP and ICMP"). The expected record comes from
Zeek's rule, cited in each test: src/packet_analysis/protocol/udp/UDP.cc
(WantConnection's role flip, the 'D'/'d' history letters, the sizes from
the UDP length), icmp/ICMP.cc (the key: type and counterpart type, or the
code of a one-way message; sizes after the 8-byte header), Conn.cc
FlipRoles ('^'), base/protocols/conn/main.zeek conn_state(), init-bare.zeek
udp_inactivity_timeout / icmp_inactivity_timeout (1 min)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")
A, B = "10.0.0.1", "10.0.0.2"


@pytest.fixture
def cap(mosfw_capture):
    return mosfw_capture(linktype="ether", start=1000.0, step=0.001)


def brief(r: dict) -> tuple:
    return (
        r["proto"], r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["conn_state"],
        r.get("history", "-"), r["orig_pkts"], r["resp_pkts"],
    )  # fmt: skip


# -- UDP --------------------------------------------------------------------


def test_udp_request_and_reply_is_sf_dd(cap, track):
    # UDP.cc: CheckHistory(HIST_ORIG_DATA_PKT, 'D') / (HIST_RESP_DATA_PKT, 'd');
    # conn_state(): both UDP_ACTIVE -> SF; orig_bytes: the UDP length - 8
    cap.udp((A, 40000), (B, 53), b"q" * 30)
    cap.udp((B, 53), (A, 40000), b"r" * 90)
    cap.udp((A, 40000), (B, 53), b"q" * 30)
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 53, "SF", "Dd", 2, 1)
    assert (r["orig_bytes"], r["resp_bytes"]) == (60, 90)
    assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (2 * 58, 118)
    assert r["duration"] == pytest.approx(0.002)
    assert "cli_state" not in r  # no TCP state machine


def test_udp_unanswered_is_s0(cap, track):
    # conn_state(): orig UDP_ACTIVE, resp not -> S0
    cap.udp((A, 40000), (B, 9999), b"x")
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 9999, "S0", "D", 1, 0)


def _udp_csum(cap, src, dst, payload: bytes, csum: int | None) -> None:
    """A UDP datagram (IPv4) whose checksum field is csum (None: the right one)."""
    from mosfw.testing import packets as P

    pkt = bytearray(P.udp_packet(src[0], src[1], dst[0], dst[1], payload, linktype=None))
    if csum is not None:
        at = 46 if ":" in src[0] else 26  # the IPv6 / IPv4 header + 6
        pkt[at : at + 2] = csum.to_bytes(2, "big")
    cap.add_ip(bytes(pkt))


BAD = 0x1234  # not the checksum of any datagram below


def test_udp_bad_checksum_is_c_and_not_in_the_sizes(cap, track):
    # init-bare.zeek ignore_checksums = F: UDP.cc checks every datagram;
    # a bad one: UDPSessionAdapter::HandleBadChecksum ('C' by the
    # originator, ScaledHistoryEntry) and DeliverPacket returns before
    # 'D', UpdateLength and SetLastTime; ConnSize (run first) counts it
    _udp_csum(cap, (A, 40000), (B, 53), b"q" * 30, BAD)
    _udp_csum(cap, (A, 40000), (B, 53), b"q" * 30, None)
    _udp_csum(cap, (B, 53), (A, 40000), b"r" * 90, None)
    _udp_csum(cap, (B, 53), (A, 40000), b"r" * 90, BAD)
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 53, "SF", "CDdc", 2, 2)
    assert (r["orig_bytes"], r["resp_bytes"]) == (30, 90)
    assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (2 * 58, 2 * 118)
    assert r["duration"] == pytest.approx(0.002)  # the last good datagram


def test_udp_only_bad_checksums_is_oth(cap, track):
    # neither side UDP_ACTIVE (no UpdateLength): conn_state() OTH; the last
    # time stays the start: duration and sizes unset
    _udp_csum(cap, (A, 40000), (B, 9999), b"x" * 8, BAD)
    _udp_csum(cap, (A, 40000), (B, 9999), b"x" * 8, BAD)
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 9999, "OTH", "C", 2, 0)
    assert "duration" not in r and "orig_bytes" not in r


def test_udp_bad_checksum_letter_at_the_1st_and_10th(cap, track):
    # ScaledHistoryEntry: 'c' again at the 10th bad reply, not the 9th
    _udp_csum(cap, (A, 40000), (B, 53), b"q", None)
    for _ in range(10):
        _udp_csum(cap, (B, 53), (A, 40000), b"r", BAD)
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 53, "S0", "Dcc", 1, 10)


def test_udp_zero_checksum_is_none_in_ipv4(cap, track):
    # UDP.cc: an IPv4 checksum of 0 is not checked
    _udp_csum(cap, (A, 40000), (B, 9999), b"x", 0)
    (r,) = track(cap)
    assert brief(r)[5:] == ("S0", "D", 1, 0)


def test_udp_zero_checksum_is_bad_in_ipv6(cap, track):
    # UDP.cc: "checksum is not optional for IPv6"
    _udp_csum(cap, ("fd00::1", 40000), ("fd00::2", 9999), b"x", 0)
    _udp_csum(cap, ("fd00::1", 40000), ("fd00::2", 9999), b"x", None)
    (r,) = track(cap)
    assert brief(r)[5:] == ("S0", "CD", 2, 0)
    assert r["orig_bytes"] == 1


def test_udp_reply_from_likely_server_port_first_is_flipped_shr(cap, track):
    # UDP.cc WantConnection: flip when the source port is a likely server
    # port and the destination's is not; Conn.cc FlipRoles adds '^'; only the
    # responder sent: SHR
    cap.udp((B, 53), (A, 40000), b"answer")
    (r,) = track(cap)
    assert brief(r) == ("udp", A, 40000, B, 53, "SHR", "^d", 0, 1)


def test_udp_both_ports_likely_is_not_flipped(cap, track):
    # DHCP 67 -> 68: both likely server ports, no flip
    cap.udp((B, 67), (A, 68), b"offer")
    (r,) = track(cap)
    assert brief(r) == ("udp", B, 67, A, 68, "S0", "D", 1, 0)


def test_udp_inactivity_timeout_is_one_minute(cap, track):
    # init-bare.zeek: udp_inactivity_timeout = 1 min: 59 s idle is one
    # connection, 61 s two
    cap.udp((A, 5000), (B, 6000), b"a")
    cap.advance(59)
    cap.udp((B, 6000), (A, 5000), b"b")
    cap.advance(61)
    cap.udp((A, 5000), (B, 6000), b"c")
    recs = track(cap)
    assert [(r["conn_state"], r["history"], r["close_reason"]) for r in recs] == [
        ("SF", "Dd", "timeout"),
        ("S0", "D", "eof"),
    ]


def test_udp_timeout_option_overrides_zeeks(cap, track):
    cap.udp((A, 5000), (B, 6000), b"a")
    cap.advance(20)
    cap.udp((A, 5000), (B, 6000), b"b")
    assert len(track(cap, udp_timeout=10.0)) == 2


# -- ICMP -------------------------------------------------------------------


def test_icmp_echo_is_one_oth_connection_with_type_ports(cap, track):
    # ICMP.cc: orig_p = type 8, resp_p = its counterpart 0; no history
    # letters; conn_state() of a non-TCP/UDP connection: OTH; sizes after
    # the 8-byte ICMP header
    for _ in range(3):
        cap.icmp(A, B, 8, 0, b"p" * 56)
        cap.icmp(B, A, 0, 0, b"p" * 56)
    (r,) = track(cap)
    assert brief(r) == ("icmp", A, 8, B, 0, "OTH", "-", 3, 3)
    assert (r["orig_bytes"], r["resp_bytes"]) == (168, 168)
    assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (3 * 84, 3 * 84)


def test_icmp_one_way_message_ports_are_type_and_code(cap, track):
    # ICMP4_counterpart: not a request/reply type -> one-way, resp_p = code
    cap.icmp(B, A, 3, 3, b"x" * 28)
    (r,) = track(cap)
    assert brief(r) == ("icmp", B, 3, A, 3, "OTH", "-", 1, 0)
    assert "duration" not in r  # 0: unset (main.zeek set_conn)


def test_icmpv6_echo(cap, track):
    cap.icmp("fd00::1", "fd00::2", 128, 0, b"x" * 8)
    cap.icmp("fd00::2", "fd00::1", 129, 0, b"x" * 8)
    (r,) = track(cap)
    assert brief(r) == ("icmp", "fd00::1", 128, "fd00::2", 129, "OTH", "-", 1, 1)


def test_icmp_inactivity_timeout_is_one_minute(cap, track):
    cap.icmp(A, B, 8, 0, b"a")
    cap.advance(61)
    cap.icmp(A, B, 8, 0, b"b")
    assert [r["close_reason"] for r in track(cap)] == ["timeout", "eof"]


# -- the run ----------------------------------------------------------------


def test_conn_protocols_tcp_only_writes_no_udp_record(cap, track):
    cap.udp((A, 40000), (B, 53), b"q")
    cap.icmp(A, B)
    assert track(cap, options={"conn_protocols": "tcp"}) == []
    assert [r["proto"] for r in track(cap, options={"conn_protocols": "tcp,icmp"})] == ["icmp"]


def test_tsv_writes_udp_and_icmp_as_zeek_does(cap, track):
    cap.udp((A, 40000), (B, 53), b"q")
    cap.icmp(A, B)
    rows = [line.split("\t") for line in track(cap, fmt="zeek").splitlines() if not line.startswith("#")]
    assert [(r[6], r[3], r[5], r[10], r[14]) for r in rows] == [
        ("udp", "40000", "53", "S0", "D"),
        ("icmp", "8", "0", "OTH", "-"),
    ]


def test_other_protocols_as_unknown_transport_when_asked(cap, track):
    # an ESP exchange: with --conn-protocols ...,other one record, proto
    # unknown_transport, ports 0, OTH, no history
    from mosfw.testing.headers import ipv4

    cap.add_ip(ipv4(A, B, 50, b"e" * 40))
    cap.add_ip(ipv4(B, A, 50, b"f" * 60))
    assert track(cap) == []  # not by default
    (r,) = track(cap, options={"conn_protocols": "tcp,udp,icmp,other"})
    assert brief(r) == ("unknown_transport", A, 0, B, 0, "OTH", "-", 1, 1)
    assert (r["orig_bytes"], r["resp_bytes"], r["orig_ip_bytes"]) == (40, 60, 60)


def test_ip_proto_is_the_ip_protocol_number(cap, track):
    # conn.log's ip_proto (base/protocols/conn/main.zeek, Zeek 6.1 on): the
    # IP protocol number of the connection, for every transport
    from mosfw.testing.headers import ipv4

    c = cap.conversation(client=(A, 40001), server=(B, 80))
    c.handshake()
    cap.udp((A, 40000), (B, 53), b"q")
    cap.icmp(A, B)
    cap.icmp("fd00::1", "fd00::2", 128, 0, b"x" * 8)
    cap.add_ip(ipv4(A, B, 50, b"e" * 40))
    recs = track(cap, options={"conn_protocols": "tcp,udp,icmp,other"})
    assert sorted((r["proto"], r["ip_proto"]) for r in recs) == [
        ("icmp", 1),
        ("icmp", 58),
        ("tcp", 6),
        ("udp", 17),
        ("unknown_transport", 50),
    ]
    rows = [line.split("\t") for line in track(cap, fmt="zeek").splitlines() if not line.startswith("#")]
    assert sorted(r[19] for r in rows) == ["1", "17", "58", "6"]  # the column after resp_ip_bytes
