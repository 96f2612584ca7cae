"""mosfw._dispatch: the C loop that hands a burst's records to handlers."""

from __future__ import annotations

import pytest

from mosfw._dispatch import dispatch
from mosfw.events import EVENT_STRUCT, Event, EventType, Side, TcpState


def records(*recs) -> bytearray:
    return bytearray(b"".join(EVENT_STRUCT.pack(*r) for r in recs))


def rec(ts=1.5, flow_id=7, slot=3, type_=int(EventType.TCP_STATE_CHANGE), **kw):
    fields = {
        "seq": 10,
        "ack": 20,
        "len": 30,
        "window": 40,
        "side": 1,
        "old": 3,
        "new": 4,
        "reason": 0,
        "flags": 0,
        "tcp": 0x12,
        "cli": 4,
        "srv": 4,
        "from_pkt": 1,
        "pkt_index": 99,
        "bits": 5,
    }
    fields.update(kw)
    return (
        ts,
        flow_id,
        slot,
        type_,
        fields["seq"],
        fields["ack"],
        fields["len"],
        fields["window"],
        fields["side"],
        fields["old"],
        fields["new"],
        fields["reason"],
        fields["flags"],
        fields["tcp"],
        fields["cli"],
        fields["srv"],
        fields["from_pkt"],
        fields["pkt_index"],
        fields["bits"],
    )


def test_records_become_events_in_order_with_every_field():
    want = [rec(ts=1.0 + i, flow_id=2**40 + i, pkt_index=2**32 - 1 - i, seq=2**32 - 1) for i in range(5)]
    got, cur = [], [None]

    def h(r):
        assert cur[0] is r  # set before the handler runs
        got.append(r)

    dispatch(records(*want), len(want), Event, {int(EventType.TCP_STATE_CHANGE): h}, cur)
    assert [tuple(r) for r in got] == want
    assert all(type(r) is Event for r in got)
    e = got[0]
    assert (e.type, e.side, e.old_state, e.new_state) == (
        EventType.TCP_STATE_CHANGE,
        Side.SERVER,
        TcpState.SYN_RCVD,
        TcpState.ESTABLISHED,
    )
    assert cur[0] is got[-1]


def test_only_n_records_are_read_and_n_must_fit():
    buf = records(rec(), rec(), rec())
    seen = []
    dispatch(buf, 2, Event, {int(EventType.TCP_STATE_CHANGE): seen.append}, [None])
    assert len(seen) == 2
    with pytest.raises(ValueError, match="do not fit"):
        dispatch(buf, 4, Event, {}, [None])
    with pytest.raises(ValueError, match="do not fit"):
        dispatch(buf, -1, Event, {}, [None])


def test_handler_exception_stops_the_loop_and_propagates():
    calls = []

    def h(r):
        calls.append(r)
        if len(calls) == 2:
            raise RuntimeError("boom")

    cur = [None]
    with pytest.raises(RuntimeError, match="boom"):
        dispatch(
            records(rec(), rec(ts=2.0), rec(ts=3.0)), 3, Event, {int(EventType.TCP_STATE_CHANGE): h}, cur
        )
    assert len(calls) == 2 and cur[0][0] == 2.0


def test_missing_handler_is_a_key_error():
    with pytest.raises(KeyError):
        dispatch(records(rec(type_=int(EventType.REXMIT))), 1, Event, {}, [None])


def test_handlers_may_change_while_dispatching():
    seen = []
    handlers = {}

    def second(r):
        seen.append(("second", r[0]))

    def first(r):
        seen.append(("first", r[0]))
        handlers[int(EventType.TCP_STATE_CHANGE)] = second

    handlers[int(EventType.TCP_STATE_CHANGE)] = first
    dispatch(records(rec(ts=1.0), rec(ts=2.0)), 2, Event, handlers, [None])
    assert seen == [("first", 1.0), ("second", 2.0)]


@pytest.mark.parametrize(
    "args, message",
    [
        ((b"", 0, dict, {}, [None]), "tuple subclass"),
        ((b"", 0, Event, [], [None]), "dict"),
        ((b"", 0, Event, {}, []), "non-empty list"),
    ],
)
def test_bad_arguments(args, message):
    with pytest.raises(TypeError, match=message):
        dispatch(*args)
    with pytest.raises(TypeError):
        dispatch(b"", 0)


