"""Idle timeouts end flows exactly where the engine's idle lists say, with
captures whose time jumps forward and goes back.

The engine skips its expiry pass while nothing can be due (core_loop.c
``expiry_due``: the earliest deadline of the idle lists' heads, unless a
flow was linked at a head or a list went out of order). These tests check
the result against a model of the lists written from their rules
(flow_table.c): a touched flow moves towards the tail of its list, walking
back at most TOUCH_WALK_MAX flows while they are newer, and expiry ends the
head while its deadline (last_ts + tcp_timeout) is at or before the input
time, then stops. A packet first advances input time (the latest packet
time), then expiry runs, then the packet is processed; its flow's idle
clock (last_ts) restarts at input time, also when the packet's own time
is older (issue 23: a flow opened by a packet from the past used to take
that older time and was timed out at the next packet). So a touched flow
is always the newest of its list: with packets alone the lists stay in
order, however far back the times go.
"""

from __future__ import annotations

import random

import pytest

TOUCH_WALK_MAX = 64  # flow_table.c
TIMEOUT = 10.0


def model(schedule, n_flows):
    """Expected ("start"|"end", flow, ts) sequence for SYN-only flows
    (all on the half-open list), from (flow, ts) packets."""
    out, lst, last, now = [], [], {}, None

    def touch(f):
        if lst and lst[-1] == f:
            return
        if f in lst:
            lst.remove(f)
        pos, steps = len(lst), 0
        while pos > 0 and last[lst[pos - 1]] > last[f] and steps < TOUCH_WALK_MAX:
            pos -= 1
            steps += 1
        lst.insert(pos, f)

    for f, ts in schedule:
        now = ts if now is None or ts > now else now
        while lst and last[lst[0]] + TIMEOUT <= now:
            g = lst.pop(0)
            out.append(("end", g, last[g] + TIMEOUT))
            del last[g]
        if f not in last:
            out.append(("start", f, ts))
        last[f] = now  # input time, not the packet's own (maybe older) time
        touch(f)
    for g in lst:  # eof, in list order
        out.append(("eof", g, None))
    return [(k, f, None if ts is None else round(ts, 6)) for k, f, ts in out]


def make_schedule(rng, n_flows, n_packets, back_p, back_max):
    """Packet times that mostly move forward by up to 3 s and sometimes go
    back by up to back_max s; each flow's first packet is its SYN, later
    ones repeat it (a SYN retransmission)."""
    sched, t, started = [], 1000.0, []
    for _ in range(n_packets):
        if rng.random() < back_p:
            ts = t - rng.uniform(0, back_max)
        else:
            t += rng.uniform(0, 3)
            ts = t
        if started and (len(started) == n_flows or rng.random() < 0.3):
            f = rng.choice(started)
        else:
            f = len(started)
            started.append(f)
        sched.append((f, as_read(round(ts * 1e6))))
    return sched


def as_read(us: int) -> float:
    """A microsecond pcap time as the engine reads it (pcap_record.h)."""
    return float(us // 10**6) + float((us % 10**6) * 1000) * 1e-9


def run_schedule(mosfw_capture, mosfw_run, sched, n_flows):
    cap = mosfw_capture()
    convs, segs = [], []
    for i in range(n_flows):
        c = cap.conversation(client=(f"10.1.{i // 250}.{i % 250 + 1}", 40000 + i), server=("10.0.0.2", 80))
        with cap.hold() as held:
            c.syn()
        convs.append(c)
        segs.append(held[0].seg)
    cap.deliver([(convs[f], segs[f], ts) for f, ts in sched])
    rec = mosfw_run(cap, tcp_timeout=TIMEOUT)
    index = {f"10.1.{i // 250}.{i % 250 + 1}:{40000 + i}": i for i in range(n_flows)}
    got = []
    for e in rec.of("conn_start", "conn_end"):
        f = index[e.client]
        if e.event == "conn_start":
            got.append(("start", f, round(e.ts, 6)))
        elif e.reason == "timeout":
            got.append(("end", f, round(e.ts, 6)))
        else:
            assert e.reason == "eof", e
            got.append(("eof", f, None))
    return got


@pytest.mark.parametrize(
    "seed,n_flows,n_packets,back_p,back_max",
    [
        (1, 40, 200, 0.0, 0.0),  # time only moves forward
        (2, 40, 200, 0.15, 30.0),  # goes back, within a timeout or three
        (3, 60, 300, 0.25, 8.0),  # goes back often, a little
        (4, 150, 400, 0.2, 200.0),  # far back, past the walk limit (lists out of order)
    ],
)
def test_timeouts_follow_the_idle_lists(mosfw_capture, mosfw_run, seed, n_flows, n_packets, back_p, back_max):
    rng = random.Random(seed)
    sched = make_schedule(rng, n_flows, n_packets, back_p, back_max)
    n = len({f for f, _ in sched})
    want = model(sched, n)
    got = run_schedule(mosfw_capture, mosfw_run, sched, n)
    assert sum(1 for w in want if w[0] == "end") > 5  # the case has timeouts to check
    assert got == want


def test_a_flow_from_the_past_is_idle_from_input_time(mosfw_capture, mosfw_run):
    """A packet older than the input time by more than the timeout opens a
    flow that is idle from the input time it was read at (1005), not from
    its own time (980): it ends at 1015, with flow 1 read at 1005, and not
    at the next packet (990), as it did before issue 23 was fixed."""
    sched = [(f, float(t)) for f, t in ((0, 1000), (1, 1005), (2, 980), (3, 1006), (4, 1007), (5, 1020))]
    want = model(sched, 6)
    assert [w for w in want if w[0] == "end"] == [
        ("end", 0, 1010.0),
        ("end", 1, 1015.0),
        ("end", 2, 1015.0),
        ("end", 3, 1016.0),
        ("end", 4, 1017.0),
    ]
    assert run_schedule(mosfw_capture, mosfw_run, sched, 6) == want


def test_a_flow_from_the_past_joins_the_tail_of_its_list(mosfw_capture, mosfw_run):
    """A flow from 10 s in the past read after 70 newer ones is linked at
    the tail of its list (its idle clock is input time, 1000.69), so it
    ends after all of them, not first (its own time, 990, would make it
    due at once)."""
    n_old = 70
    sched = [(i, 1000.0 + i / 100) for i in range(n_old)]
    sched.append((n_old, 990.0))  # X, idle from 1000.69
    sched += [(i, 1001.0 + i / 10) for i in range(6)]  # six of the older flows are touched again
    sched += [(n_old + 1, 1010.65), (n_old + 2, 1012.0)]
    want = model(sched, n_old + 3)
    ends = [w[1] for w in want if w[0] == "end"]
    assert ends == list(range(6, n_old)) + [n_old] + list(range(6))
    assert ("end", n_old, 1010.69) in want
    assert run_schedule(mosfw_capture, mosfw_run, sched, n_old + 3) == want
