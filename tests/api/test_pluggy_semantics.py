"""pluggy's semantics on event hooks (docs/hooks.md, "pluggy semantics").

The engine calls plain implementations directly (no pluggy per event);
a hook with a wrapper, or every hook while hook calls are traced, goes
through pluggy's own call loop, so that new-style (``wrapper=True``) and
old-style (``hookwrapper=True``) wrappers see the result or the
exception, tryfirst/trylast order the calls, and MOSFW_TRACE_HOOKS sees
event hooks.
"""

from __future__ import annotations

import pytest

import mosfw
from mosfw.events import EndReason, EventType
from mosfw.manager import MosfwPluginManager


@pytest.fixture
def capture(mosfw_capture):
    cap = mosfw_capture()
    for port in (40000, 40001):
        c = cap.conversation(client=("10.0.0.1", port), server=("10.0.0.2", 80))
        c.handshake()
        c.send("client", 100)
        c.send("server", 300)
        c.close()
    return cap


@pytest.fixture
def hookexec_calls(monkeypatch):
    """Hook names of every call that went through pluggy's call loop."""
    calls: list[str] = []
    real = MosfwPluginManager._hookexec

    def counting(self, hook_name, methods, kwargs, firstresult):
        calls.append(hook_name)
        return real(self, hook_name, methods, kwargs, firstresult)

    monkeypatch.setattr(MosfwPluginManager, "_hookexec", counting)
    return calls


class Ends:
    """A plain conn_end implementation that records what it saw."""

    def __init__(self, log: list, tag: str = "plain", fail: bool = False) -> None:
        self.log, self.tag, self.fail = log, tag, fail

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason):
        self.log.append((self.tag, flow.client[1]))
        if self.fail:
            raise ValueError(f"{self.tag} failed")
        return reason


def test_new_style_wrapper_runs_on_an_event_hook_and_sees_the_result(capture, mosfw_run):
    log: list = []

    class Wrapper:
        @mosfw.hookimpl(wrapper=True)
        def mosfw_conn_end(self, flow, reason):
            log.append(("before", flow.client[1]))
            result = yield
            log.append(("after", flow.client[1], result))
            return result

    rec = mosfw_run(capture, plugins=[Ends(log), Wrapper()], events=None)
    assert rec.stats.plugin_errors == 0
    assert log == [
        ("before", 40000),
        ("plain", 40000),
        ("after", 40000, [EndReason.FIN]),
        ("before", 40001),
        ("plain", 40001),
        ("after", 40001, [EndReason.FIN]),
    ]


def test_old_style_hookwrapper_runs_on_an_event_hook_and_sees_the_outcome(capture, mosfw_run):
    log: list = []

    class OldWrapper:
        @mosfw.hookimpl(hookwrapper=True)
        def mosfw_conn_end(self, flow):
            log.append(("before", flow.client[1]))
            outcome = yield
            log.append(("after", flow.client[1], outcome.get_result()))

    rec = mosfw_run(capture, plugins=[Ends(log), OldWrapper()], events=None)
    assert rec.stats.plugin_errors == 0
    assert log[:3] == [("before", 40000), ("plain", 40000), ("after", 40000, [EndReason.FIN])]
    assert len(log) == 6


def test_a_wrapper_sees_the_exception_and_may_swallow_it(capture, mosfw_run):
    log: list = []

    class Swallow:
        @mosfw.hookimpl(wrapper=True)
        def mosfw_conn_end(self):
            try:
                return (yield)
            except ValueError as e:
                log.append(("caught", str(e)))
                return []

    rec = mosfw_run(capture, plugins=[Ends(log, fail=True), Swallow()], events=None)
    assert rec.stats.plugin_errors == 0
    assert ("caught", "plain failed") in log and len(log) == 4


def test_an_exception_a_wrapper_lets_through_is_reported_with_the_raising_plugin(capture, mosfw_run):
    seen: list = []

    class Watch:
        @mosfw.hookimpl(hookwrapper=True)
        def mosfw_conn_end(self):
            outcome = yield
            seen.append(outcome.exception)

    ends, watch = Ends([], tag="boom", fail=True), Watch()
    rec = mosfw_run(capture, plugins=[ends, watch], events=None, fail_fast=False)
    assert [type(e) for e in seen] == [ValueError, ValueError]
    assert rec.stats.plugin_errors == 2
    # named after the plugin that raised (pluggy names an object by its id), not the wrapper
    assert f"plugin '{id(ends)}' raised in mosfw_conn_end" in rec.stderr
    assert "ValueError: boom failed" in rec.stderr and str(id(watch)) not in rec.stderr


@pytest.mark.parametrize(
    "hook,bit", [("mosfw_pkt_in", EventType.PKT_IN), ("mosfw_conn_end", EventType.CONN_END)]
)
@pytest.mark.parametrize("with_wrapper", [False, True])
def test_tryfirst_and_trylast_order_event_hooks(capture, mosfw_run, hook, bit, with_wrapper):
    order: list = []

    def plugin(tag, **opts):
        def impl(event):
            if event.type == bit:
                order.append(tag)

        return type(f"P_{tag}", (), {hook: staticmethod(mosfw.hookimpl(**opts)(impl))})()

    def wrapper_impl(event):
        yield

    plugins = [plugin("last", trylast=True), plugin("first", tryfirst=True), plugin("a"), plugin("b")]
    if with_wrapper:
        plugins.append(type("W", (), {hook: staticmethod(mosfw.hookimpl(wrapper=True)(wrapper_impl))})())
    mosfw_run(capture, plugins=plugins, events=None)
    # pluggy's order: tryfirst, then the last registered first, trylast at the end
    n = len(order) // 4
    assert n > 0 and order == ["first", "b", "a", "last"] * n


