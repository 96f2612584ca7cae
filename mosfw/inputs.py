"""Capture archives as one input: ``-r`` given many times, ``-r DIR``,
compressed captures.

The engine reads the files as one stream (``native/source_set.c``): in the
order of each file's first packet time, files that overlap in time merged
packet by packet by timestamp (as ``mergecap`` does), gzip/zstd/xz/lz4
files streamed through the decompressor program (``gzip -dc``, ...) into
libpcap through a pipe, never written to disk. Flow table, TCP state,
timers and ticks carry across files: the results are those of the
concatenated capture. A file that cannot be read (bad header, truncated,
corrupt) is reported by name and the stream goes on with the next one.

This module expands the ``-r`` arguments into files and describes, after
the run, what happened to each file and where the files leave gaps or
overlap (:func:`archive_report`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import attrs

__all__ = ["CAPTURE_MAGICS", "InputFile", "archive_report", "expand_inputs", "is_capture", "needs_set"]

#: leading bytes of the files ``-r DIR`` picks: pcap (both byte orders, micro
#: and nano), pcapng, and the compressed formats the engine streams
CAPTURE_MAGICS: tuple[bytes, ...] = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)
COMPRESSED_MAGICS: tuple[bytes, ...] = (
    b"\x1f\x8b",
    b"\x28\xb5\x2f\xfd",
    b"\xfd\x37\x7a\x58\x5a\x00",
    b"\x04\x22\x4d\x18",
)
#: gaps shorter than this between consecutive files are rotation jitter,
#: not reported on the summary line (--stats-json lists every gap)
GAP_NOTE_SECONDS = 1.0


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(6)
    except OSError:
        return b""


def is_capture(path: str) -> bool:
    """Whether ``path`` starts like a capture file or a compressed one."""
    head = _head(path)
    return head.startswith(CAPTURE_MAGICS) or head.startswith(COMPRESSED_MAGICS)


def is_compressed(path: str) -> bool:
    return _head(path).startswith(COMPRESSED_MAGICS)


def expand_inputs(args: Sequence[str]) -> list[str]:
    """The files named by ``-r`` arguments: a directory stands for every
    capture file directly in it (by content, not by name; hidden files and
    others skipped), a file for itself. Order does not matter: the engine
    orders files by their first packet time.

    :raises ValueError: a directory without any capture file.
    """
    out: list[str] = []
    for a in args:
        if os.path.isdir(a):
            found = [
                os.path.join(a, n)
                for n in sorted(os.listdir(a))
                if not n.startswith(".")
                and os.path.isfile(os.path.join(a, n))
                and is_capture(os.path.join(a, n))
            ]
            if not found:
                raise ValueError(f"-r {a}: the directory holds no capture file (pcap, pcapng, compressed)")
            out.extend(found)
        else:
            out.append(a)
    return out


def needs_set(files: Sequence[str]) -> bool:
    """Whether the files must be read as a set (more than one, or a
    compressed one); one plain file keeps the single-file reader (with
    ``-c N``, in the parent's reader thread: native/feed.c)."""
    return len(files) > 1 or (len(files) == 1 and files[0] != "-" and is_compressed(files[0]))


@attrs.frozen
class InputFile:
    """What became of one file of a many-file input."""

    path: str  #: as given (after directory expansion)
    state: str  #: done / failed / unread (the run stopped before it)
    size: int  #: bytes on disk
    packets: int  #: packets read from it (with -c N: by each core)
    first_ts: float  #: its first packet's time (0: none)
    last_ts: float  #: the last packet read from it
    error: str  #: why it failed, naming it ("" unless failed)

    def asdict(self) -> dict:
        return attrs.asdict(self)


_STATES = {0: "unread", 1: "unread", 2: "done", 3: "failed"}


def input_files_from_core(records: Iterable, paths: Sequence[str]) -> list[InputFile]:
    """:class:`InputFile` records from the engine's ``struct
    mosfw_input_file`` array (read order)."""
    from mosfw._native import ffi

    return [
        InputFile(
            path=paths[r.index],
            state=_STATES.get(r.state, "unread"),
            size=int(r.size),
            packets=int(r.packets),
            first_ts=float(r.first_ts),
            last_ts=float(r.last_ts),
            error=ffi.string(r.error).decode(errors="replace"),
        )
        for r in records
    ]


def archive_report(files: Sequence[InputFile]) -> dict:
    """Gaps and overlaps between the files (in read order) and the files
    that failed: ``{"files": [...], "gaps": [...], "overlaps": [...],
    "failed": [...]}``. A gap is time between the end of everything read
    so far and the next file's first packet; an overlap, a file whose first
    packet is earlier than that end (its packets were merged by time)."""
    gaps, overlaps = [], []
    end = None
    prev = None
    for f in files:
        if f.packets == 0 or f.first_ts == 0:
            continue
        if end is not None and prev is not None:
            if f.first_ts > end:
                gaps.append({"after": prev, "before": f.path, "seconds": round(f.first_ts - end, 6)})
            elif f.first_ts < end:
                overlaps.append({"file": f.path, "with": prev, "seconds": round(end - f.first_ts, 6)})
        if end is None or f.last_ts > end:
            end, prev = f.last_ts, f.path
    return {
        "files": [f.asdict() for f in files],
        "gaps": gaps,
        "overlaps": overlaps,
        "failed": [f.asdict() for f in files if f.state == "failed"],
    }


def report_lines(report: dict) -> list[str]:
    """The summary lines of :func:`archive_report`'s result."""
    files = report["files"]
    lines = [
        f"mosfw: {len(files)} capture files, {sum(f['size'] for f in files)} bytes: "
        f"{sum(f['state'] == 'done' for f in files)} read, {len(report['failed'])} failed"
    ]
    big = [g for g in report["gaps"] if g["seconds"] >= GAP_NOTE_SECONDS]
    if big:
        worst = max(big, key=lambda g: g["seconds"])
        lines.append(
            f"mosfw: {len(big)} gap(s) of {GAP_NOTE_SECONDS:g} s or more between files, the longest "
            f"{worst['seconds']:.3f} s before {worst['before']!r}"
        )
    if report["overlaps"]:
        lines.append(
            f"mosfw: {len(report['overlaps'])} file(s) overlap in time with an earlier one "
            "(merged by timestamp): " + ", ".join(repr(o["file"]) for o in report["overlaps"][:5])
        )
    return lines
