"""Issue 6, must-show 1: ``-c 1``, ``-c 2`` and ``-c 4`` give the same
results on real captures.

For every capture, ``python -m mosfw run -r F -p eventlog -p
samples/tracker -c N`` for N in 1, 2, 3, 4 (N > 1: the input read once
and fed to the cores' rings, native/feed.c) must yield the same multiset of
(client, server, event, side, reason) records from eventlog (orphans:
sender, receiver) and the same tracker conn.log records (``core``
aside); every flow's events must come from exactly one core, and with
more flows than cores the work must really be split (more than one core
raised events). The engine counters printed with ``--stats-json`` must
be the same too (``other_shard`` aside, which only exists with several
cores). Tracker's records are checked only where samples/tracker exists.

Captures: the bundled demo (tests/data/http-loss.pcap), eight real
captures from nDPI's test corpus (tests/multicore/data/README.md: SYN scan,
web attack, IPv6, Linux SLL, raw IP, pcapng, a fuzzed file), a synthetic
capture of edge cases (mid-stream pick-up, RST, half-open, idle timeout,
port reuse, late packets, VLAN, IPv6) and a capture made here from real
HTTP traffic with loss between two network namespaces (tests/realnet.py;
skipped with the reason where namespaces cannot be made). About 15 s.
"""

from __future__ import annotations

import collections
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mc_helpers import DATA, ROOT, eventlog_lines, flow_cores, mosfw_cli, multiset, stats_json

REAL = [ROOT / "tests" / "data" / "http-loss.pcap"] + sorted(DATA.glob("*.pcap*"))
#: the runs compared: (cores, environment changes)
RUNS = [(1, None), (2, None), (3, None), (4, None)]
#: counters that differ by design between core counts
PER_RUN = {"other_shard", "seconds"}


TRACKER = ROOT / "samples" / "tracker"


def run_all(pcap) -> dict[tuple, tuple[list[dict], dict, list[dict]]]:
    """For each of RUNS: eventlog's lines, the --stats-json counters
    and tracker's conn.log records (JSON lines on the same stdout: the
    records are the lines with a ``uid``), when samples/tracker exists."""
    out = {}
    tracker = ["-p", TRACKER] if TRACKER.exists() else []
    for n, shared in RUNS:
        env = dict(os.environ)
        r = mosfw_cli(
            "run", "-r", pcap, "-p", "eventlog", *tracker, "-c", n, "-q", "--stats-json", "-", env=env
        )
        assert r.returncode == 0, f"-c {n} on {pcap}: rc={r.returncode}\n{r.stderr}"
        stats = stats_json(r.stderr)
        lines = eventlog_lines(r.stdout)
        conns = [{k: v for k, v in d.items() if k != "core"} for d in lines if "uid" in d]
        out[(n, shared)] = ([d for d in lines if "uid" not in d], stats, conns)
    return out


def _frozen(records: list[dict]) -> collections.Counter:
    return collections.Counter(json.dumps(r, sort_keys=True) for r in records)


def check_same(pcap, min_flows_to_split: int = 8) -> dict[int, tuple[list[dict], dict, list[dict]]]:
    runs = run_all(pcap)
    base_events, base_stats, base_conns = runs[(1, None)]
    assert base_events, f"{pcap}: no events at all"
    base = multiset(base_events)
    if TRACKER.exists():
        assert base_conns, f"{pcap}: tracker wrote no record"
    for n, shared in RUNS[1:]:
        events, stats, conns = runs[(n, shared)]
        a, b = _frozen(base_conns), _frozen(conns)
        assert a == b, f"{pcap}: tracker records differ, -c 1 only: {a - b}; -c {n} only: {b - a}"
        got = multiset(events)
        assert got == base, (
            f"{pcap}: -c {n} differs from -c 1: only with -c 1: {base - got}; only with -c {n}: {got - base}"
        )
        cores = flow_cores(events)
        split = {flow: cs for flow, cs in cores.items() if len(cs) != 1}
        assert not split, f"{pcap}: -c {n}: flows with events on several cores: {split}"
        used = {e["core"] for e in events if "client" in e}
        assert used <= set(range(n))
        if len(cores) >= min_flows_to_split:
            assert len(used) > 1, f"{pcap}: -c {n}: {len(cores)} flows, all on core(s) {used}"
        diff = {
            k: (base_stats[k], stats[k]) for k in base_stats if k not in PER_RUN and base_stats[k] != stats[k]
        }
        assert not diff, f"{pcap}: -c {n}: counters differ from -c 1 (-c 1, -c {n}): {diff}"
        if n > 1:
            assert stats["other_shard"] == (n - 1) * stats["tcp_packets"]
    return runs


