"""UDP and ICMP flows on real traffic, against tshark.

Between two network namespaces (tests/realnet.py), each scenario a few
seconds of traffic captured with tcpdump on the server's veth:

- DNS: ``dig`` (one UDP flow per query: a new source port each) against a
  dnsmasq answering from its own table, over IPv4 and IPv6;
- ``iperf3 -u``: a second of UDP at 4 Mbit/s (and its TCP control
  connection on the same port: two flows, one per protocol);
- ``ping`` over IPv4 and IPv6: one ICMP flow per ping (request and replies);
- live (``mosfw run -i``): pings and a query nobody answers (its ICMP port
  unreachable is a flow of its own).

mosfw (a plugin that asks for UDP and ICMP and prints each flow's
per-direction packets and IP bytes at its end) against tshark on the same
file: packets per direction from ``tshark -q -z conv,udp`` (``conv,ip`` for
ICMP), IP bytes per direction from ``-z io,stat`` sums of the IP length
(``ip.len``; ``ipv6.plen`` + 40) with a per-flow filter. Needs root, ip
netns, tcpdump, tshark, dnsmasq, dig, iperf3, ping (skips otherwise).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet

pytestmark = pytest.mark.realnet

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = """
import json
import mosfw
from mosfw import Side

@mosfw.hookimpl
def mosfw_protocols(config):
    return {"udp", "icmp"}

@mosfw.hookimpl
def mosfw_conn_end(flow, reason, event):
    c, s = Side.CLIENT, Side.SERVER
    print(json.dumps({
        "proto": flow.proto, "family": flow.family, "client": list(flow.client), "server": list(flow.server),
        "pkts": [flow.pkts(c), flow.pkts(s)], "ip_bytes": [flow.ip_bytes(c), flow.ip_bytes(s)],
        "payload": [flow.payload_bytes(c), flow.payload_bytes(s)], "reason": reason.label,
    }), flush=True)
