"""What a ``--dask`` run's process joins from its tasks' part files: the
plugins' standard output (:func:`append_part`), the records for the
run's sinks (:func:`replay_records`), and files plugins write their own
output to (``--http-log PATH``), kept exact under ``--dask``.

In one process and in a ``-c N`` worker, :meth:`mosfw.Config.open_output`
opens PATH for appending. A ``--dask`` task instead writes to a new file
of the run's parts directory (``Config.parts_dir``) and reports it with
its result; the run's process appends those files to their PATH once
every segment has finished, in segment (time) order. A task Dask runs
again, because its worker died, starts a new file and the dead one's is
never reported: no line reaches PATH twice, and none is lost.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from typing import Any, TextIO

__all__ = ["append_part", "append_side_outputs", "close_side_outputs", "open_side_output", "replay_records"]


def open_side_output(config: Any, path: str) -> TextIO:
    """``config.open_output(path)`` (see the module's docstring): text,
    line-buffered, appended to PATH (in a --dask task: to a part file)."""
    segment, parts_dir = getattr(config, "segment", None), getattr(config, "parts_dir", None)
    if segment is None or not parts_dir:
        return open(path, "a", buffering=1, encoding="utf-8")
    part = os.path.join(parts_dir, f".side-{segment[0]:05d}-{uuid.uuid4().hex[:12]}.part")
    fh = open(part, "w", buffering=1, encoding="utf-8")  # noqa: SIM115 - closed by close_side_outputs
    config.side_outputs.append((os.fspath(path), part, fh))
    return fh


def close_side_outputs(config: Any) -> list[tuple[str, str]]:
    """A --dask task's side files, closed (the segment has finished): the
    (PATH as the plugin gave it, part file) pairs for the run's process."""
    out = []
    for path, part, fh in config.side_outputs:
        fh.close()  # (a plugin that closed it already: no effect)
        out.append((path, part))
    config.side_outputs.clear()
    return out


def append_side_outputs(per_segment: Iterable[list[tuple[str, str]]]) -> None:
    """In the run's process: each segment's side files, in segment order,
    appended to their PATH (relative to this process's directory, as the
    command line gave it); each part file removed once copied."""
    targets: dict[str, Any] = {}
    try:
        for pairs in per_segment:
            for path, part in pairs:
                out = targets.get(path)
                if out is None:
                    out = targets[path] = open(path, "ab")  # noqa: SIM115 - closed below
                with open(part, "rb") as fh:
                    shutil.copyfileobj(fh, out, 1 << 20)
                os.unlink(part)
    finally:
        for out in targets.values():
            out.close()


def append_part(part: str, stdout: TextIO) -> None:
    """Copy a segment's part file to ``stdout``: by the kernel (sendfile)
    when stdout is a file descriptor, as bytes through its buffer when it
    has one, as text otherwise (the parts are UTF-8, as the plugins wrote
    them). Decoding and re-encoding the text cost ~0.1 s per 100 MB."""
    stdout.flush()
    try:
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0:
        with open(part, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            sent = 0
            try:
                while sent < size:
                    n = os.sendfile(fd, fh.fileno(), sent, size - sent)
                    if n == 0:
                        break
                    sent += n
            except OSError:  # (a descriptor sendfile cannot write to)
                pass
            if sent >= size:
                return
            fh.seek(sent)
            while chunk := fh.read(1 << 20):
                write_all(fd, chunk)
        return
    raw = getattr(stdout, "buffer", None)
    if raw is not None:
        with open(part, "rb") as fh:
            shutil.copyfileobj(fh, raw)
        raw.flush()
        return
    with open(part, encoding="utf-8") as fh:
        shutil.copyfileobj(fh, stdout)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replay_records(records: Any, per_segment: Iterable[list[tuple[str, str]]]) -> None:
    """In the run's process: the records each task kept for the run's
    sinks (mosfw.records.sinks.PartsSink: (stream, part file)), sent to
    ``records`` (the run's :class:`mosfw.records.Records`) in segment
    order, each stream's in the order it was written, in pieces of whole
    lines; each part file removed once sent."""
    for pairs in per_segment:
        for stream, part in pairs:
            with open(part, "rb") as fh:
                rest = b""
                while chunk := fh.read(1 << 20):
                    chunk = rest + chunk
                    cut = chunk.rfind(b"\n") + 1
                    if cut:
                        records.emit_json(stream, chunk[:cut])
                    rest = chunk[cut:]
                if rest:
                    records.emit_json(stream, rest + b"\n")
            os.unlink(part)
