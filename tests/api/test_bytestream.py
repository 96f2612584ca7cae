"""The bytestream: per-side reassembly buffers, peek/ppeek, buffer info,
fragments, overlap policies, gaps, overruns, and CONN_NEW_DATA with
buffers on (in-order bytes readable) and off (bytes beyond seq_hi).

Every test builds its capture with the app-writer fixtures and reads
the stream from a plugin, as an app would.
"""

from __future__ import annotations

import pytest

import mosfw
from mosfw import EventType, Side
from mosfw.api import OverlapPolicy

C, S = Side.CLIENT, Side.SERVER


class Reader:
    """Peeks everything at each CONN_NEW_DATA; records what it saw."""

    def __init__(self, chunk=None):
        self.chunk = chunk
        self.data = {C: bytearray(), S: bytearray()}
        self.events = []  # (side, seq, len, bytes read, lost skipped)
        self.infos = []
        self.end_infos = {}

    @mosfw.hookimpl
    def mosfw_conn_new_data(self, flow, side, event):
        got, lost_total = b"", 0
        while True:
            lost, d = flow.peek(side, self.chunk, with_lost=True)
            lost_total += lost
            if not d:
                break
            got += d
            self.data[side] += d
        self.events.append((side, event.seq, event.len, got, lost_total))
        self.infos.append(flow.stream_info(side))

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason):
        self.end_infos = {s: flow.stream_info(s) for s in (C, S)}


def run(mosfw_run, cap, app, **kw):
    return mosfw_run(cap, plugins=[app], **kw)


