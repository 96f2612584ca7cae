"""run_job with several cores, in-process: merging per-core results,
counters, output, pinning, and failures (a worker that dies, raises,
hangs, or cannot start) -- each reported with its core, never a hang, no
worker left behind. About 10 s.
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import DATA, ROOT, eventlog_lines, flow_cores, multiset

from mosfw.engine import InputError, PluginError
from mosfw.manager import MosfwPluginManager
from mosfw.runconfig import Config, UsageError
from mosfw.runner import CoreResult, WorkerError, merge_stats, run_job

WEB = DATA / "WebattackRCE.pcap"  # 797 connections
DEMO = ROOT / "tests" / "data" / "http-loss.pcap"

COUNTER = """
import mosfw

STATE = {"ends": 0, "merged": None, "cores": None}

@mosfw.hookimpl
def mosfw_configure(config):
    STATE["ends"] = 0  # per-core state starts here (in each worker with -c N)

@mosfw.hookimpl
def mosfw_conn_end(flow, reason):
    STATE["ends"] += 1

@mosfw.hookimpl
def mosfw_core_result(core):
    return {"core": core.id, "ends": STATE["ends"], "pid": __import__("os").getpid()}

@mosfw.hookimpl
def mosfw_merge(config, results, cores):
    STATE["merged"] = results
    STATE["cores"] = cores

@mosfw.hookimpl
def mosfw_report(config, stats):
    total = sum(r["ends"] for r in STATE["merged"] if r)
    config.stdout.write(f"REPORT cores={len(STATE['merged'])} ends={total} flows={stats.flows_created}\\n")
