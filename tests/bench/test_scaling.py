"""bench/scaling.py runs and reports what issue 22 asks for: wall time
and total CPU per core count, CPU against -c 1 and the targets at 4 and
16 cores (a small capture, one repeat: the figures themselves are
bench/README.md's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scaling_prints_cpu_against_one_core_and_the_targets(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "scaling.py"),
            "--capture",
            str(ROOT / "tests" / "data" / "http-loss.pcap"),
            "--cores",
            "1,2,4",
            "--plugins",
            "none",
            "--repeat",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CPU x1" in r.stdout and "<= 1.15: " in r.stdout
    rows = json.loads((tmp_path / "scaling.json").read_text())["rows"]
    assert [row["cores"] for row in rows] == [1, 2, 4]
    assert rows[0]["cpu_ratio"] == 1.0 and all(row["cpu_s"] > 0 for row in rows)
    assert rows[2]["target"] == 1.15 and rows[2]["target_met"] == (rows[2]["cpu_ratio"] <= 1.15)
    assert "| CPU x1 | target |" in (tmp_path / "scaling.md").read_text()


def test_a_baseline_checkout_is_byte_compiled_first(tmp_path):
    """``--baseline DIR``: the baseline's Python is compiled once before
    the runs. Where PYTHONDONTWRITEBYTECODE is set (it is on these
    machines) a checkout without __pycache__ compiled every module at
    each run, and its rows looked 0.08 s slower than this checkout's."""
    import os
    import shutil

    base = tmp_path / "base"
    shutil.copytree(ROOT / "mosfw", base / "mosfw", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    pcap = ROOT / "tests" / "data" / "http-loss.pcap"
    argv = [sys.executable, str(ROOT / "bench" / "scaling.py"), "--capture", str(pcap), "--cores", "1",
            "--plugins", "none", "--repeat", "1", "--baseline", str(base),
            "--out", str(tmp_path / "out")]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list((base / "mosfw" / "__pycache__").glob("runner.*.pyc")), r.stdout


def test_the_engine_alone_is_a_setting(tmp_path):
    """``--plugins engine``: the C replay tool built with -O2, its cores as
    threads of one process (no fork, no Python): the feed's own cost,
    CPU against its own -c 1."""
    pcap = ROOT / "tests" / "data" / "http-loss.pcap"
    argv = [sys.executable, str(ROOT / "bench" / "scaling.py"), "--capture", str(pcap), "--cores", "1,4",
            "--plugins", "engine", "--repeat", "1", "--out", str(tmp_path)]  # fmt: skip
    r = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "mosfw-replay").exists()
    doc = json.loads((tmp_path / "scaling.json").read_text())
    assert [(row["plugin"], row["cores"]) for row in doc["rows"]] == [("engine", 1), ("engine", 4)]
    assert doc["rows"][0]["cpu_ratio"] == 1.0 and all(row["cpu_s"] > 0 for row in doc["rows"])
    assert doc["rows"][1]["target"] == 1.15
