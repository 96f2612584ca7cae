"""Fixtures the tracker's tests share: ``track`` (its records of a
constructed capture, in this process) and ``tracker_cli`` (the command
line, for usage errors)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")


@pytest.fixture
def track(mosfw_run):
    """The tracker's JSON records of a capture (or its text with
    fmt="zeek"); ``options``: more tracker options."""

    def run(cap, fmt="json", options=None, **kw):
        opts = {"conn_format": fmt, **(options or {})}
        rec = mosfw_run(cap, plugins=[TRACKER], events=None, options=opts, **kw)
        assert rec.stats.plugin_errors == 0, rec.stderr
        if fmt != "json":
            return rec.stdout
        return [json.loads(line) for line in rec.stdout.splitlines()]

    return run


@pytest.fixture
def tracker_cli():
    """``python -m mosfw run -r PCAP -p samples/tracker ARGS``, text output."""

    def run(pcap, *args):
        return subprocess.run(
            [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", TRACKER, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )

    return run
