"""Issue 6, must-show 3: live capture with ``-c 2`` in network namespaces.

``mosfw run -i VETH -c 2 -p eventlog -p samples/midstat --json`` runs in
the server's namespace
(two workers, one AF_PACKET fanout group in hash mode), tcpdump records
the same veth, and 40 curl fetches (one TCP connection each, from as many
client ports, a quarter over IPv6, 8 at a time) go through it with a 2 %
random drop on both ingresses (so there are retransmissions). Then
SIGINT stops mosfw.

Checks: the run ends cleanly; every one of the 40 connections was tracked
whole (client and server CONN_START, not mid-stream; CONN_END with reason
fin; no eof, no orphan of theirs) by exactly one core; both cores tracked
some of them; the kernel dropped nothing; and the live ``-c 2`` records
are the same multiset of (client, server, event, side, reason) as an
offline ``-c 1`` run on tcpdump's capture of the same traffic; midstat
printed one table a second (both cores' rows, merged in the parent) and
one final table. About 8 s.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet
from mc_helpers import ROOT, eventlog_lines, mosfw_cli, multiset, stats_json

pytestmark = pytest.mark.realnet

FETCHES = 40


def packet_sockets(net, side: str) -> int:
    """AF_PACKET sockets open in a namespace (/proc/net/packet)."""
    cp = net.run_in(side, ["cat", "/proc/net/packet"], timeout=5)
    return max(0, len(cp.stdout.strip().splitlines()) - 1)


def wait_capture_sockets(net, side: str, n: int, proc, err_path, timeout: float = 20.0) -> None:
    """Until ``side``'s namespace has ``n`` AF_PACKET sockets open (mosfw's
    workers have opened their captures); fails if mosfw exits first."""
    deadline = time.monotonic() + timeout
    while packet_sockets(net, side) < n:
        assert proc.poll() is None, err_path.read_text()
        assert time.monotonic() < deadline, f"mosfw did not open its capture sockets ({n} expected)"
        time.sleep(0.05)


def check_stopped_cleanly(err_path, rc: int, results) -> dict:
    """The live run stopped by SIGINT ended well: every fetch worked, exit 0,
    no traceback, status stopped, no kernel drop. Its --stats-json."""
    err = err_path.read_text()
    assert all(r.ok for r in results), [r for r in results if not r.ok]
    assert rc == 0, err
    assert "Traceback" not in err, err
    stats = stats_json(err)
    assert stats["kernel_drops"] == 0 and stats["status"] == "stopped", stats
    return stats


def stop_with_sigint(proc, timeout: float = 30.0) -> int:
    """SIGINT to mosfw, as Ctrl-C; its exit code (fails when it does not
    stop within ``timeout``)."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"mosfw did not stop within {timeout:g} s of SIGINT") from None


def wait_connections_closed(net, timeout: float = 10.0) -> None:
    """Until the server has no connection left that is not closed (a lost
    FIN or last ACK is retransmitted after 0.2, 0.4, 0.8 s ...)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = net.run_in("server", ["ss", "-tanH", "state", "connected"], check=False)
        busy = [line for line in r.stdout.splitlines() if line.strip() and not line.startswith("TIME-WAIT")]
        if not busy:
            return
        time.sleep(0.1)


def test_live_two_cores_split_flows_and_track_each_whole(tmp_path):
    ok, why = realnet.can_use_netns()
    if not ok:
        pytest.skip(why)
    pcap = tmp_path / "live.pcap"
    out_path, err_path = tmp_path / "events.jsonl", tmp_path / "mosfw.err"
    with realnet.netpair() as net:
        net.serve_files([15_000, 60_000, 150_000])
        net.add_random_drop(2, side="both")
        with net.capture(pcap):
            before = packet_sockets(net, "server")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                proc = net.popen_in(
                    "server",
                    [
                        sys.executable,
                        "-m",
                        "mosfw",
                        "run",
                        "-i",
                        net.srv_if,
                        "-c",
                        "2",
                        "-p",
                        "eventlog",
                        "-p",
                        "samples/midstat",
                        "--json",
                        "--stats-json",
                        "-",
                    ],
                    stdout=out,
                    stderr=err,
                    cwd=ROOT,
                )
            wait_capture_sockets(net, "server", before + 2, proc, err_path)
            time.sleep(0.5)  # both sockets have joined the fanout group
            sizes = [15_000, 60_000, 150_000]
            urls = [net.url(f"f{sizes[i % 3]}.bin", 6 if i % 4 == 0 else 4) for i in range(FETCHES)]
            results = net.fetch(urls, parallel=8)
            wait_connections_closed(net)  # with 2 % loss a FIN can need a few RTOs
            time.sleep(0.5)
            rc = stop_with_sigint(proc)
        srv = {net.srv4, f"[{net.srv6}]"}
    stats = check_stopped_cleanly(err_path, rc, results)
    assert stats["other_shard"] == 0  # the kernel split the flows, not the cores

    records = eventlog_lines(out_path.read_text())
    events = [e for e in records if "event" in e]
    tables = [e for e in records if e.get("type") in ("snapshot", "final")]
    # midstat: one table a second for both cores (merged in the parent),
    # then the final one; each row with the core that tracked its flow
    # (which rows there are depends on where the seconds fall)
    seconds = [t["ts"] for t in tables if t["type"] == "snapshot"]
    assert seconds and seconds == sorted(set(seconds)), seconds
    assert [t["type"] for t in tables][-1] == "final" and sum(t["type"] == "final" for t in tables) == 1
    flow_core = {(e["client"], e["server"]): e["core"] for e in events if "client" in e}
    rows = [r for t in tables for r in t["connections"]]
    assert all(flow_core[(r["client"], r["server"])] == r["cpu"] for r in rows), rows
    web = [
        e
        for e in events
        if "client" in e and e["server"].rsplit(":", 1)[0] in srv and e["server"].endswith(":8080")
    ]
    by_flow: dict[tuple, list] = collections.defaultdict(list)
    for e in web:
        by_flow[(e["client"], e["server"])].append(e)
    assert len(by_flow) == FETCHES, sorted(by_flow)
    per_core = collections.Counter()
    for flow, evs in by_flow.items():
        cores = {e["core"] for e in evs}
        assert len(cores) == 1, f"{flow}: events on cores {cores}"
        per_core[cores.pop()] += 1
        starts = sorted((e["side"], e["midstream"]) for e in evs if e["event"] == "conn_start")
        assert starts == [("client", False), ("server", False)], (flow, starts)
        ends = [e["reason"] for e in evs if e["event"] == "conn_end"]
        assert ends == ["fin"], (flow, ends)
    assert set(per_core) == {0, 1} and min(per_core.values()) > 0, per_core
    assert stats["rexmits"] > 0  # the drops made retransmissions

    # the same traffic, offline, one core: the same records
    r = mosfw_cli("run", "-r", pcap, "-p", "eventlog", "-c", "1", "-q")
    assert r.returncode == 0, r.stderr
    offline = eventlog_lines(r.stdout)
    assert multiset(events) == multiset(offline), (
        f"live -c 2 only: {multiset(events) - multiset(offline)}; "
        f"offline -c 1 only: {multiset(offline) - multiset(events)}"
    )
