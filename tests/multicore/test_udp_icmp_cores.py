"""-c N with UDP and ICMP flows tracked: both directions of a flow on one
core (the flow's shard, chosen by mosfw_ft_owner for the feed's reader and
by each core's shard test otherwise), the events of one reader."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import eventlog_lines, flow_cores, mosfw_cli, multiset, stats_json

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fragtool

from mosfw.testing.flows import Capture
from mosfw.testing.headers import udp as udp_dgram

PER_RUN = {"other_shard", "seconds", "pkt_per_s"}


def mixed_capture(path: Path) -> None:
    cap = Capture(start=100.0, step=0.01)
    for i in range(60):
        cli = (f"10.1.0.{i + 1}", 30000 + i)
        srv = ("10.2.0.1", 53) if i % 2 else (f"10.2.0.{i + 1}", 9000 + i)
        cap.udp(cli, srv, b"q" * (i + 1))
        cap.udp(srv, cli, b"r" * (2 * i + 1))
        cap.icmp(cli[0], srv[0], 8, 0, b"p" * i)
        cap.icmp(srv[0], cli[0], 0, 0, b"p" * i)
        if i % 10 == 0:
            cap.icmp(srv[0], cli[0], 3, 3, b"unreachable")
            cap.conversation(client=(cli[0], 40000 + i), server=(srv[0], 80)).handshake()
    frames = cap.packets
    dgram = udp_dgram("10.3.0.1", "10.3.0.2", 7000, 7001, bytes(1500))
    frames.append((200.0, fragtool.ipv4_fragment("10.3.0.1", "10.3.0.2", 7, 0, True, dgram[:800], proto=17)))
    frames.append(
        (200.1, fragtool.ipv4_fragment("10.3.0.1", "10.3.0.2", 7, 800, False, dgram[800:], proto=17))
    )
    fragtool.write_frames(path, frames)


def run(pcap, cores, shared=True):
    env = dict(os.environ, MOSFW_FEED="1" if shared else "0")
    r = mosfw_cli(
        "run", "-r", pcap, "-p", "eventlog", "--events", "all", "--eventlog-protocols", "udp,icmp",
        "-c", cores, "-q", "--stats-json", "-", env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    events = eventlog_lines(r.stdout)
    stats = {k: v for k, v in (stats_json(r.stderr) or {}).items() if k not in PER_RUN}
    return events, stats


@pytest.mark.parametrize("shared", [True, False], ids=["fed-by-one-reader", "each-reads-all"])
def test_two_cores_give_one_readers_udp_and_icmp_events(tmp_path, shared):
    pcap = tmp_path / "mixed.pcap"
    mixed_capture(pcap)
    ev1, st1 = run(pcap, 1)
    ev2, st2 = run(pcap, 2, shared)
    assert multiset(ev2) == multiset(ev1)
    assert st2 == st1
    protos = {e.get("proto", "tcp") for e in ev1}
    assert protos == {"tcp", "udp", "icmp"}
    assert (
        sum(e["event"] == "pkt_in" and e.get("proto") == "udp" for e in ev1) == 121
    )  # 60 x 2 + the reassembled datagram
    cores = flow_cores(ev2)
    assert all(len(c) == 1 for c in cores.values())  # both directions of each flow on one core
    udp_cores = {next(iter(c)) for (cli, srv), c in cores.items() if not srv.endswith(":80")}
    assert udp_cores == {0, 1}  # spread over the cores, not all on core 0
