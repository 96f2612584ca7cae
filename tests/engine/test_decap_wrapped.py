"""Decapsulation (docs/encapsulation.md) on a real capture wrapped in each
encapsulation and link type by :mod:`mosfw.testing.encap`.

For every kind: tshark (the independent oracle) decodes the wrapped file
to the plain capture's TCP conversations, and the engine gives exactly
the plain capture's events (eventlog lines with the ``tunnels`` key taken
out, tracker records without vlan/inner_vlan/tunnels), with the layers
on ``conn_start``. Then the depth limit, broken inner headers, keying by
tunnel identity, ``-c 2`` sharding by the inner tuple, the counters, and
``flow.tunnels`` / ``packet.tunnels`` in a plugin.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mosfw.testing.encap import KINDS, read_pcap, vxlan, wrap_capture, wrap_frame
from mosfw.testing.pcap_files import write_pcap

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

PLAIN = ROOT / "tests" / "data" / "http-loss.pcap"  # IPv4, real loss (tests/data/README.md)
PLAIN6 = ROOT / "tests" / "multicore" / "data" / "http_ipv6.pcap"  # IPv6

#: extra engine options a kind needs
OPTIONS = {"mpls_pw": ["--mpls-pseudowire", "eth-cw"]}
#: the layers conn_start must show, outermost first: (kind, id)
EXPECT = {
    "vxlan": [("vxlan", 4242)],
    "vxlan6": [("vxlan", 4242)],
    "geneve": [("geneve", 77)],
    "gre": [("gre", 0x1234)],
    "gre6": [("gre", 0x1234)],
    "gre_teb": [("gre", 99)],
    "erspan1": [("erspan", 0)],
    "erspan2": [("erspan", 5)],
    "erspan3": [("erspan", 9)],
    "gtpu": [("gtpu", 0xABCDEF)],
    "ipip4": [("ipip", 0)],
    "ipip6": [("ipip", 0)],
    "teredo": [("teredo", 0)],
    "ayiya": [("ayiya", 0)],
    "mpls": [("mpls", 1000), ("mpls", 2000)],
    "mpls_pw": [("mpls", 3000)],
    "pppoe": [("pppoe", 0x2A)],
    "qinq": [("vlan", 100), ("vlan", 200)],
    "pbb": [("pbb", 0x10203)],
    "fabricpath": [("fabricpath", 1)],
    "vntag": [("vntag", 17)],
}
#: outer endpoints of the tunnels over IP (kind -> (src, dst))
OUTER = {
    "vxlan": ("192.0.2.1", "192.0.2.2"),
    "vxlan6": ("2001:db8::1", "2001:db8::2"),
    "gre6": ("2001:db8::1", "2001:db8::2"),
    "ipip6": ("2001:db8::1", "2001:db8::2"),
    "gtpu": ("192.0.2.1", "192.0.2.2"),
}

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


def mosfw(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m mosfw run ARGS`` (a fork of a pre-imported mosfw: tests/forkrun.py)."""
    return forkrun.mosfw("run", *args, timeout=timeout)


def eventlog(pcap: Path, *opts: str) -> list[dict]:
    cp = mosfw("-r", str(pcap), "-p", "eventlog", "-q", *opts)
    assert cp.returncode == 0, cp.stderr
    return [json.loads(line) for line in cp.stdout.splitlines()]


def tracker(pcap: Path, *opts: str) -> list[dict]:
    cp = mosfw("-r", str(pcap), "-p", "samples/tracker", "-q", *opts)
    assert cp.returncode == 0, cp.stderr
    return [json.loads(line) for line in cp.stdout.splitlines()]


def stats(pcap: Path, *opts: str) -> dict:
    cp = mosfw("-r", str(pcap), "-q", "--stats-json", "-", *opts)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stderr.strip().splitlines()[-1])


def tshark_conversations(pcap: Path) -> list[str]:
    cp = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-q", "-z", "conv,tcp"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return sorted(" ".join(line.split()[:3]) for line in cp.stdout.splitlines() if "<->" in line)


def without_tunnels(events: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "tunnels"} for e in events]


def without_layers(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("vlan", "inner_vlan", "tunnels")} for r in records]


