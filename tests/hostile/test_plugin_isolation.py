"""Plugins do not share what should be theirs (issue 23).

- per-flow storage: every plugin has its own (``flow.store(owner)``);
  apps that each run clean alone run clean together, with the same output;
- ``sys.exit()`` / ``KeyboardInterrupt`` raised by a plugin is a plugin
  error (named, counted, exit 4), not the end of the run;
- a plugin that fails while it is set up (import, ``mosfw_addoption``, an
  ``api.on`` callback with a misspelt argument) is one line on stderr
  naming it, with exit 1 ("could not start"), as ``mosfw run --help`` says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

DOCS = ROOT / "docs"
HTTP_LOSS = ROOT / "tests" / "data" / "http-loss.pcap"
MULTI = ROOT / "tests" / "multicore" / "data"


def mosfw(*args, timeout=120, cwd=ROOT):
    """``python -m mosfw run ARGS`` (a fork of a pre-imported mosfw: tests/forkrun.py)."""
    return forkrun.mosfw("run", *args, timeout=timeout, cwd=cwd)


def _doc_app(page: str, first_line: str) -> str:
    """The ```python block of docs/PAGE that starts with FIRST_LINE."""
    text = (DOCS / page).read_text()
    for block in re.findall(r"```python\n(.*?)```", text, re.S):
        if block.startswith(first_line):
            return block
    raise AssertionError(f"no python block starting with {first_line!r} in docs/{page}")


# -- per-plugin per-flow storage ----------------------------------------------------


def test_two_plugins_writing_the_same_key_see_their_own_values(mosfw_flows, mosfw_run):
    import mosfw as m

    class Writer:
        def __init__(self, tag):
            self.tag = tag
            self.seen = []

        @m.hookimpl
        def mosfw_conn_start(self, flow, side):
            flow.store(self)["who"] = self.tag  # both write the same key
            flow.store(self).setdefault("sides", []).append(side.label)

        @m.hookimpl
        def mosfw_rexmit(self, flow):
            d = flow.store(self)
            d["n"] = d.get("n", 0) + 1

        @m.hookimpl
        def mosfw_conn_end(self, flow):
            self.seen.append(dict(flow.store(self)))

    c = mosfw_flows
    c.handshake()
    c.rexmit(c.send("server", 100))
    c.close()
    a, b = Writer("a"), Writer("b")
    mosfw_run(c, plugins=[a, b])
    assert a.seen == [{"who": "a", "sides": ["client", "server"], "n": 1}]
    assert b.seen == [{"who": "b", "sides": ["client", "server"], "n": 1}]


def test_store_factory_lookup_and_drop_after_conn_end(mosfw_flows, mosfw_run):
    import mosfw as m

    class Conn:
        def __init__(self):
            self.events = 0

    kept = []

    class App:
        @m.hookimpl
        def mosfw_conn_start(self, flow):
            assert flow.store(self, None) is None or flow.store(self, None).events == 1
            flow.store(self, Conn).events += 1

        @m.hookimpl
        def mosfw_conn_end(self, flow):
            kept.append((flow, flow.store(self, None).events, flow.store("someone else", None)))

    c = mosfw_flows
    c.handshake()
    c.close()
    mosfw_run(c, plugins=[App()])
    ((flow, events, other),) = kept
    assert events == 2 and other is None  # one CONN_START per side, one Conn per flow
    assert flow.ended and flow.store(App, None) is None and flow.store(App) is None  # dropped, not remade


def _four_app_runs(tmp_path: Path, capture: Path, rexmon: Path, rules: Path):
    """Each app alone, then all four together: {app: output}, and the runs."""

    def args(app, tag):
        out = tmp_path / f"{tag}-{app}.out"
        return out, {
            "httplog": ["-p", "samples/httplog", "--http-log", out],
            "alerts": ["-p", "samples/alerts", "--alert-rules", rules, "--alert-log", out],
            "tracker": ["-p", "samples/tracker", "--conn-log", out],
            "rexmon": ["-p", rexmon, "--max-rexmit", "0"],
        }[app]

    apps = ("httplog", "alerts", "tracker", "rexmon")
    alone, runs = {}, {}
    # an explicit idle timeout and partial opens: the tracker alone would
    # run with Zeek's 300 s and its partial_connection_ok (a lone RST or FIN
    # starts a flow, and takes a flow id), settings of the whole run, not a
    # plugin's state
    run_settings = ("--tcp-timeout", "30", "--tcp-partial-open")
    for app in apps:
        out, a = args(app, "alone")
        r = mosfw("-r", capture, "-q", *run_settings, *a)
        runs[app] = r
        alone[app] = r.stdout if app == "rexmon" else out.read_text()
    together_args = []
    outs = {}
    for app in apps:
        out, a = args(app, "together")
        outs[app] = out
        together_args += a
    r = mosfw("-r", capture, "-q", *run_settings, *together_args)
    together = {app: (r.stdout if app == "rexmon" else outs[app].read_text()) for app in apps}
    return alone, runs, together, r


@pytest.mark.parametrize(
    "capture",
    [HTTP_LOSS, MULTI / "WebattackRCE.pcap", MULTI / "ocsp.pcapng", MULTI / "fuzz-2006-09-29-28586.pcap"],
    ids=lambda p: p.name,
)
def test_four_apps_together_give_what_each_gives_alone(tmp_path, capture):
    # the example app of docs/testing-apps.md, as an app writer copies it
    rexmon = tmp_path / "rexmon.py"
    rexmon.write_text(_doc_app("testing-apps.md", "# rexmon.py"))
    rules = tmp_path / "rules.txt"
    rules.write_text('alert tcp "tcp" once msg "a TCP flow"\n')
    alone, runs, together, r = _four_app_runs(tmp_path, capture, rexmon, rules)
    for app, run in runs.items():
        assert run.returncode == 0, (app, run.stderr)
    assert alone["httplog"].count("\n") > 0 and alone["alerts"].count("\n") > 0  # the apps had work
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    for app in alone:
        assert together[app] == alone[app], app


def test_httplog_next_to_an_app_that_stores_per_flow_state(tmp_path):
    """httplog logs every transaction with another stateful app loaded
    (it logged none of them while both used flow.uctx)."""
    rexmon = tmp_path / "rexmon.py"
    rexmon.write_text(_doc_app("testing-apps.md", "# rexmon.py"))
    alone = tmp_path / "alone.jsonl"
    both = tmp_path / "both.jsonl"
    assert mosfw("-r", HTTP_LOSS, "-q", "-p", "samples/httplog", "--http-log", alone).returncode == 0
    r = mosfw("-r", HTTP_LOSS, "-q", "-p", rexmon, "-p", "samples/httplog", "--http-log", both)
    assert r.returncode == 0, r.stderr
    n = len(alone.read_text().splitlines())
    assert n > 0
    assert len(both.read_text().splitlines()) == n
    assert [json.loads(x) for x in both.read_text().splitlines()] == [
        json.loads(x) for x in alone.read_text().splitlines()
    ]


# -- a plugin cannot end the run: SystemExit and KeyboardInterrupt are plugin errors -------


@pytest.fixture(scope="module")
def many_flows(tmp_path_factory):
    """300 complete connections, one after the other, over 4 s of packet time."""
    from mosfw.testing.flows import Capture

    cap = Capture(start=1000.0, step=0.002)
    for i in range(300):
        c = cap.conversation(client=("10.0.0.1", 10000 + i), server=("10.0.0.2", 80))
        c.handshake()
        c.send("client", 10)
        c.close()
    p = tmp_path_factory.mktemp("exits") / "many.pcap"
    cap.write_pcap(p)
    return p


EXITING = """\
import sys
import mosfw

SEEN = [0]


@mosfw.hookimpl
def {hook}({args}):
    SEEN[0] += 1
    if SEEN[0] == {after}:
        {stmt}
"""

#: hook -> (arguments, how many calls before it raises)
EXIT_HOOKS = {
    "mosfw_conn_end": ("flow", 50),
    "mosfw_conn_start": ("flow, side", 7),
    "mosfw_tick": ("core, ts", 2),
    "mosfw_configure": ("config", 1),
    "mosfw_core_start": ("core", 1),
    "mosfw_core_finish": ("core", 1),
    "mosfw_core_result": ("core", 1),
    "mosfw_merge": ("config, results, cores", 1),
    "mosfw_report": ("config, stats", 1),
}


def _exiting_plugin(tmp_path: Path, hook: str, stmt: str) -> Path:
    args, after = EXIT_HOOKS[hook]
    p = tmp_path / "quitter.py"
    p.write_text(EXITING.format(hook=hook, args=args, after=after, stmt=stmt))
    return p


@pytest.mark.parametrize(
    "stmt", ["sys.exit(0)", "sys.exit(7)", "sys.exit()", "raise KeyboardInterrupt", "raise SystemExit('bye')"]
)
@pytest.mark.parametrize("hook", list(EXIT_HOOKS))
def test_exit_or_interrupt_in_a_hook_is_a_plugin_error(tmp_path, many_flows, hook, stmt):
    plugin = _exiting_plugin(tmp_path, hook, stmt)
    log = tmp_path / "conn.log"
    stats = tmp_path / "stats.json"
    r = mosfw(
        "-r", many_flows, "-p", plugin, "-p", "samples/tracker", "--conn-log", log, "--stats-json", stats
    )
    kind = "KeyboardInterrupt" if "Keyboard" in stmt else "SystemExit"
    assert r.returncode == 4, r.stderr
    assert re.search(rf"plugin '[^']*quitter[^']*' raised in {hook}\b.*: {kind}\b", r.stderr), r.stderr
    assert "Traceback" not in r.stderr
    # the run went on to its end: every record, the summary, the stats file
    assert len(log.read_text().splitlines()) == 300
    assert "mosfw: 1 exceptions raised by plugins" in r.stderr
    doc = json.loads(stats.read_text())
    assert doc["plugin_errors"] == 1 and doc["flows_ended_fin"] == 300 and doc["status"] == "done"


@pytest.mark.parametrize("hook", ["mosfw_conn_end", "mosfw_configure", "mosfw_report"])
def test_exit_in_a_hook_with_fail_fast_stops_with_4(tmp_path, many_flows, hook):
    plugin = _exiting_plugin(tmp_path, hook, "sys.exit(0)")
    r = mosfw("-r", many_flows, "-p", plugin, "--fail-fast")
    assert r.returncode == 4, r.stderr
    assert f"raised in {hook}" in r.stderr and "SystemExit" in r.stderr and "(--fail-fast)" in r.stderr
    assert "Traceback" not in r.stderr


def test_exit_in_a_hook_of_a_worker_is_a_plugin_error(tmp_path, many_flows):
    plugin = _exiting_plugin(tmp_path, "mosfw_conn_end", "sys.exit(3)")
    log = tmp_path / "conn.log"
    r = mosfw("-r", many_flows, "-c", "2", "-p", plugin, "-p", "samples/tracker", "--conn-log", log)
    assert r.returncode == 4, r.stderr
    assert "SystemExit" in r.stderr and "raised in mosfw_conn_end" in r.stderr
    assert len(log.read_text().splitlines()) == 300


CALLBACKS = """\
import sys
from mosfw import EventType, Side
from mosfw.api import on


@on(EventType.CONN_START)
def started(flow, side):
    if side != Side.CLIENT:
        return
    flow.settimer(0.001, ticked)
    if flow.client[1] == 10005:
        raise KeyboardInterrupt


def ticked(flow):
    if flow.client[1] == 10009:
        sys.exit(1)
"""


def test_exit_or_interrupt_in_callbacks_and_timers_is_a_plugin_error(tmp_path, many_flows):
    p = tmp_path / "cbs.py"
    p.write_text(CALLBACKS)
    log = tmp_path / "conn.log"
    r = mosfw("-r", many_flows, "-p", p, "-p", "samples/tracker", "--conn-log", log)
    assert r.returncode == 4, r.stderr
    assert "KeyboardInterrupt" in r.stderr and "SystemExit" in r.stderr, r.stderr
    assert "mosfw: 2 exceptions raised by plugins" in r.stderr
    assert len(log.read_text().splitlines()) == 300


def test_exit_in_a_harness_run_is_reported(mosfw_flows, mosfw_run):
    import mosfw as m

    class Quitter:
        @m.hookimpl
        def mosfw_conn_start(self):
            sys.exit(0)

    c = mosfw_flows
    c.handshake()
    c.close()
    rec = mosfw_run(c, plugins=[Quitter()], fail_fast=False)
    assert rec.stats.plugin_errors == 2 and "SystemExit" in rec.stderr
    assert rec.ends() == {"10.0.0.1:40000": ["fin"]}
    with pytest.raises(m.engine.PluginError):
        mosfw_run(c, plugins=[Quitter()])


SLOW = """\
import time
from pathlib import Path

import mosfw

MARK = Path({mark!r})


@mosfw.hookimpl
def mosfw_conn_end(flow):
    MARK.touch()
    time.sleep({sleep})
"""


def _start_slow(tmp_path: Path, capture: Path, sleep: float):
    mark = tmp_path / "started"
    p = tmp_path / "slow.py"
    p.write_text(SLOW.format(mark=str(mark), sleep=sleep))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mosfw", "run", "-r", str(capture), "-p", str(p)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    import time

    deadline = time.monotonic() + 30
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    return proc


@pytest.fixture(scope="module")
def more_flows(tmp_path_factory):
    """1500 connections: 10,500 packets, more than one burst of the engine (4096)."""
    from mosfw.testing.flows import Capture

    cap = Capture(start=1000.0, step=0.001)
    for i in range(1500):
        c = cap.conversation(client=("10.0.0.1", 10000 + i), server=("10.0.0.2", 80))
        c.handshake()
        c.close()
    p = tmp_path_factory.mktemp("exits") / "more.pcap"
    cap.write_pcap(p)
    return p


def test_a_real_ctrl_c_still_stops_the_run(tmp_path, more_flows):
    import signal

    proc = _start_slow(tmp_path, more_flows, 0.002)  # the first burst's flows: about 1 s
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "stopped on request (SIGINT/SIGTERM)" in err and "raised" not in err


def test_a_second_ctrl_c_interrupts_a_blocked_plugin_at_once(tmp_path, many_flows):
    import signal
    import time

    proc = _start_slow(tmp_path, many_flows, 120)  # blocks in its first mosfw_conn_end
    from mosfw.stopsignals import SIGNAL_GRACE

    proc.send_signal(signal.SIGINT)  # asks the run to finish: the plugin still blocks
    time.sleep(SIGNAL_GRACE + 0.5)  # one within the grace would be the same request
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)  # the second one interrupts the plugin, not counted as its error
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "Aborted!" in err and "raised" not in err


# -- a plugin that fails while it is set up: one line naming it, exit 1 ------------------


def _one_line_error(r, *parts):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Usage:" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for p in parts:
        assert p in lines[0], (p, lines[0])
    return lines[0]


ADDOPTION = """\
import mosfw


@mosfw.hookimpl
def mosfw_addoption(parser):
    {stmt}
"""


@pytest.mark.parametrize(
    "stmt, what",
    [
        ("raise ValueError('no options today')", "ValueError: no options today"),
        ("parser.addoption(42)", "Error: "),
        ("raise SystemExit(5)", "SystemExit"),
    ],
)
@pytest.mark.parametrize("help_", [False, True], ids=["run", "help"])
def test_addoption_that_raises_is_one_line_exit_1(tmp_path, many_flows, stmt, what, help_):
    p = tmp_path / "opts.py"
    p.write_text(ADDOPTION.format(stmt=stmt))
    r = mosfw("-p", p, "--help") if help_ else mosfw("-r", many_flows, "-p", p)
    line = _one_line_error(r, "mosfw: plugin", "opts", "raised in mosfw_addoption", what)
    if "SystemExit" not in what:
        assert f"{p}:" in line  # where it raised


MISSPELT_CALLBACK = """\
from mosfw import EventType
from mosfw.api import on


@on(EventType.CONN_END)
def ended(flow, reson):
    pass
"""


def test_callback_with_a_misspelt_argument_is_one_line_exit_1(tmp_path, many_flows):
    p = tmp_path / "cb.py"
    p.write_text(MISSPELT_CALLBACK)
    _one_line_error(mosfw("-r", many_flows, "-p", p), "mosfw: plugin", "cb", "'reson'", f"{p}:6")


def test_method_callback_with_a_misspelt_argument_fails_to_load():
    from mosfw import EventType
    from mosfw.api import on
    from mosfw.manager import PluginLoadError, get_plugin_manager

    class App:
        @on(EventType.CONN_END)
        def ended(self, flow, sied):
            pass

        @on(EventType.CONN_START)
        def fine(self, flow, side):
            pass

    with pytest.raises(PluginLoadError, match=r"'sied'.*test_plugin_isolation.py:\d+") as e:
        get_plugin_manager([App()])
    assert "\n" not in str(e.value)


def test_hookimpl_with_a_misspelt_argument_is_one_line_exit_1(tmp_path, many_flows):
    p = tmp_path / "hk.py"
    p.write_text("import mosfw\n\n\n@mosfw.hookimpl\ndef mosfw_conn_end(flw):\n    pass\n")
    _one_line_error(mosfw("-r", many_flows, "-p", p), "mosfw: plugin", "hk", "flw", "mosfw_conn_end")


@pytest.mark.parametrize(
    "src, parts",
    [
        ("import mosfw\n\ndef broken(:\n    pass\n", ["SyntaxError", "line 3"]),
        ("import mosfw\nimport no_such_module_xyz\n", ["ModuleNotFoundError", "no_such_module_xyz", ":2"]),
        ("import mosfw\n\n\nraise RuntimeError('not today')\n", ["RuntimeError: not today", ":4"]),
        ("import sys\nsys.exit(3)\n", ["SystemExit"]),
    ],
    ids=["syntax", "missing-import", "raises", "exits"],
)
def test_plugin_that_does_not_import_is_one_line_exit_1(tmp_path, many_flows, src, parts):
    p = tmp_path / "bad.py"
    p.write_text(src)
    line = _one_line_error(
        mosfw("-r", many_flows, "-p", p), "mosfw: plugin", str(p), "failed to import", *parts
    )
    assert line.startswith("mosfw: ")
    # and with --help, where -p's options would be listed
    _one_line_error(mosfw("-p", p, "--help"), "failed to import")


def test_a_plugin_that_is_not_there_is_still_a_bad_command_line(tmp_path, many_flows):
    r = mosfw("-r", many_flows, "-p", tmp_path / "nothing.py")
    assert r.returncode == 2 and "no such file or folder" in r.stderr


def test_addoption_that_raises_in_the_harness_names_the_plugin(mosfw_flows, mosfw_run):
    import mosfw as m
    from mosfw.manager import PluginLoadError

    class Opts:
        @m.hookimpl
        def mosfw_addoption(self, parser):
            raise ValueError("no options today")

    mosfw_flows.handshake()
    with pytest.raises(
        PluginLoadError,
        match=r"raised in mosfw_addoption: ValueError: no options today at .*"
        r"test_plugin_isolation.py:\d+",
    ):
        mosfw_run(mosfw_flows, plugins=[Opts()])
