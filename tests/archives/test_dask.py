"""``--dask``: the archive cut into time segments run as Dask tasks gives
tracker's records (and the engine's counters) of one process reading the
whole archive: against a LocalCluster(processes=True) started by the run,
against one started here (the Python API, as from a notebook) and against
a real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1.
Faults: a plugin that kills its worker the first time it runs a segment
(the segment is run again, nothing is lost or doubled) and one that kills
it every time (a clear error naming the segment).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_helpers import (
    DATA,
    GEN_SRC,
    KEEPS_CONFIG,
    ROOT,
    TRACKER,
    compress_some,
    merged,
    mosfw,
    records,
    shifted,
    split,
    stats_json,
    tools_missing,
)

distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (make installs it)")
pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}")

#: counters a --dask run must give as one process does (each segment
#: counts its own window's packets and owned flows)
SAME_COUNTERS = ("packets", "bytes", "tcp_packets", "flows_created", "flows_ended_fin", "rexmits", "orphans")

KILLER = (
    KEEPS_CONFIG
    + """
import os, signal

@mosfw.hookimpl
def mosfw_core_start(core):
    seg = _config.segment
    mark = os.environ["MOSFW_TEST_MARK"]
    if seg is not None and seg[0] == int(os.environ["MOSFW_TEST_SEGMENT"]):
        if os.environ.get("MOSFW_TEST_ALWAYS") or not os.path.exists(mark):
            open(mark, "a").close()
            os.kill(os.getpid(), signal.SIGKILL)
