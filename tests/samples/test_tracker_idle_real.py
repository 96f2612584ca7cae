"""The tracker's timeouts on real traffic with long idle gaps, checked
against tshark.

Two real TCP connections (one IPv4, one IPv6) between two network
namespaces: a Python client sends a request, reads the reply, pauses
about a second, and does it again three times before it closes. The
capture (tcpdump) is then stretched with editcap: the packets after each
pause are shifted 60 s later (``editcap -r`` cuts it at the pauses,
``editcap -t`` shifts the parts, ``mergecap -a`` joins them), so each
connection idles about a minute twice: past mOS's 30 s idle timeout,
within Zeek's 5 minutes (init-bare.zeek ``tcp_inactivity_timeout``). The
packets are the kernel's own, only their times are moved.

Oracle: tshark on the stretched file, per direction of each connection:
frames (``-z conv,tcp``) and IP bytes (per frame ``ip.len``,
``ipv6.plen`` + 40).
"""

from __future__ import annotations

import collections
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

import realnet  # noqa: E402

PORT = 9099
PAUSE = 1.0  # seconds between the exchanges, on the wire
STRETCH = 60.0  # seconds each pause is lengthened by

SERVER = f"""
import socket, threading
def serve(family, addr):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind((addr, {PORT}))
    s.listen(8)
    while True:
        c, _ = s.accept()
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d * 3)
        c.close()
for fam, addr in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    threading.Thread(target=serve, args=(fam, addr), daemon=True).start()
threading.Event().wait()
"""

CLIENT = f"""
import socket, sys, time
host = sys.argv[1]
for attempt in range(50):
    try:
        c = socket.create_connection((host, {PORT}), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
for i in range(4):
    if i:
        time.sleep({PAUSE})
    msg = bytes([65 + i]) * (200 + 100 * i)
    c.sendall(msg)
    got = b""
    while len(got) < 3 * len(msg):
        got += c.recv(65536)
c.shutdown(socket.SHUT_WR)
c.recv(1)
c.close()
"""