def _flow_pool(*flows):
    """A pool of struct mosfw_flow records: (family, cli addr bytes, cli
    port, srv addr bytes, srv port, client state, server state, first_ts, id
    [, IP protocol: 6 by default])."""
    from mosfw._native import ffi

    pool = ffi.new("struct mosfw_flow[]", len(flows))
    for f, (fam, ca, cp, sa, sp, cst, sst, first, fid, *proto) in zip(pool, flows, strict=True):
        f.tuple.family = fam
        f.tuple.proto = proto[0] if proto else 6
        f.tuple.cli_addr[0 : len(ca)] = list(ca)
        f.tuple.srv_addr[0 : len(sa)] = list(sa)
        f.tuple.cli_port, f.tuple.srv_port = cp, sp
        f.side[0].state, f.side[1].state = cst, sst
        f.first_ts, f.id = first, fid
    return ffi, pool


def test_endpoints_and_flow_rows_format_both_families():
    from mosfw._dispatch import endpoints, flow_rows

    v6 = bytes.fromhex("fd000000000000000000000000000001")
    ffi, pool = _flow_pool(
        (4, b"\x0a\x00\x00\x01", 40000, b"\xc0\xa8\x01\x02", 80, 4, 10, 1.5, 7),
        (6, v6, 1, v6[:15] + b"\x02", 65535, 1, 0, 2.25, 2**40),
    )
    assert endpoints(ffi.buffer(pool, ffi.sizeof(pool[0]))) == ("10.0.0.1:40000", "192.168.1.2:80")
    slots = ffi.new("uint32_t[]", [1, 0])
    rows = flow_rows(ffi.buffer(pool), ffi.buffer(slots), 2)
    assert rows == [
        ("[fd00::1]:1", "[fd00::2]:65535", 1, 0, 2.25, 2**40, 6),
        ("10.0.0.1:40000", "192.168.1.2:80", 4, 10, 1.5, 7, 6),
    ]
    assert flow_rows(ffi.buffer(pool), ffi.buffer(slots), 0) == []


def test_icmp_one_way_flow_shows_its_code_as_the_server_port():
    from mosfw._dispatch import endpoints, flow_rows

    a, b = b"\x0a\x00\x00\x01", b"\x0a\x00\x00\x02"
    # type 3 code 1 (one-way: MOSFW_ICMP_ONE_WAY | code), and an echo (8, its counterpart 0)
    ffi, pool = _flow_pool((4, a, 3, b, 0x100 | 1, 0, 0, 1.0, 1, 1), (4, a, 8, b, 0, 0, 0, 2.0, 2, 1))
    assert endpoints(ffi.buffer(pool, ffi.sizeof(pool[0]))) == ("10.0.0.1:3", "10.0.0.2:1")
    slots = ffi.new("uint32_t[]", [0, 1])
    rows = flow_rows(ffi.buffer(pool), ffi.buffer(slots), 2)
    assert [(r[0], r[1], r[6]) for r in rows] == [
        ("10.0.0.1:3", "10.0.0.2:1", 1),
        ("10.0.0.1:8", "10.0.0.2:0", 1),
    ]


def test_flow_rows_checks_its_buffers():
    from mosfw._dispatch import endpoints, flow_rows

    ffi, pool = _flow_pool((4, b"\x01\x02\x03\x04", 1, b"\x05\x06\x07\x08", 2, 0, 0, 0.0, 1))
    past = ffi.new("uint32_t[]", [1])
    with pytest.raises(ValueError, match="slot 1 is past the pool"):
        flow_rows(ffi.buffer(pool), ffi.buffer(past), 1)
    with pytest.raises(ValueError, match="do not fit"):
        flow_rows(ffi.buffer(pool), ffi.buffer(past), 2)
    with pytest.raises(ValueError, match="holds no tuple"):
        endpoints(b"short")
    with pytest.raises(TypeError):
        flow_rows(ffi.buffer(pool), ffi.buffer(past))
