"""midstat (samples/midstat): formatter, tables against the eventlog, options.

- The formatter: mOS's header byte for byte, rows laid out as mOS's
  ``printf`` calls lay them out (an independent re-implementation of those
  calls is the oracle), columns aligned with IPv4 and IPv6 addresses, the
  stat_print line.
- Tables against the eventlog: midstat and the eventlog plugin run together
  over the same capture, writing into one stream, so every table sits in
  the stream right after the events dispatched before it. Folding the
  eventlog's lines up to a table gives the connections and both sides'
  states the table must show (rows leave at CONN_END, as in mOS; the table
  at the end of the input holds the connections still open then). Checked
  on the bundled real capture tests/data/http-loss.pcap (as is, and
  time-shifted so that a second boundary falls at each state change of its
  four connections, and cut short so connections are open at the end) and
  on synthetic captures built with the mosfw_capture/mosfw_run fixtures.
- The launcher (samples/midstat/midstat) as a user runs it: from another
  directory, -q, --once, --json, mos.conf with forward = 1 and with a
  misspelt key.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "samples" / "midstat"
LAUNCHER = APP_DIR / "midstat"
HTTP_LOSS = REPO / "tests" / "data" / "http-loss.pcap"

HEADER = "Proto CPU Client Address        Client State Server Address        Server State"
HEADER_RE = re.compile(r"^Proto CPU Client Address +Client State Server Address +Server State$")

STATES = {
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RCVD",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
}


@pytest.fixture(scope="module")
def app():
    """The midstat module, loaded the way `-p samples/midstat` loads it."""
    from mosfw.manager import resolve_plugin

    return resolve_plugin(str(APP_DIR))


# ---------------------------------------------------------------------------
# the formatter


def mos_printf_row(
    cpu: int, cli_ip: str, cli_port: int, cli_state: str, srv_ip: str, srv_port: int, srv_state: str
) -> str:
    """mOS's cb_printstat, call by call (samples/midstat/midstat.c):
    printf("%-5s %-3d ", "tcp", i); space = printf("%s:", ip);
    printf("%*d %-12s ", space - 21, port, state); ... "%-12s\\n".
    C's `%*d` with a negative width left-justifies in -width columns."""

    def star_d(width: int, value: int) -> str:
        return f"{value:<{-width}d}" if width < 0 else f"{value:>{width}d}"

    out = "%-5s %-3d " % ("tcp", cpu)  # noqa: UP031 - mOS's printf formats, as written in its C
    s = f"{cli_ip}:"
    out += s + star_d(len(s) - 21, cli_port) + " " + "%-12s " % cli_state  # noqa: UP031 - mOS's printf formats, as written in its C
    s = f"{srv_ip}:"
    out += s + star_d(len(s) - 21, srv_port) + " " + "%-12s" % srv_state  # noqa: UP031 - mOS's printf formats, as written in its C
    return out


def test_header_is_mos_header(app):
    assert app.HEADER == HEADER
    assert app.format_header() == HEADER
    assert app.format_table([]) == HEADER + "\n"


@pytest.mark.parametrize(
    "cli, srv, cst, sst",
    [
        (("10.0.0.1", 40000), ("10.0.0.2", 80), "ESTABLISHED", "ESTABLISHED"),
        (("192.168.100.200", 65535), ("255.255.255.255", 1), "SYN_SENT", "LISTEN"),
        (("1.2.3.4", 5), ("6.7.8.9", 10), "FIN_WAIT_2", "CLOSE_WAIT"),
        (("10.77.65.2", 54496), ("10.77.65.1", 8080), "TIME_WAIT", "CLOSED"),
    ],
)
def test_ipv4_row_is_mos_printf_byte_for_byte(app, cli, srv, cst, sst):
    row = app.format_row("tcp", 3, f"{cli[0]}:{cli[1]}", cst, f"{srv[0]}:{srv[1]}", sst)
    assert row == mos_printf_row(3, cli[0], cli[1], cst, srv[0], srv[1], sst)
    table = app.format_table([("tcp", 3, f"{cli[0]}:{cli[1]}", cst, f"{srv[0]}:{srv[1]}", sst)])
    assert table == HEADER + "\n" + row + "\n"


def columns_of(header: str) -> list[int]:
    return [
        header.index(w)
        for w in ("Proto", "CPU", "Client Address", "Client State", "Server Address", "Server State")
    ]


