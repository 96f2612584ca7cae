"""``mosfw run -c 2`` end to end under signals and failures: Ctrl-C and
SIGTERM stop every worker and still make the merged report; a worker
killed from outside loses its core only, named (exit 5); a killed parent
takes its workers with it; a closed stdout is quiet. About 10 s.

The workload: bench/gen_capture.c's synthetic capture (1,500 connections,
30k packets) with a plugin that sleeps 100 us per packet of a tracked
flow, so a run takes a few seconds and can be interrupted in the middle.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import ROOT, child_pids, eventlog_lines, pid_alive

CC = shutil.which("cc") or shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) to build bench/gen_capture.c")

SLOW = """
import os, time, mosfw

STATE = {"pkts": 0}

@mosfw.hookimpl
def mosfw_configure(config):
    STATE["pkts"] = 0

@mosfw.hookimpl
def mosfw_core_start(core):
    d = os.environ.get("MC_READY_DIR")
    if d:
        open(os.path.join(d, f"core{core.id}"), "w").close()

@mosfw.hookimpl
def mosfw_pkt_in(flow):
    STATE["pkts"] += 1
    time.sleep(0.0001)

@mosfw.hookimpl
def mosfw_core_result(core):
    return STATE["pkts"]

@mosfw.hookimpl
def mosfw_merge(results):
    STATE["merged"] = results

@mosfw.hookimpl
def mosfw_report(config, stats):
    config.stdout.write(f"REPORT per-core={STATE['merged']} total={sum(x or 0 for x in STATE['merged'])} "
                        f"packets={stats.packets}\\n")
    config.stdout.flush()
"""


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "bench"))
    import run_bench

    out = tmp_path_factory.mktemp("mcsig")
    exe = run_bench.build_generator(out)
    pcap = out / "w.pcap"
    subprocess.run(
        [str(exe), "-o", str(pcap), "-n", "1500", "-c", "200"], check=True, capture_output=True, timeout=60
    )
    plug = out / "slow.py"
    plug.write_text(SLOW)
    return pcap, plug


def start(workload, tmp_path, *extra, stdout=subprocess.PIPE, **kw) -> subprocess.Popen:
    pcap, plug = workload
    env = dict(os.environ, MC_READY_DIR=str(tmp_path))
    return subprocess.Popen(
        [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", str(plug), "-c", "2", *extra],
        cwd=ROOT,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        **kw,
    )


def wait_ready(tmp_path, proc, n=2, timeout=20.0) -> list[int]:
    """Wait until every core started; return the worker pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all((tmp_path / f"core{k}").exists() for k in range(n)):
            return child_pids(proc.pid)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"cores did not start within {timeout} s: {proc.communicate()}")


def finish(proc, timeout=30.0) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _out, err = proc.communicate()
        raise AssertionError(f"mosfw did not finish within {timeout} s (it hangs):\n{err}") from None


def gone(pids, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(pid_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("how", ["sigterm-parent", "ctrl-c-group"])
def test_stop_signal_still_makes_the_merged_report(workload, tmp_path, how):
    proc = start(workload, tmp_path, start_new_session=True)
    workers = wait_ready(tmp_path, proc)
    assert len(workers) == 2
    time.sleep(0.3)
    t0 = time.monotonic()
    if how == "sigterm-parent":
        proc.send_signal(signal.SIGTERM)
    else:  # a terminal's Ctrl-C: SIGINT to the whole foreground process group
        os.killpg(proc.pid, signal.SIGINT)
    out, err = finish(proc)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 130, err  # interrupted while reading a file
    m = re.search(r"REPORT per-core=\[(\d+), (\d+)\] total=(\d+) packets=(\d+)", out)
    assert m, (out, err)
    a, b, total, _packets = map(int, m.groups())
    assert a > 0 and b > 0 and total == a + b
    assert total < 30_000  # it really was cut short (the file has 30k packets)
    assert "open at end" in err and "Traceback" not in err
    opened = int(re.search(r"(\d+) open at end", err).group(1))
    assert opened > 0  # flows still open were ended (reason eof), not lost
    assert gone(workers)


def test_a_worker_killed_from_outside_loses_only_its_core(workload, tmp_path):
    proc = start(workload, tmp_path)
    workers = wait_ready(tmp_path, proc)
    victim = workers[1]
    os.kill(victim, signal.SIGKILL)
    out, err = finish(proc)
    assert proc.returncode == 5, (proc.returncode, err)  # a core was lost
    assert re.search(rf"core [01] \(worker pid {victim}\) died \(killed by signal 9 \(SIGKILL\)\)", err), err
    assert re.search(r"REPORT per-core=\[(\d+, None|None, \d+)\]", out), out  # the survivor's report
    assert "Traceback" not in err
    assert gone(workers)


def test_workers_follow_a_killed_parent(workload, tmp_path):
    proc = start(workload, tmp_path)
    workers = wait_ready(tmp_path, proc)
    proc.kill()
    proc.communicate()
    assert gone(workers, timeout=10), [p for p in workers if pid_alive(p)]


def test_closed_stdout_is_quiet(workload, tmp_path):
    pcap, _ = workload
    p = subprocess.run(
        f"{sys.executable} -m mosfw run -r {pcap} -p eventlog -c 2 -q | head -3",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert len(eventlog_lines(p.stdout)) == 3
    assert "Traceback" not in p.stderr, p.stderr