"""
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """http-loss.pcap with copies 2 s (TIME_WAIT reuse), 50 s and 100 s
    (idle gaps longer than a segment) later, cut into 1 s files, half of
    them compressed; and the one-process records of the whole."""
    d = tmp_path_factory.mktemp("dask")
    src = DATA / "http-loss.pcap"
    whole = merged(
        d / "whole.pcap",
        src,
        shifted(src, d / "p2.pcap", 2.0),
        shifted(src, d / "p50.pcap", 50.0),
        shifted(src, d / "p100.pcap", 100.0),
    )
    compress_some(split(whole, d / "arch", ["-i", "1"]))
    r = mosfw("run", "-r", whole, "-p", TRACKER, "-q", "--stats-json", "-")
    assert r.returncode == 0, r.stderr
    ev = mosfw("run", "-r", whole, "-p", "eventlog", "-q")
    assert ev.returncode == 0, ev.stderr
    return d / "arch", records(r.stdout), stats_json(r.stderr), sorted(ev.stdout.splitlines())


def dask_run(arch, *extra, env=None, timeout=180):
    return mosfw(
        "run",
        "-r",
        arch,
        "-p",
        TRACKER,
        "--dask",
        *extra,
        "-q",
        "--stats-json",
        "-",
        env=env,
        timeout=timeout,
    )


def test_local_cluster_equals_one_process(archive):
    """tracker's records, eventlog's lines (as a multiset: parts are joined
    by segment) and the counters of one process."""
    arch, whole, wstats, events = archive
    r = dask_run(arch, "-c", "2", "--segments", "6", "-p", "eventlog")
    assert r.returncode == 0, r.stderr
    assert sum(r["proto"] == "tcp" for r in whole) == 16  # (and ICMP records: neighbour discovery)
    assert records(r.stdout) == whole
    assert sorted(x for x in r.stdout.splitlines() if '"uid"' not in x) == events
    st = stats_json(r.stderr)
    assert {k: st[k] for k in SAME_COUNTERS} == {k: wstats[k] for k in SAME_COUNTERS}
    segs = st["segments"]
    assert 4 <= len(segs) <= 6 and len({s["pid"] for s in segs}) == 2
    assert sum(s["packets"] for s in segs) == wstats["packets"]


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for bench/gen_capture.c")
def test_generated_connections_across_segments(tmp_path):
    """2000 interleaved connections of bench/gen_capture.c over 12 files
    and 5 segments: connections open at every segment start run to their
    end in the segment that saw their first packet."""
    exe = tmp_path / "gen"
    subprocess.run(["cc", "-O2", "-o", exe, GEN_SRC], check=True)
    src = tmp_path / "gen.pcap"
    subprocess.run([exe, "-q", "-o", src, "-n", "2000", "-c", "300", "-t", "2000"], check=True)
    r = mosfw("run", "-r", src, "-p", TRACKER, "-q")
    whole = records(r.stdout)
    assert len(whole) == 2000
    compress_some(split(src, tmp_path / "d", ["-c", "3500"]))
    r = dask_run(tmp_path / "d", "-c", "2", "--segments", "5", "--tcp-timeout", "3", "--tcp-tw-interval", "1")
    assert r.returncode == 0, r.stderr
    assert records(r.stdout) == whole


def test_python_api_on_a_local_cluster(archive):
    """run_archive() against a LocalCluster(processes=True) of this
    process, as from a notebook."""
    from mosfw.archive import run_archive

    arch, whole, wstats, _ = archive
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        out = io.StringIO()
        res = run_archive(
            [arch], plugins=[str(TRACKER)], address=lc.scheduler_address, segments=4, stdout=out
        )
    assert res.status == "done"
    assert records(out.getvalue()) == whole
    assert res.stats.packets == wstats["packets"]
    assert [s.index for s in res.segments] == list(range(len(res.segments)))


def test_scheduler_and_two_workers(archive, tmp_path):
    """A real `dask scheduler` and two `dask worker` processes on 127.0.0.1."""
    arch, whole, _, _ = archive
    dask = str(Path(sys.executable).parent / "dask")
    sched_file = tmp_path / "scheduler.json"
    procs = [
        subprocess.Popen(
            [
                dask,
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                sched_file,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [
                        dask,
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    cwd=ROOT,
                )
            )
        with distributed.Client(address) as c:
            c.wait_for_workers(2, timeout=60)
        r = dask_run(arch, address, "--segments", "5")
        assert r.returncode == 0, r.stderr
        assert records(r.stdout) == whole
        assert len({s["pid"] for s in stats_json(r.stderr)["segments"]}) == 2
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_worker_killed_once_is_retried(archive, tmp_path):
    arch, whole, wstats, _ = archive
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    mark = tmp_path / "killed"
    env = dict(os.environ, MOSFW_TEST_MARK=str(mark), MOSFW_TEST_SEGMENT="2")
    r = mosfw(
        "run", "-r", arch, "-p", TRACKER, "-p", killer, "--dask", "-c", "2", "--segments", "5", "-q",
        "--stats-json", "-", env=env, timeout=180,
    )  # fmt: skip
    assert mark.exists(), "the plugin never killed its worker"
    assert r.returncode == 0, r.stderr
    assert records(r.stdout) == whole  # nothing lost, nothing twice
    assert stats_json(r.stderr)["packets"] == wstats["packets"]


def test_worker_killed_every_time_names_the_segment(archive, tmp_path):
    arch = archive[0]
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    env = dict(
        os.environ,
        MOSFW_TEST_MARK=str(tmp_path / "killed"),
        MOSFW_TEST_SEGMENT="1",
        MOSFW_TEST_ALWAYS="1",
        DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES="1",
    )
    r = mosfw(
        "run", "-r", arch, "-p", TRACKER, "-p", killer, "--dask", "-c", "2", "--segments", "4", "-q",
        env=env, timeout=180,
    )  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert "segment 1" in r.stderr and "killed every worker" in r.stderr


def test_refuses_tcp_timeout_0(archive):
    r = dask_run(archive[0], "--tcp-timeout", "0")
    assert r.returncode == 1
    assert "tcp_timeout 0" in r.stderr


def test_refuses_standard_input():
    data = (DATA / "http-loss.pcap").read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", "-", "-p", TRACKER, "--dask"],
        input=data, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 2
    assert b"not standard input (-r -)" in r.stderr


def test_without_dask_says_how_to_install(archive, tmp_path):
    """An interpreter where `import distributed` fails."""
    shim = tmp_path / "shim" / "distributed"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no module named distributed')\n")
    env = dict(os.environ, PYTHONPATH=str(shim.parent))
    r = dask_run(archive[0], env=env)
    assert r.returncode == 1
    assert "pip install 'mosfw[dask]'" in r.stderr


def test_lead_in_follows_the_plugins_idle_timeout(tmp_path):
    """The tracker keeps an idle connection for Zeek's 300 s (it sets the
    engine's tcp_timeout in mosfw_configure unless the user gave one), so
    a segment's lead-in must be that long, not the engine's 35 s default:
    a connection idle 100 s across a segment start is one record, as in
    one process, not a second mid-stream one in the next segment."""
    from mosfw.testing.flows import Capture

    cap = Capture()
    long_idle = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
    long_idle.handshake()
    long_idle.send("client", 100)
    long_idle.send("server", 300)
    for i in range(24):  # a short connection every 10 s: something in every file
        cap.advance(10.0 if i != 5 else 0.0)
        c = cap.conversation((f"10.0.1.{i + 1}", 41000 + i), ("10.0.0.2", 80))
        c.handshake()
        c.send("client", 10)
        c.close()
        if i == 9:  # 100 s after its last packet
            long_idle.send("client", 50)
            long_idle.send("server", 60)
            long_idle.close()
    whole = tmp_path / "whole.pcap"
    cap.write_pcap(whole)
    r = mosfw("run", "-r", whole, "-p", TRACKER, "-q")
    assert r.returncode == 0, r.stderr
    one = records(r.stdout)
    assert sum(x["id.orig_p"] == 40000 for x in one) == 1
    split(whole, tmp_path / "arch", ["-i", "20"])
    r = dask_run(tmp_path / "arch", "-c", "2", "--segments", "6")
    assert r.returncode == 0, r.stderr
    assert records(r.stdout) == one


KILLER_AT_FINISH = """
import os, signal
import mosfw

