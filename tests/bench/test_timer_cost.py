"""Micro-benchmark: what a per-flow timer costs, with a callback
(``flow.settimer(s, cb)``) and without (the ``mosfw_timeout`` hook).

Same style as test_micro.py (pytest-benchmark, few rounds, asserts only
correctness): each run sets one timer per connection on the client's
CONN_START of the synthetic ``tcp-10`` capture (bench/gen_capture.c, 1000
connections, 20,000 packets) and every timer fires. ``extra_info``
holds ``us_per_timer``: (time - the same run setting no timer) / timers,
i.e. settimer + firing + the callback or hook. ``set only`` cancels each
timer at once: the cost of settimer itself. docs/performance.md quotes
the figures.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")
mosfw = pytest.importorskip("mosfw")
try:
    from mosfw import Side
    from mosfw.engine import Core
    from mosfw.manager import get_plugin_manager
    from mosfw.runconfig import Config
except ImportError as exc:  # pragma: no cover - the native module is not built
    pytest.skip(f"mosfw engine not importable: {exc}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
CC = shutil.which("cc") or shutil.which("gcc")
ROUNDS = int(os.environ.get("MOSFW_BENCH_ROUNDS", "3"))
CONNECTIONS = 1000


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    if CC is None:
        pytest.skip("no C compiler to build bench/gen_capture.c")
    d = tmp_path_factory.mktemp("timers")
    gen = d / "gen_capture"
    subprocess.run([CC, "-O2", "-o", str(gen), str(ROOT / "bench" / "gen_capture.c")], check=True)
    p = d / "tcp-10.pcap"
    subprocess.run(
        [str(gen), "-o", str(p), "-n", str(CONNECTIONS), "-c", "10"], check=True, capture_output=True
    )
    return p


class Timers:
    """One timer per connection, 1 us after its CONN_START (the flows live
    far longer: every timer fires)."""

    def __init__(self, how: str) -> None:
        self.how, self.fired, self.set = how, 0, 0

    def on_fire(self, flow, data):
        self.fired += 1

    @mosfw.hookimpl
    def mosfw_conn_start(self, flow, side):
        if side != Side.CLIENT or self.how == "none":
            return
        self.set += 1
        if self.how == "hook":
            flow.settimer(1e-6, data=1)
        elif self.how == "callback":
            flow.settimer(1e-6, self.on_fire, data=1)
        elif self.how == "set only":
            flow.settimer(1e-6, self.on_fire, data=1).cancel()

    @mosfw.hookimpl
    def mosfw_timeout(self, flow, timer, data, event):
        self.fired += 1


def _core(pcap: Path, plugin: Timers) -> Core:
    pm = get_plugin_manager([plugin])
    config = Config(read_file=str(pcap), pluginmanager=pm, stdout=io.StringIO(), stderr=io.StringIO())
    pm.hook.mosfw_configure(config=config)
    core = Core(config, pm)
    core.open()
    return core


@pytest.mark.parametrize("how", ["hook", "callback", "set only"])
def test_per_flow_timer_cost(benchmark, capture, how):
    benchmark.group = "per-flow timer: settimer + fire"
    base = float("inf")
    for _ in range(3):
        core = _core(capture, Timers("none"))
        t0 = time.perf_counter()
        core.run()
        base = min(base, time.perf_counter() - t0)

    plugins = []

    def setup():
        plugins.append(Timers(how))
        return (_core(capture, plugins[-1]),), {}

    result = benchmark.pedantic(
        lambda core: core.run(), setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1
    )
    assert result.stats.plugin_errors == 0
    last = plugins[-1]
    assert last.set == CONNECTIONS
    assert last.fired == (0 if how == "set only" else CONNECTIONS)
    st = getattr(benchmark, "stats", None)
    t = getattr(getattr(st, "stats", None), "min", None)
    if t:
        benchmark.extra_info["timers"] = CONNECTIONS
        benchmark.extra_info["us_per_timer"] = round(max(t - base, 0) / CONNECTIONS * 1e6, 2)
        benchmark.extra_info["no_timer_seconds"] = round(base, 6)
