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
            raise ValueError(
                f"--sink {url.name}: the database must be a number (redis://HOST:PORT/0), not {db!r}"
            )
        self.db = int(db)
        self.key = url.take("stream", "mosfw:{stream}") or "mosfw:{stream}"
        if "{" in self.key.replace("{stream}", ""):
            raise ValueError(f"--sink {url.name}: stream={self.key!r}: only {{stream}} may be replaced")
        self.maxlen = url.take_int("maxlen", 0)
        self.timeout = url.take_float("timeout", 5.0, 0.001)
        self.BATCH = url.take_int("batch", 1000, 1)
        self.password = url.take("password") or _password(url.netloc)
        self._conn: Any = None
        self._sock: Any = None
        self._prefix: dict[str, _Heads] = {}

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
            protocol=2,
        )
        conn.connect()  # raises ConnectionError (refused, timed out); AUTH and SELECT too
        conn.send_command("PING")
        conn.read_response()
        self._conn = conn
        # The batch itself goes over the connection's socket: one sendall,
        # and the replies counted in bulk. redis-py parses a reply per call
        # (~1.3 us each here), which on a record stream costs more than
        # the tracker itself (bench/sink_cost.py).
        self._sock = getattr(conn, "_sock", None)

    def disconnect(self) -> None:
        conn, self._conn, self._sock = self._conn, None, None
        if conn is not None:
            conn.disconnect()

    def _heads(self, stream: str) -> _Heads:
        """The packed ``XADD key [MAXLEN ~ N] * json $LEN`` part of a
        command (RESP) by value length, for one stream."""
        heads = self._prefix.get(stream)
        if heads is None:
            key = self.key.replace("{stream}", stream).encode()
            args = [b"XADD", key]
            if self.maxlen:
                args += [b"MAXLEN", b"~", str(self.maxlen).encode()]
            args += [b"*", b"json"]
            head = b"*%d\r\n" % (len(args) + 1) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
            heads = self._prefix[stream] = _Heads(head)
        return heads

    def send_batch(self, batch: list[tuple[str, list[bytes]]]) -> None:
        import redis

        conn = self._conn
        if conn is None:
            raise redis.ConnectionError("not connected")
        parts: list[bytes] = []
        n = 0
        for stream, lines in batch:
            heads = self._heads(stream)
            # XADD key * json $LEN\r\nLINE\r\n ... without a Python loop per record
            parts.append(b"\r\n".join(map(bytes.__add__, map(heads.__getitem__, map(len, lines)), lines)))
            parts.append(b"\r\n")
            n += len(lines)
        data = b"".join(parts)
        sock = self._sock
        if sock is None:  # a redis-py without the attribute: the slow, public way
            conn.send_packed_command([data], check_health=False)
            refused, first = 0, None
            for _ in range(n):
                try:
                    conn.read_response()
                except redis.ResponseError as e:  # this record only (e.g. WRONGTYPE): not retried
                    refused += 1
                    first = first or str(e)
        else:
            try:
                sock.sendall(data)
                refused, first = _read_replies(sock, n)
            except OSError as e:
                raise redis.ConnectionError(f"{type(e).__name__}: {e}") from None
        if refused:
            self.count_lost(refused)
            self.warn(f"the server refused {refused} records: {first}")


class _Heads(dict):
    """length -> ``head + b"$LENGTH\\r\\n"``, made on first use."""

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = head

    def __missing__(self, length: int) -> bytes:
        v = self[length] = self.head + b"$%d\r\n" % length
        return v


def _read_replies(sock: Any, n: int) -> tuple[int, str | None]:
    """Read the replies to n XADD commands: each ``$LEN\\r\\nID\\r\\n``
    (the new entry's id, which starts with a digit) or ``-ERROR\\r\\n``.
    Returns (errors, the first error's text)."""
    buf = b""
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
        if not buf.endswith(b"\r\n"):
            continue
        errors = buf.count(b"\n-") + buf.startswith(b"-")
        bulk = buf.count(b"\n$") + buf.startswith(b"$")
        if bulk + errors > n:
            raise ConnectionError(f"unexpected reply from the server: {buf[:200]!r}")
        if bulk + errors == n and buf.count(b"\r\n") == 2 * bulk + errors:
            break
    if not errors:
        return 0, None
    i = 0 if buf.startswith(b"-") else buf.index(b"\n-") + 1
    return errors, buf[i + 1 : buf.index(b"\r\n", i)].decode(errors="replace")


def _password(netloc: str) -> str | None:
    cred = netloc.rpartition("@")[0]
    if not cred:
        return None
    return cred.partition(":")[2] or None
