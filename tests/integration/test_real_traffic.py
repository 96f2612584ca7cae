"""mosfw against independent oracles on real traffic.

Each scenario makes a capture of real HTTP fetches between two network
namespaces (nginx in one, curl in the other; helpers in tests/realnet.py),
then runs `python -m mosfw run -r PCAP -p eventlog` on it and compares
with tshark on the same file:

- loss: ~30 fetches (20 KB to 2 MB, a third over IPv6) with a 4 % random
  drop on both veth ingresses (after the tap: the capture holds each lost
  original and its retransmission);
- tbf: the same fetches through a 40 Mbit/s token bucket on the server's
  egress (congestion drops before the tap: the capture has holes, and a
  retransmission can be the first copy the tap sees).

Checks per scenario: the capture itself is sound (every fetch worked,
tcpdump dropped nothing, tshark sees one SYN'd stream per fetch); the
number of flows with a client CONN_START equals tshark's count of streams
with a client SYN; REXMIT events are within 2 % of tshark's
`tcp.analysis.retransmission || tcp.analysis.out_of_order`; every flow that
started has exactly one CONN_END.

Needs root, `ip netns`, tcpdump, curl, tshark (skips with the reason
otherwise). About 12 s for the module (2 scenarios x ~2-4 s of traffic,
tshark and mosfw on ~13k packets each).
"""

from __future__ import annotations

import collections
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet

pytestmark = pytest.mark.realnet

PORT = 8080
KB = 1000

# (size, IP version), one TCP connection each, 4 in flight at a time.
PLAN = [
    (20 * KB, 4),
    (50 * KB, 6),
    (100 * KB, 4),
    (2000 * KB, 4),
    (300 * KB, 6),
    (20 * KB, 4),
    (500 * KB, 4),
    (1000 * KB, 6),
    (50 * KB, 4),
    (200 * KB, 4),
    (20 * KB, 6),
    (100 * KB, 4),
    (2000 * KB, 6),
    (30 * KB, 4),
    (700 * KB, 4),
    (20 * KB, 4),
    (60 * KB, 6),
    (400 * KB, 4),
    (1500 * KB, 4),
    (20 * KB, 6),
    (80 * KB, 4),
    (250 * KB, 4),
    (20 * KB, 6),
    (1000 * KB, 4),
    (40 * KB, 4),
    (120 * KB, 6),
    (20 * KB, 4),
    (600 * KB, 4),
    (90 * KB, 6),
    (20 * KB, 4),
]

SCENARIOS = {
    "loss": {"drop_percent": 4, "drop_side": "both"},
    "tbf": {"tbf": {"rate": "40mbit", "burst": "12kb", "limit": "24kb", "side": "server"}},
}

REXMIT_TOLERANCE = 0.02


@dataclass
class Run:
    name: str
    scenario: realnet.Scenario
    packets: int
    tshark_connections: int
    tshark_conversations: list
    tshark_rexmit: list  # (ts, sender, len) per flagged packet
    tshark_lost_segment: int

    @property
    def pcap(self) -> Path:
        return self.scenario.pcap


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def run(request, tmp_path_factory) -> Run:
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS + ("nft", "tc"))
    if not ok:
        pytest.skip(f"real-traffic tests need network namespaces: {why}")
    name = request.param
    pcap = tmp_path_factory.mktemp(f"realnet-{name}") / f"{name}.pcap"
    sc = realnet.run_http_scenario(pcap, PLAN, parallel=4, **SCENARIOS[name])
    lost = len(realnet._tshark_fields(pcap, "tcp.analysis.lost_segment", ["frame.number"]))
    r = Run(
        name,
        sc,
        packets=realnet.capinfos_count(pcap),
        tshark_connections=realnet.tshark_syn_count(pcap),
        tshark_conversations=realnet.tshark_conversations(pcap),
        tshark_rexmit=realnet.tshark_rexmit_packets(pcap),
        tshark_lost_segment=lost,
    )
    print(
        f"\n[{name}] {pcap}: {r.packets} packets, {r.tshark_connections} connections, "
        f"{len(r.tshark_rexmit)} tshark rexmit, {lost} lost_segment, "
        f"server={sc.server_kind}, made in {sc.wall_s:.1f}s"
    )
    return r


