"""Helpers shared by the multi-core tests (tests/multicore/); imported
by the test modules with this folder on sys.path."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def mosfw_cli(*args, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``python -m mosfw ARGS`` from the repository root, output captured
    (a fork of a pre-imported mosfw: tests/forkrun.py)."""
    return forkrun.mosfw(*args, timeout=timeout, **kw)


def eventlog_lines(text: str) -> list[dict]:
    """eventlog's JSON lines; fails on a line that is not whole JSON
    (which is what two cores writing into one line would give)."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"eventlog line {i} is not JSON: {line[:300]!r} ({e})") from None
    return out


def record_key(ev: dict) -> tuple:
    """(client, server, event, side, reason) of an eventlog line; orphans
    (no flow) by their sender/receiver instead."""
    return (
        ev.get("client", ev.get("src")),
        ev.get("server", ev.get("dst")),
        ev["event"],
        ev.get("side"),
        ev.get("reason", ev.get("error")),
    )


def multiset(events: list[dict]) -> collections.Counter:
    return collections.Counter(record_key(e) for e in events)


def flow_cores(events: list[dict]) -> dict[tuple, set]:
    """(client, server) -> the cores that raised events for it."""
    cores: dict[tuple, set] = collections.defaultdict(set)
    for e in events:
        if "client" in e:
            cores[(e["client"], e["server"])].add(e["core"])
    return cores


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc)."""
    out = []
    task = Path(f"/proc/{pid}/task")
    try:
        for t in task.iterdir():
            try:
                out += [int(x) for x in (t / "children").read_text().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def stats_json(stderr: str) -> dict:
    """The ``--stats-json -`` document among mosfw's stderr lines."""
    docs = [line for line in stderr.splitlines() if line.startswith("{")]
    if not docs:
        raise AssertionError(f"no --stats-json line on stderr:\n{stderr}")
    return json.loads(docs[-1])
