"""midstat live on a real interface, as a user runs it.

Two network namespaces joined by a veth pair (tests/realnet.py); nginx (or
python's http.server) in one, curl in the other. midstat runs in the
client's namespace with ``-i`` on the client's veth end and a mos.conf
whose ``stat_print`` names that interface, started through its launcher
with ``ip netns exec``. The test reads midstat's output while it runs.

A connection's handshake and close take microseconds on a veth, and
midstat prints a table once a second, so the test holds the connection in
each state with nftables drops that act *after* the tap (on the ingress
hook: libpcap sees a packet before the rule drops it):

1. the client's SYNs are dropped at the server's ingress: midstat sees
   the SYN, the server never answers -> ``SYN_SENT``/``LISTEN``;
2. the server's SYN/ACKs are dropped at the client's ingress: midstat
   sees the SYN/ACK -> ``ESTABLISHED``/``SYN_RCVD`` until the client,
   which never got it, retransmits after the rule is gone;
3. curl fetches three files over the one connection, one a second
   (``--rate 1/s``) -> ``ESTABLISHED``/``ESTABLISHED``;
4. curl closes; the server's FIN is dropped at the client's ingress:
   midstat saw it -> ``TIME_WAIT``/``LAST_ACK`` until the server's
   retransmitted FIN gets through after the rule is gone, the client acks,
   the connection ends (CONN_END fin) and leaves the table, as in mOS.

Then SIGTERM: midstat exits 0 after the final table and its summary. The
stat_print lines (``[CPU 0] IFACE flows: ..., RX: ...(pps) ...``) come
once a second on stderr. A missing interface is a one-line error and
exit code 1; a capture without CAP_NET_RAW too.

Needs root, ``ip netns``, nft, curl (skips with the reason otherwise).
About 10-15 s, most of it TCP's retransmission timers.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet

pytestmark = pytest.mark.realnet

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / "samples" / "midstat" / "midstat"
HEADER_RE = re.compile(r"^Proto CPU Client Address +Client State Server Address +Server State$")
STAT_RE_T = (
    r"^\[CPU 0\] {iface} flows: +(\d+), RX: +(\d+)\(pps\) \(err: +(\d+)\), "
    r"+(\d+\.\d\d)\(Gbps\), drops: +(\d+)$"
)
CLOSING = {"FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSED"}


def need_netns():
    ok, why = realnet.can_use_netns(("ip", "ss", "curl", "nft"))
    if not ok:
        pytest.skip(f"live midstat test needs network namespaces: {why}")
    if not LAUNCHER.exists() or not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("samples/midstat/midstat needs the repository's .venv (make build)")


class Lines:
    """Collects a stream's lines in a thread (with arrival times)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self.lock:
            return list(self.lines)


def tables_of(lines: list[str], complete_only: bool = True) -> list[list[list[str]]]:
    """Text tables in order: each a list of rows split into 6 fields. With
    complete_only, the last table counts only once another line follows
    it that is not one of its rows (it may still be arriving)."""
    tables: list[list[list[str]]] = []
    cur = None
    closed = False
    for line in lines:
        if HEADER_RE.match(line):
            cur = []
            tables.append(cur)
            closed = False
            continue
        if cur is not None and line.startswith("tcp "):
            cur.append(line.split())
            continue
        closed = True
        cur = None
    if complete_only and tables and not closed and cur is not None:
        tables.pop()
    return tables


def wait_for(what: str, pred, proc, timeout: float, out: Lines, err: Lines):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(
        f"timed out waiting for {what} (midstat rc={proc.poll()})\n--- stdout:\n"
        + "\n".join(out.snapshot()[-40:])
        + "\n--- stderr:\n"
        + "\n".join(err.snapshot()[-20:])
    )


def nft(net, side: str, script: str) -> None:
    net.run_in(side, ["nft", "-f", "-"], input=script, timeout=10)


def drop_rule(table: str, ifname: str, match: str) -> str:
    return (
        f'table netdev {table} {{\n  chain in {{ type filter hook ingress device "{ifname}" '
        f"priority 0; policy accept;\n    {match} drop\n  }}\n}}\n"
    )