@pytest.fixture(scope="module")
def events(run) -> realnet.EventSummary:
    evs = realnet.mosfw_eventlog(run.pcap)
    s = realnet.summarize_events(evs)
    s.raw = evs  # type: ignore[attr-defined]
    print(f"[{run.name}] mosfw: {dict(s.counts)}; end reasons {dict(s.end_reasons)}")
    return s


def _side_of_sender(sender: str) -> str:
    return "server" if sender.endswith(f":{PORT}") else "client"


def test_capture_is_sound(run):
    """The oracle side alone: the scenario did what it claims."""
    sc = run.scenario
    failed = [f for f in sc.fetches if not f.ok]
    assert not failed, f"fetches failed: {failed}"
    assert sc.capture.dropped_by_kernel == 0, sc.capture.stderr
    assert sc.capture.captured == run.packets, (sc.capture.captured, run.packets)
    assert run.tshark_connections == len(PLAN), (
        f"tshark sees {run.tshark_connections} streams with a client SYN, {len(PLAN)} fetches were made"
    )
    assert len(run.tshark_conversations) == len(PLAN)
    assert len(run.tshark_rexmit) > 0, "no retransmissions: the scenario lost nothing"
    if run.name == "tbf":
        assert run.tshark_lost_segment > 0, "tbf scenario: the capture has no holes"


def test_connections_match_tshark(run, events):
    """Flows with a client-side CONN_START == tshark streams with a client SYN."""
    assert events.connections == run.tshark_connections, (
        f"mosfw conn_start side=client on {events.connections} flows "
        f"({events.midstream_client_starts} mid-stream), tshark client-SYN "
        f"connections {run.tshark_connections}"
    )
    repeated = {k: n for k, n in events.client_starts.items() if n != 1}
    assert not repeated, f"client CONN_START more than once: {repeated}"


def test_rexmit_matches_tshark(run, events):
    """REXMIT events within 2 % of tshark's retransmission || out_of_order."""
    t = len(run.tshark_rexmit)
    m = events.rexmit
    t_side = collections.Counter(_side_of_sender(s) for _, s, _ in run.tshark_rexmit)
    msg = (
        f"[{run.name}] mosfw rexmit {m} (client {events.rexmit_by_side['client']}, "
        f"server {events.rexmit_by_side['server']}) vs tshark "
        f"retransmission||out_of_order {t} (client {t_side['client']}, "
        f"server {t_side['server']}); tolerance {REXMIT_TOLERANCE:.0%}"
    )
    if abs(m - t) > max(1, REXMIT_TOLERANCE * t):
        # Show which packets differ, matched by (timestamp, sender).
        tk = collections.Counter((round(ts, 6), s) for ts, s, _ in run.tshark_rexmit)
        mk = collections.Counter(
            (round(float(e["ts"]), 6), e.get(e.get("side"), "?"))
            for e in events.raw
            if e.get("event") == "rexmit"
        )  # type: ignore[attr-defined]
        only_t = sorted((tk - mk).elements())[:10]
        only_m = sorted((mk - tk).elements())[:10]
        msg += f"\n  only tshark (first 10): {only_t}\n  only mosfw (first 10): {only_m}"
    print(msg)
    assert abs(m - t) <= max(1, REXMIT_TOLERANCE * t), msg


def test_every_connection_ends_once(run, events):
    """Every flow with a CONN_START has exactly one CONN_END."""
    assert events.any_starts, "no CONN_START at all"
    bad = events.bad_ends()
    assert not bad, (
        f"{len(bad)} of {len(events.any_starts)} started flows without exactly "
        f"one conn_end (flow -> count): {dict(list(bad.items())[:10])}"
    )
    stray = set(events.ends) - events.any_starts
    assert not stray, f"conn_end for flows that never started: {sorted(stray)[:10]}"
