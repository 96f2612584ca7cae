"""plugins/prometheus without a Prometheus server: ``/metrics`` of an
offline run, with ``-c 1`` and ``-c 2``, read while the run lingers
(``--metrics-linger``) and compared with the run's own ``--stats-json``
and with eventlog's lines (one per event: the per-event counts); the
Grafana dashboard names only exported metrics; bad addresses are usage
errors. About 3 s.
"""

from __future__ import annotations

import collections
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prom_helpers import (
    DASHBOARD,
    END_REASONS,
    EXPORTED,
    PLUGIN,
    ROOT,
    metrics_url,
    scrape,
    total,
    wait_file,
)

pytest.importorskip("prometheus_client", reason="prometheus_client is not installed (make build installs it)")

PCAP = ROOT / "tests" / "multicore" / "data" / "KakaoTalk_chat.pcap"

# a plugin that raises in every mosfw_conn_end: counted by plugin and hook
BOOM = """
import mosfw

@mosfw.hookimpl
def mosfw_conn_end(flow):
    raise RuntimeError("boom")
"""


@pytest.mark.parametrize(
    ("cores", "spec"),
    [(1, "plugins/prometheus"), (2, "plugins/prometheus/mosfw_prometheus")],
    ids=["c1-checkout-folder", "c2-package-folder"],
)
def test_offline_metrics_equal_stats_json(tmp_path, cores, spec):
    boom = tmp_path / "boom.py"
    boom.write_text(BOOM)
    stats_path, out_path, err_path = tmp_path / "stats.json", tmp_path / "events.jsonl", tmp_path / "err"
    argv = [
        sys.executable,
        "-m",
        "mosfw",
        "run",
        "-r",
        str(PCAP),
        "-c",
        str(cores),
        "-p",
        spec,
        "-p",
        "eventlog",
        "-p",
        str(boom),
        "--metrics-addr",
        "127.0.0.1:0",
        "--metrics-linger",
        "60",
        "--stats-json",
        str(stats_path),
    ]
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        url = metrics_url(err_path, proc)
        stats = wait_file(stats_path, proc)  # written before the linger
        m = scrape(url)
        assert proc.poll() is None, "the run did not linger"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # ends the linger at once
        rc = proc.wait(timeout=10)
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = err_path.read_text()
    assert rc == 4, err  # the boom plugin's errors
    assert "Traceback" not in err, err

    assert m["mosfw_run_finished"][()] == 1
    for name in EXPORTED:
        if name == "mosfw_sink_records_lost_total":  # a series per --sink that can lose records:
            assert name not in m  # none here (stdout); tests/sinks/test_redis_sink.py has one
            continue
        assert name in m, f"{name} not served"
    # input counters: per core with -c 1; the file's once (core="") when
    # every core reads the whole file
    core_values = {dict(k)["core"] for k in m["mosfw_packets_total"]}
    assert core_values == ({"0"} if cores == 1 else {""})
    assert total(m, "mosfw_packets_total") == stats["packets"] > 0
    assert total(m, "mosfw_bytes_total") == stats["bytes"] > 0
    assert total(m, "mosfw_kernel_drops_total") == stats["kernel_drops"] == 0
    assert total(m, "mosfw_flows_total") == stats["flows_created"] > 0
    assert total(m, "mosfw_flows_active") == stats["flows_active"]
    assert total(m, "mosfw_retransmissions_total") == stats["rexmits"] > 0
    assert total(m, "mosfw_orphans_total") == stats["orphans"] > 0
    for reason, field in END_REASONS.items():
        assert total(m, "mosfw_flow_ends_total", reason=reason) == stats[field], reason
    assert total(m, "mosfw_events_total") == stats["events"] > 0
    # per core: every core counted, and each core's share adds up
    per_core = {dict(k)["core"]: v for k, v in m["mosfw_flows_total"].items()}
    assert sorted(per_core) == [str(k) for k in range(cores)] and all(v > 0 for v in per_core.values())
    # the events by type: eventlog wrote one line per event it was given
    lines = [json.loads(x) for x in out_path.read_text().splitlines()]
    by_event = collections.Counter(e["event"] for e in lines)
    served = collections.Counter()
    for labels, v in m["mosfw_events_total"].items():
        served[dict(labels)["event"]] += int(v)
    assert +served == by_event, (served, by_event)
    # plugin errors: by plugin and hook, every one of them
    errs = m["mosfw_plugin_errors_total"]
    assert {(dict(k)["hook"]) for k in errs} == {"mosfw_conn_end"}
    assert all(dict(k)["plugin"].endswith("boom_py") for k in errs), errs  # the module's name
    assert sum(errs.values()) == stats["plugin_errors"] == stats["flows_created"]


def test_dashboard_parses_and_names_only_exported_metrics():
    dash = json.loads(DASHBOARD.read_text())
    panels = dash["panels"]
    assert len(panels) >= 6
    exprs = []
    for p in panels:
        assert p["targets"], p["title"]
        for t in p["targets"]:
            exprs.append(t["expr"])
            names = set(re.findall(r"\bmosfw_[a-z_]+\b", t["expr"]))
            assert names, f"{p['title']}: {t['expr']} names no mosfw metric"
            assert names <= set(EXPORTED), f"{p['title']}: {names - set(EXPORTED)} not exported"
            # nothing else that reads like a metric: every other word is PromQL or a label
            rest = re.sub(r"\bmosfw_[a-z_]+\b|\{[^}]*\}|\[[^]]*\]|\$\w+", " ", t["expr"])
            words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", rest))
            assert words <= {"sum", "rate", "by", "core", "reason", "plugin", "hook"}, words
    text = " ".join(exprs)
    # the stat_print figures: Gbps and pps in and per core, drops, live flows
    for name in (
        "mosfw_bytes_total",
        "mosfw_packets_total",
        "mosfw_kernel_drops_total",
        "mosfw_flows_active",
    ):
        assert name in text, name
    assert "sum by (core) (rate(mosfw_bytes_total" in text
    assert "sum by (core) (rate(mosfw_packets_total" in text
    for v in dash["templating"]["list"]:
        assert set(re.findall(r"\bmosfw_[a-z_]+\b", v["query"])) <= set(EXPORTED)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(PCAP), "-p", str(PLUGIN), "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_bad_or_busy_address_is_a_usage_error():
    r = _run("--metrics-addr", "nonsense")
    assert r.returncode == 2, r.stderr
    assert "--metrics-addr 'nonsense': give HOST:PORT" in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _run("--metrics-addr", f"127.0.0.1:{port}", "-c", "2")
    assert r.returncode == 2, r.stderr
    assert f"--metrics-addr 127.0.0.1:{port}: cannot listen there" in r.stderr
    assert "packets" not in r.stderr  # stopped before any core ran


def test_without_linger_the_run_ends_at_once():
    t0 = time.monotonic()
    r = _run("--metrics-addr", "127.0.0.1:0")
    assert r.returncode == 0, r.stderr
    assert "serving http://127.0.0.1:" in r.stderr
    assert time.monotonic() - t0 < 10
