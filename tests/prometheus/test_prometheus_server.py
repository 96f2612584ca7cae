"""A real Prometheus server scrapes a live mosfw run (issue 20, must-show:
live metrics scraped by a real Prometheus server).

Two network namespaces joined by a veth (tests/realnet.py), nginx (or
python's http.server) in one, curl in the other. In the client's
namespace, ``mosfw run -i VETH -c 2 -p plugins/prometheus -p eventlog``
serves
``/metrics`` on 127.0.0.1, and the Debian ``prometheus`` server, with its
own configuration and TSDB in tmp_path and a 1 s scrape interval, scrapes
it there. The test reads everything back through Prometheus's HTTP API
(``/api/v1/query``, with curl inside the namespace):

- while mosfw still runs, Prometheus already holds the flows of the curl
  fetches (live scraping, both cores' series);
- after SIGTERM, mosfw writes ``--stats-json`` and keeps serving
  (``--metrics-linger``); once Prometheus has scraped the final values
  (``mosfw_run_finished`` 1), its sums equal the run's own figures
  (packets, bytes, flows, ends by reason, retransmissions, orphans,
  drops, events);
- every expression of the shipped Grafana dashboard evaluates in this
  Prometheus, and the stat_print panels (Gbps, pps, drops, live flows)
  return data.

Needs root, ``ip netns``, curl and the ``prometheus`` binary
(scripts/ensure-sysdeps.sh installs it); skips with the reason
otherwise. About 10 s.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet
from prom_helpers import DASHBOARD, END_REASONS, ROOT, metrics_url, wait_file, wait_until

pytestmark = pytest.mark.realnet

METRICS_PORT = 9464  # in the test's own namespace: nothing else listens there
PROM_PORT = 9090
FETCHES = 12


def need_everything() -> str:
    ok, why = realnet.can_use_netns(("ip", "curl"))
    if not ok:
        pytest.skip(f"the Prometheus test needs network namespaces: {why}")
    prom = shutil.which("prometheus")
    if prom is None:
        pytest.skip(
            "no prometheus binary (Debian package `prometheus`: scripts/ensure-sysdeps.sh installs it)"
        )
    pytest.importorskip("prometheus_client", reason="prometheus_client is not installed (make build)")
    return prom


def query(net, q: str) -> list[dict]:
    """An instant query through Prometheus's HTTP API; the result vector."""
    cp = net.run_in(
        "client",
        ["curl", "-sS", "-G", "--data-urlencode", f"query={q}", f"http://127.0.0.1:{PROM_PORT}/api/v1/query"],
        timeout=10,
    )
    doc = json.loads(cp.stdout)
    assert doc["status"] == "success", (q, doc)
    return doc["data"]["result"]


def value(net, q: str) -> float | None:
    """The single value of a query (None: no series)."""
    res = query(net, q)
    return float(res[0]["value"][1]) if res else None


def test_prometheus_scrapes_a_live_two_core_run(tmp_path):
    prom = need_everything()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: mosfw\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{METRICS_PORT}']\n"
    )
    stats_path, err_path, prom_log = tmp_path / "stats.json", tmp_path / "mosfw.err", tmp_path / "prom.log"
    with realnet.netpair() as net:
        net.serve_files({"a.bin": 40_000, "b.bin": 200_000})
        with open(err_path, "w") as err:
            proc = net.popen_in(
                "client",
                [
                    sys.executable,
                    "-m",
                    "mosfw",
                    "run",
                    "-i",
                    net.cli_if,
                    "-c",
                    "2",
                    "-p",
                    "plugins/prometheus",
                    "-p",
                    "eventlog",
                    "--metrics-addr",
                    f"127.0.0.1:{METRICS_PORT}",
                    "--metrics-linger",
                    "60",
                    "--stats-json",
                    str(stats_path),
                    "-q",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        with open(prom_log, "w") as log:
            server = net.popen_in(
                "client",
                [
                    prom,
                    f"--config.file={conf}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{PROM_PORT}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            url = metrics_url(err_path, proc)
            assert url == f"http://127.0.0.1:{METRICS_PORT}/metrics"

            def scraped():
                try:
                    return value(net, 'up{job="mosfw"}') == 1
                except (RuntimeError, json.JSONDecodeError):  # not listening yet
                    return False

            wait_until(scraped, 30, "Prometheus to scrape mosfw (up == 1)", server, every=0.2)
            # both workers capture (one AF_PACKET socket each) before the traffic
            wait_until(
                lambda: len(net.run_in("client", ["cat", "/proc/net/packet"]).stdout.splitlines()) >= 3,
                20,
                "mosfw's two capture sockets",
                proc,
            )
            time.sleep(0.5)
            names = ["a.bin", "b.bin"] * (FETCHES // 2)
            results = net.fetch(net.urls(names), parallel=4)
            assert all(r.ok for r in results), [r for r in results if not r.ok]

            # live: the flows are in Prometheus while mosfw still runs
            wait_until(
                lambda: (value(net, "sum(mosfw_flows_total)") or 0) >= FETCHES,
                20,
                f"Prometheus to hold >= {FETCHES} flows of the live run",
                proc,
                every=0.3,
            )
            assert proc.poll() is None
            assert value(net, "mosfw_run_finished") == 0
            assert value(net, "count(mosfw_flows_total)") == 2  # one series per core
            assert (value(net, "sum(mosfw_packets_total)") or 0) > 0

            proc.send_signal(signal.SIGTERM)
            stats = wait_file(stats_path, proc, timeout=30)
            wait_until(
                lambda: value(net, "mosfw_run_finished") == 1,
                20,
                "Prometheus to scrape the final values",
                proc,
                every=0.3,
            )
            assert proc.poll() is None, "mosfw did not linger"
            checks = {
                "sum(mosfw_packets_total)": stats["packets"],
                "sum(mosfw_bytes_total)": stats["bytes"],
                "sum(mosfw_kernel_drops_total)": stats["kernel_drops"],
                "sum(mosfw_flows_total)": stats["flows_created"],
                "sum(mosfw_flows_active)": stats["flows_active"],
                "sum(mosfw_retransmissions_total)": stats["rexmits"],
                "sum(mosfw_orphans_total)": stats["orphans"],
                "sum(mosfw_events_total)": stats["events"],
            }
            for reason, field in END_REASONS.items():
                checks[f'sum(mosfw_flow_ends_total{{reason="{reason}"}})'] = stats[field]
            got = {q: value(net, q) for q in checks}
            assert got == {q: float(v) for q, v in checks.items()}, (got, checks)
            assert stats["flows_created"] >= FETCHES and stats["packets"] > 0 and stats["events"] > 0
            per_core = query(net, "sum by (core) (mosfw_packets_total)")
            assert sorted(r["metric"]["core"] for r in per_core) == ["0", "1"]

            # the dashboard's expressions, in this Prometheus
            dash = json.loads(DASHBOARD.read_text())
            for panel in dash["panels"]:
                for t in panel["targets"]:
                    q = t["expr"].replace("$__rate_interval", "1m").replace("$instance", ".*")
                    res = query(net, q)
                    if "errors" not in panel["title"]:  # no plugin raised: that one is empty
                        assert res, f"{panel['title']}: {q} returned nothing"

            proc.send_signal(signal.SIGTERM)  # ends the linger
            rc = proc.wait(timeout=10)
            assert rc == 0, err_path.read_text()
        finally:
            for p in (proc, server):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
    assert "Traceback" not in err_path.read_text()
