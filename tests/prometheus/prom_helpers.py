"""Helpers of the Prometheus plugin tests (tests/prometheus/): run mosfw
with ``-p plugins/prometheus``, find where it serves, read ``/metrics``."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "prometheus"
DASHBOARD = PLUGIN / "mosfw_prometheus" / "dashboard.json"
SERVING_RE = re.compile(r"mosfw: prometheus: serving (http://\S+/metrics)")

# the plugin's own table of names, imported from the checkout
sys.path.insert(0, str(PLUGIN))
from mosfw_prometheus.metrics import END_REASONS, EXPORTED  # noqa: E402

__all__ = ["END_REASONS", "EXPORTED", "ROOT", "PLUGIN", "DASHBOARD", "metrics_url", "scrape", "wait_file"]


def wait_until(pred, timeout: float, what: str, proc: subprocess.Popen | None = None, every: float = 0.05):
    """pred()'s first true value within timeout seconds, else AssertionError."""
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            got = pred()
            if got:
                return got
            raise AssertionError(f"{what}: the process exited (rc={proc.returncode}) first")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)


def metrics_url(err_path: Path, proc: subprocess.Popen, timeout: float = 20.0) -> str:
    """The URL mosfw printed on stderr ("serving http://.../metrics")."""

    def find():
        m = SERVING_RE.search(err_path.read_text())
        return m.group(1) if m else None

    return wait_until(find, timeout, "the 'serving' line on stderr", proc)


def wait_file(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> dict:
    """The --stats-json document, once written."""

    def read():
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return json.loads(text) if text.endswith("\n") else None

    return wait_until(read, timeout, f"{path.name} to be written", proc)


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    """``/metrics`` parsed (prometheus_client's parser): sample name ->
    {sorted label items: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=10) as r:  # noqa: S310 - our own http URL
        text = r.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def total(samples: dict[str, dict[tuple, float]], name: str, **match: str) -> float:
    """Sum of a metric's samples whose labels include ``match``."""
    return sum(
        v for labels, v in samples.get(name, {}).items() if all((k, w) in labels for k, w in match.items())
    )