def assert_aligned(table: str, expect_rows: list[tuple]) -> None:
    lines = table.rstrip("\n").split("\n")
    assert HEADER_RE.match(lines[0]), lines[0]
    cols = columns_of(lines[0])
    assert len(lines) == 1 + len(expect_rows)
    for line, (cpu, cli, cst, srv, sst) in zip(lines[1:], expect_rows, strict=False):
        # each field starts exactly under its header word, preceded by a blank
        for col, value in zip(cols, ("tcp", str(cpu), cli, cst, srv, sst), strict=False):
            assert line[col : col + len(value)] == value, (line, value)
            assert col == 0 or line[col - 1] == " ", (line, value)
        assert line.split() == ["tcp", str(cpu), cli, cst, srv, sst]


def test_ipv4_and_ipv6_columns_aligned(app):
    rows = [
        ("tcp", 0, "10.0.0.1:40000", "ESTABLISHED", "10.0.0.2:80", "ESTABLISHED"),
        ("tcp", 0, "[2001:db8:aaaa:bbbb:cccc:dddd:eeee:1]:51234", "SYN_SENT", "[2001:db8::2]:443", "LISTEN"),
        ("tcp", 1, "[fd77:0:0:65::2]:59418", "FIN_WAIT_2", "10.77.65.1:8080", "CLOSE_WAIT"),
        ("tcp", 12, "255.255.255.255:65535", "TIME_WAIT", "[::1]:80", "LAST_ACK"),
    ]
    table = app.format_table(rows)
    assert_aligned(table, [(r[1], r[2], r[3], r[4], r[5]) for r in rows])
    header = table.split("\n")[0]
    # the address columns widened to the longest address; the state columns
    # keep mOS's 12 (+1 blank)
    cols = columns_of(header)
    assert cols[3] - cols[2] == len(rows[1][2]) + 1
    assert cols[4] - cols[3] == 13
    assert cols[5] - cols[4] == 21 + 1  # every server address fits mOS's 21


def test_only_ipv6_table_aligned_and_short_ipv6_keeps_mos_header(app):
    short = [("tcp", 0, "[::1]:40000", "ESTABLISHED", "[::1]:80", "ESTABLISHED")]
    assert app.format_table(short).split("\n")[0] == HEADER
    assert_aligned(app.format_table(short), [(0, "[::1]:40000", "ESTABLISHED", "[::1]:80", "ESTABLISHED")])
    long = [
        ("tcp", 0, "[fd77:0:0:65::2]:59418", "SYN_SENT", "[fd77:0:0:65::1]:8080", "SYN_RCVD"),
        ("tcp", 0, "[fd77:0:0:65::2]:59428", "CLOSED", "[fd77:0:0:65::1]:8080", "TIME_WAIT"),
    ]
    assert_aligned(app.format_table(long), [(r[1], r[2], r[3], r[4], r[5]) for r in long])


def test_state_names(app):
    from mosfw import TcpState

    assert app.state_name(TcpState.ESTABLISHED) == "ESTABLISHED"
    assert app.state_name(int(TcpState.SYN_RCVD)) == "SYN_RCVD"
    assert app.state_name("TCP_TIME_WAIT") == "TIME_WAIT"
    assert app.state_name(99) == "-"  # mOS's strstate default
    assert {app.state_name(s) for s in TcpState} == STATES


def test_stat_line_is_mos_layout(app):
    line = app.format_stat_line(0, "eth0", 12, 345678, 2, 1.234, 7)
    # mOS: "[CPU%2d] %s flows: %6u, RX: %7llu(pps) (err: %5llu), %5.2lf(Gbps), " (TX dropped)
    assert line == "[CPU%2d] %s flows: %6u, RX: %7u(pps) (err: %5u), %5.2f(Gbps), drops: %5u" % (  # noqa: UP031 - mOS's printf formats, as written in its C
        0,
        "eth0",
        12,
        345678,
        2,
        1.234,
        7,
    )
    assert app.gbps(125_000_000) == pytest.approx(1.0)
    assert app.gbps(250_000_000, 2.0) == pytest.approx(1.0)


def test_stat_printer_prints_deltas_per_tick(app):
    from mosfw.stats import RunStats

    class FakeCore:
        id = 1

        def __init__(self):
            self.seq = [
                RunStats(),
                RunStats(packets=1000, bytes=1_250_000, flows_active=3, kernel_drops=5, malformed=1),
                RunStats(
                    packets=3000, bytes=3_750_000, flows_active=4, kernel_drops=5, iface_drops=2, malformed=1
                ),
            ]

        def stats(self):
            return self.seq.pop(0)

    err = io.StringIO()
    sp = app.StatPrinter("veth0", err)
    core = FakeCore()
    sp.mosfw_core_start(core)
    sp._prev_ts = 99.0  # core start one second before the first tick
    sp.mosfw_tick(core, 100.0)
    sp.mosfw_tick(core, 102.0)  # two seconds: rates halve
    lines = err.getvalue().splitlines()
    assert lines == [
        app.format_stat_line(1, "veth0", 3, 1000, 1, 0.01, 5),
        app.format_stat_line(1, "veth0", 4, 1000, 0, 0.01, 2),
    ]