def _tshark_directions(pcap: Path) -> dict[tuple[str, str], list[int]]:
    """Per direction ("ip:port" -> "ip:port"): [frames, IP bytes]."""
    out = subprocess.run(
        [
            "tshark", "-n", "-r", str(pcap), "-Y", "tcp", "-T", "fields", "-E", "separator=|",
            "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
            "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport",
            "-e", "ip.len", "-e", "ipv6.plen",
        ],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    got: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for line in out.splitlines():
        s4, s6, sp, d4, d6, dp, ilen, plen = line.split("|")
        d = (f"{s4 or s6}:{sp}", f"{d4 or d6}:{dp}")
        got[d][0] += 1
        got[d][1] += int(ilen) if ilen else 40 + int(plen)
    return got


def _conv_frames(pcap: Path) -> dict[tuple[str, str], int]:
    """``tshark -z conv,tcp``: frames per direction, IPv6 as tshark prints it."""
    got = {}
    for c in realnet.tshark_conversations(pcap):
        a, b = (x.replace("[", "").replace("]", "") for x in (c.a, c.b))
        got[(b, a)] = c.frames_b_to_a
        got[(a, b)] = c.frames_a_to_b
    return got


def _stretch(src: Path, dst: Path, tmp: Path) -> int:
    """Shift the packets after each pause (a gap over PAUSE/2) STRETCH s
    later, cumulatively; returns the number of pauses."""
    times = [
        float(t)
        for t in subprocess.run(
            ["tshark", "-r", str(src), "-T", "fields", "-e", "frame.time_epoch"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.split()
    ]  # fmt: skip
    cuts = [i + 1 for i in range(1, len(times)) if times[i] - times[i - 1] > PAUSE / 2]  # 1-based starts
    bounds = [1, *cuts, len(times) + 1]
    parts = []
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        part, shifted = tmp / f"part{n}.pcap", tmp / f"part{n}s.pcap"
        subprocess.run(["editcap", "-r", str(src), str(part), f"{a}-{b - 1}"], check=True, timeout=60)
        subprocess.run(["editcap", "-t", str(n * STRETCH), str(part), str(shifted)], check=True, timeout=60)
        parts.append(str(shifted))
    subprocess.run(["mergecap", "-a", "-F", "pcap", "-w", str(dst), *parts], check=True, timeout=60)
    return len(cuts)


def _track(pcap: Path, *extra: str) -> list[dict]:
    tracker = str(ROOT / "samples" / "tracker")
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-q", "-p", tracker, *extra],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def _directions(records: list[dict]) -> dict[tuple[str, str], list[int]]:
    got: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0])
    for r in records:
        o, s = f"{r['id.orig_h']}:{r['id.orig_p']}", f"{r['id.resp_h']}:{r['id.resp_p']}"
        got[(o, s)][0] += r["orig_pkts"]
        got[(o, s)][1] += r["orig_ip_bytes"]
        got[(s, o)][0] += r["resp_pkts"]
        got[(s, o)][1] += r["resp_ip_bytes"]
    return got


@pytest.mark.realnet
def test_idle_minutes_are_one_connection_as_in_zeek(tmp_path):
    ok, why = realnet.can_use_netns(("ip", "tcpdump", "tshark", "editcap", "mergecap"))
    if not ok:
        pytest.skip(f"needs network namespaces and wireshark's tools: {why}")
    raw, stretched = tmp_path / "raw.pcap", tmp_path / "stretched.pcap"
    with realnet.netpair() as net:
        net.popen_in("server", [sys.executable, "-c", SERVER], stdin=subprocess.DEVNULL)
        with net.capture(raw, bpf="tcp"):
            for host in (net.srv4, net.srv6):
                net.run_in("client", [sys.executable, "-c", CLIENT, host], timeout=30)
    pauses = _stretch(raw, stretched, tmp_path)
    assert pauses == 6, f"{pauses} pauses found (3 per connection expected)"

    oracle = _tshark_directions(stretched)
    conv = _conv_frames(stretched)
    assert {d: v[0] for d, v in oracle.items()} == conv  # the two tshark views agree
    assert len(conv) == 4  # two connections, two directions each

    # Zeek's model (the tracker's default): one SF record per connection
    zeek = _track(stretched)
    assert len(zeek) == 2, zeek
    for r in zeek:
        assert (r["conn_state"], r["close_reason"], r["id.resp_p"]) == ("SF", "fin", PORT)
        assert r["history"].startswith("ShAD") and r["duration"] > 3 * STRETCH
        assert (r["orig_bytes"], r["resp_bytes"]) == (1400, 4200)
    assert _directions(zeek) == oracle

    # mOS's model (--tcp-timeout 30): each idle minute ends the flow; the
    # packets are still all counted, over more records
    mos = _track(stretched, "--tcp-timeout", "30")
    assert len(mos) > 2 and any(r["close_reason"] == "timeout" for r in mos)
    assert _directions(mos) == oracle


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap not installed")
def test_stretch_helper_needs_pauses(tmp_path, mosfw_capture, mosfw_pcap):
    # the helper itself: one pause of 2 s in a synthetic capture -> one cut,
    # and the packets after it 60 s later
    cap = mosfw_capture(start=1000.0, step=0.001)
    c = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", PORT))
    c.handshake()
    cap.advance(2.0)
    c.send("client", 10)
    src = mosfw_pcap(cap, "pause.pcap")
    dst = tmp_path / "out.pcap"
    assert _stretch(Path(src), dst, tmp_path) == 1
    times = subprocess.run(
        ["tshark", "-r", str(dst), "-T", "fields", "-e", "frame.time_epoch"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    assert float(times[-1]) - float(times[0]) == pytest.approx(62.0, abs=0.02)
