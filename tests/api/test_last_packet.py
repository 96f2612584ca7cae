"""flow.last_packet() / core.last_packet(): the packet of the event being
dispatched (mOS mtcp_getlastpkt), from the per-batch packet arena."""

from __future__ import annotations

import struct

import mosfw
from mosfw import Side

C, S = Side.CLIENT, Side.SERVER


def test_pkt_info_fields_for_every_packet(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation(window=4321)
    c.handshake()
    c.send("client", b"GET / HTTP/1.1\r\n\r\n")
    c.send("server", 300)
    c.close()
    seen = []

    class App:
        @mosfw.hookimpl
        def mosfw_pkt_in(self, flow, side, event):
            p = flow.last_packet(side)
            seen.append((side, event, p))

    rec = mosfw_run(cap, plugins=[App()])
    frames = [f for _, f in cap.packets]
    assert len(seen) == len(frames)
    for (side, ev, p), frame in zip(seen, frames, strict=False):
        assert p.frame == frame and p.caplen == len(frame) == p.wirelen
        assert (p.seq, p.ack, p.window, p.tcp_flags, p.payload_len) == (
            ev.seq,
            ev.ack,
            ev.window,
            ev.tcp_flags,
            ev.len,
        )
        assert p.ts == ev.ts and p.pkt_index == ev.pkt_index and p.side == side
        assert p.l2 == frame[:14] and p.ip[:1] == b"\x45" and len(p.ip_header) == 20
        assert p.ip_len == len(frame) - 14
        sport, _dport, seq = struct.unpack("!HHI", p.tcp[:8])
        assert seq == p.seq and sport == (40000 if side == C else 80)
        assert p.payload == frame[14 + 20 + len(p.tcp) :]
    data = [p for _, _, p in seen if p.payload_len]
    assert data[0].payload == b"GET / HTTP/1.1\r\n\r\n" and data[0].offset == 0
    assert data[1].side == S and data[1].offset == 0 and data[1].payload == c.stream("server")
    assert rec.status == "done"


def test_packet_of_events_from_other_packets_and_none(mosfw_capture, mosfw_run):
    """Each event sees its own packet (not the batch's last one); a
    timeout has none; another flow's event gives None for this flow."""
    cap = mosfw_capture()
    a = cap.conversation()
    b = cap.conversation(client=("10.0.0.9", 1234))
    a.syn()
    b.syn()
    a.synack()
    cap.advance(100)
    b.synack()
    got = []

    class App:
        @mosfw.hookimpl
        def mosfw_tcp_state_change(self, flow, side, new, event):
            p = flow.last_packet()
            got.append((flow.client[0], new.name, p and p.pkt_index, p and p.tcp_flags))

        @mosfw.hookimpl
        def mosfw_conn_end(self, flow, reason):
            got.append((flow.client[0], reason.label, flow.last_packet()))

    mosfw_run(cap, plugins=[App()], tcp_timeout=30)
    assert got[:3] == [
        ("10.0.0.1", "SYN_SENT", 1, 0x02),
        ("10.0.0.9", "SYN_SENT", 2, 0x02),
        ("10.0.0.1", "SYN_RCVD", 3, 0x12),
    ]
    assert ("10.0.0.1", "timeout", None) in got  # idle timeout: no packet


def test_core_last_packet_for_orphans(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.rst("server")
    got = []

    class App:
        core = None

        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            App.core = core

        @mosfw.hookimpl
        def mosfw_orphan(self, event):
            got.append(App.core.last_packet())

    mosfw_run(cap, plugins=[App()])
    assert got[0].frame == cap.packets[0][1] and got[0].tcp_flags & 0x04 and got[0].side is None


def test_ipv6_and_vlan_offsets(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation(client=("fd00::1", 40000), server=("fd00::2", 80), vlan=[10, 20])
    c.handshake()
    c.send("client", 10)
    got = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            got.append(flow.last_packet())

    mosfw_run(cap, plugins=[App()])
    p = got[0]
    assert p.family == 6 and len(p.l2) == 14 + 8 and len(p.ip_header) == 40
    assert p.payload == c.stream("client") and p.side == C
