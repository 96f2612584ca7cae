"""The Kafka sink (plugins/kafka_sink) against librdkafka's built-in mock
cluster: no Kafka broker package exists on these machines.

The test process starts a mock cluster of 3 brokers (a confluent-kafka
client with ``test.mock.num.brokers``: the brokers live in that client's
threads and listen on 127.0.0.1), runs ``mosfw run --sink
kafka://BROKERS?topic=...`` as a separate process against their
addresses (the producer path is librdkafka's real protocol over TCP),
and reads the messages back with a consumer on the same cluster: every
tracker record of a real capture, the same bytes as the stdout output,
keyed by its uid, with ``-c 1`` and ``-c 2``.
"""

from __future__ import annotations

import json
import time

import pytest
from sink_helpers import free_port, tracker, until_capturing, wait_for

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed (make installs it)")

pytestmark = [pytest.mark.realnet, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    """The bootstrap addresses of a 3-broker mock cluster, alive while the
    holder client lives."""
    holder = ck.Producer({"test.mock.num.brokers": 3, "logger": _Quiet()})
    md = holder.list_topics(timeout=10)
    yield ",".join(f"{b.host}:{b.port}" for b in md.brokers.values())
    holder.flush(1)


class _Quiet:
    def log(self, *args, **kwargs) -> None:
        pass


def consume(brokers: str, topic: str, want: int, seconds: float = 30.0) -> list:
    c = ck.Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"test-{topic}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "logger": _Quiet(),
        }
    )
    # every partition from its start, assigned (no consumer-group join:
    # that waits out the group's rebalance delay, seconds, for nothing here)
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in parts])
    got = []
    end = time.monotonic() + seconds
    try:
        while len(got) < want and time.monotonic() < end:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m)
        # nothing more than the records
        extra = c.poll(1.0)
        assert extra is None or extra.error(), extra.value()
    finally:
        c.close()
    return got


@pytest.mark.parametrize("cores", [1, 2])
def test_every_tracker_record_is_a_message_keyed_by_uid(capture, cluster, cores):
    plain = tracker(capture, cores=cores)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert len(lines) >= 30
    topic = f"conn-c{cores}"
    run = tracker(capture, "--sink", f"kafka://{cluster}?topic={topic}", cores=cores)
    assert run.returncode == 0, run.stderr
    assert run.stdout == b""
    msgs = consume(cluster, topic, len(lines))
    assert sorted(m.value() for m in msgs) == sorted(lines)
    for m in msgs:
        assert m.key() == json.loads(m.value())["uid"].encode()
    if cores == 1:  # one connection's records in one partition: per partition, the stdout order
        for part in {m.partition() for m in msgs}:
            mine = [m.value() for m in msgs if m.partition() == part]
            assert mine == [ln for ln in lines if ln in set(mine)]


def test_no_broker_at_start_is_an_exit_1_naming_it(capture):
    port = free_port()
    t0 = time.monotonic()
    run = tracker(capture, "--sink", f"kafka://127.0.0.1:{port}?topic=x&timeout=2")
    assert time.monotonic() - t0 < 20
    assert run.returncode == 1, run.stderr
    assert f"127.0.0.1:{port}" in run.stderr.decode()
    assert run.stdout == b""


HOLDER = """
import sys, time, confluent_kafka as ck
class Quiet:
    def log(self, *a, **k):
        pass
p = ck.Producer({"test.mock.num.brokers": 1, "logger": Quiet()})
md = p.list_topics(timeout=10)
print(",".join(f"{b.host}:{b.port}" for b in md.brokers.values()), flush=True)
time.sleep(3600)
"""


def test_cluster_gone_during_a_live_capture(tmp_path):
    """The mock cluster (its holder process, in the server's namespace)
    is killed while mosfw captures live: the records of the connections
    made after it are lost after ``retry`` seconds (message.timeout.ms),
    counted exactly (the stdout sink of the same run has them all) in
    --stats-json and the exit code; SIGTERM ends the run within the flush
    time."""
    import signal
    import subprocess
    import sys

    from sink_helpers import ROOT, TRACKER, realnet

    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS)
    if not ok:
        pytest.skip(f"needs network namespaces: {why}")
    out_path, err_path, stats_path = tmp_path / "out", tmp_path / "err", tmp_path / "stats.json"
    with realnet.netpair() as net:
        net.serve_files([1448])
        holder = net.popen_in(
            "server", [sys.executable, "-c", HOLDER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        brokers = holder.stdout.readline().decode().strip()
        assert brokers, "the mock cluster did not start"
        topic = "live"
        argv = [sys.executable, "-m", "mosfw", "run", "--no-progress", "-i", net.srv_if, "-p", TRACKER]
        # records as soon as a connection closes (the TIME_WAIT default, 5 s, only delays them)
        argv += ["--tcp-tw-interval", "0.5"]
        argv += ["--sink", "-", "--sink", f"kafka://{brokers}?topic={topic}&retry=2"]
        argv += ["--stats-json", str(stats_path)]
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = net.popen_in("server", argv, stdout=out, stderr=err, cwd=ROOT)

        def stdout_records() -> int:
            return out_path.read_bytes().count(b"\n")

        until_capturing(net, stdout_records)
        assert stdout_records() > 0, err_path.read_text()
        assert all(f.ok for f in net.fetch([net.url("f1448.bin")] * 4))
        assert wait_for(lambda: stdout_records() >= 5, 10)
        time.sleep(1.5)  # delivered (linger 50 ms) before the cluster goes
        before = stdout_records()
        holder.kill()
        holder.wait(10)
        assert all(f.ok for f in net.fetch([net.url("f1448.bin")] * 4))
        assert wait_for(lambda: stdout_records() >= before + 4, 10)
        time.sleep(3)  # retry=2: their messages time out
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        took = time.monotonic() - t0
    err = err_path.read_text()
    lost = stdout_records() - before
    assert took < 12, f"the run took {took:.1f} s to end after SIGTERM"
    assert rc == 6, err
    stats = json.loads(stats_path.read_text())
    assert stats["sink_records_lost"] == lost >= 4
    assert stats["sink_records_lost_by_sink"] == {f"kafka://{brokers}": lost}
    assert f"{lost} records lost" in err
