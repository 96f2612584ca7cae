"""Timers (mtcp_settimer): per-flow and global one-shot timers on input
time, TIMEOUT in order with the packets, callbacks and the mosfw_timeout
hook."""

from __future__ import annotations

import pytest

import mosfw
from mosfw import Side


class Clock:
    """Records (what, ts) in dispatch order."""

    def __init__(self):
        self.log = []

    @mosfw.hookimpl
    def mosfw_pkt_in(self, event):
        self.log.append(("pkt", round(event.ts, 6)))


def test_global_timer_from_core_start_counts_from_the_first_packet(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=1000.0, step=0.25)
    c = cap.conversation()
    c.handshake()  # 1000.0, 1000.25, 1000.5
    c.send_many("client", [10] * 4)  # 1000.75 .. 1001.5
    clock = Clock()

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            core.settimer(1.0, lambda event, data: clock.log.append(("timer", event.ts, data)), data="x")

    mosfw_run(cap, plugins=[clock, App()], events=None)
    i = clock.log.index(("timer", 1001.0, "x"))
    # before the first packet at or after the deadline
    assert clock.log[i - 1] == ("pkt", 1000.75) and clock.log[i + 1] == ("pkt", 1001.0)


def test_per_flow_timer_hook_rearm_and_cancel(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=10.0, step=0.1)
    c = cap.conversation()
    c.handshake()
    for _ in range(30):
        c.send("client", 1)
    c.close()
    fired = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == Side.CLIENT:
                flow.settimer(1.0, data=1, timer_id="tick")
                doomed = flow.settimer(0.5, data="never")
                assert doomed.cancel() and not doomed.cancel()

        @mosfw.hookimpl
        def mosfw_timeout(self, flow, timer, data, event):
            fired.append((round(event.ts, 6), data, timer.timer_id, flow.client_str))
            if data < 3:
                flow.settimer(1.0, data=data + 1, timer_id="tick")  # periodic

    mosfw_run(cap, plugins=[App()])
    assert fired == [
        (11.0, 1, "tick", "10.0.0.1:40000"),
        (12.0, 2, "tick", "10.0.0.1:40000"),
        (13.0, 3, "tick", "10.0.0.1:40000"),
    ]


def test_per_flow_timer_dropped_when_the_flow_ends(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=10.0, step=0.1)
    c = cap.conversation()
    c.handshake()
    c.close()
    d = cap.conversation(client=("10.0.0.5", 999))
    cap.advance(10)
    d.handshake()
    fired = []
    timers = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == Side.CLIENT:
                timers.append(flow.settimer(5.0, lambda flow: fired.append(flow.client_str)))

    mosfw_run(cap, plugins=[App()])
    # the first flow ended (FIN) before its timer, the second at the end of
    # the input (eof) before its timer: both dropped with their flows
    assert fired == []
    assert all(t.cancelled and not t.fired for t in timers)


def test_timer_callback_arguments_and_order(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=5.0, step=1.0)
    c = cap.conversation()
    c.handshake()  # 5, 6, 7
    c.send("client", 5)  # 8
    c.send("client", 5)  # 9
    calls = []

    def cb(flow, timer, data, event, core, side):
        calls.append((flow.id if flow else None, timer.timer_id, data, event.ts, core.id, side))

    class App:
        core = None

        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            App.core = core

        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, event):
            calls.append(("data", event.ts))
            if event.ts == 8.0:
                flow.settimer(0.5, cb, data=[1], timer_id=7)
                App.core.settimer(0.25, cb, timer_id=8)  # global: earlier deadline
                App.core.settimer(5, cb, timer_id=9)  # pending at the end: never fires

    mosfw_run(cap, plugins=[App()])
    assert calls == [("data", 8.0), (None, 8, None, 8.25, 0, None), (1, 7, [1], 8.5, 0, None), ("data", 9.0)]


def test_timer_argument_checks(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    cap.conversation().handshake()
    errors = []

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            with pytest.raises(ValueError):
                core.settimer(-1)
            errors.append("ok")

    mosfw_run(cap, plugins=[App()])
    assert errors == ["ok"]
