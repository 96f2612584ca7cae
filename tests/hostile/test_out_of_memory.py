"""Allocation failures on the packet path end in a counted refusal, never
a hang.

The flow index (native/flow_table.c) doubles as flows arrive. When that
allocation fails (an address-space limit -- ``prlimit --as`` --, strict
overcommit), the engine used to ignore it, fill the index to the last
entry and spin forever looking for a free one (100% CPU, deaf to
SIGTERM). Now new flows are refused like a full table (ERROR
``table_full``, an ORPHAN, ``flows_refused``) and the failure is counted
(``nomem``).

The limit is set from inside the run (a plugin's mosfw_core_start calls
setrlimit(RLIMIT_AS), which is what ``prlimit --as`` does), a few MiB
above what the process has mapped by then: the flow pool is reserved at
start, so the index's growth is what runs into it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GEN_SRC = ROOT / "native" / "fuzz" / "gen_synflood.c"
N_SYNS = 600_000

LIMITER = """
import resource
import mosfw

MARGIN = 8 << 20
n = {"error": 0}


@mosfw.hookimpl
def mosfw_core_start(core):
    with open("/proc/self/status") as fh:
        vm = [int(l.split()[1]) * 1024 for l in fh if l.startswith("VmSize:")][0]
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (vm + MARGIN, hard))


@mosfw.hookimpl
def mosfw_error(code):
    n["error"] += 1


@mosfw.hookimpl
def mosfw_report():
    print(n["error"])
"""


@pytest.fixture(scope="module")
def flood(tmp_path_factory) -> Path:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler for native/fuzz/gen_synflood.c")
    d = tmp_path_factory.mktemp("oom")
    exe = d / "gen_synflood"
    subprocess.run(
        [cc, "-std=gnu11", "-O2", str(GEN_SRC), "-o", str(exe)], check=True, capture_output=True, timeout=120
    )
    p = d / "flood.pcap"
    subprocess.run([str(exe), str(p), str(N_SYNS), "1000"], check=True, timeout=120)
    return p


def test_flow_index_that_cannot_grow_refuses_new_flows(flood, tmp_path):
    plugin = tmp_path / "limiter.py"
    plugin.write_text(LIMITER)
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mosfw",
            "run",
            "-r",
            str(flood),
            "-p",
            str(plugin),
            "--max-concurrency",
            "1000000",
            "--stats-json",
            "-",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        out, err = p.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, 9)
        p.communicate()
        pytest.fail("mosfw run hung when the flow index could not grow (killed after 90 s)")
    assert p.returncode == 0, err[-3000:]
    st = json.loads([line for line in err.splitlines() if line.startswith("{")][-1])
    # the index could not grow: flows were refused, not all tracked
    assert st["nomem"] > 0, st
    assert st["flows_refused"] > 0, st
    assert st["flows_created"] + st["flows_refused"] == N_SYNS + 1000, st
    # each refusal is an ERROR table_full (no other errors in this flood)
    assert int(out.strip().splitlines()[-1]) == st["flows_refused"]
    # the refused SYNs' packets are orphans; every tracked flow ends once
    assert st["orphans"] >= st["flows_refused"]
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
    assert ended == st["flows_created"]
    assert f"{st['flows_refused']} refused" in err
    assert "out of memory" in err, err[-2000:]
