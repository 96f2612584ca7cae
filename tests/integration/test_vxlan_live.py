"""Live ``-c 2`` on a VXLAN underlay: both directions of each inner
connection on one core (``--tunnel-rehash``).

The kernel's AF_PACKET fanout hashes the outer headers. Linux's VXLAN
device picks each packet's outer UDP source port from a hash of the inner
flow that is not symmetric, so the two directions of one inner connection
usually travel in outer "flows" the kernel hashes apart: without
``--tunnel-rehash`` a live ``-c 2`` run would give each half of a
connection to a different core (docs/encapsulation.md). With it every
core reads every packet and keeps its shard of the *inner* 5-tuple.

Set-up: the kernel VXLAN overlay of test_vxlan_real.py between two
namespaces, nginx on the server's overlay address, 24 curl fetches over
it with 2 % inner loss. ``mosfw run -i VETH -c 2 --tunnel-rehash -p
eventlog`` runs on the server's underlay veth while tcpdump records the
same veth. Checks: every connection tracked whole (client and server
CONN_START, not mid-stream, one CONN_END fin) by exactly one core, both
cores used, the outer layer on each conn_start, and the live records the
same multiset as an offline ``-c 1`` run over tcpdump's capture; tshark's
count of the inner connections agrees. About 6 s.
"""

from __future__ import annotations

import collections
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "multicore"))
import realnet
from mc_helpers import ROOT, eventlog_lines, mosfw_cli, multiset
from test_multicore_live import (
    check_stopped_cleanly,
    packet_sockets,
    stop_with_sigint,
    wait_capture_sockets,
    wait_connections_closed,
)
from test_vxlan_real import VNI, _vxlan_pair

pytestmark = pytest.mark.realnet

FETCHES = 24
SIZES = [20_000, 200_000]


def test_live_two_cores_keep_each_inner_connection_whole(tmp_path):
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS + ("nft",))
    if not ok:
        pytest.skip(f"real-traffic tests need network namespaces: {why}")
    pcap = tmp_path / "underlay.pcap"
    out_path, err_path = tmp_path / "events.jsonl", tmp_path / "mosfw.err"
    with realnet.netpair() as net:
        try:
            srv_over, _ = _vxlan_pair(net)
        except RuntimeError as e:
            pytest.skip(f"this kernel cannot make VXLAN devices: {e}")
        underlay = {net.srv4, net.cli4}
        net.srv4 = srv_over  # nginx listens on, and curl fetches from, the overlay
        net.serve_files({f"f{n}.bin": n for n in SIZES})
        with net.capture(pcap, side="server", bpf="udp port 4789"):
            before = packet_sockets(net, "server")
            with open(out_path, "w") as out, open(err_path, "w") as err:
                proc = net.popen_in(
                    "server",
                    [sys.executable, "-m", "mosfw", "run", "-i", net.srv_if, "-c", "2", "--tunnel-rehash"]
                    + ["-p", "eventlog", "--stats-json", "-"],
                    stdout=out,
                    stderr=err,
                    cwd=ROOT,
                )
            wait_capture_sockets(net, "server", before + 2, proc, err_path)
            time.sleep(0.3)
            urls = [net.url(f"f{SIZES[i % 2]}.bin") for i in range(FETCHES)]
            results = net.fetch(urls, parallel=6)
            wait_connections_closed(net)
            time.sleep(0.5)
            rc = stop_with_sigint(proc)
    stats = check_stopped_cleanly(err_path, rc, results)
    # every core read every packet and left the other core's flows alone
    assert stats["other_shard"] > 0, stats

    events = [e for e in eventlog_lines(out_path.read_text()) if "event" in e]
    web = [e for e in events if "client" in e and e["server"] == f"{srv_over}:8080"]
    by_flow: dict[tuple, list] = collections.defaultdict(list)
    for e in web:
        by_flow[(e["client"], e["server"])].append(e)
    assert len(by_flow) == FETCHES == realnet.tshark_syn_count(pcap), sorted(by_flow)
    per_core: collections.Counter = collections.Counter()
    for flow, evs in by_flow.items():
        cores = {e["core"] for e in evs}
        assert len(cores) == 1, f"{flow}: events on cores {cores}"
        per_core[cores.pop()] += 1
        starts = sorted((e["side"], e["midstream"]) for e in evs if e["event"] == "conn_start")
        assert starts == [("client", False), ("server", False)], (flow, starts)
        assert [e["reason"] for e in evs if e["event"] == "conn_end"] == ["fin"], flow
        for e in evs:
            if e["event"] == "conn_start":
                (t,) = e["tunnels"]
                assert (t["kind"], t["id"]) == ("vxlan", VNI) and {t["src"], t["dst"]} == underlay, t
    assert set(per_core) == {0, 1}, per_core

    r = mosfw_cli("run", "-r", pcap, "-p", "eventlog", "-c", "1", "-q")
    assert r.returncode == 0, r.stderr
    offline = [e for e in eventlog_lines(r.stdout) if "event" in e]
    assert multiset(events) == multiset(offline), (
        f"live -c 2 only: {multiset(events) - multiset(offline)}; "
        f"offline -c 1 only: {multiset(offline) - multiset(events)}"
    )
