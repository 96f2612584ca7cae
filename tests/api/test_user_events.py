"""User-defined events (mtcp_define_event, mtcp_alloc_event,
mtcp_raise_event), callbacks (mosfw.api.on, core.register) and per-flow
registration (flow.register/unregister)."""

from __future__ import annotations

import pytest

import mosfw
from mosfw import EventType, Side
from mosfw.api import alloc_event, define_event, on
from mosfw.engine import EngineError

C, S = Side.CLIENT, Side.SERVER


def two_flows(mosfw_capture):
    cap = mosfw_capture()
    web = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    ssh = cap.conversation(client=("10.0.0.3", 50000), server=("10.0.0.2", 22))
    web.handshake()
    ssh.handshake()
    web.send("client", b"GET / HTTP/1.1\r\n\r\n")
    ssh.send("client", b"SSH-2.0-x\r\n")
    ssh.send("server", b"SSH-2.0-y\r\n")
    web.send("server", b"HTTP/1.1 200 OK\r\n\r\n")
    return cap, web, ssh


def test_bpf_filter_on_pkt_in(mosfw_capture, mosfw_run):
    cap, _web, _ssh = two_flows(mosfw_capture)
    SSH = define_event(EventType.PKT_IN, "tcp port 22", name="ssh")
    got = []

    class App:
        @on(SSH)
        def ssh_pkt(self, flow, side, event, uevent):
            got.append((flow.server[1], side.label, event.seq, uevent.name))

    mosfw_run(cap, plugins=[App()], events=None)
    assert [g[0] for g in got] == [22] * 5  # the handshake and 2 data packets, port 22 only
    assert {g[3] for g in got} == {"ssh"}


def test_python_filter_on_new_data_and_module_functions(mosfw_capture, mosfw_run, tmp_path):
    cap, _web, _ssh = two_flows(mosfw_capture)
    app = tmp_path / "app.py"
    app.write_text(
        "import mosfw\n"
        "from mosfw import EventType\n"
        "from mosfw.api import define_event, on\n"
        "REQ = define_event(EventType.CONN_NEW_DATA,\n"
        "                   lambda flow, side: flow.ppeek(side, 0, 4) == b'GET ', name='http_request')\n"
        "seen = []\n"
        "@on(REQ)\n"
        "def request(flow, side, event):\n"
        "    seen.append((flow.client_str, side.label, flow.peek(side)))\n"
    )
    rec = mosfw_run(cap, plugins=[str(app)], events=None)
    mod = rec.plugins[0]
    assert mod.seen == [("10.0.0.1:40000", "client", b"GET / HTTP/1.1\r\n\r\n")]


def test_chain_two_levels_deep(mosfw_capture, mosfw_run):
    """PKT_IN -> (BPF: port 22) -> (Python: has payload) -> (Python: from
    the server): each level sees only what the one below let through."""
    cap, _web, _ssh = two_flows(mosfw_capture)
    L1 = define_event(EventType.PKT_IN, "tcp port 22", name="l1")
    L2 = define_event(L1, lambda event: event.len > 0, name="l2")
    L3 = define_event(L2, lambda side: side == S, name="l3")
    # and a BPF filter on top of a Python one: port 22 data with PSH
    L2B = define_event(L2, "tcp[13] & 8 != 0", name="l2b")
    log = []

    class App:
        @mosfw.hookimpl
        def mosfw_user_event(self, uevent, flow, side, event):
            log.append((uevent.name, flow.server[1], side.label, event.len))

        @on(L3, L2B)
        def top(self, uevent):
            log.append(("cb", uevent.name))

    mosfw_run(cap, plugins=[App()], events=None)
    assert [x for x in log if x[0] == "l1"] == [
        ("l1", 22, s, n)
        for s, n in [("client", 0), ("server", 0), ("client", 0), ("client", 11), ("server", 11)]
    ]
    assert [x for x in log if x[0] in ("l2", "l3", "l2b", "cb")] == [
        ("l2", 22, "client", 11),
        ("cb", "l2b"),
        ("l2b", 22, "client", 11),
        ("l2", 22, "server", 11),
        ("cb", "l3"),
        ("l3", 22, "server", 11),
        ("cb", "l2b"),
        ("l2b", 22, "server", 11),
    ]
    assert L3.chain == [L3, L2, L1] and L3.root == EventType.PKT_IN


def test_alloc_and_raise(mosfw_capture, mosfw_run):
    cap, _web, _ssh = two_flows(mosfw_capture)
    BANNER = alloc_event(name="banner")
    SERVER_BANNER = define_event(BANNER, lambda data: data.startswith(b"SSH") and b"-y" in data, name="srv")
    got = []

    class App:
        @mosfw.hookimpl
        def mosfw_conn_new_data(self, flow, side):
            d = flow.peek(side)
            if d.startswith(b"SSH-"):
                flow.raise_event(BANNER, side, d)

        @on(BANNER)
        def banner(self, flow, side, data, event):
            got.append(("banner", side.label, data, event.type.name))

        @on(SERVER_BANNER)
        def srv(self, data):
            got.append(("srv", data))

    mosfw_run(cap, plugins=[App()], events=None)
    assert got == [
        ("banner", "client", b"SSH-2.0-x\r\n", "CONN_NEW_DATA"),
        ("banner", "server", b"SSH-2.0-y\r\n", "CONN_NEW_DATA"),
        ("srv", b"SSH-2.0-y\r\n"),
    ]


