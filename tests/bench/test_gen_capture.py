"""bench/gen_capture.c writes the capture it claims to write.

Compiles the generator into a temporary directory, writes small captures and
checks them with capinfos and tshark: packet count, TCP connection count,
retransmissions (tshark's tcp.analysis.retransmission) equal to the ones
injected, IPv6 share, valid checksums, nothing malformed, determinism.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GEN_SRC = ROOT / "bench" / "gen_capture.c"

CC = shutil.which("cc") or shutil.which("gcc")
TSHARK = shutil.which("tshark")
CAPINFOS = shutil.which("capinfos")

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) to build bench/gen_capture.c"),
    pytest.mark.skipif(
        TSHARK is None or CAPINFOS is None, reason="tshark/capinfos (Wireshark CLI tools) not installed"
    ),
]

PI_WARN = 0x00600000  # Wireshark expert severity "warning"


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:
    exe = tmp_path_factory.mktemp("gen") / "gen_capture"
    subprocess.run([CC, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe), str(GEN_SRC)], check=True)
    return exe


def generate(gen: Path, out: Path, *args: str) -> dict:
    res = subprocess.run([str(gen), "-o", str(out), *args], capture_output=True, text=True, check=True)
    summary = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)(?:\s|$)", res.stderr)}
    assert {"packets", "connections", "ipv6", "rexmits"} <= summary.keys(), res.stderr
    return summary


def capinfos_packets(pcap: Path) -> int:
    res = subprocess.run(
        [CAPINFOS, "-c", "-M", "-T", "-r", str(pcap)], capture_output=True, text=True, check=True
    )
    return int(res.stdout.split()[-1])


def tshark_conversations(pcap: Path) -> int:
    res = subprocess.run(
        [TSHARK, "-n", "-r", str(pcap), "-q", "-z", "conv,tcp"], capture_output=True, text=True, check=True
    )
    return sum(1 for line in res.stdout.splitlines() if "<->" in line)


def tshark_packets(pcap: Path) -> list[dict]:
    """Per packet: IP version, TCP stream, SYN-only, retransmission, worst expert severity."""
    res = subprocess.run(
        [
            TSHARK,
            "-n",
            "-r",
            str(pcap),
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
            "-e",
            "tcp.analysis.retransmission",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pkts = []
    for line in res.stdout.splitlines():
        v4, v6, stream, syn, ack, rex, malformed, sev = (line.split("\t") + [""] * 8)[:8]
        pkts.append(
            {
                "v6": bool(v6) and not v4,
                "stream": int(stream) if stream else None,
                "syn_only": syn in ("1", "True") and ack in ("0", "False"),
                "rexmit": bool(rex),
                "malformed": bool(malformed),
                "severity": max((int(s, 0) for s in sev.split(",") if s), default=0),
            }
        )
    return pkts


def expected_packets(conns: int, segs: int, rexmits: int) -> int:
    # handshake 3, request 1, data segs, client ACK every 2nd + last, close 3
    return conns * (3 + 1 + segs + math.ceil(segs / 2) + 3) + rexmits


@pytest.mark.parametrize(
    "args, conns, segs",
    [
        ((), 200, 8),  # the bench's defaults
        (("-d", "3", "-r", "0.25", "-c", "17", "-s", "5"), 200, 3),
    ],
)
def test_capture_matches_summary(gen, tmp_path, args, conns, segs):
    pcap = tmp_path / "c.pcap"
    s = generate(gen, pcap, "-n", str(conns), *args)
    assert s["connections"] == conns
    if "-r" not in args:
        assert s["rexmits"] == conns  # default: one per connection
    else:
        assert 0 < s["rexmits"] < conns
    assert s["ipv6"] == conns // 8  # every 8th connection

    n = expected_packets(conns, segs, s["rexmits"])
    assert s["packets"] == n
    assert capinfos_packets(pcap) == n
    assert tshark_conversations(pcap) == conns

    pkts = tshark_packets(pcap)
    assert len(pkts) == n
    assert all(p["stream"] is not None for p in pkts)
    assert len({p["stream"] for p in pkts}) == conns
    assert sum(p["rexmit"] for p in pkts) == s["rexmits"]
    syns = [p for p in pkts if p["syn_only"]]
    assert len(syns) == conns
    assert sum(p["v6"] for p in syns) == s["ipv6"]
    # valid IPv4/TCP checksums, nothing malformed, no expert warning or error
    assert not any(p["malformed"] for p in pkts)
    assert max(p["severity"] for p in pkts) < PI_WARN


def test_deterministic(gen, tmp_path):
    a, b, c = tmp_path / "a.pcap", tmp_path / "b.pcap", tmp_path / "c.pcap"
    generate(gen, a, "-n", "150", "-s", "3")
    generate(gen, b, "-n", "150", "-s", "3")
    generate(gen, c, "-n", "150", "-s", "4")
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_bad_options(gen, tmp_path):
    for args in (["-d", "0"], ["-r", "2"], ["-n", "x"], ["-c", "0"], ["-m", "half"]):
        res = subprocess.run(
            [str(gen), "-o", str(tmp_path / "x.pcap"), *args], capture_output=True, text=True
        )
        assert res.returncode == 2, args
        assert "gen_capture" in res.stderr or "usage" in res.stderr


@pytest.mark.parametrize("mode, per_conn", [("est", 3), ("syn", 1)])
def test_handshake_only_modes(gen, tmp_path, mode, per_conn):
    """-m est: every connection's handshake and nothing else (all open at
    once, for the memory measurement); -m syn: only the SYNs."""
    conns = 300
    pcap = tmp_path / f"{mode}.pcap"
    s = generate(gen, pcap, "-n", str(conns), "-m", mode)
    assert s["packets"] == conns * per_conn
    assert s["rexmits"] == 0
    assert s["ipv6"] == conns // 8
    assert capinfos_packets(pcap) == conns * per_conn
    assert tshark_conversations(pcap) == conns
    pkts = tshark_packets(pcap)
    assert sum(p["syn_only"] for p in pkts) == conns
    # all the SYNs come first: every connection is open before any completes
    assert all(p["syn_only"] for p in pkts[:conns])
    assert not any(p["rexmit"] or p["malformed"] for p in pkts)
    assert max(p["severity"] for p in pkts) < PI_WARN
    # the same connections as the full capture's first ones (same 5-tuples, ISNs)
    full = tmp_path / "full.pcap"
    generate(gen, full, "-n", str(conns), "-c", "1")
    first_syn = full.read_bytes()[24 : 24 + 16 + 58]
    assert pcap.read_bytes()[24 + 16 : 24 + 16 + 58] == first_syn[16:]