# ---------------------------------------------------------------------------
# reading midstat's stream (text tables or JSON lines) with the eventlog's


def parse_stream(text: str) -> list[tuple]:
    """midstat + eventlog output -> items in stream order:
    ("event", dict) for eventlog lines, ("table", kind, rows) for tables,
    rows as (cpu, client, client_state, server, server_state).
    Text tables are "interval" until the last one, which is "final"."""
    items: list = []
    table = None
    for line in text.splitlines():
        if line.startswith("{"):
            doc = json.loads(line)
            if "event" in doc:
                items.append(("event", doc))
            elif doc.get("type") in ("snapshot", "final"):
                rows = [
                    (r["cpu"], r["client"], r["client_state"], r["server"], r["server_state"])
                    for r in doc["connections"]
                ]
                assert all(r["proto"] == "tcp" for r in doc["connections"])
                items.append(("table", "final" if doc["type"] == "final" else "interval", rows, doc["ts"]))
            table = None
            continue
        if HEADER_RE.match(line):
            table = ("table", "interval", [], None)
            items.append(table)
            cols = columns_of(line)
            continue
        if table is not None and line.startswith("tcp "):
            fields = line.split()
            assert len(fields) == 6, line
            # each field under its header word
            for col, value in zip(cols, fields, strict=False):
                assert line[col : col + len(value)] == value, (line, value)
            table[2].append((int(fields[1]), fields[2], fields[3], fields[4], fields[5]))
            continue
        table = None
    idx = [k for k, i in enumerate(items) if i[0] == "table"]
    if idx and items[idx[-1]][3] is None:  # text: the last table is the final one
        items[idx[-1]] = ("table", "final", items[idx[-1]][2], None)
    return items


class Implied:
    """Connections and states implied by eventlog lines (conn_start,
    tcp_state_change, conn_end), folded in stream order."""

    def __init__(self, events: list[dict]) -> None:
        # A side's state before its first state change is that change's
        # "old"; sides that never change: ESTABLISHED when picked up
        # mid-stream, else LISTEN (a server that never answered).
        self.initial: dict[tuple, dict] = {}
        live: dict[tuple, int] = {}
        self.instance_of: list = []
        n = 0
        for ev in events:
            key = (ev["client"], ev["server"]) if "client" in ev else None
            inst = None
            if ev["event"] in ("conn_start", "tcp_state_change", "conn_end") and key:
                if key not in live:
                    n += 1
                    live[key] = n
                    self.initial[n] = {"midstream": bool(ev.get("midstream"))}
                inst = live[key]
                init = self.initial[inst]
                if ev["event"] == "tcp_state_change" and ev["side"] not in init:
                    init[ev["side"]] = ev["old"]
                if ev["event"] == "conn_end":
                    del live[key]
            self.instance_of.append(inst)
        self.rows: dict[int, list] = {}  # instance -> [cpu, client, cst, server, sst, ended_eof]
        self.pos = 0
        self.events = events

    def _initial(self, inst: int, side: str) -> str:
        init = self.initial[inst]
        if side in init:
            return init[side]
        return "ESTABLISHED" if init["midstream"] else "LISTEN"

    def feed(self, ev: dict) -> None:
        inst = self.instance_of[self.pos]
        self.pos += 1
        if inst is None:
            return
        name = ev["event"]
        row = self.rows.get(inst)
        if row is None:
            row = self.rows[inst] = [
                ev["core"],
                ev["client"],
                self._initial(inst, "client"),
                ev["server"],
                self._initial(inst, "server"),
                False,
            ]
        if name == "tcp_state_change":
            row[2 if ev["side"] == "client" else 4] = ev["new"]
        elif name == "conn_end":
            if ev["reason"] == "eof":
                row[5] = True
            else:
                del self.rows[inst]

    def table(self, final: bool) -> list[tuple]:
        return [tuple(r[:5]) for r in self.rows.values() if final or not r[5]]


def check_against_eventlog(stdout: str) -> list[tuple]:
    """Every table in a midstat+eventlog stream equals what the eventlog
    lines before it imply; returns the tables [(kind, rows, ts)]."""
    items = parse_stream(stdout)
    events = [i[1] for i in items if i[0] == "event"]
    implied = Implied(events)
    tables = []
    for item in items:
        if item[0] == "event":
            implied.feed(item[1])
            continue
        _, kind, rows, ts = item
        expect = implied.table(final=kind == "final")
        assert rows == expect, f"{kind} table at {ts} after {implied.pos} events:\n got {rows}\nwant {expect}"
        tables.append((kind, rows, ts))
    assert tables and tables[-1][0] == "final" and sum(t[0] == "final" for t in tables) == 1
    return tables


