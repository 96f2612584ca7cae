"""-c N on a file: the cores split the parsing through a shared index
(native/shared_input.h), with the results of one reader.

What the generic same-results tests (test_multicore_same_results.py) do
not show: that the index is really used, that a range starting inside a
record that looks like a chain of records (a pcap file downloaded over
HTTP, inside the capture) makes every core read the whole file instead
(same results), and that damaged files, BPF filters and ticks come out as
with one core."""

from __future__ import annotations

import collections
import json
import os
import re
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import DATA, ROOT, eventlog_lines, mosfw_cli, multiset, stats_json

from mosfw.testing import packets as P

PROBE = """
import sys
import mosfw

@mosfw.hookimpl
def mosfw_core_finish(core):
    print(f"input-shared core={core.id} shared={int(core.input_shared)}", file=sys.stderr)
"""

#: counters that differ by design between core counts
PER_RUN = {"other_shard", "seconds", "pkt_per_s"}


SHARED = dict(os.environ, MOSFW_SHARED_INDEX="1")  # at any core count (else from 8 on)


def run(pcap, cores, tmp_path, *extra, env=SHARED):
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    r = mosfw_cli(
        "run",
        "-r",
        pcap,
        "-p",
        "eventlog",
        "-p",
        probe,
        "-c",
        cores,
        "-q",
        "--stats-json",
        "-",
        *extra,
        env=env,
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
    [ROOT / "tests" / "data" / "http-loss.pcap", DATA / "WebattackRCE.pcap", DATA / "http_ipv6.pcap"],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize("cores", [2, 3])
def test_cores_read_through_the_index_with_one_readers_results(tmp_path, pcap, cores):
    r1, ev1, st1, _ = run(pcap, 1, tmp_path)
    rn, evn, stn, shared = run(pcap, cores, tmp_path)
    assert r1.returncode == rn.returncode == 0, rn.stderr
    assert shared == dict.fromkeys(range(cores), 1)
    assert evn == ev1
    assert stn == st1  # input counters of the whole file, first/last packet time included


def test_the_index_can_be_turned_off(tmp_path):
    pcap = ROOT / "tests" / "data" / "http-loss.pcap"
    env = dict(os.environ, MOSFW_SHARED_INDEX="0")
    _r, ev, st, shared = run(pcap, 2, tmp_path, env=env)
    assert shared == {0: 0, 1: 0}
    assert (ev, st) == run(pcap, 1, tmp_path)[1:3]


def test_pcapng_is_read_whole_by_every_core(tmp_path):
    pcap = DATA / "ocsp.pcapng"
    r, ev, st, shared = run(pcap, 2, tmp_path)
    assert r.returncode == 0 and shared == {0: 0, 1: 0}
    assert (ev, st) == run(pcap, 1, tmp_path)[1:3]


def pcap_inside_a_download(path: Path, step: float = 0.01, inner_pcap: bool = True) -> None:
    """HTTP connections, one of which carries a pcap file (records of
    plausible headers) in its payload, laid out so that the middle of the
    capture falls inside that payload: the second core's range begins in
    a packet that looks like a run of records. ``step``: seconds between
    packets."""
    inner = b"".join(struct.pack("<IIII", 1000 + i, 0, 60, 60) + bytes(60) for i in range(200))
    if not inner_pcap:
        inner = b"z" * len(inner)
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

    def conn(port, body_chunks):
        add(cli, srv, port, 80, 1000, 0, "S")
        add(srv, cli, 80, port, 5000, 1001, "SA")
        add(cli, srv, port, 80, 1001, 5001, "A")
        seq = 5001
        for chunk in body_chunks:
            add(srv, cli, 80, port, seq, 1001, "A", chunk)
            seq += len(chunk)
        add(cli, srv, port, 80, 1001, seq, "FA")
        add(srv, cli, 80, port, seq, 1002, "FA")
        add(cli, srv, port, 80, 1002, seq + 1, "A")

    for port in range(40000, 40010):
        conn(port, [b"x" * 700] * 3)
    conn(41000, [inner[i : i + 1400] for i in range(0, len(inner), 1400)])
    for port in range(42000, 42010):
        conn(port, [b"y" * 700] * 3)
    P.write_pcap(path, recs)


def test_a_range_starting_in_a_lookalike_record_makes_every_core_read_it_all(tmp_path):
    pcap = tmp_path / "download.pcap"
    pcap_inside_a_download(pcap)
    # the middle of the file is inside the download's payload
    blob = pcap.read_bytes()
    mid = 24 + (len(blob) - 24) // 2
    assert struct.pack("<IIII", 0, 0, 60, 60)[8:] in blob[mid - 200 : mid + 200]
    r1, ev1, st1, _ = run(pcap, 1, tmp_path)
    r2, ev2, st2, shared = run(pcap, 2, tmp_path)
    assert r1.returncode == r2.returncode == 0, r2.stderr
    assert shared == {0: 0, 1: 0}, "the index should have fallen back"
    assert (ev2, st2) == (ev1, st1)
    assert st1["flows_created"] == 21


@pytest.mark.parametrize("cut", ["record-body", "record-header"])
def test_a_cut_file_ends_where_one_reader_ends(tmp_path, cut):
    blob = (ROOT / "tests" / "data" / "http-loss.pcap").read_bytes()
    pos, starts = 24, []
    while pos + 16 <= len(blob):
        starts.append(pos)
        pos += 16 + struct.unpack("<I", blob[pos + 8 : pos + 12])[0]
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
    pcap = ROOT / "tests" / "data" / "http-loss.pcap"
    extra = ("--bpf", "tcp and not port 54488")
    _r1, ev1, st1, _ = run(pcap, 1, tmp_path, *extra)
    _r2, ev2, st2, shared = run(pcap, 2, tmp_path, *extra)
    assert shared == {0: 1, 1: 1}
    assert (ev2, st2) == (ev1, st1)
    assert 0 < st1["packets"] < 266


def test_midstat_tables_per_second_are_those_of_one_reader(tmp_path):
    """Every core ticks at every second of the file (another core's packet
    opening a second moves its time), and its part of the table then
    holds its own connections in their state at that second: merged, one
    table a second, that of one reader but for the CPU column."""
    pcap = tmp_path / "seconds.pcap"
    pcap_inside_a_download(pcap, step=0.13, inner_pcap=False)

    def tables(cores):
        r = mosfw_cli(
            "run", "-r", pcap, "-p", ROOT / "samples" / "midstat", "--json", "-c", cores, env=SHARED
        )
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

    (tmp_path / "probe.py").write_text(PROBE)
    one, _, _ = tables(1)
    two, count, cpus = tables(2)
    assert two == one and len(one) >= 20  # same rows, same order
    assert sum(1 for rows in one.values() if rows) >= 20
    assert set(count.values()) == {1}  # one table a second, of both cores' connections
    assert cpus == {0, 1}
    r = mosfw_cli("run", "-r", pcap, "-p", tmp_path / "probe.py", "-c", 2, env=SHARED)
    assert re.findall(r"shared=(\d)", r.stderr) == ["1", "1"]


def test_used_by_default_from_eight_cores(tmp_path):
    pcap = ROOT / "tests" / "data" / "http-loss.pcap"
    env = {k: v for k, v in os.environ.items() if k != "MOSFW_SHARED_INDEX"}
    _, ev4, st4, shared4 = run(pcap, 4, tmp_path, env=env)
    _, ev8, st8, shared8 = run(pcap, 8, tmp_path, env=env)
    assert shared4 == dict.fromkeys(range(4), 0)
    assert shared8 == dict.fromkeys(range(8), 1)
    assert (ev8, st8) == (ev4, st4)


def test_a_packet_from_the_past_ends_no_flow_early(tmp_path):
    """A packet whose timestamp goes back (merged captures, multi-queue
    taps; found by fuzzing the -c N differential) neither takes its flow's
    idle clock back nor puts the timeouts list out of order: no flow times
    out early, with one core or several (which used to differ: the flow
    was at the head of its core's list there, behind others with one core)."""
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
    for env in (SHARED, dict(os.environ, MOSFW_SHARED_INDEX="0")):
        _r4, ev4, st4, _ = run(pcap, 4, tmp_path, env=env)
        assert (ev4, st4) == (ev1, st1)