def test_midstat_live_on_veth(tmp_path):
    need_netns()
    with realnet.netpair() as net:
        net.serve_files({"a.bin": 50_000})
        conf = tmp_path / "mos.conf"
        conf.write_text(
            f"mos {{\n\tforward = 0\n\tnetdev {{\n\t\t{net.cli_if} 0x0001\n\t}}\n"
            f"\tstat_print = {net.cli_if}\n}}\n"
        )
        # drops, after the tap: SYNs at the server; the server's FINs at the client
        port = net.port
        nft(net, "server", drop_rule("mfsyn", net.srv_if, f"tcp dport {port} tcp flags & (syn | ack) == syn"))
        nft(net, "client", drop_rule("mffin", net.cli_if, f"tcp sport {port} tcp flags & fin == fin"))

        proc = net.popen_in(
            "client",
            [str(LAUNCHER), "-f", str(conf), "-i", net.cli_if, "-c", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        out, err = Lines(proc.stdout), Lines(proc.stderr)
        stat_re = re.compile(STAT_RE_T.format(iface=re.escape(net.cli_if)))

        # capturing: ticks start with the first packet; poke the link until a stat line shows
        def stat_lines():
            return [m for m in map(stat_re.match, err.snapshot()) if m]

        deadline = time.monotonic() + 15
        while not stat_lines() and time.monotonic() < deadline and proc.poll() is None:
            net.run_in("client", ["ping", "-c", "1", "-W", "1", net.srv4], timeout=5, check=False)
            time.sleep(0.2)
        wait_for(
            "a stat_print line (nothing at all: does the engine's live loop return to Python "
            "while packets trickle in? see test_midstat_live_stops_on_sigterm_when_idle)",
            stat_lines,
            proc,
            1,
            out,
            err,
        )

        curl = net.popen_in(
            "client",
            [
                "curl",
                "-sS",
                "-g",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "-o",
                "/dev/null",
                "--rate",
                "1/s",
                "--max-time",
                "40",
                "-w",
                "%{http_code} %{num_connects}\\n",
                *net.urls(["a.bin"] * 3),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        cli_prefix = f"{net.cli4}:"
        srv = f"{net.srv4}:{port}"

        def rows_now(complete_only=True):
            return [
                r
                for t in tables_of(out.snapshot(), complete_only)[-1:]
                for r in t
                if r[2].startswith(cli_prefix) and r[4] == srv
            ]

        def seen(cst, sst):
            def pred():
                return [
                    r for r in rows_now() if (cst is None or r[3] in cst) and (sst is None or r[5] in sst)
                ]

            return pred

        # 1. SYN seen, no answer: SYN_SENT / LISTEN
        row = wait_for("SYN_SENT/LISTEN", seen({"SYN_SENT"}, {"LISTEN"}), proc, 10, out, err)[0]
        conn = row[2]
        assert row[0] == "tcp" and row[1] == "0"
        # 2. let SYNs through, drop the SYN/ACK after the tap: ESTABLISHED / SYN_RCVD
        nft(
            net,
            "client",
            drop_rule("mfsynack", net.cli_if, f"tcp sport {port} tcp flags & (syn | ack) == syn | ack"),
        )
        nft(net, "server", "delete table netdev mfsyn\n")
        row = wait_for("SYN_RCVD", seen(None, {"SYN_RCVD"}), proc, 10, out, err)[0]
        assert row[2] == conn and row[3] == "ESTABLISHED"
        nft(net, "client", "delete table netdev mfsynack\n")
        # 3. the handshake completes at the next retransmission; curl fetches
        wait_for("ESTABLISHED/ESTABLISHED", seen({"ESTABLISHED"}, {"ESTABLISHED"}), proc, 10, out, err)
        # 4. curl closes; the server's FIN is seen but dropped: closing states
        row = wait_for("closing states", seen(CLOSING, {"LAST_ACK"}), proc, 15, out, err)[0]
        assert row[2] == conn and row[3] in ("TIME_WAIT", "FIN_WAIT_2", "CLOSING"), row
        nft(net, "client", "delete table netdev mffin\n")
        cout, cerr = curl.communicate(timeout=30)
        assert curl.returncode == 0, cerr
        assert cout.split() == ["200", "1", "200", "0", "200", "0"], cout  # one connection, three fetches

        # the connection ends (FIN/FIN, last ACK seen) and leaves the table
        n_before = len(tables_of(out.snapshot()))

        def gone():
            tabs = tables_of(out.snapshot())
            return len(tabs) > n_before and not [r for r in tabs[-1] if r[2] == conn]

        wait_for("the connection to leave the table", gone, proc, 15, out, err)
        time.sleep(1.2)  # one more second of stat lines

        # SIGTERM: final table, summary, exit 0
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("midstat did not exit within 10 s of SIGTERM")
        out.thread.join(5)
        err.thread.join(5)
        lines = out.snapshot()
        assert proc.returncode == 0, "\n".join(err.snapshot()[-20:])

        # the states midstat showed for the connection, in order, duplicates folded
        history = []
        for t in tables_of(lines, complete_only=False):
            for r in t:
                if r[2] == conn and (not history or history[-1] != (r[3], r[5])):
                    history.append((r[3], r[5]))
        firsts = {}
        for i, pair in enumerate(history):
            firsts.setdefault(pair, i)
        est = firsts[("ESTABLISHED", "ESTABLISHED")]
        assert firsts[("SYN_SENT", "LISTEN")] < firsts[("ESTABLISHED", "SYN_RCVD")] < est, history
        assert any(c in CLOSING and i > est for i, (c, s) in enumerate(history)), history

        # after the last table: the final table, the ended connection, the summary
        summary = [x for x in lines if x.startswith("midstat: ") and " connection" in x and " in " in x]
        assert summary, lines[-10:]
        m = re.match(
            r"midstat: (\d+) connections? \(\d+ picked up mid-stream\) in [\d.]+ s of capture on "
            + re.escape(net.cli_if)
            + r": \d+ closed \((\d+) by FIN",
            summary[-1],
        )
        assert m and int(m.group(1)) >= 1 and int(m.group(2)) >= 1, summary[-1]
        last_header = max(i for i, x in enumerate(lines) if HEADER_RE.match(x))
        assert last_header < lines.index(summary[-1])
        assert any(conn in x and " fin after " in x for x in lines[last_header:]), lines[last_header:]
        assert any(x.startswith("midstat: capture drops: ") for x in lines)

        stats = stat_lines()
        assert len(stats) >= 5
        assert any(int(m.group(2)) > 0 for m in stats)  # packets per second seen
        assert all(int(m.group(3)) == 0 for m in stats)  # nothing malformed on a veth
        assert any(int(m.group(1)) >= 1 for m in stats)  # the connection was tracked


def test_midstat_live_stops_on_sigterm_when_idle():
    """Ctrl-C/SIGTERM on a quiet interface: the final table and the summary
    come at once. (A live loop that waits in libpcap for a packet, e.g.
    TPACKET_V3 in blocking mode, whose kernel never hands over an empty
    block, never gets to the stop request: the engine must poll with a
    timeout.)"""
    need_netns()
    with realnet.netpair() as net:
        proc = net.popen_in(
            "client",
            [str(LAUNCHER), "-i", net.cli_if, "--once"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        time.sleep(1.5)
        assert proc.poll() is None, proc.communicate()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail(
                "midstat did not stop within 5 s of SIGTERM on an idle interface: the engine's "
                "live read blocks while no packet arrives (native/source.c: read non-blocking "
                "and poll with a timeout)"
            )
        took = time.monotonic() - t0
    assert proc.returncode == 0, stderr
    assert took < 2.0, took
    lines = stdout.splitlines()
    assert HEADER_RE.match(lines[0]) and not [x for x in lines if x.startswith("tcp ")], stdout
    assert lines[1].startswith("midstat: 0 connections (0 picked up mid-stream) in "), stdout
    assert f"of capture on {net.cli_if}" in lines[1]


def test_midstat_live_missing_interface():
    need_netns()
    with realnet.netpair() as net:
        cp = net.run_in("client", [str(LAUNCHER), "-i", "mfnosuch0"], timeout=30, check=False)
    assert cp.returncode == 1
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and "mfnosuch0" in lines[0] and "no such" in lines[0].lower(), cp.stderr
    assert cp.stdout == ""


def test_midstat_live_without_cap_net_raw():
    need_netns()
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_NET_RAW")
    with realnet.netpair() as net:
        cp = net.run_in(
            "client",
            ["setpriv", "--inh-caps=-net_raw", "--bounding-set=-net_raw", str(LAUNCHER), "-i", net.cli_if],
            timeout=30,
            check=False,
        )
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    assert net.cli_if in cp.stderr and ("permission" in cp.stderr.lower() or "CAP_NET_RAW" in cp.stderr), (
        cp.stderr
    )
    assert cp.stdout == ""
