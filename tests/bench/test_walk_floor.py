"""bench/walk_floor.c walks every record, whichever way it reads the file.

The program measures the floor under the engine (bench/README.md, "What
stays"); its figures only mean something if each way really visits every
record. Builds it with warnings as errors, writes a capture of about 28 MB
with bench/gen_capture.c (records straddle read() chunks and populate-ahead
chunks) and checks each way's record count against capinfos.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WALK_SRC = ROOT / "bench" / "walk_floor.c"
GEN_SRC = ROOT / "bench" / "gen_capture.c"

CC = shutil.which("cc") or shutil.which("gcc")
CAPINFOS = shutil.which("capinfos")

pytestmark = [
    pytest.mark.skipif(CC is None, reason="no C compiler (cc/gcc) to build bench/walk_floor.c"),
    pytest.mark.skipif(CAPINFOS is None, reason="capinfos (Wireshark CLI tools) not installed"),
]

WAYS = ["fault", "populate", "ahead", "huge", "read"]


def build(src: Path, out: Path) -> Path:
    subprocess.run([CC, "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(out), str(src)], check=True)
    return out


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> Path:
    return build(WALK_SRC, tmp_path_factory.mktemp("walk") / "walk_floor")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> tuple[Path, int]:
    d = tmp_path_factory.mktemp("cap")
    gen = build(GEN_SRC, d / "gen_capture")
    pcap = d / "walk.pcap"
    subprocess.run([str(gen), "-q", "-o", str(pcap), "-n", "3000", "-c", "200"], check=True)
    res = subprocess.run(
        [CAPINFOS, "-c", "-M", "-T", "-r", str(pcap)], capture_output=True, text=True, check=True
    )
    return pcap, int(res.stdout.split()[-1])


def test_every_way_visits_every_record(walk, capture):
    pcap, packets = capture
    assert pcap.stat().st_size > 8 << 20  # more than two populate-ahead chunks
    res = subprocess.run([str(walk), str(pcap), *WAYS], capture_output=True, text=True, check=True)
    counts = dict(re.findall(r"^(\w+)\s+[\d.]+ ms, (\d+) records", res.stdout, re.M))
    assert counts == {way: str(packets) for way in WAYS}, res.stdout


def test_parts_prints_the_mapping_and_the_bandwidth(walk, capture):
    res = subprocess.run([str(walk), str(capture[0]), "parts"], capture_output=True, text=True, check=True)
    assert re.match(r"parts\s+map [\d.]+ ms, read every cache line [\d.]+ ms \([\d.]+ GB/s\)", res.stdout), (
        res.stdout
    )


def test_a_file_that_is_not_a_classic_pcap_is_refused(walk, tmp_path):
    bogus = tmp_path / "notes.txt"
    bogus.write_text("not a capture\n" * 100)
    res = subprocess.run([str(walk), str(bogus), "read"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "not a classic pcap file" in res.stderr and res.stdout == ""


def test_an_unknown_way_is_a_usage_error(walk, capture):
    res = subprocess.run([str(walk), str(capture[0]), "sideways"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "unknown way 'sideways'" in res.stderr
