"""A plugin that raises, in every hook: reported once (its name, the hook,
the flow where there is one), every exception counted, the engine and the
other plugins go on, exit code 4; --fail-fast stops at the first one.

Each case runs ``python -m mosfw run`` with a plugin that raises in one
hook, plus ``eventlog`` (the bystander whose output must be complete),
over a capture that raises every event at least once.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

FLOW = "10.0.0.1:40000 -> 10.0.0.2:80"

#: hook -> (its arguments, the eventlog event counting its calls, or
#: None for hooks called once, and whether the report names a flow)
HOOKS = {
    "mosfw_conn_start": ("flow, side, event", "conn_start", True),
    "mosfw_tcp_state_change": ("flow, side, old, new, event", "tcp_state_change", True),
    "mosfw_conn_new_data": ("flow, side, event", "conn_new_data", True),
    "mosfw_rexmit": ("flow, side, event", "rexmit", True),
    "mosfw_conn_end": ("flow, reason, event", "conn_end", True),
    "mosfw_pkt_in": ("flow, side, event", "pkt_in", True),
    "mosfw_orphan": ("event, src, dst", "orphan", False),
    "mosfw_error": ("flow, code, event", "error", True),
    "mosfw_tick": ("core, ts", None, False),
    "mosfw_core_start": ("core", None, False),
    "mosfw_core_finish": ("core", None, False),
    "mosfw_core_result": ("core", None, False),
    "mosfw_merge": ("config, results, cores", None, False),
    "mosfw_configure": ("config", None, False),
    "mosfw_report": ("config, stats", None, False),
}

# runner.py calls these through pm.hook without a guard yet: a raising
# plugin gives a traceback. The fix is described in docs/robustness.md
# ("Plugin errors"); these cases pass once it is in (then drop the mark).
UNGUARDED: set[str] = set()  # every hook is guarded now


def mosfw(*args, timeout=60):
    """``python -m mosfw run ARGS`` (a fork of a pre-imported mosfw: tests/forkrun.py)."""
    return forkrun.mosfw("run", *args, timeout=timeout)


@pytest.fixture(scope="module")
def every_event(tmp_path_factory):
    """A capture that raises every event: a complete connection with a
    retransmission (conn_start, state changes, new data, rexmit, conn_end),
    a segment far outside the window (error: bad_sequence), a stray RST
    (orphan), and 3 s of packet time (ticks)."""
    from mosfw.testing.flows import Capture

    cap = Capture(start=1000.0, step=0.01)
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    c.handshake()
    cap.advance(1.0)
    seg = c.send("client", 100)
    c.rexmit(seg)
    cap.advance(1.0)
    c.segment("server", "A", seq=(c.server_nxt + 2**31) % 2**32)  # bad sequence
    cap.advance(1.0)
    c.send("server", 300)
    c.fin("client")
    c.fin("server")
    c.ack("client")
    stray = cap.conversation(client=("10.0.0.7", 5555), server=("10.0.0.2", 80))
    stray.rst("client")
    p = tmp_path_factory.mktemp("plugin-errors") / "every-event.pcap"
    cap.write_pcap(p)
    return p


@pytest.fixture(scope="module")
def baseline(every_event):
    """eventlog's output without a failing plugin, and event counts."""
    r = mosfw(
        "-r",
        every_event,
        "-p",
        "eventlog",
        "--events",
        ",".join(
            [
                "conn_start",
                "tcp_state_change",
                "conn_new_data",
                "rexmit",
                "conn_end",
                "orphan",
                "error",
                "pkt_in",
            ]
        ),
        "-q",
    )
    assert r.returncode == 0, r.stderr
    counts: dict[str, int] = {}
    for line in r.stdout.splitlines():
        ev = json.loads(line)["event"]
        counts[ev] = counts.get(ev, 0) + 1
    for ev in ("conn_start", "tcp_state_change", "conn_new_data", "rexmit", "conn_end", "orphan", "error"):
        assert counts.get(ev, 0) >= 1, (ev, counts)
    return r.stdout, counts


def plugin(tmp_path: Path, hook: str) -> Path:
    args, _, _ = HOOKS[hook]
    p = tmp_path / f"boom_{hook}.py"
    p.write_text(
        f"import mosfw\n@mosfw.hookimpl\ndef {hook}({args}):\n    raise ValueError('boom in {hook}')\n"
    )
    return p


def marks(hook):
    if hook in UNGUARDED:
        return [
            pytest.mark.xfail(
                strict=True, reason=f"runner.py calls {hook} unguarded (see docs/robustness.md)"
            )
        ]
    return []


@pytest.mark.parametrize("hook", [pytest.param(h, marks=marks(h)) for h in HOOKS])
def test_plugin_raising_in_hook_is_reported_once_and_counted(tmp_path, every_event, baseline, hook):
    _, event, names_flow = HOOKS[hook]
    boom = plugin(tmp_path, hook)
    events = "conn_start,tcp_state_change,conn_new_data,rexmit,conn_end,orphan,error,pkt_in"
    r = mosfw("-r", every_event, "-p", boom, "-p", "eventlog", "--events", events, "--stats-json", "-")
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 4, r.stderr
    reports = [line for line in r.stderr.splitlines() if f"raised in {hook}" in line]
    assert len(reports) == 1, r.stderr
    msg = reports[0]
    assert "boom_" in msg and hook in msg, msg  # the plugin's name and the hook
    assert f"ValueError: boom in {hook}" in msg
    if names_flow:
        assert f"for flow {FLOW}" in msg or "for flow 10.0.0." in msg, msg
    calls = baseline[1][event] if event else (3 if hook == "mosfw_tick" else 1)
    stats = json.loads([line for line in r.stderr.splitlines() if line.startswith("{")][-1])
    assert stats["plugin_errors"] == calls, (stats["plugin_errors"], calls)
    assert re.search(rf"mosfw: {stats['plugin_errors']} exceptions? raised by plugins", r.stderr), r.stderr
    # the engine and the other plugin went on: eventlog's output is whole
    assert r.stdout == baseline[0]
    assert stats["status"] == "done"


@pytest.mark.parametrize("hook", [pytest.param(h, marks=marks(h)) for h in HOOKS])
def test_fail_fast_stops_at_first_exception(tmp_path, every_event, baseline, hook):
    boom = plugin(tmp_path, hook)
    r = mosfw("-r", every_event, "-p", boom, "-p", "eventlog", "--fail-fast")
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 4, r.stderr
    assert f"boom in {hook}" in r.stderr, r.stderr
    if hook not in ("mosfw_merge", "mosfw_report"):
        # raised while the run was going: it stopped there (merge and
        # report come after the run, when there is nothing left to stop)
        assert "--fail-fast" in r.stderr, r.stderr
        assert "exceptions raised by plugins" not in r.stderr


def test_two_failing_plugins_are_reported_separately(tmp_path, every_event):
    a = plugin(tmp_path, "mosfw_conn_start")
    sub = tmp_path / "b"
    sub.mkdir()
    b = plugin(sub, "mosfw_conn_end")
    b2 = b.with_name("other_conn_end.py")
    b.rename(b2)
    r = mosfw("-r", every_event, "-p", a, "-p", b2, "--stats-json", "-")
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert r.stderr.count("raised in mosfw_conn_start") == 1
    assert r.stderr.count("raised in mosfw_conn_end") == 1
    assert "other_conn_end" in r.stderr and "boom_mosfw_conn_start" in r.stderr
