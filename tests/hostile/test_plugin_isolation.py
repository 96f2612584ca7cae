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
DOCS = ROOT / "docs"
HTTP_LOSS = ROOT / "tests" / "data" / "http-loss.pcap"
MULTI = ROOT / "tests" / "multicore" / "data"


def mosfw(*args, timeout=120, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "mosfw", "run", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


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
    (flow, events, other), = kept
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
    for app in apps:
        out, a = args(app, "alone")
        r = mosfw("-r", capture, "-q", *a)
        runs[app] = r
        alone[app] = r.stdout if app == "rexmon" else out.read_text()
    together_args = []
    outs = {}
    for app in apps:
        out, a = args(app, "together")
        outs[app] = out
        together_args += a
    r = mosfw("-r", capture, "-q", *together_args)
    together = {app: (r.stdout if app == "rexmon" else outs[app].read_text()) for app in apps}
    return alone, runs, together, r


@pytest.mark.parametrize("capture", [HTTP_LOSS, MULTI / "WebattackRCE.pcap", MULTI / "ocsp.pcapng",
                                     MULTI / "fuzz-2006-09-29-28586.pcap"],
                         ids=lambda p: p.name)
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
        json.loads(x) for x in alone.read_text().splitlines()]
