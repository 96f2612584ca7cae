"""The reassembly memory cap (mos.conf ``rmem_memcap``, per core).

Without it the only bound on reassembly buffers is max_concurrency x 2 x
rmem_size (~17 GiB at the defaults with every buffer full). The flood
here: N connections picked up mid-stream, each sending 100 bytes in order,
then a hole of 1000 bytes and 7 segments of 1000 bytes after it, all
connections at once: every buffer fills with out-of-order data and stays
(no connection ends before the end of the input).

With a small cap the engine keeps buffers up to it and no more: the sides
past it keep no payload, counted (``rmem_memcap_bytes``, the summary
line), and raise CONN_NEW_DATA by the unbuffered rule (as when a buffer
cannot be allocated, or with no_ring_buffers); peak RSS stays near the
cap, and everything else (flows, packets) is as without it.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
N_FLOWS = 20_000
SEGS = 7  # 1000-byte segments after the hole: 7 kB of the 8 kB buffer
CAP = 16 * MiB

COUNTER = """
import mosfw
n = [0]
@mosfw.hookimpl
def mosfw_conn_new_data(flow):
    n[0] += 1
@mosfw.hookimpl
def mosfw_report():
    print(n[0])
"""

# peak RSS of the mosfw process alone (see tests/hostile/test_memory.py)
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(ru.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
"""


def packet(i: int, seq: int, payload_len: int, ts_us: int) -> bytes:
    src = bytes([10, 1 + i // 60000, (i // 250) % 240, 1 + i % 250])
    sport = 20000 + i % 30000
    tcp = struct.pack("!HHIIBBHHH", sport, 80, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + 20 + payload_len,
        i & 0xFFFF,
        0,
        64,
        6,
        0,
        src,
        bytes([10, 255, 255, 1]),
    )
    frame = (
        b"\x00\x00\x00\x00\x00\x02"
        + b"\x00\x00\x00\x00\x00\x01"
        + b"\x08\x00"
        + ip
        + tcp
        + b"x" * payload_len
    )
    return struct.pack("<IIII", ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame)) + frame


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("memcap") / "ooo-flood.pcap"
    ts = 1_700_000_000 * 1_000_000
    with open(p, "wb") as fh:
        fh.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i in range(N_FLOWS):  # 100 bytes in order: the buffer is made
            fh.write(packet(i, 1000, 100, ts))
            ts += 1
        for k in range(SEGS):  # after a 1000-byte hole, out of order
            for i in range(N_FLOWS):
                fh.write(packet(i, 1000 + 100 + 1000 + k * 1000, 1000, ts))
                ts += 1
    return p


def run_measured(tmp_path: Path, flood: Path, memcap: int) -> tuple[int, int, str, str]:
    conf, plugin = tmp_path / f"mos-{memcap}.conf", tmp_path / "counter.py"
    conf.write_text(f"mos {{\n\tforward = 0\n\trmem_memcap = {memcap}\n}}\n")
    plugin.write_text(COUNTER)
    out, err, rss = tmp_path / "out.txt", tmp_path / "err.txt", tmp_path / "rss.txt"
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                str(rss),
                sys.executable,
                "-m",
                "mosfw",
                "run",
                "-r",
                str(flood),
                "-f",
                str(conf),
                "-p",
                str(plugin),
                "--max-concurrency",
                "100000",
                "--stats-json",
                "-",
            ],
            stdout=o,
            stderr=e,
            cwd=ROOT,
            start_new_session=True,
        )
        try:
            code = p.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            pytest.fail("mosfw run did not finish within 300 s")
    return code, int(rss.read_text()) * 1024, out.read_text(), err.read_text()


def stats_of(stderr: str) -> dict:
    return json.loads([line for line in stderr.splitlines() if line.startswith("{")][-1])


def test_memcap_bounds_reassembly_memory_and_counts_what_it_cost(flood, tmp_path):
    code, rss_free, out_free, err_free = run_measured(tmp_path, flood, 0)  # no cap
    assert code == 0, err_free[-3000:]
    code, rss_cap, out_cap, err_cap = run_measured(tmp_path, flood, CAP)
    assert code == 0, err_cap[-3000:]
    free, cap = stats_of(err_free), stats_of(err_cap)
    print(
        f"peak RSS without a cap {rss_free / MiB:.1f} MiB, with rmem_memcap {CAP // MiB} MiB: "
        f"{rss_cap / MiB:.1f} MiB; bytes not kept {cap['rmem_memcap_bytes']}"
    )
    # without a cap every side keeps its buffer: nothing is counted, and
    # the buffers take what the flood makes them take
    assert free["rmem_memcap_bytes"] == 0
    assert rss_free - rss_cap > 100 * MiB
    # with it: the first k sides got a buffer (a header and rmem_size
    # bytes each, k of them within the cap), the others keep no payload:
    # all of theirs is counted
    n_cap = int(out_cap.strip())
    # CONN_NEW_DATA: once for the 100 in-order bytes of a side with a
    # buffer; a side without one falls back to the unbuffered rule (new
    # bytes beyond the highest seen, as with no_ring_buffers): 1 + SEGS
    assert int(out_free.strip()) == N_FLOWS
    k, rest = divmod((1 + SEGS) * N_FLOWS - n_cap, SEGS)
    assert rest == 0 and CAP // (8192 + 1024) <= k <= CAP // (8192 + 400), (n_cap, k)
    assert cap["rmem_memcap_bytes"] == (N_FLOWS - k) * (100 + SEGS * 1000)
    assert f"{cap['rmem_memcap_bytes']} payload bytes not kept" in err_cap
    # and memory stays near the cap: below what the buffers it refused
    # would have taken
    assert rss_cap < rss_free - (N_FLOWS - k) * 8192 + 16 * MiB
    # the rest is the same run: every packet and flow, each ended once
    for key in (
        "packets",
        "tcp_packets",
        "flows_created",
        "flows_ended_eof",
        "flows_refused",
        "orphans",
        "nomem",
    ):
        assert cap[key] == free[key], key
    assert cap["flows_created"] == N_FLOWS == cap["flows_ended_eof"]
