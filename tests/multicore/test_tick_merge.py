"""mosfw_tick_result -> mosfw_tick_merge: one per-second report for all
cores (how samples/midstat prints one table with -c N). Every second of
the file is merged once, in order, with every core's value in core
order, whatever the number of cores; errors are plugin errors, never a
lost second or a hang."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import DATA
from test_multicore_runner import make_config, plugin_file

from mosfw.runner import run_job

SCAN = DATA / "synscan.pcap"  # 23 s, 2011 packets of a SYN scan: many half-open flows

TICKER = """
import mosfw

MERGED = []

@mosfw.hookimpl
def mosfw_configure(config):
    MERGED.clear()

@mosfw.hookimpl
def mosfw_tick_result(core, ts):
    return {"core": core.id, "ts": ts, "live": sorted(f.client_str for f in core.live_flows())}

@mosfw.hookimpl
def mosfw_tick_merge(config, ts, results):
    MERGED.append((ts, results))
"""


def module_of(name: str):
    return sys.modules[
        next(m for m in sys.modules if m.startswith("mosfw_app_") and m.endswith(f"{name}_py"))
    ]


def merged_run(tmp_path, cores: int, source: str = TICKER, name: str = "ticker", **kw):
    name = f"{name}_c{cores}"  # a module of its own (with -c N the parent never calls mosfw_configure)
    plug = plugin_file(tmp_path, source, name)
    res = run_job(make_config(tmp_path, plug, cores=cores, read_file=SCAN, **kw))
    return res, list(module_of(name).MERGED)


@pytest.mark.parametrize("cores", [2, 3])
def test_every_second_once_in_order_with_every_core(tmp_path, cores, no_leftover_children):
    _, one = merged_run(tmp_path, 1)
    res, many = merged_run(tmp_path, cores)
    assert res.status == "done" and res.stats.plugin_errors == 0
    seconds = [ts for ts, _ in one]
    assert len(seconds) >= 5 and seconds == sorted(set(seconds))
    assert [ts for ts, _ in many] == seconds
    for (ts, results), (_, (single,)) in zip(many, one, strict=False):
        assert [r["core"] for r in results] == list(range(cores))
        assert all(r["ts"] == ts for r in results)
        # the cores' tables together are the one core's table at that second
        assert sorted(c for r in results for c in r["live"]) == single["live"]
    assert sum(1 for _, rs in many if sum(bool(r["live"]) for r in rs) > 1) >= 3  # split across cores


UNPICKLABLE = TICKER.replace('return {"core": core.id', 'return (lambda: 0) if core.id else {"core": core.id')


def test_an_unpicklable_value_is_a_plugin_error_of_its_core(tmp_path, no_leftover_children):
    err = __import__("io").StringIO()
    res, merged = merged_run(tmp_path, 2, UNPICKLABLE, "unpicklable", stderr=err)
    assert res.status == "done" and res.stats.plugin_errors >= 1
    assert "core 1: plugin" in err.getvalue() and "mosfw_tick_result" in err.getvalue()
    assert "not picklable" in err.getvalue()
    assert merged and all(results[1] is None and results[0]["core"] == 0 for _, results in merged)


RAISING = TICKER.replace(
    "    MERGED.append((ts, results))", "    MERGED.append((ts, results))\n    raise ValueError('boom')"
)


@pytest.mark.parametrize("cores", [1, 2])
def test_a_merge_that_raises_is_counted_and_the_run_goes_on(tmp_path, cores, no_leftover_children):
    err = __import__("io").StringIO()
    res, merged = merged_run(tmp_path, cores, RAISING, "raising", stderr=err)
    assert res.status == "done" and len(merged) >= 5
    assert "mosfw_tick_merge: ValueError: boom" in err.getvalue()
    assert res.stats.plugin_errors >= (len(merged) if cores > 1 else 1)


CLOSED = TICKER.replace(
    "    MERGED.append((ts, results))", "    MERGED.append((ts, results))\n    raise BrokenPipeError"
)


@pytest.mark.parametrize("cores", [1, 2])
def test_output_closed_in_a_merge_stops_the_run(tmp_path, cores, no_leftover_children):
    """The run stops, and run_job says why (the CLI then exits 0 quietly)."""
    with pytest.raises(BrokenPipeError):
        merged_run(tmp_path, cores, CLOSED, "closed")
    assert len(module_of(f"closed_c{cores}").MERGED) == 1  # no more merges once the output is closed


def test_no_value_no_merge(tmp_path, no_leftover_children):
    quiet = TICKER.replace('return {"core": core.id', 'return None and {"core": core.id')
    for cores in (1, 2):
        res, merged = merged_run(tmp_path, cores, quiet, "quiet")
        assert res.status == "done" and merged == []


class _StubConfig:
    """What _TickMerger reads of a Config: the merge hooks and stderr."""

    def __init__(self, seen):
        import io
        import types

        self.stderr = io.StringIO()
        self.pluginmanager = types.SimpleNamespace(
            direct_callers=lambda hook: [("p", lambda config, ts, results: seen.append((ts, results)))]
        )


def _blob(v):
    import pickle

    return {"p": pickle.dumps(v)}


def test_merger_waits_for_every_core_reading_a_file(monkeypatch):
    from mosfw import merge as runner

    seen = []
    m = runner.TickMerger(_StubConfig(seen), 3, live=False)
    m.add(0, 10.0, _blob("a0"))
    m.add(0, 11.0, _blob("b0"))  # core 0 runs ahead
    m.add(2, 10.0, _blob("a2"))
    monkeypatch.setattr(runner.time, "monotonic", lambda: 1e9)  # however long it takes
    m.flush()
    assert seen == []
    m.add(1, 11.0, _blob("b1"))  # core 1 skipped 10 (reported a later second)
    assert seen == [(10.0, ["a0", None, "a2"])]
    m.finished(2)
    assert seen[-1] == (11.0, ["b0", "b1", None])
    m.add(1, 10.0, _blob("late"))
    assert m.late == 1 and len(seen) == 2


def test_merger_live_does_not_wait_forever_nor_for_a_core_without_packets(monkeypatch):
    from mosfw import merge as runner

    now = [100.0]
    monkeypatch.setattr(runner.time, "monotonic", lambda: now[0])
    seen = []
    m = runner.TickMerger(_StubConfig(seen), 3, live=True)
    m.add(0, 5.0, _blob("a0"))  # cores 1 and 2 have had no packet: they do not tick yet
    assert seen == [(5.0, ["a0", None, None])]
    m.add(1, 6.0, _blob("b1"))  # core 1 ticks from now on ...
    assert len(seen) == 1  # ... and core 0 has not reported second 6 yet
    m.add(0, 6.0, _blob("b0"))
    assert seen[-1] == (6.0, ["b0", "b1", None])
    m.add(2, 7.0, _blob("c2"))
    now[0] += runner.TICK_MERGE_WAIT - 0.1
    m.flush()
    assert len(seen) == 2
    now[0] += 0.2  # cores 0 and 1 are late for second 7: merged without them
    m.flush()
    assert seen[-1] == (7.0, [None, None, "c2"])
    m.add(0, 7.0, _blob("late"))
    assert m.late == 1 and len(seen) == 3
