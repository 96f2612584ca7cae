"""The metrics: names, labels and meaning (an interface: names and labels
are never renamed or removed), and the collector that turns the latest
``mosfw_stats_update`` counters into Prometheus metric families.

Every metric but ``mosfw_run_finished`` has a ``core`` label (``"0"``,
``"1"`` ...): the value of that core. Reading a file with ``-c N`` every
core reads the whole file, so the input counters (``INPUT_METRICS``) are
then one series with an empty ``core`` label, the file's (as in
``--stats-json``), instead of N copies of it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

#: flow end reasons (``mosfw.EndReason`` labels) and the counter of each
END_REASONS = {
    "fin": "flows_ended_fin",
    "rst": "flows_ended_rst",
    "timeout": "flows_ended_timeout",
    "evicted": "flows_evicted",
    "eof": "flows_ended_eof",
    "reused": "flows_reused",
}

#: name -> (type, labels, help). Counters are named without ``_total``
#: here (prometheus_client adds it): the exported names end in ``_total``.
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "mosfw_packets": ("counter", ("core",), "Packets read from the input (file or interface)."),
    "mosfw_bytes": ("counter", ("core",), "Wire bytes of the packets read (frame length on the wire)."),
    "mosfw_kernel_drops": (
        "counter",
        ("core",),
        "Live: packets the kernel dropped before mosfw read them (libpcap ps_drop, PACKET_STATISTICS).",
    ),
    "mosfw_flows_active": ("gauge", ("core",), "Flows tracked now (open, not ended)."),
    "mosfw_flows": ("counter", ("core",), "Flows tracked since the start (mid-stream pick-ups included)."),
    "mosfw_flow_ends": ("counter", ("core", "reason"), "Flows ended (CONN_END), by reason."),
    "mosfw_retransmissions": ("counter", ("core",), "Retransmitted TCP segments (REXMIT)."),
    "mosfw_orphans": ("counter", ("core",), "TCP packets of no tracked flow (ORPHAN)."),
    "mosfw_events": (
        "counter",
        ("core", "event"),
        "Event records the engine produced, by event (only subscribed events are produced).",
    ),
    "mosfw_plugin_errors": (
        "counter",
        ("core", "plugin", "hook"),
        "Exceptions raised by plugin hooks in a core, by plugin and hook.",
    ),
    "mosfw_sink_records_lost": (
        "counter",
        ("core", "sink"),
        "Records a --sink counted as lost (server away past the retry time, buffer full, "
        "flush timed out), by sink.",
    ),
    "mosfw_run_finished": ("gauge", (), "1 once the run ended and the values are final, else 0."),
}

#: counters of the input itself: one reading of the file's when every core reads it
INPUT_METRICS = ("mosfw_packets", "mosfw_bytes")

#: the names as exported (counters with ``_total``)
EXPORTED = tuple(n + "_total" if t == "counter" else n for n, (t, _, _) in METRICS.items())


def _family(name: str) -> Metric:
    kind, labels, doc = METRICS[name]
    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
    return cls(name, doc, labels=list(labels))


def families(stats: Any, cores: list[Any], shared_input: bool, finished: bool) -> list[Metric]:
    """The metric families for one ``mosfw_stats_update`` call's values:
    ``stats`` merged, ``cores`` per core (``CoreCounters``);
    ``shared_input``: every core read the same file."""
    out = {name: _family(name) for name in METRICS}

    def add(name: str, value: float, *labels: str) -> None:
        out[name].add_metric(list(labels), value)

    if shared_input:
        add("mosfw_packets", stats.packets, "")
        add("mosfw_bytes", stats.bytes, "")
    for c in cores:
        core, s = str(c.core), c.stats
        if not shared_input:
            add("mosfw_packets", s.packets, core)
            add("mosfw_bytes", s.bytes, core)
        add("mosfw_kernel_drops", s.kernel_drops, core)
        add("mosfw_flows_active", s.flows_active, core)
        add("mosfw_flows", s.flows_created, core)
        for reason, field in END_REASONS.items():
            add("mosfw_flow_ends", getattr(s, field), core, reason)
        add("mosfw_retransmissions", s.rexmits, core)
        add("mosfw_orphans", s.orphans, core)
        for event, n in sorted(c.events.items()):
            add("mosfw_events", n, core, event)
        for (plugin, hook), n in sorted(c.plugin_errors.items()):
            add("mosfw_plugin_errors", n, core, plugin, hook)
        for sink, n in sorted(getattr(c, "sink_records_lost", {}).items()):
            add("mosfw_sink_records_lost", n, core, sink)
    add("mosfw_run_finished", 1 if finished else 0)
    return list(out.values())


class Collector:
    """A prometheus_client collector serving the latest counters (set from
    the mosfw process's main thread, read by the HTTP server's threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._families: list[Metric] = families(None, [], False, False)

    def set(self, stats: Any, cores: list[Any], shared_input: bool, finished: bool) -> None:
        fams = families(stats, cores, shared_input, finished)
        with self._lock:
            self._families = fams

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            fams = self._families
        yield from fams
