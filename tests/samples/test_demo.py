"""`make demo`'s command: midstat on the bundled capture prints tables with rows."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo_command() -> list[str]:
    text = (ROOT / "Makefile").read_text()
    pcap = re.search(r"^DEMO_PCAP := (\S+)", text, re.M).group(1)
    assert "samples/midstat/midstat -r $(DEMO_PCAP)" in text
    return [str(ROOT / "samples/midstat/midstat"), "-r", str(ROOT / pcap)]


def test_demo_prints_midstat_tables_with_rows():
    r = subprocess.run(demo_command(), capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    headers = [ln for ln in lines if ln.startswith("Proto CPU Client Address")]
    rows = [ln for ln in lines if ln.startswith("tcp ")]
    assert len(headers) >= 10 and len(rows) >= 50
    assert all(
        "ESTABLISHED" in ln or "WAIT" in ln or "SYN" in ln or "CLOS" in ln or "LAST_ACK" in ln for ln in rows
    )
    assert "13 connections" in r.stdout + r.stderr
