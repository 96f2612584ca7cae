"""midstat: the table of tracked TCP connections, as mOS's ``samples/midstat``.

Every second of input time (wall time when capturing live) midstat prints
every connection the engine is tracking, in mOS's format::

    Proto CPU Client Address        Client State Server Address        Server State
    tcp   0   10.77.65.2:54496      ESTABLISHED  10.77.65.1:8080       ESTABLISHED

A row appears at the connection's CONN_START and leaves at its CONN_END,
as in mOS (whose ``cb_destroy`` frees the row on ``MOS_ON_CONN_END``): a
connection that closed with FIN/FIN, was reset or timed out between two
tables is in neither. The states are the emulated states of both
endpoints at the moment of the table (state names without ``TCP_``).
Rows are in the order the connections started; with ``-c N`` the cores'
rows are merged into one table a second (``mosfw_tick_result`` ->
``mosfw_tick_merge``), each row with its core in the CPU column.

mOS's midstat keeps its own list of connections from CONN_START,
TCP_STATE_CHANGE and CONN_END callbacks. This one reads the engine's flow
table at each tick instead (:meth:`mosfw.engine.Core.live_rows`, exact at
the tick: the engine ends its burst there), which gives the same table
without a Python call per state change.

At the end of the input (end of file, or Ctrl-C/SIGTERM when live) midstat
prints the table once more, with the connections still open then, and a
summary. Options (``mosfw run -p samples/midstat --help``):

``--once``            only the table at the end of the input (and the summary)
``--json``            one JSON object per line instead of text: a
                      ``snapshot`` per second, a ``final`` snapshot, a ``summary``
``--summary-only``    only the final summary (the launcher's ``-q``)
``--refresh``         redraw the screen for each table (default: when
                      capturing live with stdout on a terminal)
``--stat-print IFACE`` per-second interface statistics on stderr, like
                      mos.conf's ``stat_print = IFACE``

Subscribes only to the per-second tick: the final table is read in
``mosfw_input_end`` (before the connections still open end), and the
digest of the last connections that ended before comes from records the
engine keeps (:meth:`mosfw.engine.Core.keep_recent_ends`): no Python runs
per packet, per state change or per connection.

Column layout: ``%-5s %-3d `` for protocol and core, each address column
21 characters (``255.255.255.255:65535`` fits exactly) and each state 12,
one space between columns, exactly as mOS's ``printf`` calls lay them out.
IPv6 endpoints (``[fd77::2]:59418``) can be longer than 21 characters; a
table that holds one widens that address column to its longest address
(the header's padding grows with it), so the columns stay aligned. A table
of IPv4 connections has mOS's header byte for byte.
"""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Sequence

import mosfw

from .table import (
    ADDR_WIDTH,
    CLEAR_SCREEN,
    HEADER,
    STATE_WIDTH,
    format_header,
    format_row,
    format_stat_line,
    format_table,
    gbps,
    rows_as_json,
    state_name,
)

__all__ = [
    "HEADER",
    "ADDR_WIDTH",
    "STATE_WIDTH",
    "format_header",
    "format_row",
    "format_table",
    "format_stat_line",
    "format_summary",
    "state_name",
    "Midstat",
    "Printer",
    "format_ended",
    "merge_rows",
    "snapshot",
]


class StatPrinter:
    """Per-second interface statistics on stderr (``stat_print``), from
    the deltas of ``core.stats()`` between ticks."""

    def __init__(self, iface: str, err) -> None:
        self.iface = iface
        self.err = err
        self._prev = None
        self._prev_ts = 0.0

    @mosfw.hookimpl
    def mosfw_core_start(self, core) -> None:
        self._prev = core.stats()
        self._prev_ts = time.time()

    @mosfw.hookimpl
    def mosfw_tick(self, core, ts) -> None:
        st = core.stats()
        prev = self._prev
        self._prev = st
        dt = ts - self._prev_ts if self._prev_ts else 1.0
        self._prev_ts = ts
        if prev is None:
            return
        if dt <= 0:
            dt = 1.0
        pkts = st.packets - prev.packets
        nbytes = st.bytes - prev.bytes
        err = (st.malformed + st.unsupported_link) - (prev.malformed + prev.unsupported_link)
        drops = (st.kernel_drops + st.iface_drops) - (prev.kernel_drops + prev.iface_drops)
        line = format_stat_line(
            core.id, self.iface, st.flows_active, round(pkts / dt), err, gbps(nbytes, dt), max(drops, 0)
        )
        try:
            self.err.write(line + "\n")
            self.err.flush()
        except (BrokenPipeError, ValueError):
            pass


# ---------------------------------------------------------------------------
# the app