@pytest.fixture(scope="module")
def plain() -> dict:
    return {
        "events": eventlog(PLAIN),
        "events6": eventlog(PLAIN6),
        "tracker": tracker(PLAIN),
        "tracker6": tracker(PLAIN6),
        "conv": tshark_conversations(PLAIN),
        "conv6": tshark_conversations(PLAIN6),
    }


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_wrapped_capture_gives_the_plain_events(kind, plain, tmp_path):
    src, v = (PLAIN6, "6") if kind == "teredo" else (PLAIN, "")
    out = tmp_path / f"{kind}.pcap"
    wrap_capture(src, out, kind)
    # the oracle decodes the wrapped file to the same TCP conversations
    assert tshark_conversations(out) == plain["conv" + v]
    events = eventlog(out, *OPTIONS.get(kind, []))
    assert without_tunnels(events) == plain["events" + v]
    starts = [e for e in events if e["event"] == "conn_start"]
    assert starts
    for e in starts:
        layers = e.get("tunnels", [])
        if kind in EXPECT:
            assert [(t["kind"], t["id"]) for t in layers] == EXPECT[kind]
        else:  # a link type: no layers
            assert layers == []
        if kind in OUTER:
            assert (layers[0]["src"], layers[0]["dst"]) == OUTER[kind]
    records = tracker(out, *OPTIONS.get(kind, []))
    assert without_layers(records) == plain["tracker" + v]
    if kind == "qinq":
        assert {(r["vlan"], r["inner_vlan"]) for r in records} == {(100, 200)}
    if kind in EXPECT:
        want = [f"{k}:{i}" for k, i in EXPECT[kind]]
        assert all(r["tunnels"] == want for r in records)


def test_counters_per_kind(tmp_path):
    out = tmp_path / "gre.pcap"
    wrap_capture(PLAIN, out, "gre")
    n_ip = len([f for _, f in read_pcap(PLAIN)[1] if f[12:14] in (b"\x08\x00", b"\x86\xdd")])
    s = stats(out)
    assert s["tunnels"] == {"packets": {"gre": n_ip}}
    assert s["tcp_packets"] == stats(PLAIN)["tcp_packets"]


@pytest.mark.parametrize("kind", ["vxlan", "gre", "ipip4", "geneve"])
def test_depth_limit(kind, plain, tmp_path):
    four, five = tmp_path / "four.pcap", tmp_path / "five.pcap"
    wrap_capture(PLAIN, four, kind, depth=4)
    wrap_capture(PLAIN, five, kind, depth=5)
    assert without_tunnels(eventlog(four)) == plain["events"]  # the default limit is 4
    s = stats(five)
    name = {"ipip4": "ipip"}.get(kind, kind)
    assert s["tcp_packets"] == 0 and s["flows_created"] == 0
    assert s["tunnels"]["too_deep"] == {name: s["packets"]}
    assert without_tunnels(eventlog(five, "--tunnel-max-depth", "5")) == plain["events"]
    # 0 turns decapsulation off: nothing is tracked, nothing is counted as too deep
    s0 = stats(four, "--tunnel-max-depth", "0")
    assert s0["flows_created"] == 0 and "too_deep" not in s0["tunnels"]


@pytest.mark.parametrize("kind", ["vxlan", "geneve", "gre", "gre_teb", "erspan2", "gtpu", "mpls", "pppoe"])
def test_broken_inner_headers_are_counted_and_skipped(kind, tmp_path):
    """Each TCP frame cut 30 bytes into its inner IP header (IPv4 needs
    20, plus TCP's 20); the wire length says it was whole, so the cut is a
    broken packet, not a snaplen: counted per kind, never a crash."""
    _, recs = read_pcap(PLAIN)
    frames = []
    for ts, f in recs:
        if f[12:14] != b"\x08\x00" or f[23] != 6:
            continue
        w = wrap_frame(kind, f)
        cut = len(w) - (len(f) - 14) + 30  # inner IP starts len(f) - 14 bytes before the end
        frames.append((ts, w[:cut]))
    out = tmp_path / "broken.pcap"
    write_pcap(str(out), frames, linktype=1, snaplen=262144)
    s = stats(out)
    assert s["flows_created"] == 0
    assert s["malformed"] == len(frames)
    assert sum(s["tunnels"]["broken"].values()) == len(frames)


def test_hostile_nesting_ends_with_counters(tmp_path):
    """A tunnel inside itself 40 deep, MPLS stacks of 40 labels, VLAN
    stacks of 40 tags, a GRE key loop (GRE in GRE in GRE...): each is
    counted and skipped."""
    _, recs = read_pcap(PLAIN)
    frames = []
    for ts, f in recs[:40]:
        if f[12:14] != b"\x08\x00":
            continue
        g = f
        for _ in range(40):
            g = wrap_frame("gre", g)
        frames.append((ts, g))
        labels = b"".join(struct.pack("!I", (i << 12) | 64) for i in range(40))
        frames.append((ts, f[:12] + b"\x88\x47" + labels + f[14:]))
        frames.append((ts, f[:12] + b"\x81\x00\x00\x01" * 40 + f[12:]))
    out = tmp_path / "hostile.pcap"
    write_pcap(str(out), frames, linktype=1, snaplen=262144)
    s = stats(out, "--tunnel-max-depth", "32")
    assert s["packets"] == len(frames) and s["flows_created"] == 0
    n = len(frames) // 3
    assert s["tunnels"]["too_deep"] == {"gre": n}
    assert s["malformed"] == 2 * n  # the label and tag stacks are bounded (16)