@pytest.mark.parametrize("pcap", REAL, ids=[p.name for p in REAL])
def test_real_captures_same_records_at_1_2_4_cores(pcap):
    check_same(pcap)


def edge_capture(path: Path) -> None:
    """Many small flows covering the engine's corner cases, interleaved."""
    from mosfw.testing.flows import Capture

    cap = Capture(start=5000.0, step=0.001)
    for i in range(24):
        v6 = i % 3 == 0
        cli = (f"fd00::{i + 1}" if v6 else f"10.1.{i}.1", 40000 + i)
        srv = ("fd00::ff" if v6 else "10.2.0.1", 80 if i % 2 else 443)
        c = cap.conversation(client=cli, server=srv, vlan=100 if i % 5 == 0 else None)
        kind = i % 6
        if kind == 0:  # normal, with a retransmission and a late ACK (orphan)
            c.handshake()
            seg = c.send("server", 800)
            c.rexmit(seg)
            c.close(first="client")
            c.ack("client")
        elif kind == 1:  # reset
            c.handshake()
            c.send("client", 100)
            c.rst("server")
        elif kind == 2:  # half-open (a SYN nobody answers, retried)
            c.half_open(retries=1)
        elif kind == 3:  # picked up mid-stream, closed by the server
            c.midstream()
            c.send("server", 300)
            c.send("client", 50)
            c.close(first="server")
        elif kind == 4:  # loss before the tap (the flow later times out)
            c.handshake()
            c.send("client", 200, emit=False)
            c.send("client", 200)
        else:  # port reuse: a second connection on the same 5-tuple
            c.handshake()
            c.close(first="client")
            d = cap.conversation(client=cli, server=srv, client_isn=900000, server_isn=700000)
            d.handshake()
            d.send("client", 10)
    idle = cap.conversation(client=("10.9.9.9", 50000), server=("10.2.0.1", 80))
    idle.handshake()
    # past tcp_timeout (300 s in a run with the tracker: Zeek's): the idle
    # flow ends with reason timeout
    cap.advance(310.0)
    late = cap.conversation(client=("10.9.9.8", 50001), server=("10.2.0.1", 80))
    late.handshake()
    late.close()
    still = cap.conversation(client=("fd00::99", 50002), server=("fd00::ff", 443))
    still.handshake()
    still.send("client", 64)  # open at the end of the file: reason eof
    cap.write_pcap(path)


def test_edge_case_capture_same_records(tmp_path):
    pcap = tmp_path / "edges.pcap"
    edge_capture(pcap)
    runs = check_same(pcap)
    reasons = {e.get("reason") for e in runs[(1, None)][0] if e["event"] == "conn_end"}
    kinds = {e["event"] for e in runs[(1, None)][0]}
    # the capture really has what it is meant to cover
    assert {"fin", "rst", "timeout", "eof"} <= reasons, reasons
    assert {"orphan", "rexmit", "conn_start", "conn_end"} <= kinds, kinds
    assert any(e["event"] == "conn_start" and e["midstream"] for e in runs[(1, None)][0])


def test_realnet_capture_with_loss_same_records(tmp_path):
    import realnet

    ok, why = realnet.can_use_netns()
    if not ok:
        pytest.skip(why)
    pcap = tmp_path / "loss.pcap"
    plan = [(20_000 + 7_000 * i, 6 if i % 3 == 0 else 4) for i in range(24)]
    sc = realnet.run_http_scenario(pcap, plan, drop_percent=3, drop_side="both", parallel=6)
    assert all(f.ok for f in sc.fetches), [f for f in sc.fetches if not f.ok]
    runs = check_same(pcap)
    starts = {(e["client"], e["server"]) for e in runs[(1, None)][0] if e["event"] == "conn_start"}
    assert len(starts) == len(plan)


def test_tracker_conn_log_file_is_joined_in_core_order(tmp_path):
    """--conn-log with -c 4: the cores' records end up in one file, the
    same records as with -c 1."""
    if not TRACKER.exists():
        pytest.skip("samples/tracker is not there")
    pcap = DATA / "WebattackRCE.pcap"
    logs = {}
    for n in (1, 4):
        log = tmp_path / f"conn{n}.log"
        r = mosfw_cli("run", "-r", pcap, "-p", TRACKER, "--conn-log", log, "-c", n, "-q")
        assert r.returncode == 0, r.stderr
        logs[n] = [{k: v for k, v in d.items() if k != "core"} for d in eventlog_lines(log.read_text())]
    assert logs[1] and _frozen(logs[1]) == _frozen(logs[4])
    assert not list(tmp_path.glob(".tracker-*"))  # the per-core parts were cleaned up
