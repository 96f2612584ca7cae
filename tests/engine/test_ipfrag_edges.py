"""IP fragment reassembly edge cases (docs/fragments.md), on constructed
captures (tests/fragtool.py: out of order, overlaps with the same and
with different bytes, a missing fragment, malformed fragments, a tiny
first fragment, a train of datagrams that never complete): the counters
of ``--stats-json``, the ERROR event, the mos.conf keys, and the cap
dropping the oldest datagrams first. The same captures go through the
ASan+UBSan build in tests/native/test_sanitizers.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fragtool

ROOT = Path(__file__).resolve().parents[2]


def run(pcap: Path, *args: str) -> tuple[list[dict], dict]:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mosfw",
            "run",
            "-r",
            str(pcap),
            "-p",
            "eventlog",
            "-q",
            "--stats-json",
            "-",
            *args,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    stats = json.loads([x for x in r.stderr.splitlines() if x.startswith("{")][-1])
    return [json.loads(x) for x in r.stdout.splitlines() if x.strip()], stats


def conf(tmp_path: Path, **keys: int) -> str:
    p = tmp_path / "mos.conf"
    p.write_text("mos {\n" + "".join(f"  {k} = {v}\n" for k, v in keys.items()) + "}\n")
    return str(p)


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    return fragtool.edge_captures(tmp_path_factory.mktemp("frag"))


@pytest.mark.parametrize("name", ["order-overlap", "timeout", "malformed", "tiny", "train"])
def test_counters(captures, name):
    pcap, expect = captures[name]
    _events, stats = run(pcap)
    for k, v in expect.items():
        assert stats[k] == v, (k, stats)
    # every datagram is accounted for once
    assert stats["frag_mem_peak"] <= 32 << 20


def test_overlaps_first_copy_wins_and_error(captures):
    events, stats = run(captures["order-overlap"][0])
    errors = [e for e in events if e["event"] == "error"]
    assert [e["error"] for e in errors] == ["frag_overlap"]
    assert errors[0]["client"] == "10.9.0.1:40000"
    # the four datagrams are the same SYN: one flow per family, the
    # repeats are retransmitted SYNs
    starts = [e for e in events if e["event"] == "conn_start"]
    assert sorted(e["client"] for e in starts) == ["10.9.0.1:40000", "[fd09::1]:40000"]
    assert stats["rexmits"] == 2


def test_tiny_first_fragment(captures):
    events, _stats = run(captures["tiny"][0])
    assert {e["client"] for e in events if e["event"] == "conn_start"} == {
        "10.9.0.1:40000",
        "[fd09::1]:40000",
    }


def test_timeout_key(captures, tmp_path):
    _, stats = run(captures["timeout"][0], "-f", conf(tmp_path, frag_timeout=60))
    assert stats["frag_timeouts"] == 0 and stats["frag_pending"] == 3


def test_train_is_bounded_by_the_cap(captures, tmp_path):
    cap = 1 << 20
    _, stats = run(captures["train"][0], "-f", conf(tmp_path, frag_memcap=cap))
    assert 0 < stats["frag_mem_peak"] <= cap
    assert stats["frag_cap_drops"] + stats["frag_pending"] == 60000
    assert stats["frag_pending"] < 400


def test_cap_drops_the_oldest_first(tmp_path):
    seg = fragtool.tcp_segment(40000, 80, 1, 0x02, b"y" * 2028)
    frames = []
    for i in range(50):  # 50 datagrams, first halves only
        frames.append(fragtool.ipv4_fragment(f"10.7.0.{i + 1}", "10.7.1.1", 77, 0, True, seg[:1024]))
    for i in (0, 49):  # the second halves of the oldest and the newest
        frames.append(fragtool.ipv4_fragment(f"10.7.0.{i + 1}", "10.7.1.1", 77, 1024, False, seg[1024:]))
    pcap = tmp_path / "cap.pcap"
    fragtool.write_frames(pcap, [(1000 + i * 1e-3, f) for i, f in enumerate(frames)])
    _, base = run(pcap)
    assert base["frag_reassembled"] == 2 and base["frag_cap_drops"] == 0
    events, stats = run(pcap, "-f", conf(tmp_path, frag_memcap=40_000))
    assert stats["frag_reassembled"] == 1 and stats["frag_cap_drops"] >= 39
    assert [e["client"] for e in events if e["event"] == "conn_start"] == ["10.7.0.50:40000"]
    assert stats["frag_mem_peak"] <= 40_000


def test_reassembly_off_and_bad_keys(captures, tmp_path):
    _, stats = run(captures["tiny"][0], "-f", conf(tmp_path, frag_memcap=0))
    assert stats["fragments"] == 4 and stats["frag_reassembled"] == 0 and stats["flows_created"] == 0
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mosfw",
            "run",
            "-r",
            str(captures["tiny"][0]),
            "-f",
            conf(tmp_path, frag_timeout=0),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode != 0 and "frag_timeout" in r.stderr


def test_cap_smaller_than_one_datagram(captures, tmp_path):
    """Nothing fits: every fragment is dropped by the cap, counted."""
    _, stats = run(captures["tiny"][0], "-f", conf(tmp_path, frag_memcap=100))
    assert stats["frag_cap_drops"] == 4 and stats["frag_reassembled"] == 0 and stats["frag_mem_peak"] == 0


def test_run_summary_line(captures):
    r = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-r", str(captures["order-overlap"][0])],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert (
        "mosfw: 18 IP fragments: 4 datagrams reassembled, 0 timed out, 0 dropped by frag_memcap, "
        "0 incomplete at end; 2 overlaps (1 with different bytes), 0 malformed"
    ) in r.stderr


#: runs a command and prints its peak RSS (KiB) from its own rusage; an
#: intermediate process, because a child forked from this (large) test
#: process would start its ru_maxrss at the size of the copy
_RSS = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "_, status, ru = os.wait4(p.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), ru.ru_maxrss)\n"
)


def _peak_rss_kib(pcap: Path, *args: str) -> int:
    """The peak RSS of one ``mosfw run``."""
    cmd = [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-q", *args]
    out = subprocess.run(
        [sys.executable, "-c", _RSS, *cmd], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    rc, rss = map(int, out.stdout.split())
    assert rc == 0
    return rss


def test_train_rss_is_bounded(captures, tmp_path):
    """60,000 datagrams that never complete hold ~220 MB without a cap
    (frag_memcap 1 GB: measured 244 MB peak RSS against 20 MB for a
    4-packet capture); with the cap the peak RSS stays within the cap plus
    what reading the 64 MB file costs anyway (measured: +17 MB at 1 MiB,
    +49 MB at the default 32 MiB)."""
    base = _peak_rss_kib(captures["tiny"][0])
    small = _peak_rss_kib(captures["train"][0], "-f", conf(tmp_path, frag_memcap=1 << 20))
    default = _peak_rss_kib(captures["train"][0])
    big = _peak_rss_kib(captures["train"][0], "-f", conf(tmp_path, frag_memcap=10**9))
    assert small - base < 24 * 1024, (base, small)
    assert default - base < (32 + 24) * 1024, (base, default)
    assert big - default > 100 * 1024, (default, big)  # the cap is what bounds it
