"""A capture that shrinks while mosfw reads it (tcpdump -C/-W rotation,
logrotate copytruncate) ends the input with a read error (exit 3), after
the packets before the cut -- not with SIGBUS (exit 135, nothing printed)
or a dead core.

The mapped reader (native/source.c) hands out records in place; once the
file is truncated, every page of the mapping beyond the new end faults.
The test truncates the input from a plugin hook mid-run (deterministic):

- ``near``: to a size inside the window the reader has already mapped in,
  7 bytes into a record (the rest of that page reads as zeros);
- ``page``: to a page boundary there, inside a record (the pages after it
  are gone from under the reader: the SIGBUS guard, native/map_guard.c);
- ``far``: to a size beyond it (seen by the size check before the next
  window is mapped);
- ``boundary``: to a record boundary (libpcap would call that a clean end
  of file; the file still lost data, so it is an error too).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GEN_SRC = ROOT / "native" / "fuzz" / "gen_synflood.c"
N_SYNS = 300_000
MiB = 1024 * 1024

TRUNCATOR = '''
import os
import struct
import mosfw

PATH, WHERE, OUT = os.environ["SHRINK_PATH"], os.environ["SHRINK_WHERE"], os.environ["SHRINK_OUT"]
MiB = 1 << 20
state = {"core": None, "done": False}


@mosfw.hookimpl
def mosfw_core_start(core):
    state["core"] = core


def cut_point(read_upto):
    """A record boundary (or 7 bytes past one) ahead of the reader."""
    ahead = {"near": 1 * MiB, "page": 1 * MiB, "far": 12 * MiB, "boundary": 12 * MiB}[WHERE]
    with open(PATH, "rb") as fh:
        data = fh.read()
    pos = 24
    while pos < read_upto + ahead:
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    if WHERE == "page":  # a page boundary inside a record: the pages after it fault
        return (read_upto + ahead) // 4096 * 4096
    return pos if WHERE == "boundary" else pos + 7


@mosfw.hookimpl
def mosfw_conn_start(flow):
    if state["done"]:
        return
    state["done"] = True
    size = cut_point(state["core"].input_offset())
    if os.path.exists(OUT):  # another core of the run cut it already
        return
    with open(OUT, "w") as fh:
        fh.write(str(size))
    os.truncate(PATH, size)
'''


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> bytes:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler for native/fuzz/gen_synflood.c")
    d = tmp_path_factory.mktemp("shrink")
    exe = d / "gen_synflood"
    subprocess.run(
        [cc, "-std=gnu11", "-O2", str(GEN_SRC), "-o", str(exe)], check=True, capture_output=True, timeout=120
    )
    p = d / "flood.pcap"
    subprocess.run([str(exe), str(p), str(N_SYNS), "1000"], check=True, timeout=120)
    data = p.read_bytes()
    assert len(data) > 16 * MiB
    return data


def record_ends(data: bytes) -> list[int]:
    """File offsets where each record ends."""
    ends, pos = [], 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from("<I", data, pos + 8)[0]
        pos += 16 + incl
        if pos > len(data):
            break
        ends.append(pos)
    return ends


@pytest.mark.parametrize("cores", [1, 2])
@pytest.mark.parametrize("where", ["near", "page", "far", "boundary"])
def test_file_shrinking_mid_run_is_a_read_error(capture, tmp_path, where, cores):
    path = tmp_path / "live-rotated.pcap"
    path.write_bytes(capture)
    plugin = tmp_path / "truncator.py"
    plugin.write_text(TRUNCATOR)
    cut = tmp_path / "cut-at.txt"
    env = dict(os.environ, SHRINK_PATH=str(path), SHRINK_WHERE=where, SHRINK_OUT=str(cut))
    env.pop("MOSFW_READER", None)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "mosfw",
            "run",
            "-r",
            str(path),
            "-c",
            str(cores),
            "-p",
            str(plugin),
            "--max-concurrency",
            "400000",
            "--stats-json",
            "-",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    size = int(cut.read_text())
    assert path.stat().st_size == size < len(capture)  # the plugin did cut it
    whole = sum(1 for e in record_ends(capture) if e <= size)  # records wholly before the cut
    assert r.returncode == 3, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr and "died" not in r.stderr and "crash" not in r.stderr, r.stderr[
        -3000:
    ]
    msg = [line for line in r.stderr.splitlines() if line.startswith("mosfw: error: input")]
    assert msg, r.stderr[-3000:]
    assert repr(str(path)) in msg[0] and "truncated dump file" in msg[0] and "shrank" in msg[0], msg[0]
    st = json.loads([line for line in r.stderr.splitlines() if line.startswith("{")][-1])
    assert st["status"] == "error" and "shrank" in st["error"]
    # the summary before the error is there too
    assert "mosfw: " in r.stderr and " flows (" in r.stderr
    if cores == 1:
        # exactly the records wholly before the cut were processed: none
        # of those after it, and not the one cut in two
        assert st["packets"] == whole, (st["packets"], whole)
    else:
        # every flow of the records read ended once
        ended = sum(
            st[k]
            for k in (
                "flows_ended_fin",
                "flows_ended_rst",
                "flows_ended_timeout",
                "flows_evicted",
                "flows_ended_eof",
                "flows_reused",
            )
        )
        assert ended == st["flows_created"] > 0


@pytest.mark.parametrize("where", ["inside a record", "on a record boundary"])
def test_a_core_that_opens_the_file_after_it_shrank_says_so(capture, tmp_path, where):
    """With ``-c N`` each worker opens the file after the fork: one that
    starts late can find it already cut by the rotation (seen under load
    on 2 cores). The runner tells every core the size the file had when
    the run started, so that core too ends with the "shrank" read error
    after the records still there, not with a plain truncated-file
    message (or, on a record boundary, a clean end)."""
    from mosfw.engine import Core
    from mosfw.manager import get_plugin_manager
    from mosfw.runconfig import Config

    ends = record_ends(capture)
    keep = ends[len(ends) // 2] + (7 if where == "inside a record" else 0)
    path = tmp_path / "rotated.pcap"
    path.write_bytes(capture[:keep])
    pm = get_plugin_manager([])
    config = Config(read_file=str(path), read_file_size=len(capture), pluginmanager=pm)
    core = Core(config, pm)
    core.open()
    res = core.run()
    assert res.status == "error", (res.status, res.error)
    assert "shrank" in res.error and f"from {len(capture)} to {keep} bytes" in res.error, res.error
    assert res.stats.packets == len(ends) // 2 + 1

    # the size the run started with, equal to the file's: a clean end
    config = Config(read_file=str(path), read_file_size=keep, pluginmanager=pm)
    core = Core(config, pm)
    core.open()
    res = core.run()
    if where == "on a record boundary":
        assert res.status == "done", res.error
    else:
        assert res.status == "error" and "shrank" not in res.error, res.error
