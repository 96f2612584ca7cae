"""``--dask`` with the LocalCluster the run starts itself: its workers are
forked from the run's process (they have its imports and plugins at
once), no worker process is left behind when the command has exited, and
the command's quick exit (no interpreter teardown) keeps its output, its
messages and its exit code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_helpers import DATA, TRACKER, gone, mosfw, records, small_archive, split, stats_json, tools_missing

distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (make installs it)")
pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}")

#: notes the pid of the process that ran mosfw_configure outside a task
#: (the run's own process) in a module global; each task prints what its
#: process has there: a forked worker has the run's value, a spawned one None
DRIVER_PID = """
import json, os
import mosfw

_driver_pid = None
_config = None

@mosfw.hookimpl
def mosfw_configure(config):
    global _driver_pid, _config
    _config = config
    if config.segment is None:
        _driver_pid = os.getpid()

@mosfw.hookimpl
def mosfw_core_start(core):
    print(json.dumps({"segment": _config.segment[0], "driver_pid": _driver_pid, "pid": os.getpid()}),
          file=_config.stdout)

@mosfw.hookimpl
def mosfw_report(config, stats):
    print("REPORT FROM THE RUN'S PROCESS", file=config.stdout)
"""


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return small_archive(tmp_path_factory.mktemp("dask_local"))


def test_workers_forked_from_the_run_and_gone_after_it(archive, tmp_path):
    arch, whole = archive
    plugin = tmp_path / "driver_pid.py"
    plugin.write_text(DRIVER_PID)
    r = mosfw(
        "run", "-r", arch, "-p", TRACKER, "-p", plugin, "--dask", "-c", "2", "--segments", "3", "-q",
        "--stats-json", "-", timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    notes = [json.loads(x) for x in r.stdout.splitlines() if '"driver_pid"' in x]
    assert sorted(n["segment"] for n in notes) == [0, 1, 2]
    driver = {n["driver_pid"] for n in notes}
    assert len(driver) == 1 and None not in driver, notes  # forked: the run's module state
    assert all(n["pid"] != n["driver_pid"] for n in notes)  # (in worker processes)
    # the output is complete through the quick exit: records, then the
    # run's own report (written after the cluster's close)
    tracker = [x for x in r.stdout.splitlines() if '"driver_pid"' not in x and "REPORT" not in x]
    assert records("\n".join(tracker) + "\n") == whole
    assert r.stdout.rstrip().endswith("REPORT FROM THE RUN'S PROCESS")
    pids = {s["pid"] for s in stats_json(r.stderr)["segments"]}
    assert len(pids) == 2
    assert all(gone(pid) for pid in pids), f"worker processes left behind: {pids}"


def test_user_start_method_is_kept(archive):
    """Dask's forkserver, when the user's Dask config asks for it, is used
    (mosfw forks only where Dask's default spawn is configured)."""
    import dask

    from mosfw.dask_cluster import local_start_method

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        assert local_start_method(dask.config) == "forkserver"
    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        assert local_start_method(dask.config) == "fork"
    arch, whole = archive
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD="forkserver")
    r = mosfw("run", "-r", arch, "-p", TRACKER, "--dask", "-c", "2", "-q", env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    assert records(r.stdout) == whole


def _worker_profiles() -> bool:
    from distributed import get_worker

    return "profile" in get_worker().periodic_callbacks


def test_own_cluster_workers_take_no_profile():
    """The LocalCluster the run starts has no dashboard, so its workers
    take no statistical profile (a thread sampling every stack every
    10 ms): Dask's own setting, on by default, off in mosfw's cluster."""
    from mosfw.dask_cluster import dask_client

    with dask_client(None, 1) as client:
        assert client.submit(_worker_profiles, pure=False).result(timeout=60) is False


def test_damaged_file_exit_code_and_message_through_the_quick_exit(archive, tmp_path):
    """A file that cannot be read: exit code 3 and its name on stderr, as
    without --dask, though the process ends without the interpreter's teardown."""
    arch = archive[0]
    d = tmp_path / "d"
    d.mkdir()
    for f in sorted(arch.iterdir()):
        (d / f.name).write_bytes(f.read_bytes())
    garbage = d / "zz-garbage.pcap"
    garbage.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 9)
    r = mosfw("run", "-r", d, "-p", TRACKER, "--dask", "-c", "2", "-q", timeout=180)
    assert r.returncode == 3, r.stderr
    assert str(garbage) in r.stderr and "the run went on" in r.stderr