ENDED_SHOWN = 20
"""How many ended connections the end-of-input digest lists (the last ones)."""


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def ended_row(ts: float, flow) -> tuple:
    """A connection that ended, as the digest lists it: ``(end time,
    client, server, reason label, duration, packets, payload bytes,
    client state, server state)``, from a frozen :class:`mosfw.Flow`
    (:meth:`mosfw.engine.Core.recent_ends`)."""
    reason = flow.end_reason
    return (
        ts,
        flow.client_str,
        flow.server_str,
        reason.label if reason else "-",
        flow.duration,
        flow.pkts(0) + flow.pkts(1),
        flow.payload_bytes(0) + flow.payload_bytes(1),
        flow.client_state,
        flow.server_state,
    )


def format_ended(ended: Sequence[tuple], count: int) -> str:
    """The digest of connections that ended before the end of the input:
    one ``midstat:`` line each (the tables show only open connections).

    :param ended: the last ones, as :func:`ended_row` makes them, in the
        order of their end times.
    :param count: how many ended in all.
    """
    if not count:
        return ""
    shown = len(ended)
    more = f", the last {shown} listed" if shown < count else ""
    lines = [f"midstat: {_plural(count, 'connection')} ended before the end of the input{more}:"]
    for _, cli, srv, reason, dur, pkts, nbytes, cst, sst in ended:
        lines.append(
            f"midstat:   {cli} -> {srv}  {reason} after {_duration(dur)}, {_plural(pkts, 'packet')}, "
            f"{nbytes} payload bytes, last states {state_name(cst)}/{state_name(sst)}"
        )
    return "\n".join(lines) + "\n"


def ended_before_end(stats) -> int:
    """How many connections ended before the end of the input (every
    reason but eof), from a core's counters."""
    s = stats
    return s.flows_ended_fin + s.flows_ended_rst + s.flows_ended_timeout + s.flows_evicted + s.flows_reused


#: IP protocol numbers of the flows midstat lists with --udp (TCP always)
_UDP = {17: "udp"}


def snapshot(core, udp: bool = False) -> list[tuple]:
    """Rows of the connections one core tracks now, as ``(proto, cpu,
    client, client_state, server, server_state, start time)``, in the
    order they started: TCP's, and with ``udp`` the UDP flows' (their
    states show as ``-``; flows another plugin of the run asked for are
    not listed)."""
    cpu = core.id
    return [
        ("tcp" if p == 6 else _UDP[p], cpu, cli, cst if p == 6 else -1, srv, sst if p == 6 else -1, first)
        for cli, srv, cst, sst, first, _, p in core.live_rows()
        if p == 6 or (udp and p in _UDP)
    ]


def merge_rows(per_core: Sequence) -> list[tuple]:
    """One table from the cores' rows (lists as :func:`snapshot` makes
    them, or None): in the order the connections started, whatever their
    core (the table of one core reading it all, with the CPU column)."""
    lists = [r for r in per_core if r]
    if len(lists) == 1:
        return lists[0]
    return list(heapq.merge(*lists, key=_start_time))


def _start_time(row: tuple) -> float:
    return row[6]


def _end_time(row: tuple) -> float:
    return row[0]


class Midstat:
    """What one core process keeps for the final report: the table at the
    end of the input (``mosfw_input_end``) and the last connections that
    ended before it (the engine keeps their records: no Python call per
    connection)."""

    def __init__(self, digest: bool, per_second: bool, udp: bool = False) -> None:
        #: list UDP flows too (--udp: asked for with mosfw_protocols)
        self.udp = udp
        #: list the last ended connections (not with --json)
        self.digest = digest
        #: a table every second (not with --once)
        self.per_second = per_second
        #: rows of the connections still open at the end of the input (a
        #: process runs one core)
        self.final: list[tuple] = []

    @mosfw.hookimpl
    def mosfw_core_start(self, core) -> None:
        if self.digest:
            core.keep_recent_ends(ENDED_SHOWN)

    @mosfw.hookimpl
    def mosfw_protocols(self):
        return {"udp"} if self.udp else None

    @mosfw.hookimpl
    def mosfw_input_end(self, core) -> None:
        self.final = snapshot(core, self.udp)

    def result(self, core) -> dict:
        """This core's part of the final report (merged by mosfw_merge)."""
        listed = ("tcp", "udp") if self.udp else ("tcp",)
        ended = [ended_row(ts, f) for ts, f in core.recent_ends() if f.proto in listed] if self.digest else []
        st = core.stats()
        rows, self.final = self.final, []
        return {"rows": rows, "ended": ended, "ended_count": ended_before_end(st), "last_ts": st.last_ts}


# ---------------------------------------------------------------------------
# printing (in the parent process with -c N)