"""


def plugin_file(tmp_path: Path, source: str, name: str = "plug") -> Path:
    p = tmp_path / f"{name}.py"
    p.write_text(textwrap.dedent(source))
    return p


def make_config(tmp_path, *plugins, cores=2, read_file=DEMO, stdout=None, stderr=None, **kw) -> Config:
    pm = MosfwPluginManager()
    for p in plugins:
        pm.load(str(p))
    pm.check()
    return Config(
        read_file=str(read_file),
        cores=cores,
        pluginmanager=pm,
        stdout=stdout if stdout is not None else io.StringIO(),
        stderr=stderr if stderr is not None else io.StringIO(),
        **kw,
    )


def test_merge_hooks_get_each_cores_value_in_core_order(tmp_path, no_leftover_children):
    plug = plugin_file(tmp_path, COUNTER)
    single = run_job(make_config(tmp_path, plug, cores=1, read_file=WEB))
    cfg = make_config(tmp_path, plug, cores=3, read_file=WEB)
    res = run_job(cfg)
    mod = sys.modules[next(m for m in sys.modules if m.startswith("mosfw_app_") and m.endswith("plug_py"))]
    merged, cores = mod.STATE["merged"], mod.STATE["cores"]
    assert [r["core"] for r in merged] == [0, 1, 2]
    assert len({r["pid"] for r in merged} | {os.getpid()}) == 4  # three workers, none is us
    assert all(isinstance(c, CoreResult) for c in cores) and [c.id for c in cores] == [0, 1, 2]
    assert all(r["ends"] > 0 for r in merged)  # every core had some of the 797 flows
    assert sum(r["ends"] for r in merged) == single.stats.flows_created
    # the parent's own module state was not touched by the workers' events
    assert mod.STATE["ends"] == single.stats.flows_created
    assert res.stats.flows_created == single.stats.flows_created
    assert (
        cfg.stdout.getvalue()
        == f"REPORT cores=3 ends={single.stats.flows_created} flows={single.stats.flows_created}\n"
    )
    assert res.status == "done" and [c.status for c in res.cores] == ["done"] * 3


def test_single_core_calls_the_merge_hooks_too(tmp_path):
    plug = plugin_file(tmp_path, COUNTER, "plug1")
    cfg = make_config(tmp_path, plug, cores=1)
    res = run_job(cfg)
    assert cfg.stdout.getvalue() == "REPORT cores=1 ends=4 flows=4\n"
    assert len(res.cores) == 1 and res.cores[0].values  # the value, by plugin name


def test_counters_merge_like_one_core(tmp_path, no_leftover_children):
    one = run_job(make_config(tmp_path, cores=1, read_file=WEB)).stats
    for n in (2, 5):
        res = run_job(make_config(tmp_path, cores=n, read_file=WEB))
        many = res.stats
        for f in (
            "packets",
            "bytes",
            "tcp_packets",
            "non_tcp",
            "malformed",
            "flows_created",
            "flows_ended_fin",
            "flows_ended_rst",
            "flows_ended_eof",
            "orphans",
            "rexmits",
            "events",
            "first_ts",
            "last_ts",
        ):
            assert getattr(many, f) == getattr(one, f), f
        assert sum(c.stats.packets for c in res.cores) == n * one.packets  # each read the file
        assert sum(c.stats.flows_created for c in res.cores) == one.flows_created


def test_merge_stats_sums_live_counters():
    from mosfw.stats import RunStats

    a = RunStats(packets=10, tcp_packets=8, flows_created=2, first_ts=5.0, last_ts=9.0)
    b = RunStats(packets=7, tcp_packets=7, flows_created=3, first_ts=4.0, last_ts=8.0)
    live = merge_stats([a, b], same_input=False)
    assert (live.packets, live.tcp_packets, live.flows_created, live.first_ts, live.last_ts) == (
        17,
        15,
        5,
        4.0,
        9.0,
    )
    offline = merge_stats([a, b], same_input=True)
    assert (offline.packets, offline.tcp_packets, offline.flows_created) == (10, 8, 5)


def test_output_without_a_file_descriptor_comes_back_whole(tmp_path, no_leftover_children):
    pm_cfg = make_config(tmp_path, "eventlog", cores=1, read_file=WEB)
    run_job(pm_cfg)
    base = eventlog_lines(pm_cfg.stdout.getvalue())
    cfg = make_config(tmp_path, "eventlog", cores=3, read_file=WEB)
    run_job(cfg)
    got = eventlog_lines(cfg.stdout.getvalue())
    assert multiset(got) == multiset(base)
    assert all(len(c) == 1 for c in flow_cores(got).values())


def test_output_to_a_file_is_whole_lines(tmp_path, no_leftover_children):
    out = open(tmp_path / "out.jsonl", "w")  # noqa: SIM115 - the run's stdout; closed below
    cfg = make_config(tmp_path, "eventlog", cores=4, read_file=WEB, stdout=out)
    run_job(cfg)
    out.close()
    got = eventlog_lines((tmp_path / "out.jsonl").read_text())
    assert {e["core"] for e in got if "client" in e} == {0, 1, 2, 3}
    assert len(got) == len(eventlog_lines(_single_eventlog(tmp_path)))


def _single_eventlog(tmp_path) -> str:
    cfg = make_config(tmp_path, "eventlog", cores=1, read_file=WEB)
    run_job(cfg)
    return cfg.stdout.getvalue()


def test_workers_are_pinned_to_distinct_cpus(tmp_path, no_leftover_children):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip(f"one CPU available to this process ({cpus}): nothing to pin to")
    plug = plugin_file(
        tmp_path,
        """
        import os, mosfw
        @mosfw.hookimpl
        def mosfw_core_result(core):
            return sorted(os.sched_getaffinity(0))
        @mosfw.hookimpl
        def mosfw_merge(config, results):
            config.stdout.write(repr(results))
    """,
        "aff",
    )
    cfg = make_config(tmp_path, plug, cores=2)
    run_job(cfg)
    assert cfg.stdout.getvalue() == repr([[cpus[0]], [cpus[1]]])


def test_unpicklable_core_result_is_a_plugin_error(tmp_path, no_leftover_children):
    plug = plugin_file(
        tmp_path,
        """
        import mosfw
        @mosfw.hookimpl
        def mosfw_core_result(core):
            return lambda: None
    """,
        "unpick",
    )
    cfg = make_config(tmp_path, plug, cores=2)
    res = run_job(cfg)
    assert res.stats.plugin_errors == 2
    err = cfg.stderr.getvalue()
    assert "core 0: plugin" in err and "core 1: plugin" in err and "not picklable" in err


def test_a_worker_that_dies_fails_the_run_naming_its_core(tmp_path, no_leftover_children):
    plug = plugin_file(
        tmp_path,
        """
        import os, signal, mosfw
        @mosfw.hookimpl
        def mosfw_conn_start(flow):
            os.kill(os.getpid(), signal.SIGKILL)
    """,
        "killer",
    )
    t0 = time.monotonic()
    with pytest.raises(
        WorkerError, match=r"core \d \(worker pid \d+\) died \(killed by signal 9 \(SIGKILL\)\)"
    ):
        run_job(make_config(tmp_path, plug, cores=2, read_file=WEB))
    assert time.monotonic() - t0 < 10


def test_setup_errors_in_workers_keep_their_kind(tmp_path, no_leftover_children):
    with pytest.raises(InputError, match="cannot read capture"):
        run_job(make_config(tmp_path, cores=2, read_file=tmp_path / "missing.pcap"))
    bad = plugin_file(
        tmp_path,
        """
        import mosfw
        @mosfw.hookimpl
        def mosfw_configure(config):
            raise mosfw.UsageError("--frob: bad value")
    """,
        "usage",
    )
    with pytest.raises(UsageError, match="--frob: bad value"):
        run_job(make_config(tmp_path, bad, cores=2))
    crash = plugin_file(
        tmp_path,
        """
        import mosfw
        @mosfw.hookimpl
        def mosfw_configure(config):
            raise RuntimeError("oops in configure")
    """,
        "crash",
    )
    # any other exception in configure is reported and counted in each
    # worker, as in every other hook; the run goes on
    result = run_job(make_config(tmp_path, crash, cores=2))
    assert result.status == "done" and result.stats.plugin_errors == 2


def test_fail_fast_plugin_error_comes_from_the_worker(tmp_path, no_leftover_children):
    plug = plugin_file(
        tmp_path,
        """
        import mosfw
        @mosfw.hookimpl
        def mosfw_conn_end(flow):
            raise ValueError("bad flow")
    """,
        "raiser",
    )
    with pytest.raises(PluginError, match=r"raised in mosfw_conn_end: ValueError: bad flow"):
        run_job(make_config(tmp_path, plug, cores=2, read_file=WEB), fail_fast=True)
    res = run_job(make_config(tmp_path, plug, cores=2, read_file=WEB))
    assert res.stats.plugin_errors == res.stats.flows_created


def test_progress_sees_merged_counters(tmp_path, no_leftover_children):
    plug = plugin_file(
        tmp_path,
        """
        import time, mosfw
        @mosfw.hookimpl
        def mosfw_conn_start(flow):
            time.sleep(0.002)
    """,
        "slow",
    )
    seen = []
    run_job(
        make_config(tmp_path, plug, cores=2, read_file=WEB),
        progress=lambda view: seen.append((view.stats().packets, view.input_offset())),
    )
    assert seen, "progress was never called"
    assert all(p >= 0 for p, _ in seen)


def test_zero_cores_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        run_job(make_config(tmp_path, cores=0))


def test_a_worker_dead_before_reading_leaves_the_others_to_read_the_input(
    tmp_path, no_leftover_children, monkeypatch
):
    """Core 1 dies before it reads a packet, with the rings smaller than
    the input (MOSFW_FEED_RING_KB=1024): the reader, which would wait for
    room in core 1's ring, drops its packets once the parent sees the death
    (native/feed.c), and core 0 reads the input to its end. Core 1 is named
    as lost; the run does not hang."""
    monkeypatch.setenv("MOSFW_FEED_RING_KB", "1024")
    plug = plugin_file(
        tmp_path,
        """
        import os, signal, mosfw
        @mosfw.hookimpl
        def mosfw_core_start(core):
            if core.id == 1:
                os.kill(os.getpid(), signal.SIGKILL)
    """,
        "killer1",
    )
    big = tmp_path / "big.pcap"
    blob = WEB.read_bytes()
    one = blob[24:]
    copies = 3 * (1 << 20) // len(one) + 1  # the same packets again: more than a ring holds
    big.write_bytes(blob + one * copies)
    t0 = time.monotonic()
    res = run_job(make_config(tmp_path, plug, cores=2, read_file=big), stop_timeout=5.0)
    assert time.monotonic() - t0 < 30
    assert [(x.core, x.partial) for x in res.lost] == [(1, False)]
    assert res.lost[0].how == "killed by signal 9 (SIGKILL)" and not res.lost[0].others_stopped
    assert res.status == "incomplete"
    assert [c.status for c in res.cores] == ["done", "lost"]
    pos, per_copy = 24, 0
    while pos < len(blob):  # the records of one copy
        pos += 16 + int.from_bytes(blob[pos + 8 : pos + 12], "little")
        per_copy += 1
    assert res.stats.packets == (copies + 1) * per_copy  # the reader read it all
