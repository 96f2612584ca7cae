"""-c N on files: the input read once by the parent's reader thread and
fed to the cores' rings (native/feed.c, native/source_ring.c), with the
results of one reader.

What the generic same-results tests (test_multicore_same_results.py) do
not show: that every core really reads its ring, that many-file and
compressed inputs, cut files, BPF filters, ticks and packets from the past
come out as with one core, and that memory stays bounded on an input far
larger than the rings (the reader waits for room)."""

from __future__ import annotations

import collections
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import DATA, ROOT, eventlog_lines, mosfw_cli, multiset, stats_json

from mosfw.testing import packets as P

PROBE = """
import resource, sys
import mosfw

@mosfw.hookimpl
def mosfw_core_finish(core):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"input-shared core={core.id} shared={int(core.input_shared)} maxrss_kb={rss}", file=sys.stderr)
"""

#: counters that differ by design between core counts
PER_RUN = {"other_shard", "seconds", "pkt_per_s"}
HTTP_LOSS = ROOT / "tests" / "data" / "http-loss.pcap"


@pytest.fixture(autouse=True)
def _feed_from_two_cores(monkeypatch):
    """The feed is used from 4 cores on by default (mosfw.runner.FEED_MIN_CORES);
    these tests make it feed 2 and 3 cores too."""
    monkeypatch.setenv("MOSFW_FEED", "1")


def test_by_default_the_feed_starts_at_four_cores(tmp_path, monkeypatch):
    """-c 2 and -c 3 read the file in every worker (less CPU and wall time
    at 2 cores: bench/README.md, issue 22), -c 4 through the feed; both
    give one core's results."""
    monkeypatch.delenv("MOSFW_FEED")
    _, ev1, st1, _ = run(HTTP_LOSS, 1, tmp_path)
    for cores, fed in ((2, 0), (3, 0), (4, 1)):
        r, ev, st, shared = run(HTTP_LOSS, cores, tmp_path)
        assert r.returncode == 0, r.stderr
        assert shared == dict.fromkeys(range(cores), fed), (cores, shared)
        assert ev == ev1
        assert st == st1


def run(inputs, cores, tmp_path, *extra, env=None):
    """eventlog + probe on ``inputs`` (one path or a list: -r each)."""
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    reads = [a for p in (inputs if isinstance(inputs, list) else [inputs]) for a in ("-r", p)]
    r = mosfw_cli(
        "run", *reads, "-p", "eventlog", "-p", probe, "-c", cores, "-q", "--stats-json", "-", *extra, env=env
    )
    shared = {int(c): int(s) for c, s in re.findall(r"input-shared core=(\d+) shared=(\d)", r.stderr)}
    stats = stats_json(r.stderr)
    return (
        r,
        multiset(eventlog_lines(r.stdout)),
        {k: v for k, v in (stats or {}).items() if k not in PER_RUN},
        shared,
    )


