"""The records API and the built-in sinks: ``file:PATH`` with rotation
by size and by time, several sinks at once, a plugin of the test's own
emitting dicts through ``config.records.emit``.

The size test runs the tracker over a real capture (curl across network
namespaces); the time test drives a FileSink directly (rotation needs
wall time to pass); the emit test runs eventlog-style records from a
plugin file over the same capture.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from sink_helpers import mosfw, records, tracker

from mosfw.records import Records, SinkURL
from mosfw.records.sinks import FileSink

pytestmark = [pytest.mark.realnet, pytest.mark.slow]


def _rotated_in_order(path: Path) -> list[Path]:
    """PATH.STAMP[.n] files, oldest first, then PATH itself."""
    pat = re.compile(re.escape(path.name) + r"\.(\d{8}-\d{6})(?:\.(\d+))?$")
    found = []
    for p in path.parent.iterdir():
        m = pat.match(p.name)
        if m:
            found.append(((m.group(1), int(m.group(2) or 0)), p))
    return [p for _, p in sorted(found)] + ([path] if path.exists() else [])


@pytest.mark.parametrize("cores", [1, 2])
def test_size_rotation_keeps_every_record_in_whole_lines(capture, tmp_path, cores):
    plain = tracker(capture, cores=cores)
    assert plain.returncode == 0, plain.stderr
    assert len(plain.stdout.splitlines()) >= 30
    path = tmp_path / "conn.json"
    run = tracker(capture, "--sink", f"file:{path}?max_bytes=3000", cores=cores)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b""
    if cores == 1:
        files = _rotated_in_order(path)
        assert len(files) >= 3
        assert b"".join(f.read_bytes() for f in files) == plain.stdout
    else:  # a file per core (conn-core0.json ...), each rotated on its own
        files = _rotated_in_order(tmp_path / "conn-core0.json") + _rotated_in_order(
            tmp_path / "conn-core1.json"
        )
        got = b"".join(f.read_bytes() for f in files)
        assert sorted(got.splitlines()) == sorted(plain.stdout.splitlines())
    for f in files:
        data = f.read_bytes()
        assert 0 < len(data) <= 3000 and data.endswith(b"\n")
        records(data)  # whole JSON lines


def test_keep_deletes_the_oldest_rotated_files(capture, tmp_path):
    plain = tracker(capture)
    path = tmp_path / "conn.json"
    run = tracker(capture, "--sink", f"file:{path}?max_bytes=2000&keep=2")
    assert run.returncode == 0, run.stderr
    files = _rotated_in_order(path)
    assert len(files) == 3  # 2 rotated + the current one
    tail = b"".join(f.read_bytes() for f in files)
    assert plain.stdout.endswith(tail) and len(tail) < len(plain.stdout)


def test_time_rotation(tmp_path):
    path = tmp_path / "t.json"
    sink = FileSink(SinkURL(f"file:{path}?seconds=0.3"))
    sink.open()
    for i in range(4):
        sink.write("s", f'{{"i": {i}}}\n')
        sink.flush()
        time.sleep(0.35 if i < 3 else 0)
    sink.close(1.0)
    files = _rotated_in_order(path)
    assert [f.read_text() for f in files] == [f'{{"i": {i}}}\n' for i in range(4)]


def test_unwritable_file_is_an_exit_1(capture, tmp_path):
    run = tracker(capture, "--sink", f"file:{tmp_path}/no/such/dir/x.json")
    assert run.returncode == 1
    assert "no/such/dir/x.json" in run.stderr.decode()


PLUGIN = """
import mosfw

@mosfw.hookimpl
def mosfw_configure(config):
    records = config.records

    class Emitter:
        @mosfw.hookimpl
        def mosfw_conn_end(self, flow, reason):
            records.emit("ends", {"client": flow.client_str, "reason": reason.label})

    config.pluginmanager.register(Emitter(), name="emitter")
"""


def test_a_plugin_emits_dicts_to_every_sink(capture, tmp_path):
    plugin = tmp_path / "ends.py"
    plugin.write_text(PLUGIN)
    path = tmp_path / "ends.json"
    base = ["run", "-q", "--no-progress", "-r", str(capture), "-p", str(plugin)]
    run = mosfw(*base, "--sink", "stdout", "--sink", f"file:{path}")
    assert run.returncode == 0, run.stderr
    assert path.read_bytes() == run.stdout
    recs = records(run.stdout)
    conn = records(tracker(capture).stdout)
    assert len(recs) == len(conn)
    assert sorted(r["reason"] for r in recs) == sorted(r["close_reason"] for r in conn)
    # json.dumps' own text, as print(json.dumps(record)) wrote it
    assert run.stdout.splitlines()[0].decode() == json.dumps(recs[0])


def test_records_without_sinks_given_go_to_stdout(capture):
    assert Records().urls == ["stdout"]
    run = mosfw("run", "-q", "--no-progress", "-r", str(capture), "-p", "eventlog", "--sink", "-")
    plain = mosfw("run", "-q", "--no-progress", "-r", str(capture), "-p", "eventlog")
    assert run.returncode == plain.returncode == 0
    assert run.stdout == plain.stdout and len(plain.stdout.splitlines()) > 100