class Printer:
    """Where and how the tables go: ``mode`` is "stream" (a table per
    second), "refresh" (same, redrawing the screen) or "once" (only the
    table at the end)."""

    def __init__(self, out, mode: str = "stream", json_out: bool = False, label: str = "") -> None:
        self.out = out
        self.mode = mode
        self.json = json_out
        self.label = label

    def render(self, rows: list[tuple], ts: float, kind: str) -> str:
        if self.json:
            import json  # (--json only: kept off start-up)

            doc = {"type": kind, "ts": round(ts, 6), "connections": rows_as_json(rows)}
            return json.dumps(doc) + "\n"
        return format_table(rows)

    def table(self, rows: list[tuple], ts: float) -> None:
        """The table of the second ``ts``."""
        text = self.render(rows, ts, "snapshot")
        if self.mode == "refresh" and not self.json:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))
            title = (
                f"midstat  {self.label}  {stamp}  {_plural(len(rows), 'connection')}  (Ctrl-C to stop)\n\n"
            )
            text = CLEAR_SCREEN + title + text
        self._write(text)

    def final(self, rows: list[tuple], ts: float, ended: Sequence[tuple], count: int) -> None:
        """The table at the end of the input, then the digest of the
        connections that ended before it."""
        text = self.render(rows, ts, "final")
        if not self.json:
            text += format_ended(ended, count)
        self._write(text)

    def _write(self, text: str) -> None:
        try:
            self.out.write(text)
            self.out.flush()
        except ValueError:  # closed
            raise BrokenPipeError("stdout is closed") from None


# ---------------------------------------------------------------------------
# the summary


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else (plural or word + 's')}"


def format_summary(stats, live: bool = False, source: str = "") -> list[str]:
    """The final summary lines (text), from the engine counters summed
    over cores."""
    s = stats
    span = max(0.0, s.last_ts - s.first_ts) if s.packets else 0.0
    where = f"of capture on {source}" if live else "of input"
    closed = s.flows_ended_fin + s.flows_ended_rst
    lines = [
        f"midstat: {_plural(s.flows_created, 'connection')} ({s.flows_midstream} picked up mid-stream) "
        f"in {span:.2f} s {where}: {closed} closed ({s.flows_ended_fin} by FIN, {s.flows_ended_rst} by RST), "
        f"{s.flows_ended_timeout} timed out, {s.flows_evicted} evicted, {s.flows_reused} reused, "
        f"{s.flows_ended_eof} open at the end",
        f"midstat: {_plural(s.packets, 'packet')} ({s.tcp_packets} TCP, {s.malformed} malformed), "
        f"{_plural(s.rexmits, 'retransmission')}, {_plural(s.orphans, 'orphan packet')}"
        + (f", {s.flows_refused} new connections refused (table full)" if s.flows_refused else ""),
    ]
    if live or s.kernel_drops or s.iface_drops:
        lines.append(
            f"midstat: capture drops: {s.kernel_drops} by the kernel, {s.iface_drops} by the interface"
        )
    if s.plugin_errors:
        lines.append(f"midstat: {_plural(s.plugin_errors, 'exception')} raised by plugins (see stderr)")
    return lines


def summary_json(stats, live: bool = False, source: str = "") -> dict:
    s = stats
    return {
        "type": "summary",
        "source": source,
        "live": live,
        "connections": s.flows_created,
        "midstream": s.flows_midstream,
        "closed_fin": s.flows_ended_fin,
        "closed_rst": s.flows_ended_rst,
        "timed_out": s.flows_ended_timeout,
        "evicted": s.flows_evicted,
        "reused": s.flows_reused,
        "open_at_end": s.flows_ended_eof,
        "refused": s.flows_refused,
        "packets": s.packets,
        "tcp_packets": s.tcp_packets,
        "malformed": s.malformed,
        "retransmissions": s.rexmits,
        "orphans": s.orphans,
        "kernel_drops": s.kernel_drops,
        "iface_drops": s.iface_drops,
        "plugin_errors": s.plugin_errors,
        "first_ts": s.first_ts,
        "last_ts": s.last_ts,
    }


# ---------------------------------------------------------------------------
# hooks of the module


