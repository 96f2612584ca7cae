"""`mosfw run` refuses, before reading any packet, what it could not
finish (issue 23): a --stats-json path it cannot write, and standard
input (-r -) shared by several cores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "tests" / "data" / "http-loss.pcap"


def mosfw(*args, stdin=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "mosfw", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        stdin=stdin,
    )


@pytest.mark.parametrize("where", ["missing-dir", "a-directory"])
def test_unwritable_stats_json_fails_before_reading(tmp_path, where):
    path = tmp_path / "no" / "such" / "stats.json" if where == "missing-dir" else tmp_path
    r = mosfw("run", "-r", DEMO, "-p", "eventlog", "--stats-json", path)
    assert r.returncode == 1, r.stderr
    assert r.stdout == ""  # not one event: nothing was read
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"mosfw: --stats-json: cannot write '{path}': "), r.stderr


def test_stats_json_file_is_written_and_left_alone_when_the_run_cannot_start(tmp_path):
    out = tmp_path / "stats.json"
    r = mosfw("run", "-r", DEMO, "--stats-json", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["status"] == "done" and doc["packets"] > 0
    # written again (not appended) by the next run
    r = mosfw("run", "-r", DEMO, "--stats-json", out)
    assert json.loads(out.read_text()) == dict(doc, seconds=json.loads(out.read_text())["seconds"])
    # a run that cannot start leaves an existing file as it was, and makes no new one
    r = mosfw("run", "-r", tmp_path / "missing.pcap", "--stats-json", out)
    assert r.returncode == 1 and json.loads(out.read_text())["packets"] == doc["packets"]
    fresh = tmp_path / "fresh.json"
    r = mosfw("run", "-r", tmp_path / "missing.pcap", "--stats-json", fresh)
    assert r.returncode == 1 and not fresh.exists()


def test_standard_input_with_several_cores_is_refused():
    with open(DEMO, "rb") as fh:
        r = mosfw("run", "-r", "-", "-c", "2", "-p", "eventlog", stdin=fh)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert "-r - (standard input) cannot be shared by 2 cores" in r.stderr, r.stderr


def test_standard_input_with_one_core_is_read():
    with open(DEMO, "rb") as fh:
        r = mosfw("run", "-r", "-", "--stats-json", "-", stdin=fh)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stderr.splitlines()[-1])["packets"] > 0
