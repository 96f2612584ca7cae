"""Where the tracker's records go: a stream (standard output, an open
file) or a conn.log file rotated by time or size, as Zeek rotates its logs.

Loaded by app.py from this folder (its file path, like the ``_zeek``
module), so it works from a checkout and installed as ``mosfw_tracker``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable

import mosfw

#: Zeek's Log::default_rotation_date_format (#open, #close, rotated names)
DATE_FORMAT = "%Y-%m-%d-%H-%M-%S"


def zeek_time(t: float | None = None) -> str:
    """A time as Zeek's log headers and rotated file names write it (local
    time, ``2026-12-06-01-00-00``)."""
    return time.strftime(DATE_FORMAT, time.localtime(time.time() if t is None else t))


class Sink:
    """Where formatted records go: a binary file object, or a text stream
    (``sys.stdout`` through its buffer; a StringIO in tests gets ASCII
    text)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        raw = getattr(stream, "buffer", None)
        self._binary = raw is not None or "b" in getattr(stream, "mode", "")
        self._raw = raw if raw is not None else stream
        #: write() is done with its data when it returns (ConnLog may then
        #: hand it the observer's own buffer, not a copy)
        self.writes_through = self._binary

    def write(self, data: bytes) -> None:
        if self._binary:
            if self._raw is not self.stream:
                self.stream.flush()  # keep order with text already written
            self._raw.write(data)
        else:
            self.stream.write(data.decode("ascii"))

    def flush(self) -> None:
        try:
            if self._binary and self._raw is not self.stream:
                self._raw.flush()
            self.stream.flush()
        except (OSError, ValueError):
            pass


class RotatingLog:
    """``--conn-log PATH`` with ``--conn-rotate-interval`` or
    ``--conn-rotate-size``: records go to PATH; when the interval's
    boundary passes (input time: packet time offline, wall time live;
    boundaries at whole multiples of the interval, as Zeek aligns its
    rotation) or PATH reached the size, PATH gets its footer and is
    renamed ``<name>.<open time>.<ext>`` (``conn.2026-12-06-01-00-00.log``,
    Zeek's naming; ``-1``, ``-2`` ... added when that name is taken), and
    a new PATH is opened with its own header. A rotation never splits a
    record; a file passes the size by less than one record."""

    writes_through = True

    def __init__(
        self,
        path: str,
        header: Callable[[float], bytes],
        footer: Callable[[float], bytes],
        interval: float = 0.0,
        max_bytes: int = 0,
    ) -> None:
        self.path = path
        self.header, self.footer = header, footer
        self.interval, self.max_bytes = interval, max_bytes
        self.rotated: list[str] = []  #: the names given to rotated files, in order
        self.fh = None
        self.size = 0
        self.opened = 0.0  # input time of the open (wall time until one is known)
        self.next_at = math.inf
        self.now: float | None = None  # the latest input time seen
        self._open(time.time())

    def _open(self, t: float) -> None:
        try:
            self.fh = open(self.path, "wb")  # noqa: SIM115 - closed in close()/rotate()
        except OSError as e:
            raise mosfw.UsageError(f"--conn-log: cannot write {self.path}: {e.strerror}") from None
        self.opened = t
        self.size = 0
        head = self.header(t)
        if head:
            self.fh.write(head)
            self.size = len(head)
        self.next_at = self._boundary(t)

    def _boundary(self, t: float) -> float:
        if self.interval <= 0:
            return math.inf
        return (math.floor(t / self.interval) + 1) * self.interval

    def _rotated_name(self) -> str:
        stem, ext = os.path.splitext(self.path)
        base = f"{stem}.{zeek_time(self.opened)}"
        name, n = base + ext, 0
        while os.path.exists(name):
            n += 1
            name = f"{base}-{n}{ext}"
        return name

    def rotate(self, t: float) -> None:
        """Close PATH (footer), rename it, open a new one at time t."""
        self.fh.write(self.footer(t))
        self.fh.close()
        name = self._rotated_name()
        os.replace(self.path, name)
        self.rotated.append(name)
        self._open(t)

    def write(self, data) -> None:
        if not self.max_bytes:
            self.fh.write(data)
            self.size += len(data)
            return
        data = bytes(data)
        while data:
            # up to the end of the record that reaches the size
            room = self.max_bytes - self.size
            cut = len(data) if room >= len(data) else data.find(b"\n", max(room - 1, 0)) + 1 or len(data)
            self.fh.write(data[:cut])
            self.size += cut
            data = data[cut:]
            if self.size >= self.max_bytes:
                self.rotate(self.now if self.now is not None else time.time())

    def due(self, t: float, start: float | None = None) -> bool:
        """Input time t reached (start: the input's first packet time, on
        the first call): True when the interval's boundary passed (the
        caller writes what it holds, then calls rotate(t))."""
        if self.now is None and self.interval > 0:
            # the first input time: the open time and boundary follow it
            self.opened = t if start is None else min(start, t)
            self.next_at = self._boundary(self.opened)
        self.now = t
        return t >= self.next_at

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.write(self.footer(self.now if self.now is not None else time.time()))
            self.fh.close()
            self.fh = None


class CoreFile:
    """``-c N`` with TSV or a file: this core's records go to a temporary
    file, opened when the core starts; ``mosfw_core_result`` hands its
    name to the parent, whose ``mosfw_merge`` joins the cores' files."""

    writes_through = True  # as Sink's

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path: str | None = None
        self.fh = None

    @mosfw.hookimpl(tryfirst=True)
    def mosfw_core_start(self, core) -> None:
        import tempfile  # only here and with -c N (shutil, random...: 4 ms of start-up)

        fd, self.path = tempfile.mkstemp(
            prefix=f".tracker-core{core.id}-", suffix=".part", dir=self.directory
        )
        self.fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def join_parts(parts: list[str], path: str | None, stdout, head: bytes, foot: Callable[[], bytes]) -> None:
    """``-c N``: the cores' temporary files, in core order, under one
    header (head, foot(): empty for JSON) into path or stdout; each part
    is removed once copied."""
    out = open(path, "wb") if path else None  # noqa: SIM115 - closed below
    sink = Sink(out if out is not None else stdout)
    try:
        if head:
            sink.write(head)
        for part in parts:
            try:
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        sink.write(chunk)
            finally:
                try:
                    os.unlink(part)
                except OSError:
                    pass
        tail = foot()
        if tail:
            sink.write(tail)
        sink.flush()
    finally:
        if out is not None:
            out.close()