def run_with_eventlog(mosfw_run, source, json_out: bool, **kw):
    options = {"json_out": json_out}
    options.update(kw.pop("options", {}))
    return mosfw_run(source, plugins=["eventlog", str(APP_DIR)], events=None, options=options, **kw)


# ---------------------------------------------------------------------------
# pcap rewriting for the real capture (classic pcap, microseconds)


def read_pcap(path: Path) -> tuple[bytes, str, list[list]]:
    data = path.read_bytes()
    magic = struct.unpack("<I", data[:4])[0]
    e = "<" if magic == 0xA1B2C3D4 else ">"
    assert struct.unpack(e + "I", data[:4])[0] == 0xA1B2C3D4, "test expects a microsecond pcap"
    recs, off = [], 24
    while off < len(data):
        sec, usec, caplen, wirelen = struct.unpack(e + "IIII", data[off : off + 16])
        recs.append([sec * 1_000_000 + usec, caplen, wirelen, data[off + 16 : off + 16 + caplen]])
        off += 16 + caplen
    return data[:24], e, recs


def write_pcap(path: Path, head: bytes, e: str, recs: list[list], shift_us: int = 0) -> Path:
    with open(path, "wb") as fh:
        fh.write(head)
        for ts, caplen, wirelen, frame in recs:
            sec, usec = divmod(ts + shift_us, 1_000_000)
            fh.write(struct.pack(e + "IIII", sec, usec, caplen, wirelen) + frame)
    return path


@pytest.fixture(scope="module")
def http_loss_events():
    """The eventlog of the unmodified real capture, in-process."""
    from mosfw.testing.harness import run_capture

    rec = run_capture(HTTP_LOSS, plugins=["eventlog"], events=None)
    return [json.loads(line) for line in rec.stdout.splitlines()]


