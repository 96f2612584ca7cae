"""Many capture files read as one stream (``-r`` repeated, ``-r DIR``,
compressed files; native/source_set.c): tracker's records and eventlog's
lines over the pieces of a real capture equal those over the whole file.

The archives are cut from real captures with Wireshark's editcap (``-c``
packets a file, ``-i`` seconds a file), every second piece compressed
(gzip, zstd, xz, lz4, in turn), and, for files that overlap in time, split
per direction with tcpdump (one capture per tap direction). The ``reuse``
capture is tests/data/http-loss.pcap merged with copies of itself moved 2 s
later (the same 5-tuples reused while the first connections are in
TIME_WAIT) and 100 s later (an idle gap longer than the files and than the
idle timeout, and the tuples reused once more).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arch_helpers import (
    DATA,
    GEN_SRC,
    MC_DATA,
    compress,
    compress_some,
    merged,
    mosfw,
    run_records,
    shifted,
    split,
    stats_json,
    tools_missing,
)

pytestmark = pytest.mark.skipif(bool(tools_missing()), reason=f"missing tools: {tools_missing()}")


@pytest.fixture(scope="module")
def reuse(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("reuse")
    src = DATA / "http-loss.pcap"
    return merged(
        d / "reuse.pcap", src, shifted(src, d / "plus2.pcap", 2.0), shifted(src, d / "plus100.pcap", 100.0)
    )


@pytest.fixture(scope="module")
def reuse_whole(reuse):
    return run_records(reuse)


@pytest.mark.parametrize("how", [["-c", "37"], ["-i", "1"]], ids=["c37", "i1"])
def test_dir_equals_whole(tmp_path, reuse, reuse_whole, how):
    """-r DIR of editcap's pieces (half of them compressed): the same
    tracker records and the same eventlog lines, in the same order, as
    the whole capture; connections span files, tuples are reused in
    TIME_WAIT and after a 98 s gap."""
    files = compress_some(split(reuse, tmp_path / "d", how))
    assert len(files) >= 4
    recs, events, stats = run_records(tmp_path / "d")
    wrecs, wevents, wstats = reuse_whole
    assert sum(r["proto"] == "tcp" for r in wrecs) == 12  # (and the capture's ICMP: neighbour discovery)
    assert recs == wrecs
    assert events == wevents
    for k in ("packets", "flows_created", "flows_reused", "flows_ended_fin", "orphans", "rexmits"):
        assert stats[k] == wstats[k], k
    arch = stats["archive"]
    assert [f["state"] for f in arch["files"]] == ["done"] * len(files)
    assert sum(f["packets"] for f in arch["files"]) == wstats["packets"]
    if how[0] == "-i":  # the idle gap falls between two files: reported
        assert max(g["seconds"] for g in arch["gaps"]) > 90
    assert arch["overlaps"] == [] and arch["failed"] == []


def test_repeated_r_any_order(tmp_path, reuse, reuse_whole):
    """-r f1 -r f2 ... given in reverse name order: files are read in the
    order of their first packet, not as given."""
    files = compress_some(split(reuse, tmp_path / "d", ["-c", "100"]))
    recs, events, _ = run_records(*reversed(files))
    assert recs == reuse_whole[0]
    assert events == reuse_whole[1]


def test_overlapping_directions_merged(tmp_path, reuse, reuse_whole):
    """One capture per direction (they overlap in time the whole way):
    merged by timestamp as mergecap would, one of them compressed."""
    a, b = tmp_path / "srv.pcap", tmp_path / "cli.pcap"
    subprocess.run(["tcpdump", "-r", reuse, "-w", a, "tcp src port 8080"], check=True, capture_output=True)
    subprocess.run(
        ["tcpdump", "-r", reuse, "-w", b, "not (tcp src port 8080)"], check=True, capture_output=True
    )
    recs, events, stats = run_records(compress(a, ".zst"), b)
    assert recs == reuse_whole[0]
    assert events == reuse_whole[1]
    assert len(stats["archive"]["overlaps"]) == 1


@pytest.mark.parametrize("name", ["WebattackRCE.pcap", "synscan.pcap", "ocsp.pcapng", "KakaoTalk_chat.pcap"])
def test_real_captures_two_cores(tmp_path, name):
    """Pieces of the multi-core test captures, -c 2 over -r DIR: the
    records of one process over the whole file."""
    src = MC_DATA / name
    whole = run_records(src)[0]
    assert whole, f"{name}: no record"
    compress_some(split(src, tmp_path / "d", ["-c", "60"]))
    assert run_records(tmp_path / "d", cores=2)[0] == whole


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for bench/gen_capture.c")
def test_generated_capture(tmp_path):
    """bench/gen_capture.c's capture (2000 interleaved connections, many
    live across every file boundary), cut into 12 files."""
    exe = tmp_path / "gen"
    subprocess.run(["cc", "-O2", "-o", exe, GEN_SRC], check=True)
    src = tmp_path / "gen.pcap"
    subprocess.run([exe, "-q", "-o", src, "-n", "2000", "-c", "300"], check=True)
    whole = run_records(src)[0]
    assert len(whole) == 2000
    compress_some(split(src, tmp_path / "d", ["-c", "3500"]))
    assert run_records(tmp_path / "d")[0] == whole


def test_corrupt_file_in_the_middle(tmp_path, reuse):
    """A truncated file in the middle: named on stderr and in
    --stats-json, the run goes on with the next one, exit code 3."""
    files = split(reuse, tmp_path / "d", ["-c", "100"])
    bad = files[len(files) // 2]
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2 + 7])  # cut inside a record
    garbage = tmp_path / "d" / "zz-garbage.pcap"
    garbage.write_bytes(b"\xd4\xc3\xb2\xa1" + b"\x00" * 9)  # a capture's magic, then nothing usable
    r = mosfw("run", "-r", tmp_path / "d", "-p", "eventlog", "-q", "--stats-json", "-")
    assert r.returncode == 3, r.stderr
    assert str(bad) in r.stderr and "the run went on" in r.stderr
    arch = stats_json(r.stderr)["archive"]
    failed = {f["path"] for f in arch["failed"]}
    assert failed == {str(bad), str(garbage)}
    good = sum(f["packets"] for f in arch["files"] if f["path"] != str(bad))
    assert good == 3 * 266 - 100 and stats_json(r.stderr)["packets"] > good  # went on after the bad file


def test_compressed_truncated(tmp_path, reuse):
    """A compressed file cut short: the decompressor's failure is reported
    with the file's name."""
    files = split(reuse, tmp_path / "d", ["-c", "400"])
    z = compress(files[0], ".zst")
    z.write_bytes(z.read_bytes()[:-50])
    r = mosfw("run", "-r", tmp_path / "d", "-q")
    assert r.returncode == 3
    assert str(z) in r.stderr


def test_directory_without_captures(tmp_path):
    (tmp_path / "notes.txt").write_text("not a capture")
    r = mosfw("run", "-r", tmp_path, "-q")
    assert r.returncode == 2
    assert "holds no capture file" in r.stderr
