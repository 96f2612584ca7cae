"""mosfw sink: records to Redis streams (XADD, pipelined).

``mosfw run ... --sink 'redis://HOST:PORT/DB?stream=NAME[&maxlen=N]'``

Each record becomes one entry of the Redis stream NAME (``{stream}`` in
NAME is replaced by the record's stream: ``conn``, ``http``, ``events``;
default ``mosfw:{stream}``) with one field, ``json``: the record's JSON
text, byte for byte the line the stdout sink prints (without the
newline). ``maxlen=N`` caps the stream (``XADD ... MAXLEN ~ N``, Redis
trims whole macro nodes: about N entries are kept).

The records are sent by a thread, pipelined, in batches of ``batch``
records (default 1000; a batch is retried whole, see
:class:`mosfw.records.BufferedSink` for the buffer, retries and the
flush at the end: ``buffer``, ``retry``, ``linger`` parameters), each
written in pieces of ``piece`` XADD commands (default 250): a piece is
written before the replies to the one before are read, so redis-server
always has commands to work on while this thread packs the next piece
(one ``bytes.join`` a piece) and counts replies (each chunk read once).
Other parameters: ``c=0`` (pack the commands in Python even where the C
part is built; for comparisons), ``timeout`` (seconds, socket and connect; default 5),
``password`` (or ``redis://:PASSWORD@HOST...``), ``socket=PATH``
(connect to the server's unix socket; HOST and PORT are then not used). A server that is down at
start stops the run (exit 1, with its address); one that goes away
later: records are buffered and retried, then counted as lost.

With ``-c N`` each worker has its own connection (opened after the fork).

It speaks Redis's protocol (RESP2) on a socket itself: AUTH, SELECT,
PING at the connection, then batches of XADD, whose replies are counted
in bulk. No client library: redis-py's import alone (0.1-0.2 s) cost more
than the records of a 60000-connection capture (bench/README.md), and its
parser takes a call per reply. The XADD commands are made by the
package's C part (``mosfw_redis._resp``, native/resp_frame.c: one pass
over a batch as the tracker handed it over, no Python object per record,
the GIL released); where it was not built, in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from mosfw.records import BufferedSink, SinkURL

try:  # the C part (build_resp.py); the sink works without it, slower
    from mosfw_redis._resp import ffi as _ffi, lib as _lib
except ImportError:  # pragma: no cover - a checkout or install without a compiler
    _ffi = _lib = None

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
        self.piece = url.take_int("piece", 250, 1)
        self.password = url.take("password") or _password(url.netloc)
        self.unix = url.take("socket")
        self._sock: Any = None
        self._prefix: dict[str, _Heads] = {}
        #: unsplit chunks framed in C (BufferedSink.raw); ``c=0``: in Python
        self.raw = _lib is not None and url.take_int("c", 1) == 1
        self._out = bytearray()  # the framed commands of a piece (send_raw)

    def address(self) -> str:
        return self.unix or f"{self.host}:{self.port}"

    def connect(self) -> None:
        import socket

        if self.unix:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(self.timeout)
            try:
                sock.connect(self.unix)
            except BaseException:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            if not self.unix:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            cmds = [[b"AUTH", self.password.encode()]] if self.password else []
            if self.db:
                cmds.append([b"SELECT", str(self.db).encode()])
            cmds.append([b"PING"])
            sock.sendall(b"".join(_command(c) for c in cmds))
            for cmd, reply in zip(cmds, _read_lines(sock, len(cmds)), strict=True):
                if reply.startswith(b"-"):  # e.g. a wrong password, a database out of range
                    raise ConnectionError(f"{cmd[0].decode()}: {reply[1:].decode(errors='replace')}")
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def disconnect(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _heads(self, stream: str) -> _Heads:
        """``\\r\\n`` (the end of the command before) + the packed ``XADD
        key [MAXLEN ~ N] * json $LEN`` part of a command (RESP), by value
        length, for one stream."""
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

    def _pack(self, batch: list[tuple[str, list[bytes]]]) -> bytes:
        """The XADD commands of a batch's records, in order, as one bytes:
        one join of [head, line, head, line, ..., "\\r\\n"], no bytes
        object made per record."""
        parts: list[bytes] = []
        for stream, lines in batch:
            heads = self._heads(stream)
            x = [b""] * (2 * len(lines))
            x[0::2] = map(heads.__getitem__, map(len, lines))
            x[1::2] = lines
            parts += x
        if not parts:
            return b""
        parts[0] = parts[0][2:]  # no command before the first
        parts.append(b"\r\n")
        return b"".join(parts)

    def lines_end(self, data: Any, max_lines: int) -> tuple[int, int]:
        lines = _ffi.new("size_t *")
        end = _lib.resp_lines_end(_ffi.from_buffer("uint8_t[]", data), len(data), max_lines, lines)
        return end, lines[0]

    def send_raw(self, chunk: list[tuple[str, Any, int]]) -> None:
        """As :meth:`send_batch`, the chunk unsplit (BufferedSink.raw):
        each piece of ``piece`` records framed in C into one buffer."""
        self._send_pieces(self._framed(chunk))

    def _framed(self, chunk: list[tuple[str, Any, int]]) -> Iterator[tuple[memoryview, int]]:
        """(the XADD commands of a piece, its records), the pieces of the
        chunk in order: ``piece`` records each, across the chunk's data (a
        tracker hands over a few records a burst); the buffer is reused
        for the next piece."""
        lines = _ffi.new("size_t *")
        used = held = 0  # bytes and records framed into self._out, not yet yielded
        for stream, data, _n in chunk:
            head = self._heads(stream).head[2:]  # (without the CRLF before)
            prefix = _ffi.from_buffer("uint8_t[]", head)
            src, size, pos = _ffi.from_buffer("uint8_t[]", data), len(data), 0
            while pos < size:
                end = _lib.resp_lines_end(src + pos, size - pos, self.piece - held, lines)
                need = used + _lib.resp_frame_bound(end, lines[0], len(head))
                if len(self._out) < need:  # (a new one: the old may still be exported)
                    grown = bytearray(max(need, 2 * len(self._out)))
                    grown[:used] = self._out[:used]
                    self._out = grown
                out = _ffi.from_buffer("uint8_t[]", self._out)
                used += _lib.resp_frame(src + pos, end, prefix, len(head), out + used)
                held += lines[0]
                pos += end
                if held >= self.piece:
                    yield memoryview(self._out)[:used], held
                    used = held = 0
        if held:
            yield memoryview(self._out)[:used], held

    def send_batch(self, batch: list[tuple[str, list[bytes]]]) -> None:
        """Send a chunk of records in pieces of ``piece`` records (default
        250), packed in Python."""
        size = self.piece
        pieces: list[list[tuple[str, list[bytes]]]] = []
        counts: list[int] = []
        piece: list[tuple[str, list[bytes]]] = []
        n = 0
        for stream, lines in batch:
            for i in range(0, len(lines), size):
                part = lines[i : i + size] if len(lines) > size else lines
                piece.append((stream, part))
                n += len(part)
                if n >= size:
                    pieces.append(piece)
                    counts.append(n)
                    piece, n = [], 0
        if piece:
            pieces.append(piece)
            counts.append(n)
        self._send_pieces((self._pack(p), n) for p, n in zip(pieces, counts, strict=True))

    def _send_pieces(self, pieces: Iterable[tuple[Any, int]]) -> None:
        """Write each (commands, records) piece before the replies to the
        one before are read, so that redis-server has the next piece while
        this thread reads replies and makes the one after; the records the
        server refused are counted as lost."""
        sock = self._sock
        if sock is None:
            raise ConnectionError("not connected")
        replies = _Replies(sock)
        try:
            sent = 0  # records of the pieces written
            for data, n in pieces:
                sock.sendall(data)
                replies.wait(sent)  # those of the piece before: redis-server now has this one
                sent += n
            replies.wait(sent, last=True)
        except OSError as e:
            raise ConnectionError(f"{type(e).__name__}: {e}") from None
        refused, first = replies.errors, replies.first_error()
        if refused:
            self.count_lost(refused)
            self.warn(f"the server refused {refused} records: {first}")


def _command(args: list[bytes]) -> bytes:
    """One command in RESP: an array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _read_lines(sock: Any, n: int) -> list[bytes]:
    """The n one-line replies (``+OK``, ``+PONG``, ``-ERR ...``) to n commands."""
    buf = b""
    while buf.count(b"\r\n") < n:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        buf += chunk
    return buf.split(b"\r\n")[:n]