def test_http_loss_as_is_through_the_launcher(tmp_path):
    """The bundled capture: its only second boundary falls after its four
    connections closed, so both tables (the one at that second and the
    one at the end) are empty, as the eventlog implies; the ended
    connections and the summary say what happened."""
    cp = subprocess.run(
        [str(LAUNCHER), "-r", str(HTTP_LOSS)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert cp.returncode == 0, cp.stderr
    ev = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-q", "-r", str(HTTP_LOSS), "-p", "eventlog"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert ev.returncode == 0, ev.stderr
    # the eventlog's stream up to the one second boundary (1795701171)
    before = [json.loads(x) for x in ev.stdout.splitlines() if json.loads(x)["ts"] < 1795701171]
    implied = Implied(before)
    for e in before:
        implied.feed(e)
    assert implied.table(final=False) == []
    lines = cp.stdout.splitlines()
    assert [x for x in lines if x.startswith("Proto")] == [HEADER, HEADER]
    assert not [x for x in lines if x.startswith("tcp ")]
    ended = [x for x in lines if " -> " in x]
    assert len(ended) == 4 and all(" fin after " in x for x in ended)
    assert "10.77.65.2:54488 -> 10.77.65.1:8080" in ended[0]
    assert "[fd77:0:0:65::2]:59418 -> [fd77:0:0:65::1]:8080" in ended[1]
    summary = [x for x in lines if x.startswith("midstat: 4 connections (")]
    assert summary and "4 closed (4 by FIN, 0 by RST)" in summary[0]
    assert "266 packets (257 TCP, 0 malformed), 3 retransmissions, 2 orphan packets" in cp.stdout
    assert cp.stderr == ""  # the engine's own summary is off in the launcher


def boundaries(events: list[dict], recs: list[list]) -> list[int]:
    """Packet times (us) at which to put a second boundary: each packet
    that changed a connection (the table then shows the state before it)
    and the packet after it (the state after)."""
    times = sorted({r[0] for r in recs})
    changing = {
        round(e["ts"] * 1e6) for e in events if e["event"] in ("conn_start", "tcp_state_change", "conn_end")
    }
    out = set()
    for i, t in enumerate(times):
        if t in changing:
            out.add(t)
            if i + 1 < len(times):
                out.add(times[i + 1])
    out.discard(times[0])  # the first packet starts the clock: no tick
    return sorted(out)


def test_http_loss_tables_at_every_state_change(tmp_path, mosfw_run, http_loss_events):
    """The real capture, time-shifted so a second boundary falls at each
    packet that changed a connection (and at the packet after): the table
    printed at that boundary shows exactly the connections and states the
    eventlog implies there. Text tables in odd runs, JSON in even ones."""
    head, e, recs = read_pcap(HTTP_LOSS)
    cuts = boundaries(http_loss_events, recs)
    assert len(cuts) >= 24  # 4 connections x (SYN, SYN/ACK, ACK, FIN, FIN, ACK + the packets after)
    seen_states = set()
    for n, cut in enumerate(cuts):
        target = (cut // 1_000_000 + 1) * 1_000_000  # the next whole second
        path = write_pcap(tmp_path / f"shift{n}.pcap", head, e, recs, shift_us=target - cut)
        rec = run_with_eventlog(mosfw_run, path, json_out=bool(n % 2))
        tables = check_against_eventlog(rec.stdout)
        interval = [t for t in tables if t[0] == "interval"]
        assert len(interval) == 1, tables  # the capture spans < 1 s: one boundary
        if n % 2:
            assert interval[0][2] == target / 1e6
        for row in interval[0][1]:
            seen_states.update((row[2], row[4]))
    # the boundaries caught the connections in every state of the capture
    assert {"SYN_SENT", "LISTEN", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "CLOSE_WAIT", "LAST_ACK"} <= set(
        seen_states
    )


@pytest.mark.parametrize("keep", [30, 150, 240])
def test_http_loss_cut_short_final_table(tmp_path, mosfw_run, keep):
    """The real capture cut after `keep` packets: the table at the end
    holds the connections still open, with the eventlog's states."""
    head, e, recs = read_pcap(HTTP_LOSS)
    path = write_pcap(tmp_path / "cut.pcap", head, e, recs[:keep])
    for json_out in (False, True):
        rec = run_with_eventlog(mosfw_run, path, json_out=json_out)
        tables = check_against_eventlog(rec.stdout)
        final = tables[-1][1]
        assert len(final) == 1 and final[0][2] != "-"  # the connection open at the cut
        assert rec.stats.flows_ended_eof == 1


# ---------------------------------------------------------------------------
# synthetic captures


CLI4, SRV4 = ("10.0.0.1", 40000), ("10.0.0.2", 80)
V6A = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:1"
V6B = "2001:db8::80"


def busy_capture(mosfw_capture):
    """Six conversations over ~8 s of input, states held across seconds
    (run with tcp_timeout=3: c's SYN, t and d time out; d is picked up
    again mid-stream, c's second SYN starts a new connection)."""
    cap = mosfw_capture(start=1000.0, step=0.001)
    a = cap.conversation(client=CLI4, server=SRV4)  # long-lived, closes late
    b = cap.conversation(client=(V6A, 51234), server=(V6B, 443))  # IPv6, server closes first, slowly
    c = cap.conversation(client=("10.0.0.3", 40001), server=SRV4)  # SYN nobody answers
    d = cap.conversation(client=("10.0.0.4", 40002), server=SRV4)  # picked up mid-stream
    r = cap.conversation(client=("10.0.0.5", 40003), server=SRV4)  # reset
    t = cap.conversation(client=("fd00::5", 40004), server=("fd00::1", 22))  # idle -> timeout
    a.handshake()
    b.syn()
    cap.advance(1.2)  # b: SYN_SENT/LISTEN across a second
    b.synack()
    cap.advance(1.0)  # b: ESTABLISHED/SYN_RCVD across a second
    b.ack("client")
    c.syn()
    t.handshake()
    a.send("client", 300)
    cap.advance(1.0)
    d.send("client", 100)  # mid-stream: no handshake seen
    d.send("server", 1000)
    r.handshake()
    b.send("client", 50)
    b.fin("server")  # server closes first; the client acks and keeps its half open
    b.ack("client")
    cap.advance(1.1)
    a.send("server", 2000)
    r.rst("server")
    cap.advance(1.0)
    b.fin("client")  # b: client LAST_ACK, server TIME_WAIT across a second
    cap.advance(1.0)
    b.ack("server")
    a.fin("client")
    cap.advance(1.3)  # a: FIN_WAIT_1 / CLOSE_WAIT across a second
    a.fin("server")
    a.ack("client")
    d.send("client", 10)
    cap.advance(0.5)
    c.syn()  # c's SYN again (still unanswered)
    return cap


@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
def test_synthetic_tables_match_eventlog(mosfw_capture, mosfw_run, json_out):
    cap = busy_capture(mosfw_capture)
    rec = run_with_eventlog(mosfw_run, cap, json_out=json_out, tcp_timeout=3)
    tables = check_against_eventlog(rec.stdout)
    interval = [t for t in tables if t[0] == "interval"]
    assert len(interval) >= 7
    states = {(r[2], r[4]) for t in tables for r in t[1]}
    # the states held across a second boundary are in some table
    for pair in [
        ("SYN_SENT", "LISTEN"),
        ("ESTABLISHED", "SYN_RCVD"),
        ("ESTABLISHED", "ESTABLISHED"),
        ("CLOSE_WAIT", "FIN_WAIT_2"),
        ("LAST_ACK", "TIME_WAIT"),
        ("FIN_WAIT_1", "CLOSE_WAIT"),
    ]:
        assert pair in states, (pair, states)
    clients = {r[1] for t in tables for r in t[1]}
    assert f"[{V6A}]:51234" in clients and "[fd00::5]:40004" in clients and "10.0.0.4:40002" in clients
    final = tables[-1][1]
    # open at the end: the unanswered SYN and the mid-stream flow
    assert {(r[1], r[2], r[4]) for r in final} == {
        ("10.0.0.3:40001", "SYN_SENT", "LISTEN"),
        ("10.0.0.4:40002", "ESTABLISHED", "ESTABLISHED"),
    }
    # c's first SYN, t and d time out (3 s idle); d and c come back (mid-stream, new SYN)
    st = rec.stats
    assert (
        st.flows_created,
        st.flows_midstream,
        st.flows_ended_fin,
        st.flows_ended_rst,
        st.flows_ended_timeout,
        st.flows_ended_eof,
    ) == (8, 2, 2, 1, 3, 2)
    if json_out:
        snaps = [json.loads(x) for x in rec.stdout.splitlines() if '"type": "snapshot"' in x]
        ts = [s["ts"] for s in snaps]
        assert ts == sorted(ts) and all(x == int(x) for x in ts)
        summary = json.loads(rec.stdout.splitlines()[-1])
        assert summary["type"] == "summary" and summary["connections"] == 8 and summary["open_at_end"] == 2
    else:
        assert "midstat: 8 connections (2 picked up mid-stream)" in rec.stdout
        assert "midstat: 6 connections ended before the end of the input:" in rec.stdout


def test_table_every_second_and_in_start_order(mosfw_capture, mosfw_run):
    """A table at each second of input time; rows in the order the
    connections started; a gap in the capture gives one table."""
    cap = mosfw_capture(start=2000.0, step=0.001)
    convs = [cap.conversation(client=(f"10.1.0.{i}", 1000 + i), server=SRV4) for i in range(1, 6)]
    for c in reversed(convs):
        c.handshake()
    for _ in range(4):
        cap.advance(1.0)
        convs[0].send("client", 10)
    cap.advance(10.0)  # a gap: one table for it
    convs[0].send("client", 10)
    rec = mosfw_run(cap, plugins=[str(APP_DIR)], events=None, options={"json_out": True})
    snaps = [json.loads(x) for x in rec.stdout.splitlines() if '"snapshot"' in x]
    assert [s["ts"] for s in snaps] == [2001.0, 2002.0, 2003.0, 2004.0, 2014.0]
    for s in snaps:
        assert [r["client"] for r in s["connections"]] == [f"10.1.0.{i}:{1000 + i}" for i in range(5, 0, -1)]


def test_refresh_mode_redraws_each_table(app, mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=3000.0)
    c = cap.conversation(client=CLI4, server=SRV4)
    c.handshake()
    cap.advance(1.0)
    c.send("client", 5)
    cap.advance(1.0)
    c.send("client", 5)
    rec = mosfw_run(cap, plugins=[str(APP_DIR)], events=None, options={"refresh": True})
    out = rec.stdout
    assert out.count(app.CLEAR_SCREEN) == 2  # one per second; the final table is appended
    parts = out.split(app.CLEAR_SCREEN)
    assert parts[0] == ""
    for part in parts[1:]:
        title, rest = part.split("\n\n", 1)
        assert title.startswith("midstat  ") and "1 connection" in title
        assert rest.startswith(HEADER + "\n")
    assert parts[-1].count(HEADER) == 2  # the last second's table, then the final one
    plain = mosfw_run(cap, plugins=[str(APP_DIR)], events=None)
    assert app.CLEAR_SCREEN not in plain.stdout  # not a terminal, not asked: a plain stream


def _configured(options: dict, **config_kw):
    """(plugin manager, config) after midstat's mosfw_configure."""
    from mosfw.manager import MosfwPluginManager
    from mosfw.runconfig import Config

    pm = MosfwPluginManager()
    pm.load(str(APP_DIR))
    pm.check()
    kw = {"read_file": str(HTTP_LOSS), "stdout": io.StringIO(), "stderr": io.StringIO()}
    kw.update(config_kw)
    config = Config(options=options, pluginmanager=pm, **kw)
    pm.hook.mosfw_configure(config=config)
    return pm, config


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_refresh_is_the_default_only_live_on_a_terminal(app):
    def mode(options, **kw):
        _, config = _configured(options, **kw)
        return app._printer(config).mode

    assert mode({}, read_file=None, interface="eth9", stdout=FakeTTY()) == "refresh"
    assert mode({}, read_file=None, interface="eth9", stdout=io.StringIO()) == "stream"
    assert mode({}, stdout=FakeTTY()) == "stream"  # a file on a terminal: append
    assert mode({"refresh": False}, read_file=None, interface="eth9", stdout=FakeTTY()) == "stream"
    assert mode({"once": True}, read_file=None, interface="eth9", stdout=FakeTTY()) == "once"


def test_stat_print_reading_a_file_is_a_note(mosfw_run):
    rec = mosfw_run(HTTP_LOSS, plugins=[str(APP_DIR)], events=None, options={"stat_print": ("eth0",)})
    assert rec.stderr.splitlines() == [
        "midstat: note: stat_print (eth0) is for live capture; ignored while reading a file"
    ]
    # live, stat_print naming another interface than the one captured
    _, config = _configured({"stat_print": ("eth0", "eth1")}, read_file=None, interface="eth1")
    assert config.stderr.getvalue() == (
        "midstat: note: stat_print names eth0, not captured in this run (capturing on eth1)\n"
    )


# ---------------------------------------------------------------------------
# what midstat subscribes to


def _mask_for(options: dict, **config_kw) -> int:
    pm, _ = _configured(options, **config_kw)
    return pm.event_mask()


def test_subscribes_only_to_the_tick():
    """The tables are read from the engine's flow table at each tick and
    at the end of the input, and the last ended connections are records
    the engine keeps: no Python call per connection or state change."""
    from mosfw import EventType as E

    assert _mask_for({}) == int(E.TICK)
    assert _mask_for({"once": True}) == int(E.TICK)  # (its mosfw_tick_result returns None)
    assert _mask_for({"summary_only": True}) == int(E.TICK)
    assert _mask_for(
        {"summary_only": True, "stat_print": ("eth9",)}, read_file=None, interface="eth9"
    ) == int(E.TICK)


def test_once_and_summary_only_merge_no_table(mosfw_capture, mosfw_run):
    cap = mosfw_capture(start=4000.0)
    c = cap.conversation(client=CLI4, server=SRV4)
    c.handshake()
    cap.advance(2.5)
    c.send("client", 5)
    once = mosfw_run(cap, plugins=[str(APP_DIR)], events=None, options={"once": True})
    assert once.stdout.count(HEADER) == 1  # the final table only
    assert "ESTABLISHED" in once.stdout
    quiet = mosfw_run(cap, plugins=[str(APP_DIR)], events=None, options={"summary_only": True})
    assert HEADER not in quiet.stdout and quiet.stdout.startswith("midstat: 1 connection ")


# ---------------------------------------------------------------------------
# the launcher


def launch(*args, cwd=None, timeout=60):
    return subprocess.run([str(LAUNCHER), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_launcher_q_prints_only_the_summary(tmp_path):
    cp = launch("-r", str(HTTP_LOSS), "-q", cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert len(lines) == 2 and all(x.startswith("midstat: ") for x in lines)
    assert lines[0].startswith("midstat: 4 connections (0 picked up mid-stream) in 0.97 s of input: 4 closed")
    assert "Proto" not in cp.stdout


def test_launcher_once_prints_one_table(tmp_path):
    head, e, recs = read_pcap(HTTP_LOSS)
    cut = write_pcap(tmp_path / "cut.pcap", head, e, recs[:150])
    cp = launch("-r", "cut.pcap", "--once", cwd=tmp_path)  # relative to the caller's directory
    assert cp.returncode == 0, cp.stderr
    lines = cp.stdout.splitlines()
    assert lines.count(HEADER) == 1
    rows = [x for x in lines if x.startswith("tcp ")]
    assert len(rows) == 1 and rows[0].split()[2] == "10.77.65.2:54496"
    assert lines.index(HEADER) == 0 and lines[1] == rows[0]
    assert lines[-2].startswith("midstat: 3 connections")
    assert cut.exists()


def test_launcher_json_lines(tmp_path):
    cp = launch("-r", str(HTTP_LOSS), "--json", cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    docs = [json.loads(x) for x in cp.stdout.splitlines()]
    assert [d["type"] for d in docs] == ["snapshot", "final", "summary"]
    assert docs[0]["ts"] == 1795701171.0 and docs[0]["connections"] == []
    assert docs[1]["ts"] == pytest.approx(1795701171.863283)
    s = docs[2]
    assert (s["connections"], s["closed_fin"], s["packets"], s["retransmissions"], s["orphans"]) == (
        4,
        4,
        266,
        3,
        2,
    )
    q = launch("-r", str(HTTP_LOSS), "--json", "-q", cwd=tmp_path)
    assert [json.loads(x)["type"] for x in q.stdout.splitlines()] == ["summary"]


def test_launcher_passes_cores_through(tmp_path):
    cp = launch("-r", str(HTTP_LOSS), "-c", "1", "--once", cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.splitlines()[0] == HEADER


@pytest.mark.parametrize("capture", ["synscan.pcap", "KakaoTalk_chat.pcap", "ocsp.pcapng"])
def test_several_cores_print_the_one_core_output_with_the_cpu_column(tmp_path, capture):
    """-c 3: one table a second for all cores (merged in the parent), the
    final table and the digest of the last ended connections: byte for
    byte what one core prints, but for the CPU column, which names all
    three cores."""
    pcap = REPO / "tests" / "multicore" / "data" / capture
    one = launch("-r", str(pcap), "-c", "1", cwd=tmp_path)
    three = launch("-r", str(pcap), "-c", "3", cwd=tmp_path)
    assert one.returncode == 0 and three.returncode == 0, one.stderr + three.stderr
    cpu = re.compile(r"^tcp   (\d) ", re.M)
    assert set(cpu.findall(one.stdout)) == {"0"}
    assert set(cpu.findall(three.stdout)) == {"0", "1", "2"}
    assert cpu.sub("tcp   X ", one.stdout) == cpu.sub("tcp   X ", three.stdout)
    assert one.stdout.count(HEADER) >= 8 and " ended before the end of the input" in one.stdout


def test_launcher_forward_1_fails_naming_forward(tmp_path):
    conf = tmp_path / "mos.conf"
    conf.write_text("mos {\n\tforward = 1\n\tnetdev {\n\t\teth0 0x0001\n\t}\n}\n")
    cp = launch("-f", str(conf), "-r", str(HTTP_LOSS), cwd=tmp_path)
    assert cp.returncode != 0
    assert "forward" in cp.stderr and "passive" in cp.stderr
    assert f"{conf}:2:" in cp.stderr
    assert "Proto" not in cp.stdout


def test_launcher_typo_key_warns_with_its_line(tmp_path):
    conf = tmp_path / "mos.conf"
    conf.write_text("mos {\n\tforward = 0\n\n\ttcp_timout = 10\n}\n")
    cp = launch("-f", "mos.conf", "-r", str(HTTP_LOSS), "--once", cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    warn = [x for x in cp.stderr.splitlines() if "tcp_timout" in x]
    assert len(warn) == 1 and warn[0].startswith("mos.conf:4: warning:") and "tcp_timeout" in warn[0]
    assert cp.stdout.splitlines()[0] == HEADER


def test_sample_mos_conf_is_clean():
    from mosfw.mosconf import load_config

    cfg = load_config(APP_DIR / "mos.conf")
    assert cfg.forward == 0 and cfg.netdevs == (("eth0", 1),) and cfg.cores == 1
    assert cfg.stat_print == ("eth0",) and cfg.warnings == () and cfg.notes == ()


def test_launcher_missing_interface(tmp_path):
    cp = launch("-i", "mfnosuch0", cwd=tmp_path)
    assert cp.returncode == 1
    assert "mfnosuch0" in cp.stderr
    assert cp.stdout == ""


def test_launcher_help_and_executable():
    assert os.access(LAUNCHER, os.X_OK)
    cp = launch("-h")
    assert cp.returncode == 0
    assert cp.stdout.startswith("Usage: midstat ")
    for opt in ("--once", "--json", "--summary-only", "--stat-print", "--refresh"):
        assert opt in cp.stdout


@pytest.mark.parametrize("udp", [False, True])
def test_udp_flows_listed_only_with_udp(mosfw_capture, mosfw_run, udp):
    # TCP only, as mOS's midstat, unless --udp; ICMP never (nobody asked)
    cap = mosfw_capture(start=10.0)
    cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80)).handshake()
    cap.udp(("10.0.0.3", 5353), ("10.0.0.4", 53), b"query")
    cap.icmp("10.0.0.3", "10.0.0.4")
    rec = mosfw_run(cap, plugins=[str(APP_DIR)], events=None, options={"once": True, "udp": udp})
    rows = [line.split() for line in rec.stdout.splitlines() if line.startswith(("tcp ", "udp "))]
    expected = [["tcp", "0", "10.0.0.1:40000", "ESTABLISHED", "10.0.0.2:80", "ESTABLISHED"]]
    if udp:  # (5353 is not a likely server port to the engine: the sender is the client)
        expected.append(["udp", "0", "10.0.0.3:5353", "-", "10.0.0.4:53", "-"])
    assert rows == expected
    assert rec.stats.flows_created == (2 if udp else 1)
