"""What a sink is: the :class:`Sink` interface, its URL, its error, and
:class:`BufferedSink`, the base of sinks that send to a server (bounded
buffer, a sender thread, retries, a bounded flush at the end)."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mosfw.engine.errors import EngineError

__all__ = ["BufferedSink", "Sink", "SinkError", "SinkURL", "record_key"]


class SinkError(EngineError):
    """A sink cannot be opened (its server is down, its file cannot be
    written); the message names the sink and its address. ``mosfw run``
    exits with 1."""


class SinkURL:
    """A parsed ``--sink`` value: ``scheme``, ``host``, ``port``, ``path``
    and the query as a dict (``query``); ``text`` is the value as given;
    :attr:`name` is how counters and messages name the sink."""

    def __init__(self, text: str) -> None:
        self.text = text
        if "://" in text:
            u = urlsplit(text)
            self.scheme = u.scheme
            self.netloc = u.netloc
            self.path = u.path
            self.host: str | None = None
            self.port: int | None = None
            if "," not in u.netloc:  # one server (kafka:// may list several)
                try:
                    self.host, self.port = u.hostname, u.port
                except ValueError as e:  # a port that is not a number
                    raise ValueError(f"--sink {text!r}: {e}") from None
            query = u.query
        else:  # file:PATH, stdout
            scheme, _, rest = text.partition(":")
            self.scheme = scheme
            self.netloc, self.host, self.port = "", None, None
            self.path, _, query = rest.partition("?")
        self.query: dict[str, str] = dict(parse_qsl(query, keep_blank_values=True))

    @property
    def name(self) -> str:
        """The sink's label: the URL without its query and password (the
        ``sink`` label of ``mosfw_sink_records_lost_total``)."""
        if self.netloc:
            host = self.netloc.rpartition("@")[2]
            return f"{self.scheme}://{host}{self.path}"
        return f"{self.scheme}:{self.path}" if self.path else self.scheme

    def take(self, key: str, default: str | None = None) -> str | None:
        """Remove and return a query parameter (what is left at the end is
        unknown: see :meth:`check_used`)."""
        return self.query.pop(key, default)

    def take_int(self, key: str, default: int, minimum: int = 0) -> int:
        v = self.take(key)
        if v is None:
            return default
        try:
            n = int(v)
        except ValueError:
            raise ValueError(f"--sink {self.name}: {key}={v!r} is not a whole number") from None
        if n < minimum:
            raise ValueError(f"--sink {self.name}: {key} must be at least {minimum}, not {n}")
        return n

    def take_float(self, key: str, default: float, minimum: float = 0.0) -> float:
        v = self.take(key)
        if v is None:
            return default
        try:
            x = float(v)
        except ValueError:
            raise ValueError(f"--sink {self.name}: {key}={v!r} is not a number") from None
        if not x >= minimum:
            raise ValueError(f"--sink {self.name}: {key} must be at least {minimum:g}, not {v}")
        return x

    def check_used(self) -> None:
        """Raise ValueError naming the query parameters nobody took."""
        if self.query:
            raise ValueError(f"--sink {self.name}: unknown parameter(s) {', '.join(sorted(self.query))}")


def record_key(line: bytes, field: bytes = b"uid") -> bytes | None:
    """The value of a string ``field`` (``uid``) of one JSON line, found
    without parsing it (``"uid":"C..."`` or ``"uid": "C..."``); None when
    the record has no such field."""
    tag = b'"' + field + b'":'
    i = line.find(tag)
    if i < 0:
        return None
    i += len(tag)
    if line[i : i + 1] == b" ":
        i += 1
    if line[i : i + 1] != b'"':
        return None
    j = line.find(b'"', i + 1)
    return line[i + 1 : j] if j > 0 else None


class Sink:
    """Where records go. One object per ``--sink`` in each process that
    runs cores (each ``-c N`` worker has its own, made after the fork).

    The run calls :meth:`open` once before any record, :meth:`write` for
    each batch of records, :meth:`flush` when the writer has finished a
    batch (e.g. once a second live), and :meth:`close` once at the end;
    :attr:`lost` is read after close (and in progress reports). Calls come
    from the thread that runs the core."""

    #: the URL scheme (``file``, ``redis`` ...)
    scheme = ""

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        self.url = url
        self.config = config
        self.core = core
        #: records counted as lost (never confirmed by the server, dropped
        #: from a full buffer, or left at the end of the flush time)
        self.lost = 0

    @property
    def name(self) -> str:
        return self.url.name

    def open(self) -> None:
        """Connect or open; raise :class:`SinkError` naming the address
        when that fails."""

    def probe(self) -> None:
        """Check, in the parent of a ``-c N`` run, that the sink can be
        opened (each worker then opens its own): open and close."""
        self.open()
        self.close(1.0)

    def write(self, stream: str, data: str | bytes | memoryview) -> None:
        """Take one or more records of ``stream``: JSON objects, one per
        line, each ending with a newline. ``data`` is only valid during
        the call (a sink keeps a copy)."""
        raise NotImplementedError

    def flush(self) -> None:
        """Send what is held (without waiting for a server's answer)."""

    def close(self, timeout: float) -> None:
        """Send what is held and release the sink within ``timeout``
        seconds; what could not be sent by then is added to :attr:`lost`."""

    def warn(self, message: str) -> None:
        """One line on the run's stderr, naming the sink."""
        err = getattr(self.config, "stderr", None) or sys.stderr
        try:
            err.write(f"mosfw: sink {self.name}: {message}\n")
            err.flush()
        except (OSError, ValueError):
            pass


class BufferedSink(Sink):
    """A sink that sends records to a server from a sender thread.

    :meth:`write` only appends to a buffer of at most ``buffer`` records
    (URL parameter, default 100000); it counts the records of what it is
    given only when the bytes held could exceed that bound (a record has
    at least its newline), otherwise the sender thread counts them when it
    takes them. When it is full, the writer waits
    for room while the server takes records (a capture file is read at
    the pace the server takes its records; a live capture's kernel ring
    fills, and drops are counted as kernel drops), and new records are
    dropped and counted as lost while the server is away. The thread sends a batch when ``batch`` records are
    held or ``linger`` seconds passed. A batch that fails (the server went
    away) is retried, reconnecting with back-off, for up to ``retry``
    seconds (default 30), then counted as lost. :meth:`close` waits at
    most ``timeout`` seconds for the buffer to drain, then counts the rest
    as lost: the end of a run never hangs on a dead server.

    Subclasses implement :meth:`connect` (raise on failure),
    :meth:`send_batch` (a chunk of about ``BATCH`` records as
    ``[(stream, [line, ...]), ...]``, lines without their newline; raise
    on failure: the chunk is retried whole, so a server may see some
    records of it twice) and :meth:`disconnect`. A subclass that sets
    :attr:`raw` gets the chunks unsplit instead, in :meth:`send_raw`, and
    cuts them with its :meth:`lines_end` (a C scanner: no object per
    record).
    """

    #: records held before the thread is woken
    BATCH = 1000
    #: chunks go to send_raw() as [(stream, data, records), ...], ``data``
    #: (bytes or a memoryview of them) holding ``records`` whole lines
    raw = False

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        self.buffer_max = url.take_int("buffer", 100_000, 1)
        self.retry_seconds = url.take_float("retry", 30.0)
        self.linger = url.take_float("linger", 0.2, 0.001)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._room = threading.Condition(self._lock)  # notified when records were sent
        #: (stream, data, records in it or -1 when not counted yet)
        self._pending: list[tuple[str, bytes, int]] = []
        self._held = 0  # records in _pending (those counted: see _unsized)
        self._unsized = 0  # bytes of _pending's data not counted in records yet
        self._sending = 0  # records in the batch being sent (at most: see _take)
        self._record_bytes = 256.0  # bytes a record, the sender's running average
        self._closing = False
        self._deadline = 0.0  # monotonic time close() gives up at
        self._thread: threading.Thread | None = None
        self._warned_full = False
        self._down = False  # the last chunk was given up: the next ones are tried once

    # -- what a subclass provides ------------------------------------------

    def connect(self) -> None:
        raise NotImplementedError

    def send_batch(self, batch: list[tuple[str, list[bytes]]]) -> None:
        raise NotImplementedError

    def disconnect(self) -> None:
        pass

    def send_raw(self, chunk: list[tuple[str, Any, int]]) -> None:
        raise NotImplementedError

    def lines_end(self, data: Any, max_lines: int) -> tuple[int, int]:
        """(offset past the ``max_lines``-th newline of data, or its length;
        the lines up to there): a raw sink's scanner."""
        raise NotImplementedError

    def address(self) -> str:
        return f"{self.url.host}:{self.url.port}"

    # -- the Sink interface --------------------------------------------------

    def open(self) -> None:
        try:
            self.connect()
        except SinkError:
            raise
        except Exception as e:  # noqa: BLE001 - any client error: the server is not there
            raise SinkError(f"sink {self.name}: cannot connect to {self.address()}: {e}") from None
        self._thread = threading.Thread(target=self._run, name=f"mosfw-sink-{self.scheme}", daemon=True)
        self._thread.start()

    def probe(self) -> None:
        try:
            self.connect()
        except SinkError:
            raise
        except Exception as e:  # noqa: BLE001
            raise SinkError(f"sink {self.name}: cannot connect to {self.address()}: {e}") from None
        self.disconnect()

    def write(self, stream: str, data: str | bytes | memoryview) -> None:
        data = data.encode() if isinstance(data, str) else bytes(data)
        size = len(data)
        if not size:
            return
        with self._room:
            # A record takes at least one byte (its newline): while the bytes
            # held, these included, are within the bound, there is room
            # without counting them (the sender counts them as it splits the
            # lines; counting here costs the core's thread ~0.5 ns a byte).
            if self._held + self._unsized + self._sending + size > self.buffer_max:
                n = self._count_held(data)
                if not n:
                    return
                while self._held + self._sending and self._held + self._sending + n > self.buffer_max:
                    if self._down or self._closing or not self._room.wait(self.retry_seconds):
                        # the server is away (or silent for the whole retry time): drop
                        self.lost += n
                        if not self._warned_full:
                            self._warned_full = True
                            self.warn(
                                f"buffer full ({self.buffer_max} records) and the server is away: "
                                "records are being dropped"
                            )
                        return
                    self._count_held()
                self._pending.append((stream, data, n))
                self._held += n
            else:
                self._pending.append((stream, data, -1))
                self._unsized += size
            wake = self._held + self._unsized / self._record_bytes >= self.BATCH
        if wake:
            self._wake.set()

    def _count_held(self, data: bytes = b"") -> int:
        """(Holding the lock) count the records of the pending data not
        counted yet into ``_held``; return ``data``'s records."""
        if self._unsized:
            pending = self._pending
            for i, (stream, d, n) in enumerate(pending):
                if n < 0:
                    n = d.count(b"\n")
                    pending[i] = (stream, d, n)
                    self._held += n
            self._unsized = 0
        return data.count(b"\n")

    def flush(self) -> None:
        self._wake.set()

    def close(self, timeout: float) -> None:
        t = self._thread
        if t is None:
            return
        self._deadline = time.monotonic() + timeout
        self._closing = True
        self._wake.set()
        t.join(max(timeout, 0.0) + 0.5)
        with self._lock:
            self._count_held()
            if t.is_alive():  # stuck in the client past its own timeouts
                self.lost += self._held + self._sending
            else:
                self.lost += self._held
            self._held = self._sending = 0
            self._pending = []
        self._thread = None

    # -- the sender thread ---------------------------------------------------

    def _take(self) -> list[tuple[str, bytes, int]]:
        """The pending records, moved to the batch being sent; ``_sending``
        counts them, at most (data not counted yet by its bytes) until
        :meth:`_sized` gives their number."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._sending, self._held = self._held + self._unsized, 0
            self._unsized = 0
        return batch

    def _sized(self, records: int, batch: list[tuple[str, bytes, int]]) -> None:
        """The batch just taken holds ``records`` records."""
        size = sum(len(d) for _, d, _ in batch)
        with self._lock:
            self._sending = records
            if records:
                self._record_bytes = size / records
            self._room.notify_all()

    def _run(self) -> None:
        try:
            while True:
                self._wake.wait(self.linger)
                self._wake.clear()
                closing = self._closing
                batch = self._take()
                if batch:  # (each data's records counted once, here)
                    batch = [(s, d, n if n >= 0 else d.count(b"\n")) for s, d, n in batch]
                    self._sized(sum(n for _, _, n in batch), batch)
                if self.raw:
                    for raw_chunk, n in _raw_chunks(batch, self.BATCH, self.lines_end):
                        self._send_with_retries(self.send_raw, raw_chunk, n)
                else:
                    for chunk, n in _chunks(batch, self.BATCH):
                        self._send_with_retries(self.send_batch, chunk, n)
                if closing and not self._held and not self._unsized:
                    break
                if closing and time.monotonic() >= self._deadline:
                    break
        finally:
            try:
                self.disconnect()
            except Exception:  # noqa: BLE001, S110 - the end: nothing left to do with it
                pass

    def count_lost(self, n: int) -> None:
        """Count ``n`` records as lost (a subclass's sender thread: records
        the server refused one by one)."""
        with self._lock:
            self.lost += n

    def _done(self, n: int, lost: bool) -> None:
        with self._lock:
            self._sending -= n
            if lost:
                self.lost += n
            self._room.notify_all()

    def _send_with_retries(self, send: Any, chunk: list, n: int) -> None:
        """Send one chunk (n records), retrying with back-off for up to
        ``retry`` seconds (only once while the server is known to be down,
        and never past the deadline of close()); then count it lost."""
        give_up = time.monotonic() + (0.0 if self._down else self.retry_seconds)
        delay = 0.05
        while True:
            try:
                send(chunk)
            except Exception as e:  # noqa: BLE001 - retried, then counted
                if not self._down:
                    self._down = True
                    self.warn(
                        f"sending failed ({type(e).__name__}: {e}); retrying for {self.retry_seconds:g} s"
                    )
                now = time.monotonic()
                end = min(give_up, self._deadline) if self._closing else give_up
                if now + delay > end:
                    self._done(n, lost=True)
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                try:
                    self.disconnect()
                    self.connect()
                except Exception:  # noqa: BLE001, S112 - still down: try again after the delay
                    continue
                continue
            if self._down:
                self._down = False
                self.warn("sending again")
            self._done(n, lost=False)
            return


def _chunks(batch: list[tuple[str, bytes, int]], size: int):
    """(chunk, records in it) of about ``size`` records each, in order."""
    chunk: list[tuple[str, list[bytes]]] = []
    n = 0
    for stream, data, _ in batch:
        lines = data.split(b"\n")
        if not lines[-1]:  # what follows the last newline
            lines.pop()
        for i in range(0, len(lines), size):
            part = lines[i : i + size] if len(lines) > size else lines
            chunk.append((stream, part))
            n += len(part)
            if n >= size:
                yield chunk, n
                chunk, n = [], 0
    if chunk:
        yield chunk, n


def _raw_chunks(batch: list[tuple[str, bytes, int]], size: int, lines_end: Any):
    """As :func:`_chunks`, the data unsplit: (chunk, records in it), a
    chunk ``[(stream, data, records), ...]`` of about ``size`` records, a
    long data cut at a line's end (a memoryview of it, no copy); the
    batch's records are counted (``_run``)."""
    chunk: list[tuple[str, Any, int]] = []
    n = 0
    for stream, data, count in batch:
        view = memoryview(data)
        while count > 0:
            if n + count <= size:
                chunk.append((stream, view, count))
                n += count
                count = 0
            else:
                cut, k = lines_end(view, size - n)
                chunk.append((stream, view[:cut], k))
                n += k
                view, count = view[cut:], count - k
            if n >= size:
                yield chunk, n
                chunk, n = [], 0
    if chunk:
        yield chunk, n