class _Heads(dict):
    """length -> ``b"\\r\\n" + head + b"$LENGTH\\r\\n"``, made on first use."""

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = b"\r\n" + head

    def __missing__(self, length: int) -> bytes:
        v = self[length] = self.head + b"$%d\r\n" % length
        return v


class _Replies:
    """The replies to the XADD commands of one :meth:`RedisSink.send_batch`,
    counted as they come (each chunk once): each ``$LEN\\r\\nID\\r\\n``
    (two lines: the new entry's id, which starts with a digit) or
    ``-ERROR\\r\\n`` (one line, one error): ``lines + errors`` is twice
    the replies read whenever a chunk ends at a line's end."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.lines = self.errors = 0
        self.at_line_start = True
        self.kept: list[bytes] = []  # the chunks from the first error on

    def wait(self, n: int, last: bool = False) -> None:
        """Read until the replies to the first n commands are in (with
        ``last``: n is every command sent, and nothing else may come)."""
        while self.lines + self.errors < 2 * n or (last and not self.at_line_start):
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.lines += chunk.count(b"\n")
            e = chunk.count(b"\n-") + (self.at_line_start and chunk.startswith(b"-"))
            self.at_line_start = chunk.endswith(b"\n")
            if e or self.kept:
                self.kept.append(chunk)
            self.errors += e
        if last and self.lines + self.errors > 2 * n:
            raise ConnectionError(f"unexpected reply from the server: {b''.join(self.kept)[:200]!r}")

    def first_error(self) -> str | None:
        if not self.errors:
            return None
        buf = b"".join(self.kept)
        i = 0 if buf.startswith(b"-") else buf.index(b"\n-") + 1
        return buf[i + 1 : buf.index(b"\r\n", i)].decode(errors="replace")


def _password(netloc: str) -> str | None:
    cred = netloc.rpartition("@")[0]
    if not cred:
        return None
    return cred.partition(":")[2] or None
