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