_config = None

@mosfw.hookimpl
def mosfw_configure(config):
    global _config
    _config = config

@mosfw.hookimpl(trylast=True)  # after the other plugins flushed their files
def mosfw_core_finish(core):
    seg = _config.segment
    mark = os.environ["MOSFW_TEST_MARK"]
    if seg is not None and seg[0] == 0 and not os.path.exists(mark):
        open(mark, "a").close()
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _http_lines(path: Path) -> list[dict]:
    """httplog's lines without ``uid`` (a flow id: each segment counts its own)."""
    out = [json.loads(x) for x in path.read_text().splitlines()]
    for d in out:
        d.pop("uid")
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


def test_plugin_log_file_written_once_when_a_task_is_retried(archive, tmp_path):
    """httplog's --http-log PATH under --dask, a worker killed once after
    its segment wrote its lines: PATH holds every line of one process once
    (Config.open_output: a task writes to a part of its own, which the run's
    process appends to PATH in segment order; a task that wrote to PATH
    itself left the dead task's lines there twice)."""
    arch = archive[0]
    one = tmp_path / "one.log"
    r = mosfw("run", "-r", arch, "-p", "samples/httplog", "--http-log", one, "-q")
    assert r.returncode == 0, r.stderr
    want = _http_lines(one)
    assert len(want) >= 4
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER_AT_FINISH)
    mark, log = tmp_path / "killed", tmp_path / "dask.log"
    env = dict(os.environ, MOSFW_TEST_MARK=str(mark))
    r = mosfw(
        "run", "-r", arch, "-p", "samples/httplog", "-p", killer, "--dask", "-c", "2", "--segments", "4",
        "--http-log", log, "-q", env=env, timeout=180,
    )  # fmt: skip
    assert mark.exists(), "the plugin never killed its worker"
    assert r.returncode == 0, r.stderr
    assert _http_lines(log) == want


def test_records_reach_the_sinks_once_when_a_task_is_retried(archive, tmp_path):
    """--sink under --dask: the tasks keep their records and the run's
    process sends them, in segment order, once every segment finished: a
    file sink and a real redis-server get every record of one process once,
    with a worker killed after its segment's records were written (the
    tasks used to print them to standard output: the sinks got nothing)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sinks"))
    from sink_helpers import redis_server

    arch, whole, _, _ = archive
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER_AT_FINISH)
    mark, out = tmp_path / "killed", tmp_path / "conn.jsonl"
    env = dict(os.environ, MOSFW_TEST_MARK=str(mark))
    with redis_server() as srv:
        r = mosfw(
            "run", "-r", arch, "-p", TRACKER, "-p", killer, "--dask", "-c", "2", "--segments", "4",
            "--sink", f"file:{out}", "--sink", srv.url + "?stream=mosfw-{stream}", "-q", "--stats-json", "-",
            env=env, timeout=180,
        )  # fmt: skip
        assert mark.exists(), "the plugin never killed its worker"
        assert r.returncode == 0, r.stderr
        assert r.stdout == ""
        assert records(out.read_text()) == whole
        assert records("\n".join(e.decode() for e in srv.entries("mosfw-conn"))) == whole
        assert stats_json(r.stderr)["sink_records_lost_by_sink"] == {f"file:{out}": 0, srv.url: 0}
    down = mosfw("run", "-r", arch, "-p", TRACKER, "--dask", "--sink", srv.url, "-q", timeout=180)
    assert down.returncode == 1 and f"cannot connect to 127.0.0.1:{srv.port}" in down.stderr
