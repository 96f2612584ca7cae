"""Text streams whose write(2) calls hold whole lines only: the output
of the workers of a multi-core run (see :mod:`mosfw.workers`)."""

from __future__ import annotations

import io
import os
import select
import stat
from collections.abc import Callable

__all__ = ["line_stream", "stream_fd"]

#: a partial line longer than this is written out without its end
_MAX_TAIL = 1 << 20


class _LineAlignedRaw(io.RawIOBase):
    """A raw stream on a file descriptor that only ever writes whole lines.

    What comes after the last newline is held until the next newline (or
    close). ``limit`` > 0 caps each write(2) at that many bytes, cut at
    line boundaries (used for pipes and sockets, with PIPE_BUF). The file
    descriptor is not closed. After EPIPE (the reader went away) output
    is dropped and ``on_broken`` is called once.
    """

    def __init__(self, fd: int, limit: int, on_broken: Callable[[], None] | None) -> None:
        super().__init__()
        self._fd = fd
        self._limit = limit
        self._tail = b""
        self._on_broken = on_broken
        self.broken = False

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        n = len(b)
        data = self._tail + bytes(b)
        end = data.rfind(b"\n") + 1
        if end == 0 and len(data) <= _MAX_TAIL:
            self._tail = data
            return n
        if end == 0:
            end = len(data)
        self._tail = data[end:]
        self._emit(data, end)
        return n

    def _emit(self, data: bytes, end: int) -> None:
        if self.broken:
            return
        view = memoryview(data)
        limit = self._limit
        pos = 0
        try:
            while pos < end:
                stop = end
                if limit and end - pos > limit:
                    k = data.rfind(b"\n", pos, pos + limit)
                    if k < 0:  # one line longer than the limit: alone
                        k = data.find(b"\n", pos + limit, end)
                    stop = k + 1 if k >= 0 else end
                chunk = view[pos:stop]
                while chunk:
                    chunk = chunk[os.write(self._fd, chunk) :]
                pos = stop
        except BrokenPipeError:
            self.broken = True
            if self._on_broken is not None:
                self._on_broken()

    def close(self) -> None:
        if not self.closed and self._tail:
            tail, self._tail = self._tail, b""
            self._emit(tail, len(tail))
        super().close()


def line_stream(
    fd: int, like=None, line_buffering: bool = False, on_broken: Callable[[], None] | None = None
) -> io.TextIOWrapper[io.BufferedWriter]:
    """A buffered text stream on ``fd`` whose write(2) calls hold whole
    lines only (see the module docstring); encoding and errors are taken
    from the stream ``like`` when given. Close it to write the rest."""
    try:
        mode = os.fstat(fd).st_mode
        limit = select.PIPE_BUF if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else 0
    except OSError:
        limit = select.PIPE_BUF
    raw = _LineAlignedRaw(fd, limit, on_broken)
    return io.TextIOWrapper(
        io.BufferedWriter(raw, buffer_size=1 << 16),
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "strict",
        newline="\n",
        line_buffering=line_buffering,
    )


def stream_fd(stream) -> int | None:
    """The file descriptor behind a text stream, or None (StringIO...)."""
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None
