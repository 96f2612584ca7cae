"""Public sample captures (tests/data/public/README.md: tcpdump 4.99.3's
and Wireshark 4.0.17's own test traces, from the Debian source packages)
through the engine, with
tshark as the independent oracle.

For each file: mosfw's TCP flows (eventlog ``conn_start`` endpoints)
equal tshark's TCP conversations (``-z conv,tcp``), its retransmission
count equals tshark's ``tcp.analysis.retransmission`` count, the layers
tshark sees are counted in ``--stats-json``'s ``tunnels.packets``, and no
packet is counted ``broken`` or ``too_deep``. (The ASan+UBSan replay in
tests/native/test_sanitizers.py runs these files too: it takes every
capture under tests/data.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

PUBLIC = ROOT / "tests" / "data" / "public"

#: file -> (the tunnel kinds --stats-json must count, with their packet
#: counts as tshark counts those layers: display filter, expected kinds)
CAPTURES = {
    "geneve.pcap": ("geneve", {"geneve"}),  # TCP (ssh) and ICMP in Geneve
    "lspping-fec-ldp.pcap": ("mpls", {"mpls"}),  # PPP link type, TCP (BGP) in MPLS
    "bgp_vpn_attrset.pcap": ("", set()),  # PPP link type, one BGP segment
    "vxlan.pcap": ("vxlan", {"vxlan"}),  # ICMP and ARP in VXLAN: no TCP
    "mpls-traceroute.pcap": ("mpls", {"mpls"}),  # PPP link type, UDP in MPLS
    "nflog.pcap": ("", set()),  # NFLOG link type, DNS over UDP
    "HDLC.pcap": ("", set()),  # Cisco HDLC link type: SLARP, CDP, ICMP
    "QinQpacket.pcap": ("vlan", {"vlan"}),  # 802.1ad outer tag + 802.1Q: DHCP, ARP
    "ipoipoip.pcap": ("ipip", {"ipip"}),  # raw IPv4: TCP under 4 IPv4-in-IPv4 layers
    "retrans-tls.pcap": ("", set()),  # raw IPv4: a 1-byte segment, then 21 bytes from the same seq
}

#: mosfw's rexmit count minus tshark's tcp.analysis.retransmission count.
#: retrans-tls.pcap: mosfw counts a segment that re-sends any byte already
#: seen (here 1 of 21) as a rexmit; Wireshark does not flag a segment that
#: also carries new data (it goes past the highest sequence number seen).
REXMIT_DELTA = {"retrans-tls.pcap": 1}

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def tshark(*args: str) -> str:
    cp = subprocess.run(["tshark", "-n", *args], capture_output=True, text=True, timeout=60, check=True)
    return cp.stdout


def tshark_conversations(pcap: Path) -> list[frozenset]:
    out = tshark("-r", str(pcap), "-q", "-z", "conv,tcp")
    return sorted(
        (frozenset((f[0], f[2])) for f in (line.split() for line in out.splitlines()) if "<->" in f),
        key=sorted,
    )


def tshark_count(pcap: Path, display_filter: str) -> int:
    return len(tshark("-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", "frame.number").split())


def tshark_ip_headers(pcap: Path) -> int:
    out = tshark("-r", str(pcap), "-T", "fields", "-E", "occurrence=a", "-e", "ip.version")
    return sum(len(line.split(",")) for line in out.splitlines() if line)


def run(pcap: Path) -> tuple[list[dict], dict]:
    # `python -m mosfw run` as a fork of a pre-imported mosfw (tests/forkrun.py)
    cp = forkrun.mosfw("run", "-r", pcap, "-p", "eventlog", "-q", "--stats-json", "-", timeout=120)
    assert cp.returncode == 0, cp.stderr
    events = [json.loads(line) for line in cp.stdout.splitlines()]
    return events, json.loads(cp.stderr.strip().splitlines()[-1])


def test_every_public_capture_is_listed():
    on_disk = {p.name for p in PUBLIC.iterdir() if p.suffix in (".pcap", ".pcapng")}
    assert on_disk == set(CAPTURES)
    readme = (PUBLIC / "README.md").read_text()
    for name in CAPTURES:
        assert f"`{name}`" in readme, f"{name} not described in README.md"


@pytest.mark.parametrize("name", sorted(CAPTURES))
def test_public_capture_matches_tshark(name):
    pcap = PUBLIC / name
    layer, kinds = CAPTURES[name]
    events, stats = run(pcap)
    # conn_start comes once per side; one flow is one client-side conn_start
    flows = sorted(
        (
            frozenset((e["client"], e["server"]))
            for e in events
            if e["event"] == "conn_start" and e["side"] == "client"
        ),
        key=sorted,
    )
    assert flows == tshark_conversations(pcap)
    retrans = tshark_count(pcap, "tcp.analysis.retransmission")
    assert stats["rexmits"] == retrans + REXMIT_DELTA.get(name, 0)
    tunnels = stats["tunnels"]
    assert set(tunnels.get("packets", {})) == kinds
    if layer:
        # every packet tshark sees that layer in is counted by mosfw (MPLS:
        # once a packet, however many labels; VLAN: once a tag)
        if layer == "ipip":  # one layer per IPv4 header but the innermost
            expect = tshark_ip_headers(pcap) - tshark_count(pcap, "ip")
        else:
            expect = tshark_count(pcap, layer)
        if layer == "vlan":
            expect += tshark_count(pcap, "ieee8021ad")
        assert tunnels["packets"][layer] == expect
    assert not tunnels.get("broken") and not tunnels.get("too_deep"), tunnels
    assert stats["malformed"] == 0 and stats["truncated"] == 0 and stats["unsupported_link"] == 0