def test_key_by_tunnel_separates_overlapping_address_spaces(plain, tmp_path):
    """The same capture in VNI 1 and VNI 2 at once (two VPCs with the same
    private addresses): by default they merge into one flow per tuple,
    with --tunnel-key each VNI has its own flows, each the plain ones."""
    _, recs = read_pcap(PLAIN)
    both = []
    for ts, f in recs:
        both.append((ts, vxlan(f, vni=1)))
        both.append((ts, vxlan(f, vni=2)))
    out = tmp_path / "two-vpcs.pcap"
    write_pcap(str(out), both, linktype=1, snaplen=262144)
    n_plain = stats(PLAIN)["flows_created"]
    assert stats(out)["flows_created"] == n_plain
    keyed = eventlog(out, "--tunnel-key")
    starts = [e for e in keyed if e["event"] == "conn_start" and e["side"] == "client"]
    assert len(starts) == 2 * n_plain
    from collections import Counter

    # every event twice: once per VNI, as in the plain capture
    count = lambda evs: Counter(json.dumps({k: v for k, v in e.items() if k != "tunnels"}) for e in evs)  # noqa: E731
    assert count(keyed) == Counter({k: 2 * v for k, v in count(plain["events"]).items()})
    by_flow: dict = {}
    for e in keyed:
        if e["event"] == "conn_start":
            by_flow.setdefault((e["client"], e["server"]), set()).add(e["tunnels"][0]["id"])
    assert all(ids == {1, 2} for ids in by_flow.values())


def test_two_cores_shard_by_the_inner_tuple(plain, tmp_path):
    """Every outer header is the same (one pair of tunnel endpoints): a
    shard hash over it would put every flow on one core. -c 2 gives the
    plain events, with flows on both cores."""
    out = tmp_path / "vxlan.pcap"
    wrap_capture(PLAIN, out, "vxlan")
    events = eventlog(out, "-c", "2")
    key = lambda e: (e["ts"], json.dumps(e, sort_keys=True))  # noqa: E731
    got = sorted((dict(e, core=0) for e in without_tunnels(events)), key=key)
    assert got == sorted((dict(e, core=0) for e in plain["events"]), key=key)
    assert {e["core"] for e in events} == {0, 1}


PLUGIN = """
import json, sys
import mosfw

seen = []

@mosfw.hookimpl
def mosfw_pkt_in(flow, event):
    p = flow.last_packet()
    seen.append((flow.id, [t.asdict() for t in flow.tunnels], [t.asdict() for t in p.tunnels]))

@mosfw.hookimpl
def mosfw_report(config, stats):
    json.dump(seen, sys.stdout)
"""


def test_flow_and_packet_tunnels_in_a_plugin(tmp_path):
    out = tmp_path / "geneve.pcap"
    wrap_capture(PLAIN, out, "geneve")
    plugin = tmp_path / "tunnels_plugin.py"
    plugin.write_text(PLUGIN)
    cp = mosfw("-r", str(out), "-p", str(plugin), "-q")
    assert cp.returncode == 0, cp.stderr
    seen = json.loads(cp.stdout)
    assert len(seen) == stats(PLAIN)["tcp_packets"] - stats(PLAIN)["orphans"]
    want = [{"kind": "geneve", "id": 77, "src": "192.0.2.1", "dst": "192.0.2.2"}]
    for _, flow_t, pkt_t in seen:
        assert [{k: t[k] for k in ("kind", "id", "src", "dst")} for t in flow_t] == want
        assert [{k: t[k] for k in ("kind", "id", "src", "dst")} for t in pkt_t] == want
        assert flow_t[0]["dport"] == pkt_t[0]["dport"] == 6081
    # a plain capture: no layers anywhere
    cp = mosfw("-r", str(PLAIN), "-p", str(plugin), "-q")
    assert all(f == [] and p == [] for _, f, p in json.loads(cp.stdout))


def test_bad_tunnel_options_are_usage_errors():
    cp = mosfw("-r", str(PLAIN), "--tunnel-ports", "vxlan=70000")
    assert cp.returncode == 2 and "70000" in cp.stderr
    cp = mosfw("-r", str(PLAIN), "--tunnel-ports", "nvgre=1")
    assert cp.returncode == 2 and "KIND=PORT" in cp.stderr


def test_configured_vxlan_port(plain, tmp_path):
    """VXLAN on Linux's old default port 8472: not decapsulated until the
    port is configured (command line or mos.conf)."""
    _, recs = read_pcap(PLAIN)
    moved = []
    for ts, f in recs:
        w = bytearray(wrap_frame("vxlan", f))
        w[14 + 20 + 2 : 14 + 20 + 4] = struct.pack("!H", 8472)  # the outer UDP destination port
        moved.append((ts, bytes(w)))
    out = tmp_path / "vxlan8472.pcap"
    write_pcap(str(out), moved, linktype=1, snaplen=262144)
    assert stats(out)["flows_created"] == 0
    assert without_tunnels(eventlog(out, "--tunnel-ports", "vxlan=4789,8472")) == plain["events"]
    conf = tmp_path / "mos.conf"
    conf.write_text("mos {\n  vxlan_ports = 4789 8472\n}\n")
    assert without_tunnels(eventlog(out, "-f", str(conf))) == plain["events"]
