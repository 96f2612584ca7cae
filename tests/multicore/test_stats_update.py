"""``mosfw_stats_update``: the running counters in the process that
merges the cores, with ``-c 1`` and ``-c 2`` (run_job in-process): a
first call with every counter 0 before any core starts, calls while the
cores run (counters that only grow), and one last call with ``final``
whose counters are the run's (merged, and per core adding up). A plugin
whose ``mosfw_tick`` sleeps makes the run last over a second. An
exception from the hook is a counted plugin error; a UsageError from its
first call stops the run before any core. About 4 s.
"""

from __future__ import annotations

import io
import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import ROOT

from mosfw.manager import MosfwPluginManager
from mosfw.runconfig import Config, UsageError
from mosfw.runner import run_job
from mosfw.stats import CoreCounters, RunStats

PCAP = ROOT / "tests" / "multicore" / "data" / "KakaoTalk_chat.pcap"  # 18 flows over 51 s

RECORDER = """
import os, time
import mosfw

CALLS = []

@mosfw.hookimpl
def mosfw_stats_update(config, stats, cores, final):
    CALLS.append((os.getpid(), stats, cores, final))

@mosfw.hookimpl
def mosfw_conn_end(flow):
    pass

@mosfw.hookimpl
def mosfw_tick(core):
    time.sleep(0.06)  # ~30 ticks (each ends a burst): the run lasts over a second
"""


def load(tmp_path: Path, source: str, name: str, cores: int) -> tuple[Config, object]:
    p = tmp_path / f"{name}.py"
    p.write_text(textwrap.dedent(source))
    pm = MosfwPluginManager()
    module = pm.load(str(p))
    pm.check()
    cfg = Config(
        read_file=str(PCAP), cores=cores, pluginmanager=pm, stdout=io.StringIO(), stderr=io.StringIO()
    )
    return cfg, module


@pytest.mark.parametrize("cores", [1, 2])
def test_first_running_and_final_calls(tmp_path, cores, no_leftover_children):
    import os

    cfg, mod = load(tmp_path, RECORDER, f"rec{cores}", cores)
    res = run_job(cfg)
    calls = mod.CALLS
    assert {pid for pid, *_ in calls} == {os.getpid()}  # never in a worker
    first, last = calls[0], calls[-1]
    assert first[1] == RunStats() and not first[3]
    assert first[2] == [CoreCounters(k) for k in range(cores)]
    assert [c[3] for c in calls].count(True) == 1 and last[3]
    running = calls[1:-1]
    assert running and any(c[1].packets > 0 for c in running), calls  # while the cores ran
    packets = [c[1].packets for c in calls]
    assert packets == sorted(packets)
    # the final counters: the run's, and the cores' add up to them
    stats, per_core = last[1], last[2]
    assert stats == res.stats
    assert [c.core for c in per_core] == list(range(cores)) and not any(c.lost for c in per_core)
    assert sum(c.stats.flows_created for c in per_core) == stats.flows_created == 18
    for c in per_core:
        assert sum(c.events.values()) == c.stats.events
        assert c.events["conn_end"] == c.stats.flows_created  # subscribed: one per flow
        assert c.events["pkt_in"] == 0  # nobody subscribed: never produced


RAISER = """
import mosfw

N = []

@mosfw.hookimpl
def mosfw_stats_update(config, final):
    N.append(final)
    if len(N) == 1 and config.getoption("refuse"):
        raise mosfw.UsageError("no metrics for you")
    if final:
        raise RuntimeError("boom")
"""


def test_errors_are_counted_and_a_usage_error_stops_the_run(tmp_path, no_leftover_children):
    cfg, mod = load(tmp_path, RAISER, "raiser", 2)
    res = run_job(cfg)
    assert res.stats.plugin_errors == 1 and mod.N[-1] is True
    assert "raised in mosfw_stats_update: RuntimeError: boom" in cfg.stderr.getvalue()
    cfg, mod = load(tmp_path, RAISER, "raiser2", 2)
    cfg.options["refuse"] = True
    with pytest.raises(UsageError, match="no metrics for you"):
        run_job(cfg)
    assert mod.N == [False]  # nothing ran after the first call
