"""The mapped classic-pcap reader (native/source.c) against libpcap's.

Classic pcap files of this machine's byte order are read through mmap; the
same run with MOSFW_READER=libpcap reads them through libpcap. Both must
give the same events, counters and errors on every capture we have,
damaged ones included."""

from __future__ import annotations

import json
import os
import struct
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from forkrun import ForkRunner  # noqa: E402  (tests/forkrun.py)

CAPTURES = sorted(
    p
    for d in ("tests/data", "tests/multicore/data", "tests/data/tracker", "native/fuzz/seeds")
    for p in (ROOT / d).rglob("*")
    if p.suffix in (".pcap", ".pcapng")
)


@pytest.fixture(scope="module")
def fr():
    """Each run a fork of one interpreter that imported mosfw once
    (tests/forkrun.py): the same runs as `python -m mosfw`, 4x cheaper."""
    with ForkRunner() as runner:
        yield runner


def run(fr, path, *extra, reader="mmap"):
    env = dict(os.environ)
    env.pop("MOSFW_READER", None)
    if reader == "libpcap":
        env["MOSFW_READER"] = "libpcap"
    r = fr.run(["run", "-r", str(path), "-p", "eventlog", "--stats-json", "-", *extra], env=env, timeout=120)
    stats = [json.loads(line) for line in r.stderr.splitlines() if line.startswith("{")]
    st = stats[-1] if stats else {}
    st.pop("seconds", None)
    st.pop("pkt_per_s", None)
    return r.returncode, r.stdout, st


def mapped(path: Path) -> bool:
    """Would the mapped reader take this file (else libpcap reads it)?"""
    head = path.read_bytes()[:8]
    return (
        len(head) == 8
        and struct.unpack("<I", head[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D)
        and struct.unpack("<HH", head[4:8]) == (2, 4)
    )


def test_the_corpus_has_mapped_and_other_files():
    kinds = [mapped(p) for p in CAPTURES]
    assert sum(kinds) >= 40 and len(kinds) - sum(kinds) >= 3, (sum(kinds), len(kinds))


@pytest.mark.parametrize("path", [p for p in CAPTURES if mapped(p)], ids=lambda p: p.name)
def test_same_events_and_counters_as_libpcap(fr, path):
    a = run(fr, path)
    b = run(fr, path, reader="libpcap")
    assert a == b


def test_bpf_filter_is_applied_to_mapped_records(fr):
    demo = ROOT / "tests" / "data" / "http-loss.pcap"
    a = run(fr, demo, "--bpf", "tcp and src port 54488 or dst port 54488")
    b = run(fr, demo, "--bpf", "tcp and src port 54488 or dst port 54488", reader="libpcap")
    assert a == b
    full = run(fr, demo)
    assert 0 < a[2]["packets"] < full[2]["packets"]


def cut_and_damaged(tmp_path: Path) -> list[Path]:
    blob = (ROOT / "tests" / "data" / "http-loss.pcap").read_bytes()
    out = []
    pos, recs = 24, []
    while pos + 16 <= len(blob):
        caplen = struct.unpack("<I", blob[pos + 8 : pos + 12])[0]
        recs.append(pos)
        pos += 16 + caplen
    k = recs[100]
    cases = {
        "cut-header": blob[: k + 9],
        "cut-body": blob[: k + 30],
        "absurd-caplen": blob[:k] + blob[k : k + 8] + struct.pack("<I", 0x7FFFFFF0) + blob[k + 12 :],
        # above the file's snaplen but sane: libpcap cuts the record to the snaplen
        "over-snaplen": blob[:16] + struct.pack("<I", 64) + blob[20:],
        "nanosecond": struct.pack("<I", 0xA1B23C4D) + blob[4:],
        "header-only": blob[:24],
    }
    for name, data in cases.items():
        p = tmp_path / f"{name}.pcap"
        p.write_bytes(data)
        out.append(p)
    return out


def test_damaged_files_read_alike(fr, tmp_path):
    for p in cut_and_damaged(tmp_path):
        a = run(fr, p)
        b = run(fr, p, reader="libpcap")
        assert a == b, p.name
        if p.name.startswith(("cut", "absurd")):
            assert a[0] == 3 and a[2]["status"] == "error", (p.name, a[2])


def test_a_file_that_grows_while_read_is_read_to_its_new_end(tmp_path):
    """tcpdump -w still writing: records appended after the file was
    mapped are read too (as libpcap reads them)."""
    from mosfw._native import ffi, lib

    blob = (ROOT / "tests" / "data" / "http-loss.pcap").read_bytes()
    f = tmp_path / "growing.pcap"
    f.write_bytes(blob[:24])
    cfg = ffi.new("struct mosfw_config *")
    lib.mosfw_config_defaults(cfg)
    err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
    core = ffi.gc(lib.mosfw_core_new(cfg, err), lib.mosfw_core_free)
    assert lib.mosfw_core_open_file(core, str(f).encode(), ffi.NULL, err) == 0
    with open(f, "ab") as w:
        w.write(blob[24:])
    evs = ffi.new("struct mosfw_event[]", 4096)
    n = ffi.new("uint32_t *")
    while lib.mosfw_core_run(core, evs, 4096, n) in (lib.MOSFW_RUN_MORE, lib.MOSFW_RUN_IDLE):
        pass
    st = ffi.new("struct mosfw_stats *")
    lib.mosfw_core_stats(core, st)
    assert st.packets == 266