"""


@pytest.fixture(scope="module")
def net_ok():
    ok, why = realnet.can_use_netns(("ip", "tcpdump", "tshark", "dnsmasq", "dig", "iperf3", "ping"))
    if not ok:
        pytest.skip(f"real-traffic tests need network namespaces and tools: {why}")


def mosfw_flows(pcap: Path, tmp_path: Path) -> list[dict]:
    plugin = tmp_path / "flowcounts.py"
    plugin.write_text(PLUGIN)
    cp = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", str(plugin), "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    return [json.loads(line) for line in cp.stdout.splitlines() if line.startswith("{")]


def tracker_matches(pcap: Path, flows: list[dict]) -> None:
    """The tracker's records of the same capture: one per flow, with the
    packets and IP bytes per direction the flow has (checked against
    tshark), the originator being the flow's client here (a query, a ping
    first)."""
    tracker = str(ROOT / "samples" / "tracker")
    cp = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", tracker, "-q"],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    recs = {
        (r["proto"], r["id.orig_h"], r["id.orig_p"]): r
        for r in map(json.loads, cp.stdout.splitlines())
        if r["proto"] != "tcp"
    }
    assert len(recs) == len(flows)
    for f in flows:
        r = recs[(f["proto"], f["client"][0], f["client"][1])]
        got = [r["orig_pkts"], r["resp_pkts"]], [r["orig_ip_bytes"], r["resp_ip_bytes"]]
        assert got == (f["pkts"], f["ip_bytes"]), (r, f)
        assert (r["orig_bytes"], r["resp_bytes"]) == tuple(f["payload"]), (
            r,
            f,
        )  # (every flow here has 2+ packets)


def conv_frames(pcap: Path, kind: str) -> dict[tuple[str, str], int]:
    """``tshark -q -z conv,KIND``: frames from A to B, by (A, B) endpoint
    strings as tshark prints them, both orders."""
    cp = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-q", "-z", f"conv,{kind}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out: dict[tuple[str, str], int] = {}
    row = re.compile(r"^(\S+)\s+<->\s+(\S+)\s+(\d+)\s+\d+\s*\S+\s+(\d+)\s+\d+\s*\S+\s+\d+\s+\d+")
    for line in cp.stdout.splitlines():
        m = row.match(line.strip())
        if m:
            a, b, b_to_a, a_to_b = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            out[(a, b)] = a_to_b
            out[(b, a)] = b_to_a
    return out


def io_sums(pcap: Path, columns: list[str]) -> list[int]:
    """``tshark -z io,stat,0,COL1,COL2...`` over the whole file: one number each."""
    arg = "io,stat,0," + ",".join(columns)
    cp = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-q", "-z", arg], capture_output=True, text=True, timeout=60
    )
    for line in cp.stdout.splitlines():
        if "<>" in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")][1:]
            return [int(float(c)) for c in cells if c]
    raise AssertionError(f"no io,stat row in {cp.stdout!r}")


def endpoint(ip: str, port: int | None = None) -> str:
    return ip if port is None else f"{ip}:{port}"


def ip_len_column(family: int, flt: str) -> str:
    return f"SUM(ip.len)ip.len && {flt}" if family == 4 else f"SUM(ipv6.plen)ipv6.plen && {flt}"


def check_udp(pcap: Path, flows: list[dict]) -> None:
    frames = conv_frames(pcap, "udp")
    assert flows
    cols = []
    for f in flows:
        (ca, cp), (sa, sp) = f["client"], f["server"]
        cli, srv = endpoint(ca, cp), endpoint(sa, sp)
        assert frames.get((cli, srv), 0) == f["pkts"][0], (f, frames)
        assert frames.get((srv, cli), 0) == f["pkts"][1], (f, frames)
        ipf = "ip" if f["family"] == 4 else "ipv6"
        for src, sport, dst, dport in ((ca, cp, sa, sp), (sa, sp, ca, cp)):
            flt = f"{ipf}.src=={src} && udp.srcport=={sport} && {ipf}.dst=={dst} && udp.dstport=={dport}"
            cols.append(ip_len_column(f["family"], flt))
    sums = io_sums(pcap, cols)
    for i, f in enumerate(flows):
        got = sums[2 * i : 2 * i + 2]
        if f["family"] == 6:  # payload length + the 40-byte header, per packet
            got = [got[0] + 40 * f["pkts"][0], got[1] + 40 * f["pkts"][1]]
        assert got == f["ip_bytes"], f


def test_dns_with_dig_against_dnsmasq(net_ok, tmp_path):
    pcap = tmp_path / "dns.pcap"
    with realnet.netpair() as net:
        net.popen_in(
            "server",
            ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--user=root",
             "--bind-interfaces", f"--listen-address={net.srv4}", f"--listen-address={net.srv6}",
             "--port=53", "--address=/example.test/10.9.9.9", "--address=/example.test/fd99::9",
             f"--pid-file={net.workdir / 'dnsmasq.pid'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # (not captured: before tcpdump)
            dig = ["dig", f"@{net.srv4}", "ready.example.test", "+short", "+tries=1", "+time=1"]
            cp = net.run_in("client", dig, check=False)
            if "10.9.9.9" in cp.stdout:
                break
            time.sleep(0.1)
        with net.capture(pcap, side="server", linger=0.5, bpf="udp port 53") as st:
            answers = []
            for i in range(6):
                srv = net.srv4 if i % 2 == 0 else net.srv6
                qtype = "A" if i % 3 else "AAAA"
                dig = ["dig", f"@{srv}", f"q{i}.example.test", qtype, "+short", "+tries=1", "+time=2"]
                cp = net.run_in("client", dig, check=False)
                answers.append(cp.stdout.strip())
    assert all(answers), answers
    assert st.dropped_by_kernel in (0, None)
    flows = mosfw_flows(pcap, tmp_path)
    assert len(flows) == 6 and {f["proto"] for f in flows} == {"udp"}
    assert all(f["server"][1] == 53 and f["pkts"] == [1, 1] for f in flows), flows
    assert {f["family"] for f in flows} == {4, 6}
    check_udp(pcap, flows)
    tracker_matches(pcap, flows)


def test_iperf3_udp_and_its_tcp_control_connection(net_ok, tmp_path):
    pcap = tmp_path / "iperf.pcap"
    with realnet.netpair() as net:
        net.popen_in("server", ["iperf3", "-s", "-1", "-B", net.srv4, "-p", "5201"],
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(0.3)
        with net.capture(pcap, side="server", linger=0.5) as st:
            cp = net.run_in("client", ["iperf3", "-u", "-c", net.srv4, "-p", "5201", "-b", "4M", "-t", "1",
                                       "-l", "1200", "--connect-timeout", "3000"], timeout=20)  # fmt: skip
    assert "receiver" in cp.stdout, cp.stdout
    assert st.dropped_by_kernel in (0, None)
    flows = mosfw_flows(pcap, tmp_path)
    udp = [f for f in flows if f["proto"] == "udp"]
    tcp = [f for f in flows if f["proto"] == "tcp" and f["server"][1] == 5201]
    assert len(udp) == 1 and len(tcp) == 1  # the same port, two flows
    assert udp[0]["server"] == [net.srv4, 5201] and udp[0]["pkts"][0] > 300
    check_udp(pcap, udp)


def test_ping_ipv4_and_ipv6(net_ok, tmp_path):
    pcap = tmp_path / "ping.pcap"
    echo_only = "icmp or (icmp6 and ip6[40] < 130)"  # (no neighbour discovery)
    with realnet.netpair() as net, net.capture(pcap, side="server", linger=0.5, bpf=echo_only) as st:
        net.run_in("client", ["ping", "-c", "5", "-i", "0.2", "-s", "100", net.srv4], timeout=20)
        net.run_in("client", ["ping", "-6", "-c", "3", "-i", "0.2", net.srv6], timeout=20)
    assert st.dropped_by_kernel in (0, None)
    flows = mosfw_flows(pcap, tmp_path)
    assert sorted((f["family"], f["pkts"][0], f["pkts"][1]) for f in flows) == [(4, 5, 5), (6, 3, 3)], flows
    frames = conv_frames(pcap, "ip")
    frames.update(conv_frames(pcap, "ipv6"))
    cols = []
    for f in flows:
        cli, srv = f["client"][0], f["server"][0]
        assert (frames.get((cli, srv)), frames.get((srv, cli))) == tuple(f["pkts"]), (f, frames)
        ipf, icmp = ("ip", "icmp") if f["family"] == 4 else ("ipv6", "icmpv6")
        for a, b in ((cli, srv), (srv, cli)):
            cols.append(ip_len_column(f["family"], f"{icmp} && {ipf}.src=={a} && {ipf}.dst=={b}"))
    sums = io_sums(pcap, cols)
    for i, f in enumerate(flows):
        got = sums[2 * i : 2 * i + 2]
        if f["family"] == 6:
            got = [got[0] + 40 * f["pkts"][0], got[1] + 40 * f["pkts"][1]]
        assert got == f["ip_bytes"], f
        hdr = 28 if f["family"] == 4 else 48  # IP + the 8-byte ICMP header
        assert f["payload"] == [f["ip_bytes"][0] - f["pkts"][0] * hdr, f["ip_bytes"][1] - f["pkts"][1] * hdr]
    tracker_matches(pcap, flows)


def test_live_capture_tracks_icmp_and_udp(net_ok, tmp_path):
    # `mosfw run -i` on the client's veth: the same flows live (three pings,
    # one DNS query to a port nobody listens on: the ICMP port unreachable
    # is a flow of its own), ended at the stop (eof)
    plugin = tmp_path / "flowcounts.py"
    plugin.write_text(PLUGIN)
    with realnet.netpair() as net:
        argv = [sys.executable, "-m", "mosfw", "run", "-i", net.cli_if, "-p", str(plugin), "-q"]
        proc = net.popen_in(
            "client", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT
        )
        time.sleep(2.0)  # (the capture is open well before this)
        net.run_in("client", ["ping", "-c", "3", "-i", "0.2", "-s", "56", net.srv4], timeout=20)
        dig = ["dig", f"@{net.srv4}", "-p", "5353", "x.example.test", "+tries=1", "+time=1"]
        net.run_in("client", dig, check=False, timeout=20)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    flows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    echo = [f for f in flows if f["proto"] == "icmp" and f["client"][1] == 8]
    assert [(f["pkts"], f["ip_bytes"], f["reason"]) for f in echo] == [([3, 3], [3 * 84, 3 * 84], "eof")]
    query = [f for f in flows if f["proto"] == "udp" and f["server"] == [net.srv4, 5353]]
    assert len(query) == 1 and query[0]["pkts"] == [1, 0]
    unreachable = [f for f in flows if f["proto"] == "icmp" and f["client"] == [net.srv4, 3]]
    assert len(unreachable) == 1 and unreachable[0]["server"] == [net.cli4, 3]  # port unreachable: code 3
