"""``mosfw run`` when a run is hit from outside (issue 23): a worker of
``-c 2`` killed or stopped on its own, and stop signals that come twice
(GNU ``timeout``, a signal to the process group). About 25 s.

The workload: bench/gen_capture.c's synthetic capture (1,500
connections, 30k packets) with a plugin that sleeps 100 us per packet of
a tracked flow, prints one line per finished connection (with its core)
and, when told by MC_KILL=SIGNAL:CORE:K, sends SIGNAL to its own process
on core CORE at its K-th packet: deterministic, mid-run.
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) to build bench/gen_capture.c")

PLUGIN = """
import os, signal, time, mosfw

STATE = {"core": None, "pkts": 0, "merged": None}
KILL = os.environ.get("MC_KILL", "")
SLOW_EOF = float(os.environ.get("MC_SLOW_EOF", "0"))

@mosfw.hookimpl
def mosfw_core_start(core):
    STATE["core"] = core.id
    STATE["pkts"] = 0
    d = os.environ.get("MC_READY_DIR")
    if d:
        open(os.path.join(d, f"core{core.id}"), "w").close()

@mosfw.hookimpl
def mosfw_pkt_in(flow):
    STATE["pkts"] += 1
    time.sleep(0.0001)
    if KILL:
        name, core, k = KILL.split(":")
        if STATE["core"] == int(core) and STATE["pkts"] == int(k):
            os.kill(os.getpid(), getattr(signal, name))

@mosfw.hookimpl
def mosfw_conn_end(flow, reason):
    if SLOW_EOF and reason.name.lower() == "eof":
        time.sleep(SLOW_EOF)
    print(f"END core={flow.core} {flow.client_str} {flow.server_str} {reason.name.lower()}")

@mosfw.hookimpl
def mosfw_core_result(core):
    return STATE["pkts"]

@mosfw.hookimpl
def mosfw_merge(results):
    STATE["merged"] = results

@mosfw.hookimpl
def mosfw_report(config, stats):
    config.stdout.write(f"REPORT per-core={STATE['merged']} flows={stats.flows_created}\\n")
    config.stdout.flush()
"""


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "bench"))
    import run_bench

    out = tmp_path_factory.mktemp("faults")
    exe = run_bench.build_generator(out)
    pcap = out / "w.pcap"
    subprocess.run(
        [str(exe), "-o", str(pcap), "-n", "1500", "-c", "200"], check=True, capture_output=True, timeout=60
    )
    plug = out / "faulty.py"
    plug.write_text(PLUGIN)
    return pcap, plug


def _no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def start(workload, tmp_path, *extra, env=None, **kw) -> subprocess.Popen:
    pcap, plug = workload
    env = dict(os.environ, MC_READY_DIR=str(tmp_path), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", str(plug), *map(str, extra)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_no_core_dumps,
        **kw,
    )


def finish(proc, timeout=120.0) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"mosfw did not finish within {timeout} s (it hangs):\n{err}") from None


def wait_ready(tmp_path, proc, cores: int, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((tmp_path / f"core{k}").exists() for k in range(cores)):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"cores did not start within {timeout} s: {proc.communicate()}")


def ends(out: str) -> dict[int, collections.Counter]:
    """core -> multiset of (client, server, reason) of the END lines."""
    by_core: dict[int, collections.Counter] = collections.defaultdict(collections.Counter)
    for m in re.finditer(r"^END core=(\d+) (\S+) (\S+) (\w+)$", out, re.M):
        by_core[int(m.group(1))][m.group(2, 3, 4)] += 1
    return by_core


def stats_doc(err: str) -> dict:
    docs = [line for line in err.splitlines() if line.startswith("{")]
    assert docs, f"no --stats-json line on stderr:\n{err}"
    return json.loads(docs[-1])


@pytest.fixture(scope="module")
def reference(workload, tmp_path_factory) -> tuple[dict[int, collections.Counter], dict]:
    """Each core's records and the counters of an undisturbed -c 2 run."""
    proc = start(workload, tmp_path_factory.mktemp("ref"), "-c", "2", "--stats-json", "-")
    out, err = finish(proc)
    assert proc.returncode == 0, err
    by_core = ends(out)
    assert by_core[0] and by_core[1]
    return by_core, stats_doc(err)


