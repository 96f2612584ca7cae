"""A capture whose clock steps back (issue 23).

`mergecap -a` of two captures (the second one earlier), or an NTP step on
the capturing host, puts packets an hour before ones already read. Input
time is the latest packet time read so far and never goes back
(docs/robustness.md); a packet from the past is processed in file order,
keeps its own timestamp in events and records, and counts as activity at
input time for its flow's idle clock.

Before the fix a flow opened by such a packet took the packet's timestamp
as its last activity, an hour before input time: the next expiry pass
timed it out, and every later packet of the connection opened a new
mid-stream flow that was timed out in turn (one clean connection became
13 records, 12 ending by timeout, in the first test below).

A forward jump past the idle timeout still ends a flow by timeout, as
before.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")
LAUNCHER = ROOT / "samples" / "tracker" / "tracker"
HOUR = 3600.0
T0 = 100000.0
X = ("10.0.0.1", 40000)  # a connection open across the step
Y = ("10.0.0.3", 41000)  # a connection entirely after the step (in the past)


def key(ep):
    return f"{ep[0]}:{ep[1]}"


def track(mosfw_run, cap, **kw):
    rec = mosfw_run(cap, plugins=[TRACKER], options={"conn_format": "json"}, **kw)
    assert rec.stats.plugin_errors == 0, rec.stderr
    return rec, [json.loads(x) for x in rec.stdout.splitlines()]


def by_client(records):
    out = {}
    for r in records:
        out.setdefault(f"{r['id.orig_h']}:{r['id.orig_p']}", []).append(r)
    return out


def exchange(c, n=8):
    for _ in range(n):
        c.send("client", 100)
        c.send("server", 1000)


def test_connection_read_after_a_step_back_is_one_record(mosfw_capture, mosfw_run, tmp_path):
    """`mergecap -a later.pcap earlier.pcap`: the first file's traffic at
    T0, then a clean connection an hour before it."""
    cap = mosfw_capture(start=T0, step=0.01)
    cap.udp(("10.0.0.9", 5353), ("10.0.0.10", 53), b"later capture")
    cap.advance(-HOUR)
    start = cap.now
    y = cap.conversation(client=Y)
    y.handshake()
    exchange(y)
    y.close("client")
    end = cap.now - cap.step
    rec, records = track(mosfw_run, cap, events=("conn_end",))
    assert rec.ends() == {key(Y): ["fin"]}
    # (the tracker asks for UDP: the datagram is a flow, and a record, of its own)
    assert rec.stats.flows_created == 2 and rec.stats.flows_ended_timeout == 0
    assert [(x["proto"], x["conn_state"]) for x in records if x["proto"] != "tcp"] == [("udp", "S0")]
    (r,) = [x for x in records if x["proto"] == "tcp"]
    assert (r["conn_state"], r["close_reason"], r["orig_pkts"], r["resp_pkts"]) == ("SF", "fin", 12, 10)
    # the record keeps the packets' own times (not input time)
    assert r["ts"] == pytest.approx(start, abs=1e-6) and r["duration"] == pytest.approx(
        end - start - cap.step, abs=1e-6
    )
    # -c 2: the same with two cores fed by one reader
    path = tmp_path / "merged.pcap"
    cap.write_pcap(path)
    out = subprocess.run(
        [str(LAUNCHER), "-r", str(path), "-c", "2", "-q"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    recs2 = [json.loads(x) for x in out.stdout.splitlines()]
    assert sorted((x["proto"], x["close_reason"], x["orig_pkts"], x["resp_pkts"]) for x in recs2) == [
        ("tcp", "fin", 12, 10),
        ("udp", "eof", 1, 0),
    ]


def test_clock_steps_back_mid_connection(mosfw_capture, mosfw_run):
    """X runs across a one-hour step back (NTP); Y opens and closes after
    it, X goes on for longer than the idle timeout of packet time after it
    and closes. Two records, both fin; no timeouts."""
    cap = mosfw_capture(start=T0, step=0.01)
    x = cap.conversation(client=X)
    x.handshake()
    exchange(x, 3)
    cap.advance(-HOUR)
    exchange(x, 2)
    y = cap.conversation(client=Y)
    y.handshake()
    exchange(y, 4)
    y.close("client")
    cap.step = 10.0  # 80 s of packet time, all of it before T0
    exchange(x, 4)
    cap.step = 0.01
    x.close("server")
    rec, records = track(mosfw_run, cap, events=("conn_end",))
    assert rec.ends() == {key(X): ["fin"], key(Y): ["fin"]}
    assert rec.stats.flows_ended_timeout == 0 and rec.stats.flows_midstream == 0
    recs = by_client(records)
    assert [r["conn_state"] for r in recs[key(X)] + recs[key(Y)]] == ["SF", "SF"]
    assert recs[key(X)][0]["orig_pkts"] == 2 + 9 + 1 and recs[key(Y)][0]["orig_pkts"] == 2 + 4 + 2


def test_forward_jump_past_the_timeout_still_expires(mosfw_capture, mosfw_run):
    """A silence longer than tcp_timeout ends the flow by timeout at its
    last packet + tcp_timeout, as before; the packets after it start a
    mid-stream flow."""
    cap = mosfw_capture(start=T0, step=0.01)
    x = cap.conversation(client=X)
    x.handshake()
    exchange(x, 2)
    last = cap.now - cap.step
    cap.advance(100.0)
    exchange(x, 2)
    x.close("client")
    rec = mosfw_run(cap, events=("conn_end",), tcp_timeout=30.0)
    assert rec.ends() == {key(X): ["timeout", "fin"]}
    assert rec.of("conn_end")[0].ts == pytest.approx(last + 30.0, abs=1e-6)
    assert rec.stats.flows_midstream == 1


def test_idle_clock_after_a_step_back_counts_from_input_time(mosfw_capture, mosfw_run):
    """After a step back, input time stands at the latest time read (T0)
    until the packets pass it; a flow active in the stepped-back part was
    last active at T0 in input time. It times out once packet time passes
    T0 + tcp_timeout -- not an hour early, not never."""
    cap = mosfw_capture(start=T0, step=0.01)
    other = cap.conversation(client=("10.0.0.5", 42000))
    other.handshake()
    latest = cap.now - cap.step  # input time from here on, until packets pass it
    cap.advance(-HOUR)
    y = cap.conversation(client=Y)
    y.handshake()
    exchange(y, 2)
    cap.advance(HOUR + 60.0)  # back past T0 + 30 s
    other.send("client", 10)
    rec = mosfw_run(cap, events=("conn_end",), tcp_timeout=30.0)
    ends = {e.client: (e.reason, e.ts) for e in rec.of("conn_end")}
    assert ends[key(Y)] == ("timeout", pytest.approx(latest + 30.0, abs=1e-6))
    assert rec.ends()[key(Y)] == ["timeout"]
    assert rec.stats.flows_created == 3  # other, Y, and other again (mid-stream, after its own timeout)


REPLAY = ROOT / "native" / "build-asan" / "mosfw-replay"


@pytest.mark.skipif(not REPLAY.exists(), reason="sanitizer build missing: run `make asan`")
@pytest.mark.parametrize("cores", ["1", "2"])
def test_sanitizer_build_keeps_one_flow_across_a_step_back(mosfw_capture, tmp_path, cores):
    """The ASan+UBSan engine, driven from C, one core and two: no report,
    one flow per connection of test_connection_read_after_a_step_back
    (the replay driver's timer per flow fires on input time as well)."""
    import os

    cap = mosfw_capture(start=T0, step=0.01)
    cap.udp(("10.0.0.9", 5353), ("10.0.0.10", 53), b"later capture")
    cap.advance(-HOUR)
    y = cap.conversation(client=Y)
    y.handshake()
    exchange(y)
    y.close("client")
    path = tmp_path / "merged.pcap"
    cap.write_pcap(path)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=1", UBSAN_OPTIONS="print_stacktrace=1")
    r = subprocess.run(
        [str(REPLAY), "-c", cores, str(path)], capture_output=True, text=True, timeout=120, env=env
    )
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-3000:]
    assert r.returncode == 0, r.stderr[-3000:]
    per_core = [dict(kv.split("=") for kv in line.split()[1:] if "=" in kv) for line in r.stdout.splitlines()]
    assert sum(int(c["flows"]) for c in per_core) == 1 and sum(int(c["conn_end"]) for c in per_core) == 1
