"""mosfw sink: records to Redis streams (XADD, pipelined, redis-py).

``mosfw run ... --sink 'redis://HOST:PORT/DB?stream=NAME[&maxlen=N]'``

Each record becomes one entry of the Redis stream NAME (``{stream}`` in
NAME is replaced by the record's stream: ``conn``, ``http``, ``events``;
default ``mosfw:{stream}``) with one field, ``json``: the record's JSON
text, byte for byte the line the stdout sink prints (without the
newline). ``maxlen=N`` caps the stream (``XADD ... MAXLEN ~ N``, Redis
trims whole macro nodes: about N entries are kept).

The records are sent by a thread, pipelined: up to ``batch`` XADD
commands (default 1000) in one write, their replies read back together
(see :class:`mosfw.records.BufferedSink` for the buffer, retries and
the flush at the end: ``buffer``, ``retry``, ``linger`` parameters).
Other parameters: ``timeout`` (seconds, socket and connect; default 5),
``password`` (or ``redis://:PASSWORD@HOST...``). A server that is down at
start stops the run (exit 1, with its address); one that goes away
later: records are buffered and retried, then counted as lost.

With ``-c N`` each worker has its own connection (opened after the fork).
"""

from __future__ import annotations

from typing import Any

from mosfw.records import BufferedSink, SinkURL

__all__ = ["RedisSink"]


class RedisSink(BufferedSink):
    """``redis://`` (the ``mosfw.sinks`` entry point of mosfw-redis)."""

    scheme = "redis"

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        self.host = url.host or "127.0.0.1"
        self.port = url.port or 6379
        db = url.path.strip("/") or "0"
        if not db.isdigit():
            raise ValueError(f"--sink {url.name}: the database must be a number (redis://HOST:PORT/0), not {db!r}")
        self.db = int(db)
        self.key = url.take("stream", "mosfw:{stream}") or "mosfw:{stream}"
        if "{" in self.key.replace("{stream}", ""):
            raise ValueError(f"--sink {url.name}: stream={self.key!r}: only {{stream}} may be replaced")
        self.maxlen = url.take_int("maxlen", 0)
        self.timeout = url.take_float("timeout", 5.0, 0.001)
        self.BATCH = url.take_int("batch", 1000, 1)
        self.password = url.take("password") or _password(url.netloc)
        self._conn: Any = None
        self._prefix: dict[str, bytes] = {}

    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def connect(self) -> None:
        import redis

        conn = redis.Connection(
            host=self.host,
            port=self.port,
            db=self.db,
            password=self.password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
        )
        conn.connect()  # raises ConnectionError (refused, timed out); AUTH and SELECT too
        conn.send_command("PING")
        conn.read_response()
        self._conn = conn

    def disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.disconnect()

    def _head(self, stream: str) -> bytes:
        """The packed ``XADD key [MAXLEN ~ N] * json`` part of a command
        (RESP), made once per stream."""
        head = self._prefix.get(stream)
        if head is None:
            key = self.key.replace("{stream}", stream).encode()
            args = [b"XADD", key]
            if self.maxlen:
                args += [b"MAXLEN", b"~", str(self.maxlen).encode()]
            args += [b"*", b"json"]
            head = b"*%d\r\n" % (len(args) + 1) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
            self._prefix[stream] = head
        return head

    def send_batch(self, batch: list[tuple[str, list[bytes]]]) -> None:
        import redis

        conn = self._conn
        if conn is None:
            raise redis.ConnectionError("not connected")
        parts: list[bytes] = []
        n = 0
        for stream, lines in batch:
            head = self._head(stream)
            for line in lines:
                parts.append(b"%s$%d\r\n%s\r\n" % (head, len(line), line))
            n += len(lines)
        conn.send_packed_command([b"".join(parts)], check_health=False)
        refused = 0
        first = None
        for _ in range(n):
            try:
                conn.read_response()
            except redis.ResponseError as e:  # this record only (e.g. WRONGTYPE): not retried
                refused += 1
                first = first or e
        if refused:
            self.count_lost(refused)
            self.warn(f"the server refused {refused} records: {first}")


def _password(netloc: str) -> str | None:
    cred = netloc.rpartition("@")[0]
    if not cred:
        return None
    return cred.partition(":")[2] or None
