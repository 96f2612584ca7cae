"""The side events' hooks (pkt_in, conn_start, conn_new_data, rexmit)
called with just the arguments an implementation declares, in the order
it declares them. With one subscriber the engine builds a handler that
calls it directly (engine._one_side_handler); with several it goes
through adapters. Both must hand over the same values."""

from __future__ import annotations

import pytest

import mosfw
from mosfw.events import EventType, Side

HOOKS = {
    "mosfw_pkt_in": EventType.PKT_IN,
    "mosfw_conn_start": EventType.CONN_START,
    "mosfw_conn_new_data": EventType.CONN_NEW_DATA,
    "mosfw_rexmit": EventType.REXMIT,
}
SIGNATURES = [("flow", "side", "event"), ("event", "flow"), ("side",), ("event",), ("flow",), ()]


def make_plugin(hook: str, argnames: tuple[str, ...], seen: list):
    """A plugin object whose ``hook`` takes exactly ``argnames``."""
    params = ", ".join(("self",) + argnames)
    ns: dict = {}
    exec(
        f"def impl({params}):\n"
        f"    seen.append(dict(zip({argnames!r}, ({', '.join(argnames)}{',' if argnames else ''}))))",
        {"seen": seen},
        ns,
    )
    cls = type("Plug", (), {hook: mosfw.hookimpl(ns["impl"])})
    return cls()


@pytest.fixture
def capture(mosfw_capture):
    cap = mosfw_capture()
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    c.handshake()
    c.send("client", 100)
    c.rexmit(c.send("server", 300))
    c.close()
    return cap


@pytest.mark.parametrize("hook", sorted(HOOKS))
@pytest.mark.parametrize("subscribers", [1, 2])
def test_each_declared_argument_is_what_it_names(capture, mosfw_run, hook, subscribers):
    runs = []
    for argnames in SIGNATURES:
        seen: list = []
        plugins = [make_plugin(hook, argnames, seen) for _ in range(subscribers)]
        mosfw_run(capture, plugins=plugins, events=None)
        runs.append((argnames, seen))
    full = runs[0][1]
    n = len(full) // subscribers
    assert n > 0 and len(full) == n * subscribers
    for call in full:
        assert set(call) == {"flow", "side", "event"}
        assert call["event"].type == HOOKS[hook]
        assert isinstance(call["side"], Side)
        assert call["flow"].client_str == "10.0.0.1:40000"
    for argnames, seen in runs[1:]:
        assert [list(c) for c in seen] == [list(argnames)] * len(full), argnames
        for got, want in zip(seen, full, strict=False):
            for a in argnames:
                if a == "flow":
                    assert got[a].id == want[a].id
                elif a == "event":
                    assert tuple(got[a]) == tuple(want[a])
                else:
                    assert got[a] == want[a]


def test_an_exception_is_reported_with_the_plugin_and_the_run_goes_on(capture, mosfw_run):
    calls = []

    class Boom:
        @mosfw.hookimpl
        def mosfw_pkt_in(self, event):
            calls.append(event.seq)
            raise RuntimeError("pkt_in failed")

    rec = mosfw_run(capture, plugins=[Boom()], events=None, fail_fast=False)
    assert len(calls) == rec.stats.tcp_packets > 1  # called for every packet all the same
    assert rec.stats.plugin_errors == len(calls)
    err = rec.stderr
    assert "raised in mosfw_pkt_in" in err and "RuntimeError: pkt_in failed" in err
    assert "test_side_hook_arguments.py" in err  # where it was raised