# ---------------------------------------------------------------------------
# a worker killed, or stopped on its own


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGSEGV"])
def test_a_killed_worker_leaves_the_other_cores_results(workload, tmp_path, reference, sig):
    ref, ref_doc = reference
    proc = start(workload, tmp_path, "-c", "2", "--stats-json", "-", env={"MC_KILL": f"{sig}:1:8000"})
    out, err = finish(proc)
    assert proc.returncode == 5, (proc.returncode, err)
    assert "Traceback" not in err, err
    num = int(getattr(signal, sig))
    m = re.search(
        rf"^mosfw: core 1 \(worker pid \d+\) died \(killed by signal {num} \({sig}\)\) "
        r"after (\d+) packets",
        err,
        re.M,
    )
    assert m, err
    assert 0 < int(m.group(1)) < ref_doc["packets"]
    got = ends(out)
    assert not got.get(1), "a killed core cannot have finished any record"
    assert got[0] == ref[0]  # the surviving core read its whole shard
    assert re.search(r"^REPORT per-core=\[\d+, None\] flows=(\d+)$", out, re.M), out
    doc = stats_doc(err)
    assert doc["flows_created"] == sum(ref[0].values())
    assert doc["packets"] == ref_doc["packets"]  # one reading of the whole file
    assert [c["core"] for c in doc["cores_lost"]] == [1]
    assert doc["cores_lost"][0]["how"] == f"killed by signal {num} ({sig})"


def test_a_worker_stopped_alone_by_sigterm_is_named(workload, tmp_path, reference):
    ref, _ = reference
    proc = start(workload, tmp_path, "-c", "2", "--stats-json", "-", env={"MC_KILL": "SIGTERM:1:8000"})
    out, err = finish(proc)
    assert proc.returncode == 5, (proc.returncode, err)
    assert "Traceback" not in err, err
    m = re.search(
        r"^mosfw: core 1 \(worker pid \d+\) was stopped by SIGTERM sent to it alone "
        r"after (\d+) packets",
        err,
        re.M,
    )
    assert m, err
    got = ends(out)
    assert got[0] == ref[0]
    # core 1 reported what it saw up to the signal, its open flows ended (eof)
    assert 0 < sum(got[1].values()) < sum(ref[1].values())
    assert any(reason == "eof" for (_, _, reason) in got[1])
    doc = stats_doc(err)
    assert doc["flows_created"] == sum(got[0].values()) + sum(got[1].values())
    assert doc["cores_lost"][0]["core"] == 1 and doc["cores_lost"][0]["how"] == "stopped by SIGTERM"
    assert "stopped on request" not in err  # the run itself was not asked to stop


# ---------------------------------------------------------------------------
# stop signals that come twice


@pytest.mark.parametrize("cores,runs", [(1, 5), (2, 3)])
def test_a_signal_delivered_twice_still_makes_the_report(workload, tmp_path, cores, runs):
    """GNU timeout -s INT, or a signal to the process group, delivers the
    signal twice within milliseconds: that is one request to stop."""
    for i in range(runs):
        ready = tmp_path / f"run{i}"
        ready.mkdir()
        proc = start(workload, ready, "-c", cores, start_new_session=True)
        wait_ready(ready, proc, cores)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = finish(proc)
        assert proc.returncode == 130, (i, proc.returncode, err)
        assert "Aborted" not in err and "Traceback" not in err, err
        assert re.search(r"^REPORT per-core=\[[\d, ]+\] flows=\d+$", out, re.M), (i, out[-500:], err)
        assert "open at end" in err and "stopped on request" in err, err


@pytest.mark.parametrize("cores", [1, 2])
def test_a_second_signal_after_the_grace_aborts(workload, tmp_path, cores):
    """Past the grace (2 s, docs/robustness.md) a second signal still
    interrupts at once: here while a plugin takes 20 s over an eof end."""
    proc = start(workload, tmp_path, "-c", cores, env={"MC_SLOW_EOF": "20"}, start_new_session=True)
    wait_ready(tmp_path, proc, cores)
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(2.5)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = finish(proc, timeout=15)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 1, (proc.returncode, err)
    assert "Aborted!" in err
    assert "REPORT" not in out
