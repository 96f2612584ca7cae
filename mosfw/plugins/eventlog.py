"""eventlog: one JSON object per event per line, for scripts.

``mosfw run -r FILE -p eventlog [--events a,b,c]``

Each line has ``ts`` (packet time, float seconds, 6 decimals), ``core``,
``event`` (``conn_start``, ``tcp_state_change``, ``conn_new_data``,
``rexmit``, ``conn_end``, ``orphan``, ``error``, ``pkt_in``) and, for
flow events, ``side`` (``client``/``server``), ``client`` and ``server``
as ``IP:PORT`` (IPv6 as ``[addr]:port``). Per event:

- ``conn_start``: ``midstream`` (bool); ``tunnels`` for a flow that
  came through tags or tunnels (absent for a plain flow): its layers,
  outermost first, each ``{"kind", "id"}`` plus ``"src"``/``"dst"``
  (outer addresses) and ``"sport"``/``"dport"`` (UDP tunnels) where they
  exist (docs/encapsulation.md)
- ``tcp_state_change``: ``old``, ``new`` (``SYN_SENT`` ...)
- ``conn_new_data``, ``rexmit``: ``seq``, ``len`` (side = the sender)
- ``conn_end``: ``reason`` (fin, rst, timeout, evicted, eof, reused);
  side is always ``client``
- ``pkt_in``: ``seq``, ``ack``, ``len``, ``flags`` (TCP flags byte);
  side = the sender
- ``error``: ``error`` (table_full, bad_sequence, ...); the flow fields
  when there is a flow
- ``orphan``: ``src``, ``dst`` (no flow, so no client/server), ``flags``

With ``--eventlog-protocols udp,icmp`` the events of UDP and ICMP flows
are logged too (``conn_start``, ``pkt_in``, ``conn_end``, ``error``),
their lines with ``"proto": "udp"`` or ``"icmp"`` (TCP lines have no
``proto``; an ICMP flow's ports are its type and the answering type or
code, as Zeek writes them).

Default: every event but ``pkt_in``. This format is a stable contract:
fields may be added, never renamed or removed.

The lines are records of the stream ``events`` (:mod:`mosfw.records`):
standard output by default, or wherever ``--sink`` sends them.
"""

from __future__ import annotations

from json import dumps as _dumps

import mosfw
from mosfw.flow import format_endpoint

ALL_EVENTS = (
    "conn_start",
    "tcp_state_change",
    "conn_new_data",
    "rexmit",
    "conn_end",
    "orphan",
    "error",
    "pkt_in",
)
DEFAULT_EVENTS = tuple(e for e in ALL_EVENTS if e != "pkt_in")
_SIDE = ("client", "server")


