"""Micro-benchmarks of mosfw's hot paths, as seen from Python (pytest-benchmark).

They run in the normal suite with few rounds (a second or two in all) and
assert only correctness, never a time: the timings go to pytest-benchmark's
table (and ``--benchmark-json``), with the derived per-packet / per-event
costs in each benchmark's ``extra_info``. Compare runs with
``pytest tests/bench/test_micro.py --benchmark-autosave`` then
``pytest-benchmark compare``; raise the rounds with ``MOSFW_BENCH_ROUNDS``.

What each measures:

- ``test_engine_per_packet[...]``: the whole C engine per packet with no
  plugin, on small synthetic captures (bench/gen_capture.c):
  ``udp`` (the same frames with the IP protocol set to UDP: read + parse,
  no flow lookup), ``tcp-10`` (10 connections open at a time: parse +
  lookup in a tiny table + both TCP state machines), ``tcp-2000`` (2000 at
  a time: lookups that miss the CPU caches more often).
- ``test_dispatch[...]``: the same TCP capture with a plugin subscribed to
  the connection-level events (CONN_START, TCP_STATE_CHANGE,
  CONN_NEW_DATA, REXMIT, CONN_END): ``empty`` (hooks that return at once:
  the engine's event drain + dispatch), ``eventlog`` (the real eventlog
  plugin writing JSON lines to memory), ``pkt_in`` (a counter on every
  packet). ``extra_info["ns_per_event"]`` is (time - time without plugin)
  / events.
- ``test_hook_call[...]``: one hook called 10,000 times through
  ``pm.hook.mosfw_rexmit(...)`` (pluggy's generic path) vs the callables
  from ``pm.direct_callers()`` the engine uses.
- ``test_record_drain``: unpacking 8192 event records with
  ``struct.iter_unpack`` and routing each through the handler table (the
  Python half of the drain, without the hooks).
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

pytest.importorskip("pytest_benchmark")
mosfw = pytest.importorskip("mosfw")
try:
    from mosfw.engine import Core
    from mosfw.events import EVENT_STRUCT, Side
    from mosfw.manager import get_plugin_manager
    from mosfw.runconfig import Config
except ImportError as exc:  # pragma: no cover - the native module is not built
    pytest.skip(f"mosfw engine not importable: {exc}", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
GEN_SRC = ROOT / "bench" / "gen_capture.c"
CC = shutil.which("cc") or shutil.which("gcc")
ROUNDS = int(os.environ.get("MOSFW_BENCH_ROUNDS", "3"))

CONNECTIONS = 1000  # 20 packets each: 20,000 packets per capture


# --------------------------------------------------------------------------
# captures


@pytest.fixture(scope="module")
def captures(tmp_path_factory) -> dict[str, tuple[Path, int]]:
    if CC is None:
        pytest.skip("no C compiler to build bench/gen_capture.c")
    d = tmp_path_factory.mktemp("micro")
    gen = d / "gen_capture"
    subprocess.run([CC, "-O2", "-o", str(gen), str(GEN_SRC)], check=True)
    out = {}
    for name, conc in (("tcp-10", 10), ("tcp-2000", 2000)):
        p = d / f"{name}.pcap"
        res = subprocess.run(
            [str(gen), "-o", str(p), "-n", str(CONNECTIONS), "-c", str(conc)],
            check=True,
            capture_output=True,
            text=True,
        )
        packets = int(res.stderr.split("packets=")[1].split()[0])
        out[name] = (p, packets)
    udp = d / "udp.pcap"
    udp.write_bytes(_as_udp(out["tcp-10"][0].read_bytes()))
    out["udp"] = (udp, out["tcp-10"][1])
    return out


def _as_udp(data: bytes) -> bytes:
    """The same classic-pcap Ethernet frames with IP protocol 17 instead of
    6: the engine reads and parses every one but tracks none."""
    buf = bytearray(data)
    off = 24
    while off + 16 <= len(buf):
        caplen = struct.unpack_from("<I", buf, off + 8)[0]
        frame = off + 16
        ethertype = buf[frame + 12] << 8 | buf[frame + 13]
        if ethertype == 0x0800:
            buf[frame + 14 + 9] = 17
        elif ethertype == 0x86DD:
            buf[frame + 14 + 6] = 17
        off = frame + caplen
    return bytes(buf)


# --------------------------------------------------------------------------
# plugins


class EmptyHooks:
    """Subscribes to the connection-level events and does nothing (counts)."""

    def __init__(self) -> None:
        self.events = 0

    @mosfw.hookimpl
    def mosfw_conn_start(self, flow, side, event):
        self.events += 1

    @mosfw.hookimpl
    def mosfw_tcp_state_change(self, flow, side, old, new, event):
        self.events += 1

    @mosfw.hookimpl
    def mosfw_conn_new_data(self, flow, side, event):
        self.events += 1

    @mosfw.hookimpl
    def mosfw_rexmit(self, flow, side, event):
        self.events += 1

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow, reason, event):
        self.events += 1


class PktCounter:
    def __init__(self) -> None:
        self.events = 0

    @mosfw.hookimpl
    def mosfw_pkt_in(self, flow, side, event):
        self.events += 1


def _core(pcap: Path, plugins=()):
    pm = get_plugin_manager(list(plugins))
    config = Config(read_file=str(pcap), pluginmanager=pm, stdout=io.StringIO(), stderr=io.StringIO())
    pm.hook.mosfw_configure(config=config)
    core = Core(config, pm)
    core.open()
    return core, config


def _run(pcap: Path, plugins=()):
    core, config = _core(pcap, plugins)
    result = core.run()
    return result, config


def _min_seconds(benchmark) -> float | None:
    st = getattr(benchmark, "stats", None)
    try:
        return st.stats.min if st is not None else None
    except AttributeError:
        return None


def _pedantic(benchmark, pcap: Path, plugins_factory):
    """Time core.run() only (core made and input opened in setup)."""

    def setup():
        core, _ = _core(pcap, plugins_factory())
        return (core,), {}

    return benchmark.pedantic(
        lambda core: core.run(), setup=setup, rounds=ROUNDS, iterations=1, warmup_rounds=1
    )


# --------------------------------------------------------------------------
# the engine, per packet


@pytest.mark.parametrize("kind", ["udp", "tcp-10", "tcp-2000"])
def test_engine_per_packet(benchmark, captures, kind):
    pcap, packets = captures[kind]
    benchmark.group = "engine per packet (no plugin)"
    result = _pedantic(benchmark, pcap, list)
    st = result.stats
    assert st.packets == packets
    if kind == "udp":
        assert st.flows_created == 0 and st.tcp_packets == 0
    else:
        assert st.flows_created == CONNECTIONS
        assert st.rexmits == CONNECTIONS
    t = _min_seconds(benchmark)
    if t:
        benchmark.extra_info["packets"] = packets
        benchmark.extra_info["ns_per_packet"] = round(t / packets * 1e9, 1)


# --------------------------------------------------------------------------
# event drain and dispatch

DISPATCH = {
    "empty": lambda: [EmptyHooks()],
    "eventlog": lambda: ["eventlog"],
    "pkt_in": lambda: [PktCounter()],
}


@pytest.mark.parametrize("kind", list(DISPATCH))
def test_dispatch(benchmark, captures, kind):
    pcap, packets = captures["tcp-10"]
    benchmark.group = "event drain + dispatch"
    # events per run, and the same run with no plugin, outside the timing
    counter = EmptyHooks() if kind != "pkt_in" else PktCounter()
    _run(pcap, [counter])
    events = counter.events
    assert events >= (packets if kind == "pkt_in" else 6 * CONNECTIONS)
    base = float("inf")
    for _ in range(3):
        core, _cfg = _core(pcap)
        t0 = time.perf_counter()
        core.run()
        base = min(base, time.perf_counter() - t0)

    result = _pedantic(benchmark, pcap, DISPATCH[kind])
    assert result.stats.packets == packets
    assert result.stats.plugin_errors == 0
    t = _min_seconds(benchmark)
    if t:
        benchmark.extra_info["events"] = events
        benchmark.extra_info["ns_per_event"] = round(max(t - base, 0) / events * 1e9, 1)
        benchmark.extra_info["no_plugin_seconds"] = round(base, 6)


def test_eventlog_writes_every_event(captures):
    """The eventlog rows above do real work: one JSON line per event."""
    pcap, _ = captures["tcp-10"]
    counter = EmptyHooks()
    _run(pcap, [counter])
    _, config = _run(pcap, ["eventlog"])
    assert config.stdout.getvalue().count("\n") == counter.events


# --------------------------------------------------------------------------
# calling a hook: pluggy's generic path vs the engine's direct callables

CALLS = 10_000


@pytest.mark.parametrize("how", ["pm.hook", "direct"])
def test_hook_call(benchmark, how):
    benchmark.group = f"hook call x{CALLS}"
    plugin = EmptyHooks()
    pm = get_plugin_manager([plugin])
    side, ev = Side.CLIENT, (0.0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0)
    if how == "pm.hook":
        hook = pm.hook.mosfw_rexmit

        def loop():
            for _ in range(CALLS):
                hook(flow=None, side=side, event=ev)
    else:
        calls = pm.direct_callers("mosfw_rexmit")

        def loop():
            for _ in range(CALLS):
                for _name, fn in calls:
                    fn(None, side, ev)

    benchmark.pedantic(loop, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert plugin.events > 0 and plugin.events % CALLS == 0
    t = _min_seconds(benchmark)
    if t:
        benchmark.extra_info["ns_per_call"] = round(t / CALLS * 1e9, 1)


# --------------------------------------------------------------------------
# the Python half of the drain: build each record as an Event, route by type


def test_record_drain(benchmark):
    """mosfw._dispatch over 8192 records to a handler that counts: the
    cost per record of what Core.run does between two bursts."""
    from mosfw._dispatch import dispatch
    from mosfw.events import Event

    benchmark.group = "record drain (build Event + route)"
    n = 8192
    rec = EVENT_STRUCT.pack(0.0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0)
    buf = bytearray(rec * n)
    seen = [0]
    cur = [None]

    def handler(r):
        seen[0] += 1

    handlers = {1 << i: handler for i in range(10)}

    def drain():
        dispatch(buf, n, Event, handlers, cur)

    benchmark.pedantic(drain, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert seen[0] % n == 0 and seen[0] > 0
    assert isinstance(cur[0], Event) and cur[0].type.name == "REXMIT" and cur[0].pkt_index == 1
    t = _min_seconds(benchmark)
    if t:
        benchmark.extra_info["ns_per_record"] = round(t / n * 1e9, 1)
