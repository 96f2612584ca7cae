"""Engine counters as a frozen record (trio-style ``statistics()``), and
one core's counters as the process that merges the cores sees them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from mosfw._native import ffi

__all__ = ["RunStats", "CoreCounters", "sum_by_key"]

_FIELDS = [f for f, _ in ffi.typeof("struct mosfw_stats").fields]


def _tunnel_counts(t: Any) -> dict[str, dict[str, int]]:
    """A ``struct mosfw_tunnel_stats`` as {what: {kind name: count}}, non-zero only."""
    from mosfw.tunnels import TUNNEL_KINDS

    out: dict[str, dict[str, int]] = {}
    for what in ("packets", "too_deep", "broken"):
        arr = getattr(t, what)
        d = {TUNNEL_KINDS[k] or str(k): int(arr[k]) for k in range(len(TUNNEL_KINDS)) if arr[k]}
        if d:
            out[what] = d
    return out


@attrs.frozen
class RunStats:
    """Counters of one core, or summed over cores."""

    packets: int = 0  #: packets read
    bytes: int = 0  #: wire bytes read
    tcp_packets: int = 0  #: TCP packets parsed (before sharding)
    non_tcp: int = 0  #: well-formed packets that are not TCP
    malformed: int = 0  #: packets that could not be parsed
    truncated: int = 0  #: headers cut by the capture's snaplen (not tracked)
    unsupported_link: int = 0  #: packets of an unsupported link type
    fragments: int = 0  #: IP fragments read (reassembled: docs/fragments.md)
    bad_checksum: int = 0  #: failed checksum verification (when enabled)
    other_shard: int = 0  #: TCP packets left to other cores
    flows_created: int = 0  #: flows tracked
    flows_midstream: int = 0  #: of which picked up mid-stream
    flows_active: int = 0  #: flows open now
    flows_ended_fin: int = 0
    flows_ended_rst: int = 0
    flows_ended_timeout: int = 0
    flows_evicted: int = 0
    flows_ended_eof: int = 0
    flows_reused: int = 0
    flows_refused: int = 0  #: new flows not tracked: table full
    orphans: int = 0  #: packets of no flow
    rexmits: int = 0  #: retransmitted segments
    events: int = 0  #: event records produced
    kernel_drops: int = 0  #: live: dropped by the kernel
    iface_drops: int = 0  #: live: dropped by the interface
    nomem: int = 0  #: allocations that failed (flow index growth, reassembly buffers)
    rmem_memcap_bytes: int = 0  #: payload bytes not kept: reassembly memory cap reached
    frag_reassembled: int = 0  #: IP datagrams rebuilt from their fragments
    frag_timeouts: int = 0  #: incomplete IP datagrams dropped after frag_timeout
    frag_cap_drops: int = 0  #: incomplete IP datagrams dropped to stay within frag_memcap
    frag_overlaps: int = 0  #: IP fragments overlapping bytes already held
    frag_conflicts: int = 0  #: of which with different bytes (ERROR event frag_overlap)
    frag_malformed: int = 0  #: IP fragments not used (truncated, past 65535 bytes, bad length)
    frag_pending: int = 0  #: incomplete IP datagrams held (at the end: never completed)
    frag_mem_peak: int = 0  #: most bytes the incomplete IP datagrams took at once (per core)
    first_ts: float = 0.0  #: first packet time
    last_ts: float = 0.0  #: last packet time
    plugin_errors: int = 0  #: exceptions raised by plugin hooks
    #: records the run's sinks counted as lost (``--sink``: a server that went away)
    sink_records_lost: int = 0

    #: by tunnel kind (docs/encapsulation.md), non-zero counts only:
    #: ``{"packets": {"vxlan": n, ...}, "too_deep": {...}, "broken": {...}}``
    #: -- packets through a layer of that kind (once per layer), skipped
    #: past tunnel_max_depth, skipped with a broken header in it
    tunnels: dict[str, dict[str, int]] = attrs.field(factory=dict)
    #: non-TCP IP packets by IP protocol number (the innermost IP header's),
    #: non-zero counts only: ``{17: n, 1: n, 47: n, ...}`` (UDP, ICMP and
    #: ICMPv6 included, tracked or not)
    ip_protos: dict[int, int] = attrs.field(factory=dict)

    @classmethod
    def from_c(cls, c: Any, plugin_errors: int = 0, sink_records_lost: int = 0) -> RunStats:
        vals = {f: getattr(c, f) for f in _FIELDS if f not in ("tunnels", "ip_protos")}
        return cls(
            **vals,
            plugin_errors=plugin_errors,
            sink_records_lost=sink_records_lost,
            tunnels=_tunnel_counts(c.tunnels),
            ip_protos={k: int(c.ip_protos[k]) for k in range(256) if c.ip_protos[k]},
        )

    def __add__(self, other: RunStats) -> RunStats:
        vals: dict[str, Any] = {}
        for a in attrs.fields(RunStats):
            x, y = getattr(self, a.name), getattr(other, a.name)
            if a.name == "first_ts":
                vals[a.name] = min(v for v in (x, y) if v) if (x or y) else 0.0
            elif a.name == "last_ts":
                vals[a.name] = max(x, y)
            elif a.name == "tunnels":
                vals[a.name] = {
                    what: {
                        k: x.get(what, {}).get(k, 0) + y.get(what, {}).get(k, 0)
                        for k in {**x.get(what, {}), **y.get(what, {})}
                    }
                    for what in {**x, **y}
                }
            elif a.name == "ip_protos":
                vals[a.name] = {k: x.get(k, 0) + y.get(k, 0) for k in sorted({*x, *y})}
            else:
                vals[a.name] = x + y
        return RunStats(**vals)

    def asdict(self) -> dict[str, Any]:
        return attrs.asdict(self)


@attrs.frozen
class CoreCounters:
    """One core's counters at a moment, as
    :func:`~mosfw.hookspecs.mosfw_stats_update` gets them (in the process
    that merges the cores)."""

    core: int  #: the core (0-based)
    stats: RunStats = attrs.field(factory=RunStats)  #: its engine counters
    #: event records it produced, by event name (``conn_start``, ``pkt_in``,
    #: ``tick`` ...; types nobody subscribed to are never produced: 0)
    events: dict[str, int] = attrs.field(factory=dict)
    #: exceptions plugins raised in it, by ``(plugin name, hook name)``
    plugin_errors: dict[tuple[str, str], int] = attrs.field(factory=dict)
    #: ``-c N``: its worker died; these are the last counters it reported
    lost: bool = False
    #: records its sinks counted as lost, by sink name (``redis://host:port/0``)
    sink_records_lost: dict[str, int] = attrs.field(factory=dict)


def sum_by_key(dicts: Iterable[dict[str, int]]) -> dict[str, int]:
    """Counts by name (``CoreCounters.sink_records_lost``) added up over
    several dicts (cores)."""
    out: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            out[k] = out.get(k, 0) + n
    return out
