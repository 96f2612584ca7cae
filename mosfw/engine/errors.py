"""The engine's errors and the helpers of its one-line plugin error reports."""

from __future__ import annotations

__all__ = ["EngineError", "InputError", "PluginError", "raised_at", "output_closed"]


def raised_at(exc: BaseException) -> str:
    """`` at FILE:LINE`` of the innermost frame an exception was raised
    in, for the one-line reports of plugin errors ("" when unknown)."""
    import traceback  # only when something raised: kept off start-up

    tb = traceback.extract_tb(exc.__traceback__)
    return f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""


def output_closed(stream) -> bool:
    """True when ``stream`` writes to a pipe or socket whose reader went
    away (POLLERR on its file descriptor); False for anything else."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    import select

    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


class EngineError(Exception):
    """The engine could not be set up (bad settings, out of memory)."""


class InputError(EngineError):
    """The input could not be opened (missing file, not a capture, bad
    BPF filter, missing interface, no permission)."""


class PluginError(Exception):
    """A plugin raised while ``fail_fast`` was set."""
