"""`mosfw run` end to end: eventlog's JSON contract, options, errors, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

DEMO = ROOT / "tests" / "data" / "http-loss.pcap"


def mosfw(*args, cwd=ROOT, timeout=60):
    """``python -m mosfw ARGS`` (a fork of a pre-imported mosfw: tests/forkrun.py)."""
    return forkrun.mosfw(*args, cwd=cwd, timeout=timeout)


@pytest.fixture
def small_pcap(tmp_path, mosfw_capture):
    cap = mosfw_capture()
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))
    c.handshake()
    seg = c.send("server", 500)
    c.rexmit(seg)
    c.fin("client")
    c.fin("server")
    c.ack("client")
    d = cap.conversation(client=("fd00::1", 5555), server=("fd00::2", 443))
    d.handshake()
    d.rst("client")
    p = tmp_path / "small.pcap"
    cap.write_pcap(p)
    return p


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_eventlog_contract(small_pcap):
    r = mosfw("run", "-r", small_pcap, "-p", "eventlog")
    assert r.returncode == 0, r.stderr
    evs = lines(r.stdout)
    kinds = {e["event"] for e in evs}
    assert kinds == {"conn_start", "tcp_state_change", "conn_new_data", "rexmit", "conn_end"}
    for e in evs:
        assert isinstance(e["ts"], float) and e["core"] == 0
        assert e["side"] in ("client", "server")
    sc = next(e for e in evs if e["event"] == "tcp_state_change")
    assert (sc["old"], sc["new"], sc["client"], sc["server"]) == (
        "CLOSED",
        "SYN_SENT",
        "10.0.0.1:40000",
        "10.0.0.2:80",
    )
    rx = [e for e in evs if e["event"] == "rexmit"]
    assert rx == [dict(rx[0], seq=5001, len=500, side="server")]
    ends = [(e["client"], e["reason"]) for e in evs if e["event"] == "conn_end"]
    assert ends == [("10.0.0.1:40000", "fin"), ("[fd00::1]:5555", "rst")]
    starts = [e for e in evs if e["event"] == "conn_start"]
    assert all(e["midstream"] is False for e in starts)


def test_eventlog_events_option(small_pcap):
    r = mosfw("run", "-r", small_pcap, "-p", "eventlog", "--events", "conn_end,pkt_in")
    assert r.returncode == 0, r.stderr
    evs = lines(r.stdout)
    assert {e["event"] for e in evs} == {"conn_end", "pkt_in"}
    assert sum(e["event"] == "pkt_in" for e in evs) == 12
    bad = mosfw("run", "-r", small_pcap, "-p", "eventlog", "--events", "conn_ends")
    assert bad.returncode == 2 and "unknown event(s) conn_ends" in bad.stderr


def test_no_plugin_prints_counters(small_pcap):
    r = mosfw("run", "-r", small_pcap, "--stats-json", "-")
    assert r.returncode == 0
    assert r.stdout == ""
    stats = json.loads(r.stderr.strip().splitlines()[-1])
    assert stats["packets"] == 12 and stats["flows_created"] == 2 and stats["rexmits"] == 1
    assert stats["flows_ended_fin"] == 1 and stats["flows_ended_rst"] == 1 and stats["status"] == "done"


def test_plugin_from_file_and_help_lists_its_option(tmp_path, small_pcap):
    app = tmp_path / "app.py"
    app.write_text(
        "import mosfw\n"
        "@mosfw.hookimpl\n"
        "def mosfw_addoption(parser):\n"
        "    parser.addoption('--greeting', default='hi')\n"
        "@mosfw.hookimpl\n"
        "def mosfw_conn_end(flow, reason):\n"
        "    print(flow.client_str, reason.label)\n"
        "@mosfw.hookimpl\n"
        "def mosfw_report(config, stats):\n"
        "    print(config.getoption('greeting'), stats.flows_created)\n"
    )
    r = mosfw("run", "-r", small_pcap, "-p", app, "--greeting", "hello", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["10.0.0.1:40000 fin", "[fd00::1]:5555 rst", "hello 2"]
    h = mosfw("run", "-p", app, "--help")
    assert "--greeting" in h.stdout and "Exit codes" in h.stdout


def test_misspelt_hook_is_an_error(tmp_path, small_pcap):
    app = tmp_path / "typo.py"
    app.write_text("import mosfw\n@mosfw.hookimpl\ndef mosfw_conn_ends(flow):\n    pass\n")
    r = mosfw("run", "-r", small_pcap, "-p", app)
    assert r.returncode == 1
    assert "mosfw_conn_ends" in r.stderr and "misspelt" in r.stderr


def test_plugin_that_raises_is_reported_once_and_counted(tmp_path, small_pcap):
    app = tmp_path / "boom.py"
    app.write_text(
        "import mosfw\n"
        "@mosfw.hookimpl\n"
        "def mosfw_tcp_state_change(flow, new):\n"
        "    raise ValueError('boom ' + new.name)\n"
    )
    r = mosfw("run", "-r", small_pcap, "-p", app, "-p", "eventlog", "--events", "conn_end")
    assert r.returncode == 4
    assert r.stderr.count("raised in mosfw_tcp_state_change") == 1
    assert "ValueError: boom" in r.stderr and "for flow 10.0.0.1:40000 -> 10.0.0.2:80" in r.stderr
    assert len(lines(r.stdout)) == 2  # the other plugin went on
    ff = mosfw("run", "-r", small_pcap, "-p", app, "--fail-fast")
    assert ff.returncode == 4 and "--fail-fast" in ff.stderr


def test_unknown_plugin(small_pcap):
    r = mosfw("run", "-r", small_pcap, "-p", "no_such_plugin_x")
    assert r.returncode == 2 and "unknown plugin 'no_such_plugin_x'" in r.stderr
    # the names that are installed (the entry points of this environment)
    from mosfw.manager import plugin_names

    assert "eventlog" in plugin_names()
    assert f"(installed: {', '.join(plugin_names())})" in r.stderr
    assert "pip install ./samples/midstat" in r.stderr


def test_get_include_finds_the_public_header():
    import mosfw

    header = Path(mosfw.get_include()) / "mosfw_api.h"
    assert header.read_bytes() == (Path(__file__).resolve().parents[2] / "native/mosfw_api.h").read_bytes()


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["-r", "/nonexistent.pcap"], 1, "cannot read capture '/nonexistent.pcap'"),
        (["-r", "__README__"], 1, "cannot read capture"),
        (["-r", "__DEMO__", "--bpf", "tcp port"], 1, "bad BPF filter 'tcp port'"),
        ([], 2, "no input"),
        (["-r", "__DEMO__", "-i", "lo"], 2, "not both"),
        (["-i", "mosfw-no-such-if0"], 1, "mosfw-no-such-if0"),
    ],
)
def test_bad_input_messages(args, code, message):
    args = [
        str(ROOT / "tests/data/README.md") if a == "__README__" else str(DEMO) if a == "__DEMO__" else a
        for a in args
    ]
    r = mosfw("run", *args)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert message in r.stderr
    assert "Traceback" not in r.stderr


def test_truncated_capture_keeps_what_it_read(tmp_path):
    blob = DEMO.read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(blob[: len(blob) // 2 + 7])
    r = mosfw("run", "-r", cut, "-p", "eventlog", "--events", "conn_end")
    assert r.returncode == 3, r.stderr
    assert "ended with a read error" in r.stderr and "truncated" in r.stderr
    ends = lines(r.stdout)
    assert ends and all(e["reason"] in ("eof", "fin", "rst") for e in ends)
    assert "Traceback" not in r.stderr


def test_hooks_command_lists_every_hook():
    from mosfw import hookspecs

    r = mosfw("hooks")
    assert r.returncode == 0
    names = [n for n in dir(hookspecs) if n.startswith("mosfw_")]
    for n in names:
        assert n + "(" in r.stdout


def test_hooks_command_prints_whole_first_sentences():
    """Each hook's summary is its whole first sentence (docstrings wrap it
    over several lines), without reST markup; nothing cut mid-sentence."""
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "hooks"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert r.returncode == 0, r.stderr
    summary, name = {}, None
    for line in r.stdout.splitlines():
        if line.startswith("mosfw_"):
            name = line.split("(")[0]
            summary[name] = ""
        else:
            assert line.startswith("    ") and len(line) <= 80, line
            summary[name] = (summary[name] + " " + line.strip()).strip()
    assert summary["mosfw_core_result"] == (
        "Return this plugin's result of one core, to be merged by mosfw_merge()."
    )
    assert summary["mosfw_input_end"] == (
        "The core's input ended (end of file, read error, Ctrl-C/SIGTERM) and "
        "the flows still open have not ended yet."
    )
    assert summary["mosfw_conn_end"] == "A connection is torn down (MOS_ON_CONN_END)."
    for name, text in summary.items():
        assert text.endswith("."), f"{name}: {text!r} is cut mid-sentence"


def test_broken_pipe_is_quiet(small_pcap):
    p = subprocess.run(
        f"{sys.executable} -m mosfw run -r {small_pcap} -p eventlog -q | head -1",
        shell=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert p.stdout.count("\n") == 1 and "Traceback" not in p.stderr


def test_reader_gone_mid_run_stops_quietly_with_exit_0():
    """`| head` while eventlog still has 1 MB to write: its writes fail
    with EPIPE inside event hooks; that is the reader going away, not a
    plugin error: the run stops there, exit 0, nothing on stderr."""
    scan = ROOT / "tests" / "multicore" / "data" / "synscan.pcap"
    p = subprocess.run(
        [
            "bash",
            "-c",
            f"{sys.executable} -m mosfw run -r {scan} -p eventlog -q | head -1; "
            "echo rc=${PIPESTATUS[0]} >&2",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert p.stdout.count("\n") == 1
    assert p.stderr == "rc=0\n", p.stderr


def test_progress_line_when_asked(small_pcap, monkeypatch):
    monkeypatch.setenv("MOSFW_PROGRESS_INTERVAL", "0")
    r = mosfw("run", "-r", small_pcap, "--progress")
    assert r.returncode == 0
    assert "[mosfw] 12 pkts  2 flows" in r.stderr and "100.0%" in r.stderr
    assert r.stdout == ""
    quiet = mosfw("run", "-r", small_pcap)
    assert "\r" not in quiet.stderr  # not a terminal: no progress line


def test_plugins_run_with_the_garbage_collector_on(tmp_path):
    """The entry point turns collection off for its own start-up and
    freezes what it made (mosfw/cli/startup.py); plugin code, from import
    to the last hook, runs with the collector on, with one core and with
    several. Through click's CliRunner (in-process) nothing changes."""
    import gc

    plugin = tmp_path / "gc_probe.py"
    plugin.write_text(
        "import gc, sys\nimport mosfw\n"
        "AT_IMPORT = gc.isenabled()\n"
        "@mosfw.hookimpl\n"
        "def mosfw_configure(config):\n"
        "    print('configure', AT_IMPORT, gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)\n"
        "@mosfw.hookimpl\n"
        "def mosfw_core_finish(core):\n"
        "    print('finish', gc.isenabled(), file=sys.stderr)\n"
    )
    for cores in ("1", "2"):
        r = mosfw("run", "-q", "-c", cores, "-r", DEMO, "-p", plugin)
        assert r.returncode == 0, r.stderr
        said = r.stderr.split()
        assert said[:4] == ["configure", "True", "True", "True"], r.stderr
        assert said.count("finish") == int(cores) and said.count("False") == 0, r.stderr

    from click.testing import CliRunner

    from mosfw.cli import cli

    frozen = gc.get_freeze_count()
    res = CliRunner().invoke(cli, ["run", "-q", "-r", str(DEMO), "-p", str(plugin)])
    assert res.exit_code == 0, res.output
    assert gc.isenabled() and gc.get_freeze_count() == frozen
