"""Files plugins write their own output to (``--http-log PATH``), kept
exact under ``--dask``.

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

__all__ = ["append_side_outputs", "close_side_outputs", "open_side_output"]


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