def test_partial_open_setting_reaches_the_tasks(tmp_path):
    # --no-tcp-partial-open is the user's: the tasks keep it (the tracker
    # in each task would turn partial opens on again otherwise)
    from mosfw.testing.flows import Capture

    cap = Capture(start=1000.0)
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    c.midstream()
    c.rst("client", with_ack=False)  # a lone RST: a connection only with partial opens
    cap.write(tmp_path / "rst.pcap")
    counts = []
    for option in ((), ("--no-tcp-partial-open",)):
        r = mosfw("run", "-r", tmp_path / "rst.pcap", "-p", TRACKER, "-q", "--dask", "-c", "1", *option)
        assert r.returncode == 0, r.stderr
        counts.append(len(records(r.stdout)))
    assert counts == [1, 0]


def test_tracker_conn_log_file_and_tsv_through_the_segments(archive, tmp_path):
    """The tracker's --conn-log PATH and its Zeek TSV under --dask: the
    segments write their records as -c N workers do (a file each, joined
    by the run's process in time order under one header), so PATH holds
    every record of the archive once (each task used to open PATH itself:
    the last one's records were all that was left), and the TSV has one
    header and one #close, as one process writes it."""
    arch, whole = archive
    log = tmp_path / "conn.log"
    r = mosfw(
        "run", "-r", arch, "-p", TRACKER, "--dask", "-c", "2", "--segments", "3",
        "--conn-log", log, "-q", timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert records(log.read_text()) == whole
    assert not [p.name for p in tmp_path.iterdir() if p.name != "conn.log"], "parts left behind"

    one = mosfw("run", "-r", arch, "-p", TRACKER, "--conn-format", "zeek", "-q")
    tsv = mosfw(
        "run", "-r", arch, "-p", TRACKER, "--dask", "-c", "2", "--segments", "3",
        "--conn-format", "zeek", "-q", timeout=180,
    )  # fmt: skip
    assert tsv.returncode == 0, tsv.stderr
    lines = tsv.stdout.splitlines()
    assert [x.split("\t")[0] for x in lines if x.startswith("#")] == [
        x.split("\t")[0] for x in one.stdout.splitlines() if x.startswith("#")
    ]
    assert lines[-1].startswith("#close")
    assert sorted(x for x in lines if not x.startswith("#")) == sorted(
        x for x in one.stdout.splitlines() if not x.startswith("#")
    )


def test_tracker_rotation_is_refused_with_dask(archive, tmp_path):
    """--conn-rotate-* writes one file as the input goes: it cannot be cut
    into segments run apart; the run says so instead of rotating per task."""
    arch, _ = archive
    r = mosfw(
        "run", "-r", arch, "-p", TRACKER, "--dask", "-c", "2", "--conn-log", tmp_path / "c.log",
        "--conn-rotate-interval", "60", "-q", timeout=180,
    )  # fmt: skip
    assert r.returncode != 0
    assert "--conn-rotate-interval/--conn-rotate-size: not with --dask" in r.stderr


def test_decapsulation_settings_and_mos_conf_reach_the_tasks(archive, tmp_path):
    """What shapes the engine and the plugins beyond the timeouts reaches
    every --dask task as it reaches one process: the command line's
    decapsulation settings (--tunnel-max-depth 0: the VXLAN datagrams are
    UDP flows, not the ICMP inside them) and the mos.conf (-f: its
    local_nets set the tracker's local_orig/local_resp). Each task used to
    run with the defaults."""
    vx = tmp_path / "vx"
    split(DATA / "public" / "vxlan.pcap", vx, ["-c", "5"])

    def protos(*extra):
        r = mosfw("run", "-r", vx, "-p", TRACKER, "--tcp-timeout", "10", "-q", *extra, timeout=180)
        assert r.returncode == 0, r.stderr
        return sorted(json.loads(x)["proto"] for x in r.stdout.splitlines())

    one = protos("--tunnel-max-depth", "0")
    assert set(one) == {"udp"}
    assert protos("--tunnel-max-depth", "0", "--dask", "-c", "2", "--segments", "2") == one

    arch, _ = archive
    conf = tmp_path / "mos.conf"
    conf.write_text("mos {\n\tlocal_nets = 10.77.65.2/32\n}\n")
    r = mosfw("run", "-r", arch, "-p", TRACKER, "-f", conf, "--dask", "-c", "2", "-q", timeout=180)
    assert r.returncode == 0, r.stderr
    got = {(d.get("local_orig"), d.get("local_resp")) for d in map(json.loads, r.stdout.splitlines())}
    assert (True, False) in got and None not in {o for o, _ in got}


def test_plugin_errors_in_tasks_name_their_segment_and_give_exit_4(archive, tmp_path):
    """A plugin that raises in every task: counted over the segments, exit
    code 4 as in one process, each task's first report naming its segment
    (every task's core is core 0: "core 0" three times said nothing)."""
    arch, _ = archive
    raiser = tmp_path / "raiser.py"
    raiser.write_text(
        "import mosfw\n\n@mosfw.hookimpl\ndef mosfw_conn_end(flow, reason):\n    raise ValueError('boom')\n"
    )
    one = mosfw("run", "-r", arch, "-p", raiser, "-q", "--stats-json", "-")
    r = mosfw(
        "run", "-r", arch, "-p", raiser, "--dask", "-c", "2", "--segments", "3", "-q", "--stats-json", "-",
        timeout=180,
    )  # fmt: skip
    assert one.returncode == r.returncode == 4, r.stderr
    assert stats_json(r.stderr)["plugin_errors"] == stats_json(one.stderr)["plugin_errors"] > 0
    named = {
        line.split(":")[1].strip() for line in r.stderr.splitlines() if "raised in mosfw_conn_end" in line
    }
    assert named == {"segment 0", "segment 1", "segment 2"}, r.stderr  # (whole lines: no two run together)


STATS_UPDATES = """
import json, os
import mosfw

@mosfw.hookimpl
def mosfw_stats_update(config, stats, cores, final):
    with open(os.environ["MOSFW_TEST_UPDATES"], "a") as fh:
        fh.write(json.dumps({"pid": os.getpid(), "packets": stats.packets, "final": final,
                             "cores": [c.core for c in cores],
                             "events": sum(sum(c.events.values()) for c in cores)}) + "\\n")
"""


def test_stats_updates_come_from_the_runs_process(archive, tmp_path):
    """mosfw_stats_update under --dask, as its docstring says: in the run's
    process only, first with every counter 0, last with ``final`` and the
    whole run's counters (those of one process), one CoreCounters a
    segment: what -p prometheus serves (it served nothing of a --dask run)."""
    arch, _ = archive
    plugin, log = tmp_path / "updates.py", tmp_path / "updates.jsonl"
    plugin.write_text(STATS_UPDATES)
    env = dict(os.environ, MOSFW_TEST_UPDATES=str(log))
    one = mosfw("run", "-r", arch, "-p", plugin, "-p", "eventlog", "-q", "--stats-json", "-", env=env)
    assert one.returncode == 0, one.stderr
    want = [json.loads(x) for x in log.read_text().splitlines()][-1]
    log.unlink()
    r = mosfw(
        "run", "-r", arch, "-p", plugin, "-p", "eventlog", "--dask", "-c", "2", "--segments", "3", "-q",
        env=env, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    calls = [json.loads(x) for x in log.read_text().splitlines()]
    assert {c["pid"] for c in calls} == {calls[0]["pid"]} != {os.getpid()}
    assert calls[0] == {"pid": calls[0]["pid"], "packets": 0, "final": False, "cores": [0, 1, 2], "events": 0}
    last = calls[-1]
    assert last["final"] and [c["final"] for c in calls].count(True) == 1
    assert (last["packets"], last["cores"]) == (want["packets"], [0, 1, 2])
    assert last["events"] == want["events"] > 0


def test_fail_fast_stops_the_run_at_a_tasks_first_plugin_error(archive, tmp_path):
    """--fail-fast under --dask as in one process: the first exception a
    plugin raises in a task ends the run with exit code 4 and the
    "(--fail-fast)" message naming the plugin and hook (it was ignored:
    every segment ran, each counting its errors)."""
    arch, _ = archive
    raiser = tmp_path / "raiser.py"
    raiser.write_text(
        "import mosfw\n\n@mosfw.hookimpl\ndef mosfw_conn_end(flow, reason):\n    raise ValueError('boom')\n"
    )
    one = mosfw("run", "-r", arch, "-p", raiser, "--fail-fast", "-q")
    r = mosfw(
        "run", "-r", arch, "-p", raiser, "--dask", "-c", "2", "--segments", "3", "--fail-fast", "-q",
        timeout=180,
    )  # fmt: skip
    assert one.returncode == r.returncode == 4, r.stderr
    assert "raised in mosfw_conn_end: ValueError: boom (--fail-fast)" in one.stderr
    assert "raised in mosfw_conn_end: ValueError: boom (--fail-fast)" in r.stderr
    assert "only counted" not in r.stderr
