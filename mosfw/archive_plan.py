"""How a ``--dask`` run cuts a capture archive (:mod:`mosfw.archive`):
each file's first packet time from the engine's scan, and the time
segments at file boundaries with the lead-in every segment reads first
(exactness rules: docs/archives.md)."""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Sequence

import attrs

__all__ = [
    "INSTALL_HINT",
    "ArchiveError",
    "ScannedFile",
    "Segment",
    "default_segments",
    "plan_segments",
    "scan_files",
]

#: the message --dask gives when Dask is not installed
INSTALL_HINT = (
    "--dask needs Dask distributed: pip install 'mosfw[dask]' (or: pip install 'dask[distributed]')"
)


class ArchiveError(Exception):
    """The archive cannot be split exactly, or a segment failed (the
    message names it; ``segment`` is its index, else None)."""

    def __init__(self, message: str, segment: int | None = None) -> None:
        super().__init__(message)
        self.segment = segment


@attrs.frozen
class ScannedFile:
    """A file of the archive and its first packet's time (from the engine's scan)."""

    path: str  #: as given
    size: int  #: bytes on disk
    first_ts: float  #: its first packet (0: none or unreadable)
    state: str  #: "unread" (readable), "done" (no packet) or "failed"
    error: str  #: why it failed


@attrs.frozen
class Segment:
    """One task: own the flows first seen in [t0, t1), reading ``files``
    (from the lead-in on; the task stops early)."""

    index: int  #: 0-based, in time order
    t0: float  #: window start (-inf for the first)
    t1: float  #: window end (+inf for the last)
    files: tuple[str, ...]  #: lead-in file first
    own_bytes: int  #: bytes of the files that start in the window (for progress)


def scan_files(paths: Sequence[str]) -> list[ScannedFile]:
    """Each file's first packet time, in read order (the engine's scan,
    native/source_set.c)."""
    from mosfw._native import ffi, lib

    err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
    cfg = ffi.new("struct mosfw_config *")
    lib.mosfw_config_defaults(cfg)
    cfg.max_concurrency = 1024
    core = lib.mosfw_core_new(cfg, err)
    if core == ffi.NULL:
        raise ArchiveError(ffi.string(err).decode(errors="replace"))
    try:
        keep = [ffi.new("char[]", os.fsencode(p)) for p in paths]
        if lib.mosfw_core_open_files(core, ffi.new("char *[]", keep), len(paths), ffi.NULL, err) != 0:
            raise ArchiveError(ffi.string(err).decode(errors="replace"))
        out = ffi.new("struct mosfw_input_file[]", len(paths))
        n = lib.mosfw_core_input_files(core, out, len(paths))
        states = {0: "unread", 1: "unread", 2: "done", 3: "failed"}
        return [
            ScannedFile(
                paths[r.index],
                int(r.size),
                float(r.first_ts),
                states.get(r.state, "unread"),
                ffi.string(r.error).decode(errors="replace"),
            )
            for r in out[0 : min(n, len(paths))]
        ]
    finally:
        lib.mosfw_core_free(core)


def plan_segments(files: Sequence[ScannedFile], n_segments: int, lead_in: float) -> list[Segment]:
    """Cut the readable files (read order) into at most ``n_segments``
    groups at file boundaries so that the bytes each task reads, its
    lead-in included, are as even as they can be (the slowest task ends
    the run: a later segment, which reads a lead-in, gets fewer files of
    its own); a segment's window starts at its first file's first packet
    time rounded down to the second (ticks are whole seconds) and its
    files start with the last one that began before ``t0 - lead_in``."""
    readable = [f for f in files if f.state == "unread" and f.first_ts > 0]
    if not readable:
        return []
    n = max(1, min(n_segments, len(readable)))
    sizes = [f.size for f in readable]
    before = [0]
    for size in sizes:
        before.append(before[-1] + size)

    firsts = [f.first_ts for f in readable]  # read order is time order

    def lead_start(s: int) -> int:
        """Index of the first file a segment starting at file s reads."""
        if s == 0:
            return 0
        k = bisect.bisect_left(firsts, math.floor(firsts[s]) - lead_in)  # files before t0 - lead_in
        return min(max(k - 1, 0), s - 1)

    leads = [lead_start(s) for s in range(len(readable))]

    def cut(limit: int) -> list[int] | None:
        """Segment starts with every task reading at most ``limit`` bytes
        (greedy, longest first segments); None when n segments cannot."""
        starts = [0]
        for i in range(1, len(readable)):
            s = starts[-1]
            if before[i + 1] - before[leads[s]] > limit:
                if len(starts) == n or before[i + 1] - before[leads[i]] > limit:
                    return None
                starts.append(i)
        return starts

    # the smallest byte limit a cut meets (binary search: cut() holds for
    # every limit from the smallest one on)
    lo, hi = max(sizes), before[-1]
    while lo < hi:
        mid = (lo + hi) // 2
        if cut(mid) is None:
            lo = mid + 1
        else:
            hi = mid
    starts = cut(lo) or [0]
    # as many segments as asked (when the lead-ins make fewer as fast, the
    # extra ones split the segments with the most bytes of their own)
    while len(starts) < n:
        ends = starts[1:] + [len(readable)]
        k = max(
            (k for k in range(len(starts)) if ends[k] - starts[k] > 1),
            key=lambda k: before[ends[k]] - before[starts[k]],
            default=None,
        )
        if k is None:
            break
        half = (before[starts[k]] + before[ends[k]]) / 2
        mid = next(i for i in range(starts[k] + 1, ends[k]) if before[i + 1] > half or i + 1 == ends[k])
        starts.insert(k + 1, mid)
    t0s = [-math.inf] + [math.floor(readable[s].first_ts) for s in starts[1:]]
    segs = []
    for k, s in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(readable)
        segs.append(
            Segment(
                index=k,
                t0=t0s[k],
                t1=t0s[k + 1] if k + 1 < len(starts) else math.inf,
                files=tuple(f.path for f in readable[leads[s] :]),
                own_bytes=sum(sizes[s:end]),
            )
        )
    return segs


def default_segments(files: Sequence[ScannedFile], workers: int, lead_in: float) -> int:
    """Segments when ``--segments`` is not given: one per worker, and up to
    4 per worker (finer progress, smaller retries) while the lead-ins the
    extra segments read stay under a tenth of the archive's time span."""
    readable = [f for f in files if f.state == "unread" and f.first_ts > 0]
    workers = max(1, workers)
    if len(readable) < 2:
        return workers
    span = readable[-1].first_ts - readable[0].first_ts
    extra = int(0.1 * span // lead_in) if lead_in > 0 else 3 * workers
    return max(workers, min(4 * workers, 1 + extra))
