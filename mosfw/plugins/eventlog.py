"""eventlog: one JSON object per event per line, for scripts.

``mosfw run -r FILE -p eventlog [--events a,b,c]``

Each line has ``ts`` (packet time, float seconds), ``core``, ``event``
(``conn_start``, ``tcp_state_change``, ``conn_new_data``, ``rexmit``,
``conn_end``, ``orphan``, ``error``, ``pkt_in``) and, for flow events,
``side`` (``client``/``server``), ``client`` and ``server`` as
``IP:PORT`` (IPv6 as ``[addr]:port``). Per event:

- ``conn_start``: ``midstream`` (bool)
- ``tcp_state_change``: ``old``, ``new`` (``SYN_SENT`` ...)
- ``conn_new_data``, ``rexmit``: ``seq``, ``len`` (side = the sender)
- ``conn_end``: ``reason`` (fin, rst, timeout, evicted, eof, reused)
- ``pkt_in``: ``seq``, ``ack``, ``len``, ``flags`` (TCP flags byte)
- ``error``: ``error`` (table_full, bad_sequence, ...); flow fields when
  there is a flow
- ``orphan``: ``src``, ``dst`` (no flow, so no client/server), ``flags``

Default: every event but ``pkt_in``. This format is a stable contract.
"""

from __future__ import annotations

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


class EventLog:
    """The writer registered by ``mosfw_configure``: it implements only
    the hooks of the chosen events, so unchosen events are never
    produced by the engine."""

    def __init__(self, out, events, core: int = 0) -> None:
        self.out = out
        self.core = core
        for name in ALL_EVENTS:
            if name in events:
                method = getattr(self, f"_{name}")
                # a marked plain function per chosen hook (pluggy looks for
                # the marker on the attribute it finds)
                setattr(self, f"mosfw_{name}", mosfw.hookimpl(_forward(method)))

    def _head(self, ev, name: str, flow, side) -> str:
        # client/server strings are cached on the Flow object
        return (
            f'{{"ts": {ev[0]:.6f}, "core": {flow.core}, "event": "{name}", "side": "{side.label}", '
            f'"client": "{flow.client_str}", "server": "{flow.server_str}"'
        )

    def _conn_start(self, flow, side, event):
        mid = "true" if event.midstream else "false"
        self.out.write(self._head(event, "conn_start", flow, side) + f', "midstream": {mid}}}\n')

    def _tcp_state_change(self, flow, side, old, new, event):
        self.out.write(
            self._head(event, "tcp_state_change", flow, side) + f', "old": "{old.name}", "new": "{new.name}"}}\n'
        )

    def _conn_new_data(self, flow, side, event):
        self.out.write(self._head(event, "conn_new_data", flow, side) + f', "seq": {event[4]}, "len": {event[6]}}}\n')

    def _rexmit(self, flow, side, event):
        self.out.write(self._head(event, "rexmit", flow, side) + f', "seq": {event[4]}, "len": {event[6]}}}\n')

    def _conn_end(self, flow, reason, event):
        self.out.write(
            self._head(event, "conn_end", flow, mosfw.Side.CLIENT) + f', "reason": "{reason.label}"}}\n'
        )

    def _pkt_in(self, flow, side, event):
        self.out.write(
            self._head(event, "pkt_in", flow, side)
            + f', "seq": {event[4]}, "ack": {event[5]}, "len": {event[6]}, "flags": {event[13]}}}\n'
        )

    def _error(self, flow, code, event):
        label = code.label if code is not None else "unknown"
        if flow is None:
            self.out.write(
                f'{{"ts": {event[0]:.6f}, "core": {self.core}, "event": "error", "error": "{label}"}}\n'
            )
        else:
            self.out.write(
                self._head(event, "error", flow, event.side) + f', "error": "{label}"}}\n'
            )

    def _orphan(self, event, src, dst):
        self.out.write(
            f'{{"ts": {event[0]:.6f}, "core": {self.core}, "event": "orphan", '
            f'"src": "{format_endpoint(*src)}", "dst": "{format_endpoint(*dst)}", "flags": {event[13]}}}\n'
        )



def _forward(method):
    """A plain function with the method's signature minus self."""
    import functools

    @functools.wraps(method)
    def hook(*args):
        return method(*args)

    hook.__signature__ = __import__("inspect").signature(method)
    return hook


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


@mosfw.hookimpl
def mosfw_configure(config):
    events = parse_events(config.getoption("events"))
    config.pluginmanager.register(EventLog(config.stdout, events), name="eventlog-writer")
