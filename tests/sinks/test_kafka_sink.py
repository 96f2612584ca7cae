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
from sink_helpers import free_port, real_capture, tracker

ck = pytest.importorskip("confluent_kafka", reason="confluent-kafka not installed (make installs it)")

pytestmark = [pytest.mark.realnet, pytest.mark.slow]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    return real_capture(tmp_path_factory.mktemp("kafka-sink") / "curl.pcap")


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
    c.subscribe([topic])
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
