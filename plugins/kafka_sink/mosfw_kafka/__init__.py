"""mosfw sink: records to Kafka (confluent-kafka, librdkafka).

``mosfw run ... --sink 'kafka://BROKER[,BROKER...]?topic=NAME'``

Each record is one message of the topic NAME (``{stream}`` in NAME is
replaced by the record's stream: ``conn``, ``http``, ``events``; default
``mosfw-{stream}``); its value is the record's JSON text (the line the
stdout sink prints, without the newline), its key the record's ``uid``
(the tracker's and httplog's connection id: one connection's records stay
in one partition, in order), or none.

The producer is idempotent (``enable.idempotence=true``, hence
``acks=all``, retries without duplicates or reordering). librdkafka
batches and sends from its own threads; ``buffer`` (default 100000)
caps the messages it holds (``queue.buffering.max.messages``): past it a
record is dropped and counted as lost; ``retry`` (seconds, default 30) is
how long a message may wait for its broker (``message.timeout.ms``)
before it fails and is counted as lost; at the end of the run the flush
waits at most the run's flush time (``mosfw.records.FLUSH_TIMEOUT``),
then what is left is purged and counted. ``timeout`` (seconds, default 5):
how long the check at start waits for a broker; none answering stops the
run (exit 1, with the addresses). Any other parameter ``x.y=v`` whose name
has a dot is passed to librdkafka as is (``compression.type=zstd``,
``linger.ms=20``, ``security.protocol=ssl`` ...).

With ``-c N`` each worker has its own producer (made after the fork:
librdkafka's threads do not survive one).
"""

from __future__ import annotations

from typing import Any

from mosfw.records import Sink, SinkError, SinkURL, record_key

__all__ = ["KafkaSink"]


class KafkaSink(Sink):
    """``kafka://`` (the ``mosfw.sinks`` entry point of mosfw-kafka)."""

    scheme = "kafka"

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        self.brokers = url.netloc.rpartition("@")[2]
        if not self.brokers:
            raise ValueError(f"--sink {url.text}: no broker (kafka://HOST:PORT[,HOST:PORT]?topic=NAME)")
        self.topic = url.take("topic", "mosfw-{stream}") or "mosfw-{stream}"
        self.buffer = url.take_int("buffer", 100_000, 1)
        self.retry = url.take_float("retry", 30.0, 0.001)
        self.timeout = url.take_float("timeout", 5.0, 0.001)
        self.extra = {k: url.query.pop(k) for k in [k for k in url.query if "." in k]}
        self.producer: Any = None
        self._topics: dict[str, str] = {}
        self._first_error: str | None = None
        self._warned_full = False

    @property
    def name(self) -> str:
        return f"kafka://{self.brokers}"

    def _conf(self) -> dict[str, Any]:
        def delivered(err, msg) -> None:  # librdkafka's delivery report, from poll()/flush()
            if err is not None:
                self.lost += 1
                if self._first_error is None:
                    self._first_error = str(err)
                    self.warn(f"a record could not be delivered ({err}); counted as lost")

        return {
            "bootstrap.servers": self.brokers,
            "enable.idempotence": True,
            "acks": "all",
            "queue.buffering.max.messages": self.buffer,
            "message.timeout.ms": int(self.retry * 1000),
            "linger.ms": 50,
            "on_delivery": delivered,
            "logger": _Quiet(),
            **self.extra,
        }

    def open(self) -> None:
        import confluent_kafka

        try:
            p = confluent_kafka.Producer(self._conf())
        except confluent_kafka.KafkaException as e:
            raise SinkError(f"sink {self.name}: bad producer settings: {e}") from None
        try:
            p.list_topics(timeout=self.timeout)  # a broker answered: metadata
        except confluent_kafka.KafkaException as e:
            p.purge()
            p.flush(0)
            raise SinkError(
                f"sink {self.name}: no broker answered at {self.brokers} within {self.timeout:g} s: {e}"
            ) from None
        self.producer = p

    def _topic(self, stream: str) -> str:
        t = self._topics.get(stream)
        if t is None:
            t = self._topics[stream] = self.topic.replace("{stream}", stream)
        return t

    def write(self, stream: str, data: Any) -> None:
        if type(data) is str:
            data = data.encode()
        p = self.producer
        topic = self._topic(stream)
        produce = p.produce
        for line in bytes(data).splitlines():
            try:
                produce(topic, line, record_key(line))
            except BufferError:  # librdkafka's queue is full: let it send, once
                p.poll(0.1)
                try:
                    produce(topic, line, record_key(line))
                except BufferError:
                    self.lost += 1
                    if not self._warned_full:
                        self._warned_full = True
                        self.warn(f"producer queue full ({self.buffer} records): records are being dropped")
        p.poll(0)  # delivery reports

    def flush(self) -> None:
        if self.producer is not None:
            self.producer.poll(0)

    def close(self, timeout: float) -> None:
        p, self.producer = self.producer, None
        if p is None:
            return
        left = p.flush(timeout)
        if left:  # the brokers did not take them in time: purged, each counted by its report
            p.purge()
            left = p.flush(1.0)
        self.lost += left


class _Quiet:
    """librdkafka's log lines, kept off the run's stderr (errors reach
    the sink through delivery reports and the check at start)."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass
