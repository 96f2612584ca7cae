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
time), then expiry runs, then the packet is processed.
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
            last[f] = ts
        elif ts > last[f]:
            last[f] = ts
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
        (1, 40, 200, 0.0, 0.0),      # time only moves forward
        (2, 40, 200, 0.15, 30.0),    # goes back, within a timeout or three
        (3, 60, 300, 0.25, 8.0),     # goes back often, a little
        (4, 150, 400, 0.2, 200.0),   # far back, past the walk limit (lists out of order)
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


def test_a_flow_from_the_past_times_out_at_the_next_packet(mosfw_capture, mosfw_run):
    """A packet older than the input time by more than the timeout opens a
    flow that is due at once: it is linked at the head of its list and ends
    before the next packet, although no deadline seen before was due."""
    sched = [(f, float(t)) for f, t in ((0, 1000), (1, 1005), (2, 980), (3, 1006), (4, 1007))]
    want = model(sched, 5)
    assert ("end", 2, 990.0) in want
    assert want.index(("end", 2, 990.0)) == want.index(("start", 3, 1006.0)) - 1
    assert run_schedule(mosfw_capture, mosfw_run, sched, 5) == want


def test_a_list_out_of_order_still_ends_flows_when_they_reach_its_head(mosfw_capture, mosfw_run):
    """A flow from 10 s in the past among 70 newer ones is linked 64 flows
    back from the tail, not at the head (the walk's limit): its list is out
    of order. When the six flows before it are touched to the tail it
    becomes the head, already due, and ends at the next packet, as it did
    before expiry was skipped while nothing seemed due."""
    n_old = 70
    sched = [(i, 1000.0 + i / 100) for i in range(n_old)]
    sched.append((n_old, 990.0))                       # X, due at 1000.0
    sched += [(i, 1001.0 + i / 10) for i in range(6)]  # the flows before X move away
    sched += [(n_old + 1, 1003.0), (n_old + 2, 1004.0)]
    want = model(sched, n_old + 3)
    x_end = ("end", n_old, 1000.0)
    assert want.index(x_end) == want.index(("start", n_old + 1, 1003.0)) - 1
    assert run_schedule(mosfw_capture, mosfw_run, sched, n_old + 3) == want
