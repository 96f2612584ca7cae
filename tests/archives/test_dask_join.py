"""How ``--dask`` joins the tasks' output: a segment's part goes into the
output as soon as every segment before it has finished (not once the last
one has), and nothing is written to part files when the output is
/dev/null (the records of a ``--stats-json`` run are not wanted: 1.15 GB
of part files on the 50M-packet bench archive).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_helpers import KEEPS_CONFIG, ROOT, TRACKER, gone, records, small_archive, tools_missing

distributed = pytest.importorskip("distributed", reason="Dask distributed not installed (make installs it)")
pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}")

#: the last of two segments waits (at most WAIT s) for the run's output
#: file to hold the first segment's line, and says whether it came
WAIT_FOR_FIRST = (
    KEEPS_CONFIG
    + """
import json, os, time

WAIT = 30.0

@mosfw.hookimpl
def mosfw_core_start(core):
    if _config.segment is not None and _config.segment[0] == 0:
        print("FIRST SEGMENT'S LINE", file=_config.stdout)

@mosfw.hookimpl
def mosfw_core_result(core):
    if _config.segment is None or _config.segment[0] != 1:
        return None
    path, end, saw = os.environ["JOIN_TEST_OUT"], time.monotonic() + WAIT, False
    while not saw and time.monotonic() < end:
        with open(path, encoding="utf-8") as fh:
            saw = "FIRST SEGMENT'S LINE" in fh.read()
        time.sleep(0.05)
    print(json.dumps({"saw_first_segment": saw}), file=_config.stdout)
    return None
"""
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return small_archive(tmp_path_factory.mktemp("dask_join"))


def test_a_segments_part_is_joined_before_the_last_segment_ends(archive, tmp_path):
    """The first segment's output is in the run's output file while the
    second still runs (it was joined only after the last one ended: the
    second waited its 30 s and saw nothing)."""
    arch, whole = archive
    plugin = tmp_path / "wait_for_first.py"
    plugin.write_text(WAIT_FOR_FIRST)
    out_path = tmp_path / "out.jsonl"
    env = dict(os.environ, JOIN_TEST_OUT=str(out_path))
    with open(out_path, "w", encoding="utf-8") as out:
        r = subprocess.run(
            [sys.executable, "-m", "mosfw", "run", "-r", arch, "-p", TRACKER, "-p", plugin, "--dask",
             "-c", "2", "--segments", "2", "-q"],
            stdout=out, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env, timeout=180, check=False,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    text = out_path.read_text(encoding="utf-8")
    assert text.startswith("FIRST SEGMENT'S LINE\n"), text[:200]
    assert [json.loads(x) for x in text.splitlines() if "saw_first_segment" in x] == [
        {"saw_first_segment": True}
    ]
    tracker = [x for x in text.splitlines() if x.startswith("{") and "saw_first_segment" not in x]
    assert records("\n".join(tracker) + "\n") == whole


@pytest.mark.parametrize("to", ["devnull", "file"])
def test_no_part_files_when_the_output_is_dev_null(archive, tmp_path, to):
    """Output to /dev/null: the tasks write their plugins' output to
    /dev/null as well (no segment-NNNNN.out in the parts directory); the
    run is otherwise the same (stats, --conn-log). To a file: one part a
    segment, joined into it."""
    from mosfw.archive import run_archive

    arch, whole = archive
    parts = tmp_path / "parts"
    conn_log = tmp_path / "conn.log"
    target = os.devnull if to == "devnull" else str(tmp_path / "out.jsonl")
    with open(target, "w", encoding="utf-8") as out:
        res = run_archive(
            [arch],
            plugins=[str(TRACKER)],
            options={"conn_log": str(conn_log)},
            workers=2,
            segments=3,
            parts_dir=str(parts),
            stdout=out,
        )
    assert res.status == "done"
    assert records(conn_log.read_text(encoding="utf-8")) == whole
    written = sorted(p.name for p in parts.glob("segment-*.out"))
    if to == "devnull":
        assert written == []
        assert all(s.part == "" for s in res.segments)
    else:
        assert written == [f"segment-{k:05d}.out" for k in range(3)]
        assert records(Path(target).read_text(encoding="utf-8")) == []  # (the records went to --conn-log)


#: each segment prints 200 KB at its start: more than a pipe holds
LOUD = (
    KEEPS_CONFIG
    + """
@mosfw.hookimpl
def mosfw_core_start(core):
    if _config.segment is not None:
        for i in range(5000):
            print(f"segment {_config.segment[0]} line {i:05d} " + "." * 16, file=_config.stdout)
"""
)


def test_a_closed_output_ends_the_run_quietly(archive, tmp_path):
    """``mosfw run --dask ... | head``: the reader going away is not an
    error of the run's, as in one process: exit code 0, no traceback (it
    was exit code 1, nothing said)."""
    arch, _ = archive
    plugin = tmp_path / "loud.py"
    plugin.write_text(LOUD)
    cmd = [sys.executable, "-m", "mosfw", "run", "-r", str(arch), "-p", str(plugin), "--dask", "-c", "2",
           "--segments", "3", "-q"]  # fmt: skip
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    assert p.stdout is not None and p.stderr is not None
    first = p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=180) == 0, err
    assert first.startswith("segment 0 line 00000")
    assert "Traceback" not in err and "Broken pipe" not in err, err


#: each task notes its worker's pid, then takes its time
SLOW = (
    KEEPS_CONFIG
    + """
import os, time

@mosfw.hookimpl
def mosfw_core_start(core):
    if _config.segment is not None:
        d = os.environ["SLOW_MARKS"]
        open(os.path.join(d, f"segment{_config.segment[0]}.{os.getpid()}"), "w").close()
        time.sleep(60)
"""
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_run_and_leaves_nothing_behind(archive, tmp_path, sig):
    """SIGTERM or SIGINT (Ctrl-C) while the tasks run: the run stops (the
    tasks are not waited for), says so, exits with code 130 as a stopped
    run in one process does, and leaves no worker process and no parts
    directory behind (SIGTERM killed it at once with its temporary
    directory left; SIGINT, ignored in a background job, let it run to the
    end)."""
    arch, _ = archive
    plugin = tmp_path / "slow.py"
    plugin.write_text(SLOW)
    marks = tmp_path / "marks"
    marks.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    cmd = [sys.executable, "-m", "mosfw", "run", "-r", str(arch), "-p", str(plugin), "--dask", "-c", "2",
           "--segments", "2", "-q"]  # fmt: skip
    env = dict(os.environ, SLOW_MARKS=str(marks))
    # (SIGINT ignored, as in a job a non-interactive shell starts in the background)
    p = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(m.name.split(".")[1]) for m in marks.iterdir()]
    assert len(workers) == 2, workers
    t = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert time.monotonic() - t < 30  # (not the tasks' 60 s)
    assert f"stopped on request ({signal.Signals(sig).name})" in err, err
    assert "Traceback" not in err, err
    assert list(cwd.iterdir()) == []  # the run's parts directory removed
    assert all(gone(pid, 15) for pid in workers), workers


def test_a_scheduler_that_is_not_there_is_named(archive, tmp_path):
    """``--dask ADDRESS`` with nothing listening there: exit code 1 and one
    line naming the address (it was a traceback of Dask's)."""
    import socket

    arch, _ = archive
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT="2s")
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(arch), "-p", "eventlog", "--dask",
         f"tcp://127.0.0.1:{port}", "-q"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "mosfw: --dask: cannot reach the Dask scheduler at tcp://"
    ), lines