def test_tracing_sees_event_hooks(capture, mosfw_run, monkeypatch, capsys, hookexec_calls):
    monkeypatch.setenv("MOSFW_TRACE_HOOKS", "1")
    log: list = []
    rec = mosfw_run(capture, plugins=[Ends(log)], events=None)
    assert rec.stats.plugin_errors == 0 and len(log) == 2
    err = capsys.readouterr().err
    assert err.count("mosfw_conn_end [hook]") == 2
    assert "mosfw_core_start [hook]" in err
    assert hookexec_calls.count("mosfw_conn_end") == 2


def test_add_hookcall_monitoring_sees_event_hooks(capture, mosfw_run, monkeypatch):
    seen: list = []
    real_init = MosfwPluginManager.__init__

    def init(self):
        real_init(self)
        self.add_hookcall_monitoring(lambda name, impls, kw: seen.append(name), lambda *a: None)

    monkeypatch.setattr(MosfwPluginManager, "__init__", init)
    mosfw_run(capture, plugins=[Ends([])], events=None)
    assert seen.count("mosfw_conn_end") == 2


def test_plain_implementations_keep_the_fast_path(capture, mosfw_run, hookexec_calls):
    """No wrapper, no tracing: no event hook call goes through pluggy."""
    pkts: list = []

    class Pkt:
        @mosfw.hookimpl
        def mosfw_pkt_in(self, event):
            pkts.append(event.seq)

    rec = mosfw_run(capture, plugins=[Pkt(), Ends([])], events=None)
    assert rec.stats.plugin_errors == 0 and len(pkts) == rec.stats.tcp_packets > 0
    assert "mosfw_pkt_in" not in hookexec_calls and "mosfw_conn_end" not in hookexec_calls


def test_a_wrapper_on_one_hook_leaves_the_others_on_the_fast_path(capture, mosfw_run, hookexec_calls):
    class Wrapper:
        @mosfw.hookimpl(wrapper=True)
        def mosfw_conn_end(self):
            return (yield)

    class Pkt:
        @mosfw.hookimpl
        def mosfw_pkt_in(self):
            pass

    mosfw_run(capture, plugins=[Pkt(), Ends([]), Wrapper()], events=None)
    assert hookexec_calls.count("mosfw_conn_end") == 2
    assert "mosfw_pkt_in" not in hookexec_calls


def test_a_wrapper_alone_subscribes_to_its_event(capture, mosfw_run):
    ends: list = []

    class Wrapper:
        @mosfw.hookimpl(wrapper=True)
        def mosfw_conn_start(self, flow, side):
            ends.append(side)
            return (yield)

    mosfw_run(capture, plugins=[Wrapper()], events=None)
    assert len(ends) == 4  # two flows, both sides


def test_per_plugin_results_keep_their_plugin_names_through_a_wrapper(capture, mosfw_run):
    class A:
        @mosfw.hookimpl
        def mosfw_core_result(self):
            return "a"

    class B:
        @mosfw.hookimpl
        def mosfw_core_result(self):
            return "b"

    wrapped: list = []

    class W:
        @mosfw.hookimpl(wrapper=True)
        def mosfw_core_result(self):
            result = yield
            wrapped.append(result)
            return result

        @mosfw.hookimpl
        def mosfw_merge(self, cores):
            wrapped.append(sorted(cores[0].values.values()))

    mosfw_run(capture, plugins=[A(), B(), W()], events=None)
    assert sorted(wrapped[:2]) == [["a"], ["b"]]
    assert wrapped[2] == ["a", "b"]


def test_plugins_get_the_core_facade_not_the_driver(capture, mosfw_run):
    from mosfw.engine import CoreView

    got: dict = {}

    class P:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            got["start"] = core
            core.settimer(0.0, lambda core: got.setdefault("timer", core))

        @mosfw.hookimpl
        def mosfw_tick(self, core):
            got["tick"] = core

        @mosfw.hookimpl
        def mosfw_core_finish(self, core):
            got["finish"] = core

        @mosfw.hookimpl
        def mosfw_core_result(self, core):
            got["result"] = core

    mosfw_run(capture, plugins=[P()], events=None)
    assert set(got) >= {"start", "finish", "result", "timer"}  # tick: when the capture spans a second
    for core in got.values():
        assert type(core) is CoreView and core is got["start"]
        assert core.id == 0 and core.config is not None
        for private in ("run", "open", "pm", "_c", "tick_sink", "fail_fast"):
            assert not hasattr(core, private), private
        core.stats(), core.live_flows(), core.api_stats()  # the documented methods work


def test_merge_gets_each_plugins_own_values_while_traced(capture, mosfw_run, monkeypatch):
    monkeypatch.setenv("MOSFW_TRACE_HOOKS", "1")
    merged: dict = {}

    def plugin(tag):
        def mosfw_core_result():
            return tag

        def mosfw_merge(results):
            merged[tag] = results

        return type(
            f"P_{tag}",
            (),
            {
                "mosfw_core_result": staticmethod(mosfw.hookimpl(mosfw_core_result)),
                "mosfw_merge": staticmethod(mosfw.hookimpl(mosfw_merge)),
            },
        )()

    mosfw_run(capture, plugins=[plugin("a"), plugin("b")], events=None)
    assert merged == {"a": ["a"], "b": ["b"]}