def test_in_order_stream_is_read_exactly(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send_many("client", [300, 200, 1])
    c.send_many("server", [1448] * 4)
    c.close()
    app = Reader()
    run(mosfw_run, cap, app)
    assert bytes(app.data[C]) == c.stream("client")
    assert bytes(app.data[S]) == c.stream("server")
    # one event per segment; each read returns exactly the event's bytes
    assert [(e[1], e[2], len(e[3])) for e in app.events if e[0] == C] == [
        (1001, 300, 300),
        (1301, 200, 200),
        (1501, 1, 1),
    ]
    assert all(len(e[3]) == e[2] for e in app.events)
    info = app.infos[-1]
    assert info.init_seq == 5001 and info.next_byte_expected == 4 * 1448 == info.last_byte_read


def test_peek_in_chunks_and_ppeek_positional(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 1000)
    seen = {}

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            seen["a"] = flow.peek(side, 10)
            seen["b"] = flow.peek(side, 5)
            seen["pp0"] = flow.ppeek(side, 0, 20)  # positional: does not consume
            seen["pp_tail"] = flow.ppeek(side, 990, 100)
            seen["pp_past"] = flow.ppeek(side, 1000, 10)
            seen["rest"] = flow.peek(side)
            seen["again"] = flow.peek(side)

    run(mosfw_run, cap, App())
    s = c.stream("client")
    assert seen["a"] == s[:10] and seen["b"] == s[10:15]
    assert seen["pp0"] == s[:20] and seen["pp_tail"] == s[990:] and seen["pp_past"] == b""
    assert seen["rest"] == s[15:] and seen["again"] == b""


def test_peek_position_is_shared_ppeek_from_own_offset_is_not(mosfw_capture, mosfw_run):
    """docs/hooks.md: peek's read position is the flow side's, shared by
    every plugin; plugins side by side read with ppeek from an offset kept
    in their own store() and each sees the whole stream."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send_many("client", [700, 300, 1448])

    class Peeker:
        def __init__(self):
            self.got = bytearray()

        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            self.got += flow.peek(side)

    class OwnOffset:
        def __init__(self):
            self.got = bytearray()

        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            st = flow.store(self)
            off = st.get(side, 0)
            while d := flow.ppeek(side, off, 4096):
                self.got += d
                off += len(d)
            st[side] = off

    first, second, own_a, own_b = Peeker(), Peeker(), OwnOffset(), OwnOffset()
    mosfw_run(cap, plugins=[first, second, own_a, own_b])
    s = c.stream("client")
    # one of the two peekers consumed every byte, the other read none
    assert sorted([bytes(first.got), bytes(second.got)]) == [b"", s]
    assert bytes(own_a.got) == s and bytes(own_b.got) == s


def test_retransmissions_do_not_repeat_bytes(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    a = c.send("server", 500)
    b = c.send("server", 500)
    c.rexmit(a)
    c.rexmit(b)
    c.send("server", 100)
    c.rexmit(b)
    app = Reader()
    rec = run(mosfw_run, cap, app)
    assert bytes(app.data[S]) == c.stream("server")
    assert len(rec.of("rexmit")) == 3
    assert [e[1:3] for e in app.events] == [(5001, 500), (5501, 500), (6001, 100)]


def test_out_of_order_held_until_the_gap_fills(mosfw_capture, mosfw_run):
    """Deliberate change from the unbuffered rule: bytes beyond a gap raise
    no CONN_NEW_DATA; the fill raises REXMIT then one CONN_NEW_DATA for
    everything that became readable."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    segs = c.send_many("client", [100, 100, 100], emit=False)
    frag_seen = {}

    class App(Reader):
        @mosfw.hookimpl
        def mosfw_pkt_in(self, flow, side, event):
            if side == C and event.len:
                frag_seen[event.seq] = (
                    flow.fragments(C),
                    flow.ppeek(C, 200, 100),
                    flow.stream_info(C).readable,
                )

    app = App()
    c.deliver(segs, order=[2, 1, 0])
    rec = mosfw_run(cap, plugins=[app], events=("conn_new_data", "rexmit"))
    assert rec.short() == [
        ("rexmit", "client", 1101, 100),
        ("rexmit", "client", 1001, 100),
        ("conn_new_data", "client", 1001, 300),
    ]
    assert bytes(app.data[C]) == c.stream("client")
    # PKT_IN sees the stream as it was after that packet
    assert frag_seen[1201] == ([(200, 100)], c.stream("client")[200:300], 0)
    assert frag_seen[1101] == ([(100, 200)], c.stream("client")[200:300], 0)
    assert frag_seen[1001] == ([(0, 300)], c.stream("client")[200:300], 300)


def test_unbuffered_new_data_rule_with_no_ring_buffers(mosfw_capture, mosfw_run):
    """no_ring_buffers = 1: CONN_NEW_DATA is 'payload beyond seq_hi', and
    peek has nothing."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    late = c.send("client", 100, emit=False)
    c.send("client", 100)
    c.emit(late)
    app = Reader()
    rec = mosfw_run(cap, plugins=[app], events=("conn_new_data", "rexmit"), no_ring_buffers=1)
    assert rec.short() == [("conn_new_data", "client", 1101, 100), ("rexmit", "client", 1001, 100)]
    assert app.data[C] == b"" and app.infos == [None]


@pytest.mark.parametrize("policy", ["first", "last"])
def test_overlap_policy_on_in_order_data(mosfw_capture, mosfw_run, policy):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.segment("client", "PA", seq=1001, payload=b"a" * 100)
    c.segment("client", "PA", seq=1051, payload=b"X" * 100)  # 50 old + 50 new bytes
    final = {}

    class App:
        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == C:
                flow.set_overlap_policy(C, policy)

        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            final["stream"] = flow.ppeek(C, 0, 1000)
            final["policy"] = flow.stream_info(C).policy

    run(mosfw_run, cap, App())
    expect = b"a" * 100 + b"X" * 50 if policy == "first" else b"a" * 50 + b"X" * 100
    assert final["stream"] == expect
    assert final["policy"] == OverlapPolicy[policy.upper()]


@pytest.mark.parametrize("policy", ["first", "last"])
def test_overlap_policy_on_out_of_order_fragments(mosfw_capture, mosfw_run, policy):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.segment("client", "PA", seq=1101, payload=b"b" * 100)  # fragment [100, 200)
    c.segment("client", "PA", seq=1151, payload=b"Y" * 100)  # overlaps it: [150, 250)
    c.segment("client", "PA", seq=1001, payload=b"a" * 100)  # the fill
    app = Reader()

    class Policy:
        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == C:
                flow.set_overlap_policy(C, OverlapPolicy[policy.upper()])

    rec = mosfw_run(cap, plugins=[Policy(), app], events=("conn_new_data",))
    assert rec.short() == [("conn_new_data", "client", 1001, 250)]
    mid = b"b" * 100 + b"Y" * 50 if policy == "first" else b"b" * 50 + b"Y" * 100
    assert bytes(app.data[C]) == b"a" * 100 + mid


def test_gap_the_receiver_acknowledged_is_given_up(mosfw_capture, mosfw_run):
    """A segment lost before the tap: when the receiver acks past it, the
    gap is given up, counted as lost, and reading goes on after it."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("server", 1000)
    c.send("server", 1000, emit=False)  # never seen
    c.send("server", 1000)
    c.ack("client")  # acks everything: the client got the missing segment
    c.send("server", 500)
    app = Reader()
    rec = mosfw_run(cap, plugins=[app], events=("conn_new_data",))
    s = c.stream("server")
    assert rec.short() == [
        ("conn_new_data", "server", 5001, 1000),
        ("conn_new_data", "server", 7001, 1000),  # after the ack gave the gap up
        ("conn_new_data", "server", 8001, 500),
    ]
    assert app.events[1][4] == 1000  # the read skipped the lost bytes
    assert bytes(app.data[S]) == s[:1000] + s[2000:]
    info = app.infos[-1]
    assert (info.gap_bytes, info.lost_bytes, info.holes) == (1000, 1000, 1)
    assert info.next_byte_expected == 3500


def test_gap_then_more_data_the_tap_never_saw(mosfw_capture, mosfw_run):
    """An ack beyond everything seen: the skipped range is lost, the next
    segment is in order again."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 100)
    c.send("client", 300, emit=False)
    c.ack("server")
    c.send("client", 50)
    app = Reader()
    run(mosfw_run, cap, app)
    assert [e[1:3] for e in app.events] == [(1001, 100), (1401, 50)]
    assert app.events[1][4] == 300
    assert bytes(app.data[C]) == c.stream("client")[:100] + c.stream("client")[400:]


def test_buffer_overrun_counts_lost_bytes_and_raises_error(mosfw_capture, mosfw_run):
    """rmem_size 1000: a reader that only looks every third segment loses
    what was overwritten in between (skipped, counted, ERROR once it had
    peeked)."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send_many("server", [400] * 9)
    seen = []

    class Lazy:
        n = 0

        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side, event):
            Lazy.n += 1
            if Lazy.n % 3 == 0:
                lost, d = flow.peek(side, with_lost=True)
                seen.append((event.seq, lost, len(d), flow.lost_bytes(side)))

    rec = mosfw_run(cap, plugins=[Lazy()], rmem_size=1000, events=("error",))
    # after 3 segments (1200 bytes) the first 200 are gone
    assert seen[0] == (5801, 200, 1000, 200)
    # the next read: 1200 more arrived since, 200 of them overwritten again
    assert seen[1] == (7001, 200, 1000, 400)
    assert seen[2] == (8201, 200, 1000, 600)
    assert rec.short() == [("error", "buffer_overrun")] * 2
    assert rec.of("error")[0].side == "server"


