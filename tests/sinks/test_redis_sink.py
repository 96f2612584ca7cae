"""The Redis sink (plugins/redis_sink) against a real redis-server that
the test starts (127.0.0.1, a free port, a temporary directory).

- Every tracker record of a real capture (curl against a web server across
  two network namespaces, tcpdump) is an entry of the stream, with the
  same bytes as the stdout output, in order with ``-c 1`` and as a set
  with ``-c 2``; their number is tshark's count of TCP conversations.
- A server that is not there at start: exit 1 naming the address, at once.
- A server killed during a live capture: the run goes on, the records of
  the connections made after the kill are counted as lost (exactly: the
  stdout sink of the same run has them all), in the Prometheus metric
  while it runs, then in the summary, ``--stats-json`` and the exit code
  (6); SIGTERM ends it within the flush time.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from sink_helpers import (
    ROOT,
    TRACKER,
    free_port,
    mosfw,
    realnet,
    redis_server,
    tracker,
    until_capturing,
    wait_for,
)

pytestmark = [pytest.mark.realnet, pytest.mark.slow]


@pytest.mark.parametrize("cores", [1, 2])
def test_every_tracker_record_is_in_the_stream(capture, cores):
    plain = tracker(capture, cores=cores)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) == len(realnet.tshark_conversations(capture)) >= 30
    with redis_server() as srv:
        run = tracker(capture, "--sink", "-", "--sink", srv.url + "?stream=mosfw-{stream}", cores=cores)
        assert run.returncode == 0, run.stderr
        # the stdout sink beside it: unchanged (with -c 2 the cores' lines interleave freely)
        if cores == 1:
            assert run.stdout == plain.stdout
        else:
            assert sorted(run.stdout.splitlines()) == sorted(lines)
        assert int(srv.cli("XLEN", "mosfw-conn")) == len(lines)
        got = srv.entries("mosfw-conn")
    if cores == 1:
        assert got == lines
    else:  # each core sends its own records: the order between cores is free
        assert sorted(got) == sorted(lines)
        assert {json.loads(g)["core"] for g in got} == {0, 1}


def test_only_the_redis_sink_leaves_stdout_empty(capture):
    with redis_server() as srv:
        run = tracker(capture, "--sink", srv.url + "?maxlen=1000")
        assert run.returncode == 0, run.stderr
        assert run.stdout == b""
        assert int(srv.cli("XLEN", "mosfw:conn")) >= 30  # the default key


def test_password_and_database(capture):
    """AUTH and SELECT at the connection (the sink speaks RESP itself): the
    records land in database 3 of a server that requires a password; a
    wrong password is exit 1 naming the server and the refusal."""
    with redis_server(None, "--requirepass", "s3cret") as srv:
        run = tracker(capture, "--sink", f"redis://:s3cret@127.0.0.1:{srv.port}/3?stream=pw")
        assert run.returncode == 0, run.stderr
        assert int(srv.cli("-n", "3", "XLEN", "pw")) >= 30
        assert int(srv.cli("-n", "0", "XLEN", "pw")) == 0
        bad = tracker(capture, "--sink", f"redis://:wrong@127.0.0.1:{srv.port}/3?stream=pw")
        assert bad.returncode == 1, bad.stderr
        err = bad.stderr.decode()
        assert f"127.0.0.1:{srv.port}" in err and "AUTH" in err, err


def test_a_unix_socket(capture, tmp_path):
    """``socket=PATH``: the sink connects to the server's unix socket (the
    host and port of the URL are not used); every record lands, in order;
    a socket nobody listens on is exit 1 naming its path."""
    plain = tracker(capture)
    assert plain.returncode == 0, plain.stderr
    path = tmp_path / "redis.sock"
    with redis_server(None, "--unixsocket", str(path), "--unixsocketperm", "700") as srv:
        run = tracker(capture, "--sink", f"redis://127.0.0.1:1/0?stream=u&socket={path}")
        assert run.returncode == 0, run.stderr
        assert srv.entries("u") == plain.stdout.splitlines()
    gone = tracker(capture, "--sink", f"redis://127.0.0.1:1/0?stream=u&socket={tmp_path}/none.sock")
    assert gone.returncode == 1, gone.stderr
    assert f"{tmp_path}/none.sock" in gone.stderr.decode()


def test_records_the_server_refuses_are_lost_the_others_land(capture):
    """A stream key that holds a string: Redis refuses every XADD to it
    (WRONGTYPE) while it takes those of the other stream in the same
    batches: the refused ones are counted lost (named, exit 6), the others
    are all there, in order. (The replies are read in bulk, pieces
    pipelined: an error among them takes the slow path.)"""
    plain = mosfw("run", "-q", "--no-progress", "-r", str(capture), "-p", TRACKER, "-p", "eventlog")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    conn = [x for x in lines if b'"uid"' in x]
    events = [x for x in lines if b'"uid"' not in x]
    assert conn and len(events) > 500
    with redis_server() as srv:
        srv.cli("SET", "mosfw-conn", "not a stream")
        url = srv.url + "?stream=mosfw-{stream}&batch=300"
        run = mosfw(
            "run", "-q", "--no-progress", "-r", str(capture), "-p", TRACKER, "-p", "eventlog",
            "--sink", url, "--stats-json", "-",
        )  # fmt: skip
        err = run.stderr.decode()
        assert run.returncode == 6, err
        assert "WRONGTYPE" in err, err
        assert srv.entries("mosfw-events") == events
        stats = json.loads(err[err.index("{") : err.rindex("}") + 1])
        assert stats["sink_records_lost"] == len(conn)


@pytest.mark.parametrize("cores", [1, 2])
def test_a_server_down_at_start_is_an_exit_1_naming_it(capture, cores):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    run = tracker(capture, "--sink", f"redis://127.0.0.1:{port}/0?stream=x", cores=cores)
    assert time.monotonic() - t0 < 20
    assert run.returncode == 1, run.stderr
    assert f"127.0.0.1:{port}" in run.stderr.decode()
    assert run.stdout == b""


def test_bad_sink_urls_are_usage_errors(capture):
    for url, what in (
        ("redis://127.0.0.1:1/0?strem=x", "unknown parameter(s) strem"),
        ("redis://127.0.0.1:1/zero", "must be a number"),
        ("redis://127.0.0.1:1/0?maxlen=many", "maxlen='many' is not a whole number"),
        ("nosuch://x", "no sink for the URL scheme 'nosuch'"),
        ("parts:/tmp", "parts: is a --dask task's own"),
    ):
        run = tracker(capture, "--sink", url)
        assert run.returncode == 2, (url, run.stderr)
        assert what in run.stderr.decode(), (url, run.stderr)


def _metric(ns: str, url: str, name: str) -> dict[str, float]:
    """Samples of one metric from /metrics, read inside the namespace."""
    out = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-sS", "--max-time", "5", url],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    got = {}
    for line in out.splitlines():
        if line.startswith(name + "{"):
            labels, value = line.rsplit(" ", 1)
            got[labels] = float(value)
    return got


@pytest.mark.parametrize("extra", ["", "&buffer=2&retry=3"], ids=["retry", "tiny-buffer"])
def test_server_killed_during_a_live_capture(tmp_path, extra):
    """tiny-buffer: while the server is away (the first failed batch is
    retried for 3 s), records that do not fit in a 2-record buffer are
    dropped at once (and counted), the rest after the retry time: the
    total is the same."""
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS)
    if not ok:
        pytest.skip(f"needs network namespaces: {why}")
    out_path, err_path, stats_path = tmp_path / "out", tmp_path / "err", tmp_path / "stats.json"
    with realnet.netpair() as net:
        net.serve_files([1448, 20_000])
        with redis_server(netns=net.srv_ns) as srv:
            url = f"{srv.url}?stream=live&retry=1{extra}"
            argv = [sys.executable, "-m", "mosfw", "run", "--no-progress", "-i", net.srv_if, "-p", TRACKER]
            # records as soon as a connection closes (the TIME_WAIT default, 5 s, only delays them)
            argv += ["--tcp-tw-interval", "0.5"]
            argv += ["--sink", "-", "--sink", url, "--stats-json", str(stats_path)]
            argv += ["-p", "plugins/prometheus", "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "0"]
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = net.popen_in("server", argv, stdout=out, stderr=err, cwd=ROOT)

            def stdout_records() -> int:
                return out_path.read_bytes().count(b"\n")

            # capturing once a fetch made a record; each is in the stream within ~1 s
            until_capturing(net, stdout_records)
            assert stdout_records() > 0, err_path.read_text()
            assert all(f.ok for f in net.fetch([net.url("f20000.bin")] * 6, parallel=3))
            assert wait_for(
                lambda: stdout_records() >= 7 and int(srv.cli("XLEN", "live")) == stdout_records(), 10
            )
            before = int(srv.cli("XLEN", "live"))
            assert before == stdout_records()
            metrics = re.search(r"serving (http://\S+/metrics)", err_path.read_text()).group(1)

            srv.kill()
            # a burst first: the failing batch, retried for `retry` seconds,
            # holds several records, so that the records handed over during
            # the retry do not fit in a 2-record buffer (tiny-buffer): the
            # "buffer full" path is taken whatever the timing of the fetches
            assert all(f.ok for f in net.fetch([net.url("f1448.bin")] * 4, parallel=4))
            for _ in range(5):  # over ~3.5 s: the tracker hands over records once a second
                assert all(f.ok for f in net.fetch([net.url("f1448.bin")]))
                time.sleep(0.7)
            assert wait_for(lambda: stdout_records() >= before + 5, 10)
            # retry=1: one second after the failure the records are lost, and the
            # next progress report carries the count to the metric
            name = "mosfw_sink_records_lost_total"

            def metric_says() -> bool:
                return sum(_metric(net.srv_ns, metrics, name).values()) == stdout_records() - before

            assert wait_for(metric_says, 10), _metric(net.srv_ns, metrics, name)
            assert list(_metric(net.srv_ns, metrics, name)) == [f'{name}{{core="0",sink="{srv.url}"}}']

            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(30)
            took = time.monotonic() - t0
    err = err_path.read_text()
    total = stdout_records()
    lost = total - before
    assert lost >= 5
    assert took < 12, f"the run took {took:.1f} s to end after SIGTERM"
    assert rc == 6, err
    stats = json.loads(stats_path.read_text())
    assert stats["sink_records_lost"] == lost
    assert stats["sink_records_lost_by_sink"] == {srv.url: lost}
    assert f"mosfw: sink {srv.url}: {lost} records lost" in err
    assert "sending failed" in err  # said once, when it happened
    if extra:
        assert "buffer full (2 records) and the server is away" in err