@pytest.mark.parametrize(
    "pcap",
    [HTTP_LOSS, DATA / "WebattackRCE.pcap", DATA / "http_ipv6.pcap", DATA / "ocsp.pcapng"],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("cores", [2, 3])
def test_cores_fed_by_one_reader_give_one_readers_results(tmp_path, pcap, cores):
    r1, ev1, st1, _ = run(pcap, 1, tmp_path)
    rn, evn, stn, shared = run(pcap, cores, tmp_path)
    assert r1.returncode == rn.returncode == 0, rn.stderr
    assert shared == dict.fromkeys(range(cores), 1)  # every core read its ring (pcapng too)
    assert evn == ev1
    assert stn == st1  # input counters of the whole input, first/last packet time included


def test_many_files_and_compressed_ones_as_one_reader(tmp_path):
    """-r repeated (two files of one capture's directions, merged by time),
    a gzip and an xz-compressed file (streamed through the decompressor),
    and the same as -r DIR: -c 3 gives -c 1's events, counters and file
    records."""
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    for out, flt in ((a, "tcp src port 8080"), (b, "not (tcp src port 8080)")):
        subprocess.run(
            ["tcpdump", "-r", str(HTTP_LOSS), "-w", str(out), flt], check=True, capture_output=True
        )
    z = tmp_path / "web.pcap.gz"
    z.write_bytes(gzip.compress((DATA / "WebattackRCE.pcap").read_bytes()))
    inputs = [a, b, z]
    if shutil.which("xz"):
        x = tmp_path / "v6.pcap.xz"
        subprocess.run(["xz", "-k", "-c", str(DATA / "http_ipv6.pcap")], stdout=x.open("wb"), check=True)
        inputs.append(x)
    r1, ev1, st1, _ = run(inputs, 1, tmp_path)
    r3, ev3, st3, shared = run(inputs, 3, tmp_path)
    assert r1.returncode == r3.returncode == 0, r3.stderr
    assert shared == {0: 1, 1: 1, 2: 1}
    assert ev3 == ev1 and st3 == st1
    assert st1["packets"] > 266 and st1["flows_created"] > 700
    d = tmp_path / "dir"
    d.mkdir()
    for p in inputs:
        shutil.copy(p, d / p.name)
    rd, evd, std, _ = run(d, 3, tmp_path)

    moved = json.loads(json.dumps(std).replace(f"{d}/", f"{tmp_path}/"))  # (the same files, elsewhere)
    assert rd.returncode == 0 and evd == ev1 and moved == st1
    assert len(st1["archive"]["files"]) == len(inputs)


@pytest.mark.parametrize("cut", ["record-body", "record-header"])
def test_a_cut_file_ends_where_one_reader_ends(tmp_path, cut):
    blob = HTTP_LOSS.read_bytes()
    pos, starts = 24, []
    while pos + 16 <= len(blob):
        starts.append(pos)
        pos += 16 + int.from_bytes(blob[pos + 8 : pos + 12], "little")
    k = starts[200]
    f = tmp_path / "cut.pcap"
    f.write_bytes(blob[: k + (30 if cut == "record-body" else 7)])
    r1, ev1, st1, _ = run(f, 1, tmp_path)
    r2, ev2, st2, shared = run(f, 2, tmp_path)
    assert r1.returncode == r2.returncode == 3
    assert shared == {0: 1, 1: 1}
    assert (ev2, st2) == (ev1, st1)
    assert st2["packets"] == 200 and "truncated" in st2["error"]


def test_bpf_filter_as_one_reader(tmp_path):
    extra = ("--bpf", "tcp and not port 54488")
    _r1, ev1, st1, _ = run(HTTP_LOSS, 1, tmp_path, *extra)
    _r2, ev2, st2, shared = run(HTTP_LOSS, 2, tmp_path, *extra)
    assert shared == {0: 1, 1: 1}
    assert (ev2, st2) == (ev1, st1)
    assert 0 < st1["packets"] < 266


def connections(path: Path, step: float, n: int = 21) -> None:
    """n short HTTP connections one after the other, ``step`` seconds
    between packets."""
    cli, srv = "10.9.0.1", "10.9.0.2"
    recs, t = [], 100.0

    def add(src, dst, sport, dport, seq, ack, flags, payload=b""):
        nonlocal t
        recs.append(
            (
                t,
                P.ethernet(
                    P.ip(src, dst, 6, P.tcp(src, dst, sport, dport, seq, ack, flags, payload=payload))
                ),
            )
        )
        t += step

    for port in range(40000, 40000 + n):
        add(cli, srv, port, 80, 1000, 0, "S")
        add(srv, cli, 80, port, 5000, 1001, "SA")
        add(cli, srv, port, 80, 1001, 5001, "A")
        for i in range(3):
            add(srv, cli, 80, port, 5001 + 700 * i, 1001, "A", b"x" * 700)
        add(cli, srv, port, 80, 1001, 7101, "FA")
        add(srv, cli, 80, port, 7101, 1002, "FA")
        add(cli, srv, port, 80, 1002, 7102, "A")
    P.write_pcap(path, recs)


def test_midstat_tables_per_second_are_those_of_one_reader(tmp_path):
    """Every core ticks at every second of the file (another core's packet
    opening a second comes as a time mark), and its part of the table then
    holds its own connections in their state at that second: merged, one
    table a second, that of one reader but for the CPU column."""
    pcap = tmp_path / "seconds.pcap"
    connections(pcap, step=0.13)

    def tables(cores):
        r = mosfw_cli("run", "-r", pcap, "-p", ROOT / "samples" / "midstat", "--json", "-c", cores)
        assert r.returncode == 0, r.stderr
        snaps = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
        by_ts = collections.defaultdict(list)
        for s in snaps:
            if s["type"] == "snapshot":
                by_ts[s["ts"]] += [
                    (c["client"], c["client_state"], c["server"], c["server_state"]) for c in s["connections"]
                ]
        cpus = {c["cpu"] for s in snaps if s["type"] != "summary" for c in s["connections"]}
        return by_ts, collections.Counter(s["ts"] for s in snaps if s["type"] == "snapshot"), cpus

    one, _, _ = tables(1)
    two, count, cpus = tables(2)
    assert two == one and len(one) >= 20  # same rows, same order
    assert sum(1 for rows in one.values() if rows) >= 20
    assert set(count.values()) == {1}  # one table a second, of both cores' connections
    assert cpus == {0, 1}


def test_a_packet_from_the_past_ends_no_flow_early(tmp_path):
    """A packet whose timestamp goes back (merged captures, multi-queue
    taps) neither takes its flow's idle clock back nor puts the timeouts
    list out of order: no flow times out early, with one core or four."""
    cli, srv = "10.7.0.1", "10.7.0.2"
    recs = []

    def pkt(t, sport, flags, seq, ack, src_is_client=True, payload=b""):
        s, d, sp, dp = (cli, srv, sport, 80) if src_is_client else (srv, cli, 80, sport)
        recs.append((t, P.ethernet(P.ip(s, d, 6, P.tcp(s, d, sp, dp, seq, ack, flags, payload=payload)))))

    ports = list(range(45000, 45012))
    t = 100.0
    for p in ports:
        pkt(t, p, "S", 1000, 0)
        pkt(t + 0.001, p, "SA", 5000, 1001, False)
        pkt(t + 0.002, p, "A", 1001, 5001)
        t += 0.01
    for p in ports:  # every flow: a packet stamped 60 s in the past
        pkt(40.0, p, "A", 1001, 5001)
    t = 105.0
    for p in ports:  # time moves on (expiry runs), then every flow carries data
        pkt(t, p, "PA", 1001, 5001, payload=b"hello")
        t += 0.01
    pcap = tmp_path / "past.pcap"
    P.write_pcap(pcap, recs)
    r1, ev1, st1, _ = run(pcap, 1, tmp_path)
    assert r1.returncode == 0
    assert st1["flows_created"] == len(ports) and st1["flows_ended_timeout"] == 0
    _r4, ev4, st4, _ = run(pcap, 4, tmp_path)
    assert (ev4, st4) == (ev1, st1)


MEASURE = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(r.stderr)
print(f"rc={r.returncode} children_maxrss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
"""


def test_an_input_far_larger_than_the_rings_keeps_memory_bounded(tmp_path):
    """A 230 MB capture (bench/gen_capture.c, 25000 connections) through
    two rings of 1 MiB (MOSFW_FEED_RING_KB=1024): the reader waits for room
    again and again, nothing is lost (the results are -c 1's), and no
    process of the run -- the parent with its reader thread, each worker --
    grows with the file: the largest peak resident size (ru_maxrss, of the
    whole process tree) stays under a quarter of the file's size and within
    a few MiB of the same run's peak on a capture 4x smaller."""
    sys.path.insert(0, str(ROOT / "bench"))
    import run_bench

    exe = run_bench.build_generator(tmp_path)
    sizes = {}
    peaks = {}
    for name, conns in (("small", "6250"), ("big", "25000")):
        pcap = tmp_path / f"{name}.pcap"
        subprocess.run([str(exe), "-o", str(pcap), "-n", conns, "-c", "500"], check=True, capture_output=True)
        sizes[name] = pcap.stat().st_size
        probe = tmp_path / "probe.py"
        probe.write_text(PROBE)
        env = dict(os.environ, MOSFW_FEED_RING_KB="1024")
        argv = [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", str(probe), "-q", "-c", "2"]
        argv += ["--stats-json", "-"]
        r = subprocess.run(
            [sys.executable, "-c", MEASURE, *argv],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
        assert "rc=0" in r.stdout, r.stdout + r.stderr
        workers = [int(k) for k in re.findall(r"shared=1 maxrss_kb=(\d+)", r.stdout)]
        assert len(workers) == 2, r.stdout
        peaks[name] = (int(re.search(r"children_maxrss_kb=(\d+)", r.stdout).group(1)), max(workers))
        if name == "big":
            stats = stats_json(r.stdout)
            assert stats["packets"] == 25000 * 20 and stats["flows_created"] == 25000
    assert sizes["big"] > 200 << 20
    tree, worker = peaks["big"]
    assert tree * 1024 < sizes["big"] / 4, (peaks, sizes)
    assert tree - peaks["small"][0] < 16 << 10, peaks  # KiB: not growing with the file
    assert worker - peaks["small"][1] < 16 << 10, peaks


def test_frames_of_a_quarter_ring_and_more_go_through(tmp_path):
    """Frames of up to 262,144 bytes (the most a capture may hold) among
    small ones, through the smallest rings (1 MiB: a record of a quarter
    ring and more, the reader waiting for more than the quarter a core
    wakes it for, records cut by the end of the array): no hang, and one
    reader's results with 4 cores. The cores take 2 ms a packet, so the
    reader finds their rings full (2.8 MB each through 1 MiB) and waits."""
    cli, srv = "10.9.0.1", "10.9.0.2"
    recs = []
    t = 200.0

    def frame(sport, flags, seq, to_server=True, payload=b"", size=0):
        s, d, sp, dp = (cli, srv, sport, 80) if to_server else (srv, cli, 80, sport)
        f = P.ethernet(P.ip(s, d, 6, P.tcp(s, d, sp, dp, seq, 0, flags, payload=payload)))
        return f + b"\0" * max(0, size - len(f))  # (an Ethernet trailer past the IP length)

    for k in range(16):
        sport, seq = 40000 + k, 1001
        recs += [(t, frame(sport, "S", 1000)), (t + 0.001, frame(sport, "SA", 5000, to_server=False))]
        for n, size in enumerate((150_000, 60, 190_000, 1400, 262_144)):
            recs.append((t + 0.002 + n * 0.001, frame(sport, "PA", seq, payload=b"x" * 60_000, size=size)))
            seq += 60_000
        recs.append((t + 0.01, frame(sport, "FA", seq)))
        t += 0.02
    pcap = tmp_path / "giants.pcap"
    P.write_pcap(pcap, recs, snaplen=262144)
    slow = tmp_path / "slow.py"
    slow.write_text("import time, mosfw\n\n@mosfw.hookimpl\ndef mosfw_pkt_in(flow):\n    time.sleep(0.002)\n")
    env = dict(os.environ, MOSFW_FEED_RING_KB="1024")
    r1, ev1, st1, _ = run(pcap, 1, tmp_path, "-p", slow, env=env)
    assert r1.returncode == 0, r1.stderr
    assert st1["packets"] == len(recs)
    r4, ev4, st4, shared = run(pcap, 4, tmp_path, "-p", slow, env=env)
    assert r4.returncode == 0, r4.stderr
    assert shared == dict.fromkeys(range(4), 1)
    assert (ev4, st4) == (ev1, st1)