def test_out_of_order_overflow_gives_the_gap_up(mosfw_capture, mosfw_run):
    """Data beyond a gap that does not fit the window: the gap is given up
    so the buffer can move on (no ack involved)."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 200, emit=False)  # the gap
    c.send_many("client", [300, 300, 300])  # 900 bytes beyond it, window 1000
    app = Reader()
    rec = mosfw_run(cap, plugins=[app], rmem_size=1000, events=("conn_new_data", "error"))
    assert rec.short() == [
        ("error", "buffer_overrun"),
        ("conn_new_data", "client", 1201, 900),
    ]
    assert bytes(app.data[C]) == c.stream("client")[200:]
    assert app.infos[-1].gap_bytes == 200


def test_buffers_released_at_conn_end_and_bounded(mosfw_capture, mosfw_run):
    """Buffers exist only for sides that sent payload, stay readable in
    CONN_END, and are released afterwards: never more than
    2 * max_concurrency at once."""
    cap = mosfw_capture()
    convs = cap.conversations(20, handshake=True)
    for i, c in enumerate(convs):
        c.send("client", 10 + i)
        if i % 2:
            c.send("server", 100)
    for c in convs[:10]:
        c.close()
    tail = {}
    stats = {}

    class App(Reader):
        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            tail[flow.id] = flow.ppeek(C, 0, 100)

        @mosfw.hookimpl
        def mosfw_core_finish(self, core):
            stats.update(core.api_stats())

    app = App()
    run(mosfw_run, cap, app)
    assert len(tail) == 20 and all(tail.values())
    # released at the start of the batch after their CONN_END (the flows
    # that ended in the last batch still hold theirs at core_finish)
    assert stats["buffers_allocated"] == 30 and stats["buffers_peak"] <= 30

    # table of 4 flows: at most 8 buffers (plus the flows parked in a batch)
    cap2 = mosfw_capture()
    for c in cap2.conversations(12, handshake=True):
        c.send("client", 10)
        c.send("server", 10)
        c.close()
    stats.clear()
    run(mosfw_run, cap2, App(), max_concurrency=4)
    assert stats["buffers_allocated"] == 24 and stats["buffers_peak"] <= 8


def test_event_time_reads_within_one_batch(mosfw_capture, mosfw_run):
    """Many segments of one flow in one batch: each CONN_NEW_DATA handler
    sees the stream exactly as after its packet (the engine cuts the batch
    rather than let a later packet change the buffer)."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send_many("server", [1000] * 50)
    ends = []
    stats = {}

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side, event):
            info = flow.stream_info(side)
            ends.append((info.next_byte_expected, flow.ppeek(side, info.next_byte_expected, 10)))

        @mosfw.hookimpl
        def mosfw_core_finish(self, core):
            stats.update(core.api_stats())

    run(mosfw_run, cap, App(), rmem_size=2000)
    assert ends == [(1000 * (i + 1), b"") for i in range(50)]
    assert stats["bursts_cut"] >= 49


