"""The engine under ASan+UBSan over every test capture, plus damaged ones.

`make test` builds native/build-asan/mosfw-replay (the engine with
-fsanitize=address,undefined -fno-sanitize-recover=all and warnings as
errors, driven from C). Any sanitizer report aborts it, which fails here.
The driver also aborts when an event names a stale flow slot or when the
number of CONN_END differs from the number of flows.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "native" / "build-asan" / "mosfw-replay"
DATA = ROOT / "tests" / "data"

pytestmark = pytest.mark.skipif(
    not REPLAY.exists(), reason="sanitizer build missing: run `make asan` (make test does)"
)


def replay(*files, args=()):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    r = subprocess.run(
        [str(REPLAY), *args, *map(str, files)], capture_output=True, text=True, timeout=120, env=env
    )
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-3000:]}"
    return r.stdout


def data_captures():
    return sorted(
        p for p in DATA.rglob("*") if p.suffix in (".pcap", ".pcapng", ".cap") or p.name.endswith(".pcap.gz")
    )


def synthetic(tmp_path: Path) -> list[Path]:
    """Scenario captures in every link type, v4 and v6."""
    from mosfw.testing.flows import Capture

    out = []
    for lt in ("ether", "raw", "sll", "sll2", "null", "loop"):
        for v6 in (False, True):
            cap = Capture(linktype=lt)
            cli, srv = (
                (("fd00::1", 40000), ("fd00::2", 80)) if v6 else (("10.0.0.1", 40000), ("10.0.0.2", 80))
            )
            c = cap.conversation(client=cli, server=srv, client_isn=2**32 - 30)
            c.handshake()
            lost = c.send("client", 100, emit=False)
            c.send("client", 100)
            c.emit(lost)
            c.keepalive("server")
            c.fin("client")
            c.fin("server")
            c.ack("client")
            c.ack("client")
            c.rst("server")
            for d in cap.conversations(20, handshake=True):
                d.send("server", 50)
            p = tmp_path / f"syn-{lt}-{'v6' if v6 else 'v4'}.pcap"
            cap.write_pcap(p)
            out.append(p)
    return out


def test_replay_all_test_captures():
    files = data_captures()
    assert files, "no captures in tests/data"
    out = replay(*files)
    assert out.count("\n") == len(files)


def test_replay_synthetic_every_link_type(tmp_path):
    files = synthetic(tmp_path)
    out = replay(*files)
    for line in out.splitlines():
        assert "status=done" in line, line


def test_replay_small_table_and_no_timeout(tmp_path):
    files = synthetic(tmp_path)[:2]
    replay(*files, args=("-n", "3", "-t", "0"))


def cut_copies(tmp_path, n: int, seed: int) -> list:
    """n copies of http-loss.pcap, each cut at a random byte."""
    blob = (DATA / "http-loss.pcap").read_bytes()
    rng = random.Random(seed)
    files = []
    for i, cut in enumerate(sorted(rng.sample(range(25, len(blob)), n))):
        p = tmp_path / f"cut{i}.pcap"
        p.write_bytes(blob[:cut])
        files.append(p)
    return files


def test_truncated_files(tmp_path):
    """Cut mid-record at many points: a read error, never a crash."""
    files = cut_copies(tmp_path, 40, seed=7)
    out = replay(*files)
    assert "read-error" in out


def test_random_byte_errors(tmp_path):
    """Bytes flipped inside packets (like `editcap -E`): malformed headers,
    absurd lengths and sequence numbers must be survived."""
    src = (DATA / "http-loss.pcap").read_bytes()
    rng = random.Random(11)
    files = []
    for i in range(30):
        b = bytearray(src)
        for _ in range(200):
            pos = rng.randrange(24 + 16, len(b))  # keep the file header
            b[pos] = rng.randrange(256)
        p = tmp_path / f"flip{i}.pcap"
        p.write_bytes(bytes(b))
        files.append(p)
    replay(*files)


@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap (tshark) not installed")
def test_editcap_damage(tmp_path):
    src = DATA / "http-loss.pcap"
    files = []
    for i, args in enumerate((["-E", "0.02"], ["-E", "0.1"], ["-s", "60"], ["-s", "34"], ["-F", "pcapng"])):
        p = tmp_path / f"ed{i}.pcap"
        subprocess.run(["editcap", *args, str(src), str(p)], check=True, capture_output=True, timeout=60)
        files.append(p)
    replay(*files)


def test_replay_all_test_captures_with_udp_and_icmp_tracked():
    """UDP and ICMP flows (native/core_dgram.c, dgram.c) under the
    sanitizers, on one core and on three fed by one reader (native/feed.c): every
    DNS, NTP, tunnel, fragment... packet of the test captures, with the
    API calls mosfw-replay makes on every record."""
    files = data_captures()
    one = replay(*files, args=("-P", "7"))
    assert one.count("\n") == len(files)
    flows = sum(int(line.split("flows=")[1].split()[0]) for line in one.splitlines())
    tcp_only = sum(int(line.split("flows=")[1].split()[0]) for line in replay(*files).splitlines())
    assert flows > tcp_only  # the captures hold UDP and ICMP: more flows
    three = replay(*files, args=("-P", "7", "-c", "3"))
    assert three.count("\n") == 3 * len(files)


def test_replay_all_test_captures_with_the_trackers_settings():
    """A tracker run's engine settings (-Z: tcp_partial_open, so every
    first TCP packet starts a flow; tcp_one_sided_close; UDP checksums,
    VXLAN's exception included; the attempt delay) under the sanitizers,
    on one core and on three."""
    files = data_captures()
    one = replay(*files, args=("-P", "7", "-Z"))
    assert one.count("\n") == len(files)
    flows = sum(int(line.split("flows=")[1].split()[0]) for line in one.splitlines())
    default = sum(
        int(line.split("flows=")[1].split()[0]) for line in replay(*files, args=("-P", "7")).splitlines()
    )
    assert flows > default  # lone RSTs, FINs start flows; attempts past the delay end
    three = replay(*files, args=("-P", "7", "-Z", "-c", "3"))
    assert three.count("\n") == 3 * len(files)


def test_replay_all_test_captures_on_three_cores_fed_by_one_reader():
    """native/feed.c and source_ring.c under the sanitizers: the reader
    thread feeds three cores (round robin in one process) every test
    capture, pcapng and compressed ones included; the input counters are
    those of one core."""
    files = data_captures()
    one = replay(*files).splitlines()
    out = replay(*files, args=("-c", "3")).splitlines()
    assert len(out) == 3 * len(one)
    assert sum(": ring " in line for line in out) == len(out)
    for k, line in enumerate(one):
        for other in out[3 * k : 3 * k + 3]:
            for key in ("packets=", "tcp=", "malformed=", "status="):
                assert other.split(key)[1].split()[0] == line.split(key)[1].split()[0], (line, other)


def test_cores_as_threads_get_what_round_robin_cores_get():
    """The feed with its cores running at once, each in a thread of its
    own (mosfw-replay -T), under the sanitizers: the ring protocol with
    every side waking and sleeping concurrently (in the round-robin run
    one thread serves all three cores). Each core's counters depend only
    on the packets it owns, so every line is the round-robin run's."""
    files = data_captures()
    round_robin = replay(*files, args=("-P", "7", "-c", "3"))
    threads = replay(*files, args=("-P", "7", "-c", "3", "-T"))
    assert threads.count("\n") == 3 * len(files)
    assert threads == round_robin


