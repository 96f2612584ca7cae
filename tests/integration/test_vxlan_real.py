"""mosfw on real VXLAN traffic, against tshark.

Two network namespaces joined by a veth pair (the underlay, tests/realnet.py)
each get a kernel VXLAN device (``ip link add vx0 type vxlan id 42 ...
dstport 4789 dev VETH``) with an overlay address; nginx listens on the
server's overlay address and curl fetches over it. tcpdump captures the
underlay veth (filter udp port 4789): VXLAN packets only (the
inner Ethernet frames inside). An nftables rule drops 4 % of the inner TCP
packets on the ingress of both VXLAN devices: after the underlay tap, so
the capture holds each lost original and its retransmission.

tshark decodes VXLAN on 4789 by itself: its view of the inner connections
(client SYN streams) and of their retransmissions
(``retransmission || out_of_order``) is the oracle. mosfw must see every
connection once, the retransmissions within 2 % (the real-traffic test's
tolerance), one CONN_END per flow, and each flow's layer on conn_start
(VXLAN, VNI 42, the underlay addresses). About 5 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet

pytestmark = pytest.mark.realnet

KB = 1000
SIZES = [20 * KB, 300 * KB, 1000 * KB, 50 * KB, 2000 * KB, 100 * KB, 700 * KB, 20 * KB] * 2
VNI = 42
DROP_PERMILLE = 40


def _vxlan_pair(net: realnet.NetPair) -> tuple[str, str]:
    """A VXLAN device in each namespace over the veth; the overlay
    addresses (server, client)."""
    o = net.octet
    over = {"server": f"10.99.{o}.1", "client": f"10.99.{o}.2"}
    under = {"server": net.srv4, "client": net.cli4}
    for side, peer in (("server", "client"), ("client", "server")):
        net.run_in(
            side,
            [
                "ip",
                "link",
                "add",
                "vx0",
                "type",
                "vxlan",
                "id",
                str(VNI),
                "local",
                under[side],
                "remote",
                under[peer],
                "dstport",
                "4789",
                "dev",
                net.ifname(side),
            ],
            timeout=10,
        )
        net.run_in(side, ["ip", "addr", "add", f"{over[side]}/24", "dev", "vx0"], timeout=10)
        net.run_in(
            side,
            ["ethtool", "-K", "vx0", "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"],
            timeout=10,
            check=False,
        )
        net.run_in(side, ["ip", "link", "set", "vx0", "up"], timeout=10)
        rules = (
            "table netdev mfvxloss {\n"
            '  chain in { type filter hook ingress device "vx0" priority 0; policy accept;\n'
            f"    meta l4proto tcp numgen random mod 1000 < {DROP_PERMILLE} drop\n"
            "  }\n}\n"
        )
        net.run_in(side, ["nft", "-f", "-"], input=rules, timeout=10)
    return over["server"], over["client"]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS + ("nft",))
    if not ok:
        pytest.skip(f"real-traffic tests need network namespaces: {why}")
    pcap = tmp_path_factory.mktemp("vxlan") / "vxlan.pcap"
    with realnet.netpair() as net:
        try:
            srv_over, _ = _vxlan_pair(net)
        except RuntimeError as e:
            pytest.skip(f"this kernel cannot make VXLAN devices: {e}")
        underlay = (net.srv4, net.cli4)
        net.srv4 = srv_over  # nginx listens on, and curl fetches from, the overlay
        files = net.serve_files({f"f{i}.bin": n for i, n in enumerate(SIZES)})
        with net.capture(pcap, side="server", bpf="udp port 4789"):
            results = net.fetch(net.urls(sorted(files)), parallel=4)
    bad = [r for r in results if not r.ok]
    assert not bad, f"fetches over VXLAN failed: {bad[:3]}"
    return pcap, underlay


def test_vxlan_connections_and_retransmissions_match_tshark(capture):
    pcap, (srv_under, cli_under) = capture
    # the capture (filtered on UDP 4789) holds VXLAN only
    n = realnet.capinfos_count(pcap)
    assert len(realnet._tshark_fields(pcap, "vxlan.vni == 42", ["frame.number"])) == n
    t_conns = realnet.tshark_syn_count(pcap)
    t_rexmit = realnet.tshark_rexmit_count(pcap)
    assert t_conns == len(SIZES)
    assert t_rexmit > 0, "no retransmissions: the overlay lost nothing"

    events = realnet.mosfw_eventlog(pcap)
    s = realnet.summarize_events(events)
    assert s.connections == t_conns
    assert abs(s.rexmit - t_rexmit) <= max(1, 0.02 * t_rexmit), (s.rexmit, t_rexmit)
    assert not s.bad_ends()
    for e in events:
        if e["event"] == "conn_start":
            (t,) = e["tunnels"]
            assert (t["kind"], t["id"], t["dport"]) == ("vxlan", VNI, 4789)
            assert {t["src"], t["dst"]} == {srv_under, cli_under}
    print(f"\nvxlan: {n} packets, {t_conns} connections, rexmit mosfw {s.rexmit} tshark {t_rexmit}")


def test_vxlan_two_cores_agree(capture):
    """-c 2 (shard by the inner tuple) sees the same connections and
    retransmissions as one core."""
    pcap, _ = capture
    one = realnet.summarize_events(realnet.mosfw_eventlog(pcap))
    two = realnet.summarize_events(realnet.mosfw_eventlog(pcap, ["-c", "2"]))
    assert two.client_starts == one.client_starts
    assert two.rexmit == one.rexmit