def test_midstream_offsets_start_at_the_first_byte_seen(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.midstream()
    c.send("client", 100, emit=False)
    c.send("client", 100)
    app = Reader()
    run(mosfw_run, cap, app)
    info = app.infos[0]
    assert info.init_seq == 1101 and info.next_byte_expected == 100
    assert bytes(app.data[C]) == c.stream("client")[100:]


def test_sequence_wraparound(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation(client_isn=2**32 - 50)
    c.handshake()
    c.send_many("client", [100, 100])
    late = c.send("client", 100, emit=False)
    c.send("client", 100)
    c.emit(late)
    app = Reader()
    run(mosfw_run, cap, app)
    assert bytes(app.data[C]) == c.stream("client")
    assert app.infos[-1].next_byte_expected == 400 and app.infos[-1].init_seq == 2**32 - 49


def test_syn_with_data_and_truncated_payload(mosfw_capture, mosfw_run):
    """Data on the SYN starts at offset 0; bytes cut off by the snaplen
    count as lost, and the stream goes on after them."""
    cap = mosfw_capture(snaplen=54 + 20)
    c = cap.conversation()
    c.syn()
    c.synack()
    c.ack("client")
    c.send("client", 100)  # 20 of 100 bytes captured
    c.send("client", 10)
    app = Reader()
    run(mosfw_run, cap, app)
    s = c.stream("client")
    assert bytes(app.data[C]) == s[:20] + s[100:110]
    assert app.infos[-1].gap_bytes == 80


def test_bytestream_without_new_data_hook(mosfw_capture, mosfw_run):
    """A plugin that peeks from other events turns buffers on with
    core.enable_bytestream(); without it a first peek turns them on from
    then on."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send_many("client", [10, 20, 30])
    got = {"early": b"", "late": b""}

    class Early:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            assert core.enable_bytestream()

        @mosfw.hookimpl
        def mosfw_pkt_in(self, flow, side, event):
            if side == C:
                got["early"] += flow.peek(C)

    mosfw_run(cap, plugins=[Early()], events=None)
    assert got["early"] == c.stream("client")

    class Late:
        @mosfw.hookimpl
        def mosfw_pkt_in(self, flow, side, event):
            if side == C:
                got["late"] += flow.peek(C)

    mosfw_run(cap, plugins=[Late()], events=None)
    # the first peek (on the first data packet, already processed) had no
    # buffer; the batch was read without buffers, so the stream starts later
    assert c.stream("client").endswith(got["late"]) and len(got["late"]) < 60


def test_stream_info_and_fragments_fields(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    a, _b, d = c.send_many("server", [100, 100, 100], emit=False)
    c.emit(a)
    c.emit(d)
    out = {}

    class App:
        @mosfw.hookimpl
        def mosfw_pkt_in(self, flow, side, event):
            if side == S and event.seq == d.seq:
                out["info"] = flow.stream_info(S)
                out["frags"] = flow.fragments(S)
                out["none"] = flow.stream_info(C)  # the client sent nothing

    mosfw_run(cap, plugins=[App()], events=("conn_new_data",))
    info = out["info"]
    assert (
        info.init_seq,
        info.head,
        info.last_byte_read,
        info.next_byte_expected,
        info.last_byte_received,
        info.fragments,
        info.size,
    ) == (5001, 0, 0, 100, 300, 1, 8192)
    assert info.readable == 100
    assert out["frags"] == [(0, 100), (200, 100)]
    assert out["none"] is None


def test_views_after_conn_end_are_empty(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 10)
    c.close()
    kept = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            kept.append(flow)

    mosfw_run(cap, plugins=[App()])
    f = kept[0]
    assert f.ended and f.peek(C) == b"" and f.ppeek(C, 0, 10) == b"" and f.stream_info(C) is None
    assert f.fragments(C) == [] and f.last_packet() is None


def test_rmem_size_from_config_fields(mosfw_capture, mosfw_run):
    """Config.rmem_size / no_ring_buffers win over mos.conf."""
    from mosfw.engine import buffer_settings
    from mosfw.mosconf import default_config
    from mosfw.runconfig import Config

    mos = default_config().merged(rmem_size=4096, no_ring_buffers=1)
    assert buffer_settings(Config()) == (8192, False)
    assert buffer_settings(Config(mos=mos)) == (4096, True)
    assert buffer_settings(Config(mos=mos, rmem_size=100, no_ring_buffers=False)) == (100, False)


def test_new_data_subscription_at_run_time_turns_buffers_on(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", 10)
    c.send("client", 20)
    got = []

    def on_data(flow, side):
        got.append(flow.peek(side))

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            core.subscribe(EventType.CONN_NEW_DATA)  # produced from the first packet

        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == C:
                flow.register(EventType.CONN_NEW_DATA, on_data)

    mosfw_run(cap, plugins=[App()], events=None)
    assert b"".join(got) == c.stream("client")