class EventLog:
    """The writer registered by ``mosfw_configure``. It implements only the
    hooks of the chosen events, so unchosen events are never produced.
    ``out``: a callable taking one JSON line (``config.records.json_writer``)
    or a text stream."""

    def __init__(self, out, events, protocols=frozenset()) -> None:
        write = out if callable(out) else out.write
        self.protocols = frozenset(protocols)
        # per-flow '"core": N, ..., "server": "..."' fragments, by flow id
        heads: dict[int, str] = {}

        def tail(flow) -> str:
            h = heads.get(flow.id)
            if h is None:
                h = f'"client": "{flow.client_str}", "server": "{flow.server_str}"'
                if protocols and flow.proto != "tcp":
                    h += f', "proto": "{flow.proto}"'
                heads[flow.id] = h
            return h

        def line(ev, name: str, core: int, side: str, t: str, extra: str) -> None:
            write(f'{{"ts": {ev[0]:.6f}, "core": {core}, "event": "{name}", "side": "{side}", {t}{extra}}}\n')

        def conn_start(flow, event):
            mid = "true" if event[12] & 1 else "false"
            tun = flow.tunnels
            extra = f', "tunnels": {_dumps([t.asdict() for t in tun])}' if tun else ""
            line(event, "conn_start", flow.core, _SIDE[event[8]], tail(flow), f', "midstream": {mid}{extra}')

        def tcp_state_change(flow, old, new, event):
            line(
                event,
                "tcp_state_change",
                flow.core,
                _SIDE[event[8]],
                tail(flow),
                f', "old": "{old.name}", "new": "{new.name}"',
            )

        def conn_new_data(flow, event):
            line(
                event,
                "conn_new_data",
                flow.core,
                _SIDE[event[8]],
                tail(flow),
                f', "seq": {event[4]}, "len": {event[6]}',
            )

        def rexmit(flow, event):
            line(
                event,
                "rexmit",
                flow.core,
                _SIDE[event[8]],
                tail(flow),
                f', "seq": {event[4]}, "len": {event[6]}',
            )

        def conn_end(flow, reason, event):
            line(
                event,
                "conn_end",
                flow.core,
                "client",
                heads.pop(flow.id, "") or tail(flow),
                f', "reason": "{reason.label}"',
            )
            heads.pop(flow.id, None)

        def pkt_in(flow, event):
            line(
                event,
                "pkt_in",
                flow.core,
                _SIDE[event[8]],
                tail(flow),
                f', "seq": {event[4]}, "ack": {event[5]}, "len": {event[6]}, "flags": {event[13]}',
            )

        def error(flow, code, event):
            label = code.label if code is not None else "unknown"
            if flow is None:
                write(
                    f'{{"ts": {event[0]:.6f}, "core": {self.core}, "event": "error", "error": "{label}"}}\n'
                )
            else:
                line(event, "error", flow.core, _SIDE[event[8]], tail(flow), f', "error": "{label}"')

        def orphan(event, src, dst):
            write(
                f'{{"ts": {event[0]:.6f}, "core": {self.core}, "event": "orphan", '
                f'"src": "{format_endpoint(*src)}", "dst": "{format_endpoint(*dst)}", '
                f'"flags": {event[13]}}}\n'
            )

        self.core = 0
        impls = locals()
        for name in ALL_EVENTS:
            if name in events:
                setattr(self, f"mosfw_{name}", mosfw.hookimpl(impls[name]))

    @mosfw.hookimpl
    def mosfw_core_start(self, core):
        self.core = core.id

    @mosfw.hookimpl
    def mosfw_protocols(self):
        return set(self.protocols)


def parse_events(value: str | None) -> tuple[str, ...]:
    """``--events a,b,c`` -> names; raises UsageError on unknown names."""
    if not value:
        return DEFAULT_EVENTS
    if value.strip() == "all":
        return ALL_EVENTS
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [n for n in names if n not in ALL_EVENTS]
    if bad:
        raise mosfw.UsageError(
            f"--events: unknown event(s) {', '.join(bad)}; choose from {', '.join(ALL_EVENTS)} or 'all'"
        )
    return names


@mosfw.hookimpl
def mosfw_addoption(parser):
    parser.addoption(
        "--events",
        default=None,
        envvar="MOSFW_EVENTS",
        help="eventlog: comma-separated events to log (default: all but pkt_in; 'all' for every one).",
    )
    parser.addoption(
        "--eventlog-protocols",
        default=None,
        help="eventlog: log the flows of these protocols too (comma-separated: udp, icmp, other; "
        "default TCP only).",
    )


@mosfw.hookimpl
def mosfw_configure(config):
    events = parse_events(config.getoption("events"))
    protocols = parse_protocols(config.getoption("eventlog_protocols"))
    records = getattr(config, "records", None)
    out = records.json_writer("events") if records is not None else config.stdout
    config.pluginmanager.register(EventLog(out, events, protocols), name="eventlog-writer")


def parse_protocols(value: str | None) -> frozenset[str]:
    """``--eventlog-protocols udp,icmp`` -> names; raises UsageError on unknown names."""
    names = frozenset(v.strip().lower() for v in (value or "").split(",") if v.strip()) - {"tcp"}
    bad = sorted(names - {"udp", "icmp", "other"})
    if bad:
        raise mosfw.UsageError(
            f"--eventlog-protocols: unknown protocol(s) {', '.join(bad)}; choose from udp, icmp, other"
        )
    return names
