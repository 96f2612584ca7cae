"""The built-in sinks: standard output (the default), ``file:PATH``
with rotation by size or time, and a ``--dask`` task's internal
``parts:DIR``."""

from __future__ import annotations

import os
import time
from typing import Any

from mosfw.records.base import Sink, SinkError, SinkURL

__all__ = ["FileSink", "PartsSink", "StdoutSink"]


class StdoutSink(Sink):
    """JSON lines on the run's standard output (``config.stdout``; in a
    ``-c N`` worker, its whole-line stream): byte for byte what plugins
    printed before sinks existed. Bytes go to the stream's binary buffer
    (after flushing its text layer, so the order holds); a stream without
    one (StringIO) gets ASCII text. Never loses a record: a closed reader
    (``| head``) ends the run as before."""

    scheme = "stdout"

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        self.text: Any = None

    def open(self) -> None:
        import sys

        stream: Any = getattr(self.config, "stdout", None) or sys.stdout
        self.text = stream
        raw: Any = getattr(stream, "buffer", None)
        binary = raw is not None
        text_write = stream.write

        if binary:

            def write(_stream: str, data: Any) -> None:
                if type(data) is str:
                    text_write(data)
                else:
                    stream.flush()
                    raw.write(data)

        else:

            def write(_stream: str, data: Any) -> None:
                text_write(data if type(data) is str else bytes(data).decode("ascii"))

        self.write = write  # type: ignore[method-assign,assignment]

    def flush(self) -> None:
        try:
            self.text.flush()
        except (AttributeError, OSError, ValueError):
            pass

    def close(self, timeout: float) -> None:
        self.flush()


class FileSink(Sink):
    """``file:PATH[?max_bytes=N][&seconds=S][&keep=K]``: JSON lines
    appended to PATH. It is rotated (renamed to
    ``PATH.YYYYmmdd-HHMMSS[.n]``, the time the file was opened, local
    time, ``.n`` counting rotations within one second, and a new PATH
    opened) when the next line would take it past ``max_bytes`` (a line
    longer than that is a file of its own), and when it is ``seconds``
    old; ``keep`` > 0 deletes the oldest rotated files past that many.
    With ``-c N`` each core writes its own file: ``-coreN`` is added to
    PATH (before its extension)."""

    scheme = "file"

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        if not url.path:
            raise ValueError("--sink file:PATH needs a path")
        self.max_bytes = url.take_int("max_bytes", 0)
        self.seconds = url.take_float("seconds", 0.0)
        self.keep = url.take_int("keep", 0)
        self.path = url.path
        if config is not None and getattr(config, "cores", 1) > 1 and core >= 0:
            stem, ext = os.path.splitext(url.path)
            self.path = f"{stem}-core{core}{ext}"
        self.fh: Any = None
        self.size = 0
        self.opened_at = 0.0
        self.rotated: list[str] = []
        self._last = ("", 0)  # the last rotated name's stamp and number

    def _open_file(self) -> None:
        try:
            self.fh = open(self.path, "ab")  # noqa: SIM115 - closed by close()/rotate()
        except OSError as e:
            raise SinkError(f"sink {self.name}: cannot write {self.path}: {e.strerror}") from None
        self.size = self.fh.tell()
        self.opened_at = time.time()

    def open(self) -> None:
        self._open_file()

    def probe(self) -> None:
        d = os.path.dirname(os.path.abspath(self.path))
        if not os.access(d, os.W_OK):
            raise SinkError(f"sink {self.name}: cannot write in {d}")

    def rotate(self) -> None:
        """Close PATH, rename it with its opening time, open a new one."""
        self.fh.close()
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.opened_at))
        # names sort in rotation order: .STAMP, .STAMP.1, .STAMP.2 ... (never
        # reusing a name whose file keep= deleted)
        n = self._last[1] + 1 if self._last[0] == stamp else 0
        target = f"{self.path}.{stamp}" + (f".{n}" if n else "")
        while os.path.exists(target):
            n += 1
            target = f"{self.path}.{stamp}.{n}"
        self._last = (stamp, n)
        os.rename(self.path, target)
        self.rotated.append(target)
        if self.keep:
            while len(self.rotated) > self.keep:
                try:
                    os.unlink(self.rotated.pop(0))
                except OSError:
                    pass
        self._open_file()

    def write(self, stream: str, data: Any) -> None:
        data = data.encode() if type(data) is str else bytes(data)
        if self.seconds and self.size and time.time() - self.opened_at >= self.seconds:
            self.rotate()
        limit = self.max_bytes
        while limit and self.size + len(data) > limit:
            # whole lines up to the limit into this file, the rest after rotating
            cut = data.rfind(b"\n", 0, max(limit - self.size, 0)) + 1
            if cut == 0 and self.size == 0:  # one line longer than the limit: alone
                cut = data.find(b"\n") + 1 or len(data)
            if cut:
                self.fh.write(data[:cut])
                self.size += cut
                data = data[cut:]
            if not data:
                return
            self.rotate()
        self.fh.write(data)
        self.size += len(data)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self, timeout: float) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


class PartsSink(Sink):
    """``parts:DIR?segment=N``, internal: a ``--dask`` task's records, kept
    for the run's process, which sends them to the run's sinks in segment
    order once every segment has finished (mosfw.archive): each stream's
    records to a file of its own in DIR (the run's parts directory). A
    task Dask runs again writes new files; the dead one's are never sent,
    so a sink gets every record once. :attr:`files`: (stream, path) in
    the order the streams first had records."""

    scheme = "parts"

    def __init__(self, url: SinkURL, config: Any = None, core: int = 0) -> None:
        super().__init__(url, config, core)
        self.directory = url.path
        self.segment = url.take_int("segment", 0)
        self.files: list[tuple[str, str]] = []
        self._open: dict[str, Any] = {}

    def write(self, stream: str, data: str | bytes | memoryview) -> None:
        fh = self._open.get(stream)
        if fh is None:
            import uuid

            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stream)
            path = os.path.join(
                self.directory, f".records-{self.segment:05d}-{safe}-{uuid.uuid4().hex[:12]}.part"
            )
            fh = self._open[stream] = open(path, "wb")  # noqa: SIM115 - closed in close()
            self.files.append((stream, path))
        fh.write(data.encode() if isinstance(data, str) else data)

    def flush(self) -> None:
        for fh in self._open.values():
            fh.flush()

    def close(self, timeout: float) -> None:
        for fh in self._open.values():
            fh.close()
        self._open = {}
