"""The engine's errors and the helpers of its one-line plugin error reports."""

from __future__ import annotations

from mosfw.plugin_faults import raised_at  # one helper for every report; also exported from here

__all__ = ["EngineError", "InputError", "PluginError", "raised_at", "output_closed"]


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