@mosfw.hookimpl
def mosfw_addoption(parser):
    parser.addoption(
        "--once",
        is_flag=True,
        default=False,
        help="midstat: print only the table at the end of the input (and the summary).",
    )
    parser.addoption(
        "--json",
        "json_out",
        is_flag=True,
        default=False,
        help="midstat: one JSON object per line: a snapshot per second, the final one, the summary.",
    )
    parser.addoption(
        "--udp",
        is_flag=True,
        default=False,
        help="midstat: list UDP flows too (TCP only by default, as mOS's midstat).",
    )
    parser.addoption(
        "--summary-only",
        is_flag=True,
        default=False,
        help="midstat: print only the final summary (the launcher's -q).",
    )
    parser.addoption(
        "--refresh/--no-refresh",
        "refresh",
        default=None,
        help="midstat: redraw the screen for each table (default: live capture to a terminal).",
    )
    parser.addoption(
        "--stat-print",
        "stat_print",
        metavar="IFACE",
        multiple=True,
        default=(),
        help="midstat: per-second RX pps, Gbit/s, drops and flows of IFACE on stderr "
        "(as mos.conf's stat_print; live capture only).",
    )


def _opt(config, name, default=None):
    v = config.getoption(name)
    if v is None or type(v).__module__.startswith("click"):  # unset (click's sentinel)
        return default
    return v


def _printer(config) -> Printer | None:
    """How this run prints its tables (None: ``--summary-only``)."""
    if _opt(config, "summary_only", False):
        return None
    json_out = bool(_opt(config, "json_out", False))
    refresh = _opt(config, "refresh", None)
    if refresh is None:
        try:
            refresh = bool(config.interface) and config.stdout.isatty()
        except (AttributeError, ValueError):
            refresh = False
    mode = "once" if _opt(config, "once", False) else ("refresh" if refresh and not json_out else "stream")
    return Printer(
        config.stdout, mode=mode, json_out=json_out, label=config.interface or config.read_file or ""
    )


_app: Midstat | None = None  # this process's, set by mosfw_configure


@mosfw.hookimpl
def mosfw_configure(config):
    global _app
    _app = None
    printer = _printer(config)
    pm = config.pluginmanager
    if printer is not None:
        _app = app = Midstat(
            digest=not printer.json, per_second=printer.mode != "once", udp=bool(_opt(config, "udp", False))
        )
        pm.register(app, name=f"midstat-table-{id(app)}")

    names = list(_opt(config, "stat_print", ()) or ())
    if config.mos is not None:
        names.extend(config.mos.stat_print)
    names = list(dict.fromkeys(names))
    if names:
        if not config.interface:
            config.stderr.write(
                f"midstat: note: stat_print ({', '.join(names)}) is for live capture; "
                "ignored while reading a file\n"
            )
        else:
            others = [n for n in names if n != config.interface]
            if others:
                config.stderr.write(
                    f"midstat: note: stat_print names {', '.join(others)}, not captured in this run "
                    f"(capturing on {config.interface})\n"
                )
            if config.interface in names:
                sp = StatPrinter(config.interface, config.stderr)
                pm.register(sp, name=f"midstat-stat-{id(sp)}")


@mosfw.hookimpl
def mosfw_tick_result(core, ts):
    """This core's table at the second ``ts`` (None with --once or -q)."""
    app = _app
    return snapshot(core, app.udp) if app is not None and app.per_second else None


@mosfw.hookimpl
def mosfw_tick_merge(config, ts, results):
    """One table per second for all cores (with ``-c N``, in the parent)."""
    printer = _printer(config)
    if printer is not None:
        printer.table(merge_rows(results), ts)


@mosfw.hookimpl
def mosfw_core_result(core):
    """This core's final table and digest (sent to the parent with ``-c N``)."""
    return _app.result(core) if _app is not None else None


@mosfw.hookimpl
def mosfw_merge(config, results, cores):
    """The final table of all cores, and the digest of the last
    connections that ended before the end of the input."""
    printer = _printer(config)
    parts = [r for r in results if r]
    if printer is None or not parts:
        return
    rows = merge_rows([p["rows"] for p in parts])
    # by the time they ended (a timeout ends at its deadline, found at a
    # later packet: the order they were ended in is not quite that)
    ended = sorted((e for p in parts for e in p["ended"]), key=_end_time)[-ENDED_SHOWN:]
    count = sum(p["ended_count"] for p in parts)
    ts = max(p["last_ts"] for p in parts) or time.time()
    try:
        printer.final(rows, ts, ended, count)
    except BrokenPipeError:  # the reader went away: nothing more to say
        pass


@mosfw.hookimpl
def mosfw_report(config, stats):
    live = bool(config.interface)
    source = config.interface or config.read_file or ""
    out = config.stdout
    try:
        if _opt(config, "json_out", False):
            import json

            out.write(json.dumps(summary_json(stats, live, source)) + "\n")
        else:
            out.write("\n".join(format_summary(stats, live, source)) + "\n")
        out.flush()
    except (BrokenPipeError, ValueError):
        pass


if __name__ == "__main__":  # pragma: no cover - run through mosfw
    sys.exit("run me with: mosfw run -p samples/midstat -r FILE (or samples/midstat/midstat -r FILE)")