def test_truncated_files_fed_to_two_cores(tmp_path):
    """Cut at many points, fed to two cores: both end with the read error
    one reader gets, after the same packets."""
    files = cut_copies(tmp_path, 25, seed=11)
    one = replay(*files).splitlines()
    two = replay(*files, args=("-c", "2")).splitlines()
    assert len(two) == 2 * len(one)
    for k, line in enumerate(one):
        packets = line.split("packets=")[1].split()[0]
        status = line.split("status=")[1]
        for other in two[2 * k : 2 * k + 2]:
            assert other.split("packets=")[1].split()[0] == packets, (line, other)
            assert other.split("status=")[1] == status, (line, other)


def test_replay_archive_set_and_segment_window(tmp_path):
    """Many files as one stream (native/source_set.c: two overlapping
    per-direction files merged, a gzip-compressed piece streamed through
    gzip -dc, a truncated piece) and a segment window
    (mosfw_core_own_window), under the sanitizers."""
    import gzip

    blob = (DATA / "http-loss.pcap").read_bytes()
    whole = replay(DATA / "http-loss.pcap")
    pieces = []
    for name in ("a", "b"):
        p = tmp_path / f"{name}.pcap"
        flt = "tcp src port 8080" if name == "a" else "not (tcp src port 8080)"
        subprocess.run(
            ["tcpdump", "-r", str(DATA / "http-loss.pcap"), "-w", str(p), flt],
            check=True,
            capture_output=True,
        )
        pieces.append(p)
    z = tmp_path / "z.pcap.gz"
    z.write_bytes(gzip.compress(blob))
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(blob[: len(blob) // 3])
    out = replay(*pieces, args=("-A",))
    assert "status=done" in out and whole.split(": ", 1)[1] == out.split(": ", 1)[1]
    # two merged files and a gzip one, fed to two cores by one reader
    one = _fields(replay(*pieces, z, args=("-A",)))
    two = [_fields(line) for line in replay(*pieces, z, args=("-A", "-c", "2")).splitlines()]
    assert int(one["packets"]) == 2 * int(_fields(whole)["packets"])
    assert len(two) == 2 and all(t["packets"] == one["packets"] and t["status"] == "done" for t in two)
    assert sum(int(t["flows"]) for t in two) == int(one["flows"])
    out = replay(pieces[0], z, cut, args=("-A", "-W", "0:1795701171.2"))
    assert "status=done" in out


def _fields(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split(": ", 1)[1].split() if "=" in kv)


def test_fragment_captures(tmp_path):
    """IP fragment reassembly (native/ipfrag.c) under the sanitizers: the
    constructed edge cases (tests/fragtool.py: out of order, overlaps,
    missing and malformed fragments, a tiny first fragment, a train of
    60000 datagrams that never complete against the 32 MiB cap) and
    http-loss.pcap fragmented in every way, on one core and on two
    fed by one reader (native/feed.c); the counters are the expected ones."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import fragtool

    edges = fragtool.edge_captures(tmp_path)
    names = {
        "frags": "fragments",
        "reassembled": "frag_reassembled",
        "frag_peak": "frag_mem_peak",
        "frag_unusable": "frag_malformed",  # (not "malformed=": other tests count those)
    }
    for args in ((), ("-c", "2")):
        lines = replay(*(p for p, _ in edges.values()), args=args).splitlines()
        per = len(lines) // len(edges)
        for (name, (_, expect)), k in zip(edges.items(), range(0, len(lines), per), strict=False):
            for line in lines[k : k + per]:
                got = {names.get(a, a): int(v) for a, v in _fields(line).items() if v.isdigit()}
                for key, v in expect.items():
                    assert got[key] == v, (name, key, line)
                assert got["frag_mem_peak"] <= 32 << 20, line
    plain = int(_fields(replay(DATA / "http-loss.pcap"))["rexmit"])
    kinds = [
        {"size": 512},
        {"size": 64, "v6": True, "order": "reverse", "dup": True, "conflict": True},
        {"size": 8, "tiny": True},
    ]
    files = []
    for i, kw in enumerate(kinds):
        p = tmp_path / f"frag{i}.pcap"
        fragtool.fragment_capture(DATA / "http-loss.pcap", p, **kw)
        files.append(p)
    for args in ((), ("-c", "2")):
        for line in replay(*files, args=args).splitlines():
            f = _fields(line)
            assert f["frag_pending"] == "0" and f["frag_unusable"] == "0", line
            if not args:
                assert int(f["rexmit"]) == plain, line


def test_million_fragment_train(tmp_path):
    """A train of 1,000,000 copies of one fragment (the same 8 bytes at
    offset 8 of a datagram that never completes): every copy is an
    overlap of held bytes, the datagram stays one, memory stays put."""
    import struct
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import fragtool

    frame = fragtool.ipv4_fragment("10.6.0.1", "10.6.0.2", 99, 8, True, b"\xab" * 8)
    rec = struct.pack("<IIII", 1000, 0, len(frame), len(frame)) + frame
    p = tmp_path / "train1m.pcap"
    p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1) + rec * 1_000_000)
    f = _fields(replay(p))
    assert f["frags"] == "1000000" and f["frag_overlaps"] == "999999" and f["frag_pending"] == "1", f
    assert int(f["frag_peak"]) < 8192, f


def encapsulated(tmp_path: Path) -> list[Path]:
    """http-loss.pcap in every encapsulation and link type
    (mosfw.testing.encap), and the Ethernet ones nested 6 deep (past the
    default depth limit of 4)."""
    from mosfw.testing.encap import KINDS, NESTABLE, wrap_capture

    out = []
    for kind in sorted(KINDS):
        src = (
            ROOT / "tests" / "multicore" / "data" / "http_ipv6.pcap"
            if kind == "teredo"
            else DATA / "http-loss.pcap"
        )
        p = tmp_path / f"encap-{kind}.pcap"
        wrap_capture(src, p, kind)
        out.append(p)
        if kind in NESTABLE:
            p = tmp_path / f"encap-{kind}-x6.pcap"
            wrap_capture(src, p, kind, depth=6)
            out.append(p)
    return out


@pytest.fixture(scope="module")
def encaps(tmp_path_factory) -> list[Path]:
    """encapsulated(), made once for the two tests that read it."""
    return encapsulated(tmp_path_factory.mktemp("encap"))


def test_replay_every_encapsulation(encaps):
    files = encaps
    out = replay(*files)
    assert out.count("\n") == len(files)
    for line in out.splitlines():
        assert "status=done" in line, line


def test_encapsulations_with_random_byte_errors(encaps, tmp_path):
    """Bytes flipped anywhere in tunnel headers and what they carry."""
    rng = random.Random(17)
    files = []
    for src in encaps:
        b = bytearray(src.read_bytes())
        for _ in range(300):
            pos = rng.randrange(24 + 16, len(b))
            b[pos] = rng.randrange(256)
        p = tmp_path / f"flip-{src.name}"
        p.write_bytes(bytes(b))
        files.append(p)
    replay(*files)