def test_per_flow_register_and_unregister(mosfw_capture, mosfw_run):
    cap, web, _ssh = two_flows(mosfw_capture)
    web.send("client", 5)
    web.send("client", 5)
    got = []

    def on_data(flow, side, event):
        got.append((flow.server[1], event.len))
        if len(got) == 2:
            flow.unregister(EventType.CONN_NEW_DATA, on_data)

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            core.subscribe(EventType.CONN_NEW_DATA)

        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == C and flow.server[1] == 80:  # this flow only
                flow.register(EventType.CONN_NEW_DATA, on_data)
                flow.register(EventType.CONN_NEW_DATA, on_data)  # no-op

    mosfw_run(cap, plugins=[App()], events=None)
    assert got == [(80, 18), (80, 19)]  # request, response, then unregistered


def test_per_flow_user_event_and_core_register(mosfw_capture, mosfw_run):
    cap, _web, _ssh = two_flows(mosfw_capture)
    DATA = define_event(EventType.PKT_IN, lambda event: event.len > 0, name="data")
    flow_cb, core_cb = [], []

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            core.register(DATA, lambda flow: core_cb.append(flow.server[1]))

        @mosfw.hookimpl
        def mosfw_conn_start(self, flow, side):
            if side == C and flow.server[1] == 22:
                flow.register(DATA, lambda side: flow_cb.append(side.label))

    mosfw_run(cap, plugins=[App()], events=None)
    assert sorted(core_cb) == [22, 22, 80, 80]
    assert flow_cb == ["client", "server"]


def test_bad_bpf_and_too_many_filters(mosfw_capture, mosfw_run):
    cap, _web, _ssh = two_flows(mosfw_capture)
    bad = define_event(EventType.PKT_IN, "tcp port nonsense-port-xyz")

    class Bad:
        @on(bad)
        def f(self):
            pass

    with pytest.raises(EngineError, match="nonsense"):
        mosfw_run(cap, plugins=[Bad()], events=None)

    many = [define_event(EventType.PKT_IN, f"tcp port {i}") for i in range(33)]

    class Many:
        pass

    for i, ev in enumerate(many):
        setattr(Many, f"f{i}", on(ev)(lambda self: None))
    with pytest.raises(EngineError, match="at most 32"):
        mosfw_run(cap, plugins=[Many()], events=None)


def test_define_event_argument_checks():
    with pytest.raises(TypeError):
        define_event("PKT_IN", "tcp")
    with pytest.raises(ValueError):
        define_event(EventType.PKT_IN | EventType.REXMIT, "tcp")
    with pytest.raises(ValueError):
        define_event(alloc_event(), "tcp port 80")  # BPF needs a packet
    with pytest.raises(TypeError):
        define_event(EventType.PKT_IN, 42)
    with pytest.raises(TypeError):
        on("x")

    def needs_unknown(flow, bogus):
        return True

    with pytest.raises(TypeError, match="bogus"):
        define_event(EventType.PKT_IN, needs_unknown)


def test_filter_that_raises_is_reported(mosfw_capture, mosfw_run):
    cap, _web, _ssh = two_flows(mosfw_capture)

    def boom(event):
        raise RuntimeError("boom")

    E = define_event(EventType.PKT_IN, boom, name="boomer")

    class App:
        @on(E)
        def f(self):
            pass

    rec = mosfw_run(cap, plugins=[App()], events=None, fail_fast=False)
    assert rec.stats.plugin_errors == 10 and "filter of boomer" in rec.stderr


def test_unused_user_events_cost_nothing(mosfw_capture, mosfw_run):
    """An event nobody listens to is not active: no subscription."""
    cap, _web, _ssh = two_flows(mosfw_capture)
    define_event(EventType.PKT_IN, "tcp", name="idle")
    masks = []

    class App:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            masks.append(core.event_mask)

    mosfw_run(cap, plugins=[App()], events=None)
    assert masks == [0]


def test_bpf_only_events_are_filtered_in_c(mosfw_capture, mosfw_run):
    """When only BPF-filtered user events use PKT_IN, records of packets
    that match no filter are never produced: Python sees the matches."""
    cap, _web, _ssh = two_flows(mosfw_capture)
    SSH = define_event(EventType.PKT_IN, "tcp port 22")
    seen = []

    class Only:
        @on(SSH)
        def f(self, event):
            seen.append(event.pkt_index)

    rec = mosfw_run(cap, plugins=[Only()], events=None)
    assert len(seen) == 5
    assert rec.stats.events == 5 + 2  # the matching PKT_INs and the two CONN_ENDs

    class AlsoAll(Only):
        @mosfw.hookimpl
        def mosfw_pkt_in(self):
            pass

    rec = mosfw_run(cap, plugins=[AlsoAll()], events=None)
    assert rec.stats.events == 10 + 2  # a hook wants every PKT_IN: all produced
