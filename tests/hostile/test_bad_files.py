"""Corrupt, truncated and unusual capture files through `python -m mosfw run`.

Each case must give a clear message that names the file and the problem,
count what it could not use, keep (report) what it could read, exit with
the documented code (docs/robustness.md; `mosfw run --help`) and never
print a traceback:

====================================  =====  ==================================
input                                  exit   what is said / counted
====================================  =====  ==================================
cut mid-record (pcap, pcapng)            3   "ended with a read error after N
                                             packets: truncated ..."
bad pcapng block length (in the body)    3   libpcap's reason, N packets kept
bad section header / interface block     1   "cannot read capture 'F': ..."
`editcap -E` byte errors                 0   malformed / non_tcp counters
snaplen-truncated packets                0   truncated counter (not malformed)
runt frame (short, not snaplen-cut)      0   malformed counter
nanosecond pcap                          0   same results as microseconds
unknown link type (USER0, 802.11)        1   "capture 'F': unsupported link
                                             type N (NAME)"
empty / not a capture / a directory      1   "cannot read capture 'F': ..."
absurd record length                     3   libpcap's reason
====================================  =====  ==================================
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

DEMO = ROOT / "tests" / "data" / "http-loss.pcap"
SEEDS = ROOT / "native" / "fuzz" / "seeds"
DEMO_PACKETS = 266

needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (tshark) not installed")


def mosfw(*args, timeout=60):
    # `python -m mosfw run` as a fork of a pre-imported mosfw (tests/forkrun.py)
    r = forkrun.mosfw("run", *args, timeout=timeout)
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    return r


def run_stats(path, *extra):
    """(CompletedProcess, stats dict) of a run with --stats-json."""
    r = mosfw("-r", path, "--stats-json", "-", *extra)
    last = [line for line in r.stderr.splitlines() if line.startswith("{")]
    stats = json.loads(last[-1]) if last else None
    return r, stats


def assert_counters_add_up(st):
    assert st["packets"] == (
        st["tcp_packets"]
        + st["non_tcp"]
        + st["malformed"]
        + st["truncated"]
        + st["unsupported_link"]
        + st["fragments"]
        + st["bad_checksum"]
    ), st
    assert st["flows_created"] == (
        st["flows_ended_fin"]
        + st["flows_ended_rst"]
        + st["flows_ended_timeout"]
        + st["flows_evicted"]
        + st["flows_ended_eof"]
        + st["flows_reused"]
    ), st


def pcap_records(blob: bytes) -> list[tuple[int, int]]:
    """(offset, end) of each record of a little-endian classic pcap."""
    out, pos = [], 24
    while pos + 16 <= len(blob):
        caplen = struct.unpack("<I", blob[pos + 8 : pos + 12])[0]
        out.append((pos, pos + 16 + caplen))
        pos += 16 + caplen
    return out


# ---- cut and broken files ---------------------------------------------------


@pytest.mark.parametrize("where", ["record-header", "record-body", "last-byte"])
def test_pcap_cut_mid_record(tmp_path, where):
    blob = DEMO.read_bytes()
    recs = pcap_records(blob)
    k = 150
    start, _end = recs[k]
    cut = {"record-header": start + 7, "record-body": start + 16 + 20, "last-byte": len(blob) - 1}[where]
    kept = k if where != "last-byte" else len(recs) - 1
    f = tmp_path / f"cut-{where}.pcap"
    f.write_bytes(blob[:cut])
    r, st = run_stats(f, "-p", "eventlog", "--events", "conn_end")
    assert r.returncode == 3, r.stderr
    assert f"input '{f}' ended with a read error after {kept} packets" in r.stderr
    assert "truncated" in r.stderr
    assert st["status"] == "error" and "truncated" in st["error"] and st["packets"] == kept
    assert_counters_add_up(st)
    ends = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(ends) == st["flows_created"] >= 1  # what was read is still reported
    assert {e["reason"] for e in ends} <= {"fin", "eof", "rst"}


def test_pcap_cut_in_file_header(tmp_path):
    f = tmp_path / "cut-header.pcap"
    f.write_bytes(DEMO.read_bytes()[:10])
    r = mosfw("-r", f)
    assert r.returncode == 1, r.stderr
    assert f"cannot read capture '{f}'" in r.stderr and "truncated" in r.stderr


def pcapng_blocks(blob: bytes) -> list[tuple[int, int, int]]:
    out, pos = [], 0
    while pos + 8 <= len(blob):
        t, n = struct.unpack("<II", blob[pos : pos + 8])
        out.append((pos, t, n))
        pos += n
    return out


@pytest.fixture
def pcapng(tmp_path):
    """http-loss.pcap as a little-endian pcapng (SHB, IDB, one EPB per packet)."""
    from mosfw.testing import packets as P

    recs = []
    blob = DEMO.read_bytes()
    for s, e in pcap_records(blob):
        sec, usec, _caplen, _wire = struct.unpack("<IIII", blob[s : s + 16])
        recs.append((sec + usec / 1e6, blob[s + 16 : e]))
    p = tmp_path / "demo.pcapng"
    P.write_pcapng(p, recs, linktype="ether", snaplen=262144)
    b = p.read_bytes()
    blocks = pcapng_blocks(b)
    assert [t for _, t, _ in blocks[:3]] == [0x0A0D0D0A, 1, 6] and len(blocks) == 2 + DEMO_PACKETS
    return b


@pytest.mark.parametrize(
    "damage, code, message",
    [
        ("huge", 3, "pcapng block size"),
        ("small", 3, "has a length of 7 < 12"),
        ("trailer", 3, "don't match"),
        ("cut", 3, "truncated pcapng dump file"),
        ("shb", 1, "Section Header Block"),
        ("idb", 1, "don't match"),
    ],
)
def test_pcapng_bad_block_lengths(tmp_path, pcapng, damage, code, message):
    b = bytearray(pcapng)
    blocks = pcapng_blocks(pcapng)
    k = 100  # block index; packets before it: k - 2
    pos, _, n = blocks[k]
    if damage == "huge":
        struct.pack_into("<I", b, pos + 4, 0xFFFF0000)
    elif damage == "small":
        struct.pack_into("<I", b, pos + 4, 7)
    elif damage == "trailer":
        struct.pack_into("<I", b, pos + n - 4, n + 4)
    elif damage == "cut":
        b = b[: pos + 30]
    elif damage == "shb":
        struct.pack_into("<I", b, 4, 3)
    elif damage == "idb":
        struct.pack_into("<I", b, blocks[1][0] + 4, blocks[1][2] + 8)
    f = tmp_path / f"bad-{damage}.pcapng"
    f.write_bytes(bytes(b))
    r, st = run_stats(f)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and str(f) in r.stderr
    if code == 3:
        assert f"after {k - 2} packets" in r.stderr
        assert st["packets"] == k - 2 and st["status"] == "error"
        assert_counters_add_up(st)
        assert "2 flows" in r.stderr  # the flows read before the damage are reported
    else:
        assert f"cannot read capture '{f}'" in r.stderr


def test_absurd_record_length(tmp_path):
    blob = bytearray(DEMO.read_bytes())
    start, _ = pcap_records(bytes(blob))[40]
    struct.pack_into("<I", blob, start + 8, 0x7FFFFFF0)
    f = tmp_path / "absurd.pcap"
    f.write_bytes(bytes(blob))
    r, st = run_stats(f)
    assert r.returncode == 3, r.stderr
    assert "after 40 packets" in r.stderr and str(f) in r.stderr
    assert st["packets"] == 40


@pytest.mark.parametrize("kind", ["empty", "text", "directory", "gzip", "header-only"])
def test_not_a_capture(tmp_path, kind):
    f = tmp_path / f"{kind}.pcap"
    if kind == "empty":
        f.write_bytes(b"")
    elif kind == "text":
        f.write_text("GET / HTTP/1.1\r\nHost: example\r\n\r\n" * 3)
    elif kind == "directory":
        f.mkdir()
    elif kind == "gzip":
        import gzip

        f.write_bytes(gzip.compress(DEMO.read_bytes()))
    else:
        f.write_bytes(DEMO.read_bytes()[:24])
    if kind == "directory":  # -r DIR reads the captures in it: none here
        r = subprocess.run(
            [sys.executable, "-m", "mosfw", "run", "-r", str(f), "-q"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert r.returncode == 2, r.stderr
        assert f"-r {f}: the directory holds no capture file" in r.stderr
        return
    r, st = run_stats(f)
    if kind == "header-only":
        assert r.returncode == 0, r.stderr
        assert st["packets"] == 0 and st["status"] == "done"
        return
    if kind == "gzip":  # a compressed capture is streamed through gzip -dc (docs/archives.md)
        assert r.returncode == 0, r.stderr
        assert st["packets"] == DEMO_PACKETS and st["archive"]["files"][0]["state"] == "done"
        return
    assert r.returncode == 1, r.stderr
    assert f"cannot read capture '{f}'" in r.stderr


# ---- damaged packets ----------------------------------------------------------


@needs_editcap
@pytest.mark.parametrize("prob, seed", [(0.02, 1), (0.05, 2), (0.2, 3)])
def test_editcap_random_byte_errors(tmp_path, prob, seed):
    f = tmp_path / f"e{seed}.pcap"
    subprocess.run(
        ["editcap", "-E", str(prob), "--seed", str(seed), str(DEMO), str(f)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    r, st = run_stats(f, "-p", "eventlog")
    assert r.returncode == 0, r.stderr
    assert st["packets"] == DEMO_PACKETS and st["status"] == "done"
    assert_counters_add_up(st)
    assert f"mosfw: {DEMO_PACKETS} packets (" in r.stderr
    if prob >= 0.05:
        assert st["malformed"] + st["non_tcp"] > 9  # the demo has 9 non-TCP packets
    ends = sum(1 for line in r.stdout.splitlines() if json.loads(line)["event"] == "conn_end")
    assert ends == st["flows_created"]


def test_flipped_header_bytes_are_counted(tmp_path):
    """Our own deterministic damage: IP version nibbles, header lengths and
    TCP data offsets broken in chosen packets."""
    blob = bytearray(DEMO.read_bytes())
    recs = pcap_records(bytes(blob))
    broken = 0
    for k in range(5, DEMO_PACKETS, 7):
        s, _ = recs[k]
        eth = s + 16
        if blob[eth + 12 : eth + 14] == b"\x08\x00":  # IPv4
            blob[eth + 14] = 0x41  # IHL 4 words < 20 bytes
            broken += 1
        elif blob[eth + 12 : eth + 14] == b"\x86\xdd" and blob[eth + 14 + 6] == 6:
            blob[eth + 14 + 40 + 12] = 0x10  # TCP data offset 4 words < 20 bytes
            broken += 1
    f = tmp_path / "flipped.pcap"
    f.write_bytes(bytes(blob))
    r, st = run_stats(f)
    assert r.returncode == 0, r.stderr
    assert st["malformed"] == broken > 20
    assert f"{broken} malformed" in r.stderr
    assert_counters_add_up(st)


@needs_editcap
@pytest.mark.parametrize(
    "snaplen, truncated, tcp, flows", [(60, 127, 130, 2), (34, 264, 0, 0), (96, 0, 257, 4)]
)
def test_snaplen_truncated_packets(tmp_path, snaplen, truncated, tcp, flows):
    """editcap -s N cuts every frame: IPv4 TCP headers still fit in 60
    bytes, IPv6 ones (74 bytes) do not. Cut headers are counted as
    truncated (the capture's doing), not malformed, and said so."""
    f = tmp_path / f"snap{snaplen}.pcap"
    subprocess.run(
        ["editcap", "-s", str(snaplen), str(DEMO), str(f)], check=True, capture_output=True, timeout=60
    )
    r, st = run_stats(f)
    assert r.returncode == 0, r.stderr
    assert (st["truncated"], st["tcp_packets"], st["malformed"], st["flows_created"]) == (
        truncated,
        tcp,
        0,
        flows,
    )
    assert_counters_add_up(st)
    if truncated:
        assert f"mosfw: {truncated} packets cut by the capture's snaplen" in r.stderr
    else:
        assert "snaplen" not in r.stderr


def test_runt_frame_is_malformed_not_truncated(tmp_path, mosfw_capture):
    """A frame too short for its headers that was captured whole (caplen ==
    wire length) is malformed; the same frame cut by a snaplen is truncated."""
    from mosfw.testing import packets as P

    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    frame = cap.records[0][1]
    runt = frame[: 14 + 20 + 8]  # Ethernet + IPv4 + 8 bytes of TCP
    recs = [(1000.0, frame), (1000.1, runt)]
    whole = tmp_path / "runt.pcap"
    P.write_pcap(whole, recs, linktype="ether")
    r, st = run_stats(whole)
    assert r.returncode == 0 and (st["malformed"], st["truncated"]) == (1, 0), st
    cut = tmp_path / "cut.pcap"
    P.write_pcap(cut, [(1000.0, frame), (1000.1, frame)], linktype="ether", snaplen=14 + 20 + 8)
    r, st = run_stats(cut)
    assert r.returncode == 0 and (st["malformed"], st["truncated"]) == (0, 2), st


@needs_editcap
def test_nanosecond_pcap_same_results(tmp_path):
    ns = tmp_path / "ns.pcap"
    subprocess.run(
        ["editcap", "-F", "nsecpcap", str(DEMO), str(ns)], check=True, capture_output=True, timeout=60
    )
    assert ns.read_bytes()[:4] == b"\x4d\x3c\xb2\xa1"
    a = mosfw("-r", DEMO, "-p", "eventlog", "-q")
    b = mosfw("-r", ns, "-p", "eventlog", "-q")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.count("\n") > 50


def test_nanosecond_timestamps_kept(tmp_path, mosfw_capture):
    """Sub-microsecond spacing: packets 300 ns apart. The last packet comes
    30 s + 600 ns after the first flow's last one (it times out: the
    default tcp_timeout is 30 s) and 30 s - 300 ns after the second flow's
    (it does not: it ends at end of input)."""
    cap = mosfw_capture(start=1000.0, step=300e-9)
    c = cap.conversation()
    c.handshake()
    c.send("client", 10)
    d = cap.conversation(client=("10.0.0.9", 50000))
    d.handshake()
    cap.advance(30.0 - 2 * 300e-9)
    d.send("client", 1)
    f = tmp_path / "ns.pcap"
    cap.write_pcap(f, nanosecond=True)
    r = mosfw("-r", f, "-p", "eventlog", "--events", "conn_end", "-q")
    assert r.returncode == 0, r.stderr
    ends = {json.loads(line)["client"]: json.loads(line)["reason"] for line in r.stdout.splitlines()}
    assert ends == {"10.0.0.1:40000": "timeout", "10.0.0.9:50000": "eof"}, ends


# ---- link types ------------------------------------------------------------------


@needs_editcap
@pytest.mark.parametrize("encap, number, name", [("user0", 147, "unknown"), ("fddi", 10, "FDDI")])
def test_unknown_link_type(tmp_path, encap, number, name):
    f = tmp_path / f"{encap}.pcap"
    subprocess.run(["editcap", "-T", encap, str(DEMO), str(f)], check=True, capture_output=True, timeout=60)
    r = mosfw("-r", f)
    assert r.returncode == 1, r.stderr
    assert f"capture '{f}': unsupported link type {number} ({name})" in r.stderr
    assert "mosfw reads Ethernet" in r.stderr


def test_unknown_link_type_from_tcpdump_tests():
    f = SEEDS / "unsupported-link-type-160.pcap"
    r = mosfw("-r", f)
    assert r.returncode == 1 and f"capture '{f}': unsupported link type 160" in r.stderr


def test_wrong_link_type_label_is_malformed(tmp_path):
    """Ethernet frames in a file that says raw IP: every packet malformed,
    none tracked, no crash."""
    blob = bytearray(DEMO.read_bytes())
    struct.pack_into("<I", blob, 20, 101)
    f = tmp_path / "mislabelled.pcap"
    f.write_bytes(bytes(blob))
    r, st = run_stats(f)
    assert r.returncode == 0, r.stderr
    assert st["malformed"] == DEMO_PACKETS and st["flows_created"] == 0


def test_time_going_backwards_and_zero(tmp_path):
    """Timestamps out of order, zero, and far in the future: deterministic,
    every flow still ends once."""
    blob = bytearray(DEMO.read_bytes())
    rng = random.Random(5)
    for s, _ in pcap_records(bytes(blob)):
        struct.pack_into("<I", blob, s, rng.choice([0, 1, 0xFFFFFFFF, 1795701170 + rng.randrange(-100, 100)]))
    f = tmp_path / "times.pcap"
    f.write_bytes(bytes(blob))
    r1, st1 = run_stats(f, "-p", "eventlog")
    r2, _st2 = run_stats(f, "-p", "eventlog")
    assert r1.returncode == 0 and r1.stdout == r2.stdout
    assert_counters_add_up(st1)
    ends = sum(1 for line in r1.stdout.splitlines() if json.loads(line)["event"] == "conn_end")
    assert ends == st1["flows_created"] > 0


def test_negative_packet_time_conn_record():
    """tests/data/fuzz-negative-time.pcap: the fuzzer's find. pcap seconds
    are signed 32-bit, so 0x9b53f129 is a time before 1970; conn.log's
    writer turned it into an unsigned integer (undefined behaviour, caught
    by UBSan in fuzz_pcap). It now prints the negative time as "%.6f"
    would."""
    f = ROOT / "tests" / "data" / "fuzz-negative-time.pcap"
    for fmt, prefix in (("json", '{"ts":-1688997591.000000,"uid":"C'), ("zeek", "-1688997591.000000\tC")):
        r = mosfw("-r", f, "-p", "samples/tracker", "--conn-format", fmt, "-q")
        assert r.returncode == 0, r.stderr
        rec = [line for line in r.stdout.splitlines() if not line.startswith("#")]
        assert len(rec) == 1 and rec[0].startswith(prefix), r.stdout
        assert "1.500000" in rec[0] and "SF" in rec[0]
    r = mosfw("-r", f, "-p", "eventlog", "--events", "conn_end", "-q")
    assert json.loads(r.stdout)["ts"] < 0 and json.loads(r.stdout)["reason"] == "fin"
