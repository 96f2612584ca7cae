"""What a plugin raises, and what is not the plugin's.

Everything a hook implementation, callback, filter or timer raises is a
plugin error -- ``SystemExit`` (``sys.exit()``) and ``KeyboardInterrupt``
included: a plugin cannot end the run by raising (the engine catches
``BaseException`` around plugin code). What mosfw's own signal handling
raises is not a plugin's, and goes on up:

- :class:`Interrupted`, which mosfw's signal handlers raise for a signal
  that must interrupt at once (a second SIGINT/SIGTERM while a run
  finishes; SIGINT before a run's own handlers are in place);
- a ``KeyboardInterrupt`` while Python's default SIGINT handler is in
  place (mosfw used as a library, e.g. ``mosfw.testing`` in a pytest
  session): it cannot be told from a Ctrl-C, so it is taken for one.

Plugin-set-up failures (an import error, ``mosfw_addoption`` raising, an
:func:`mosfw.api.on` callback that takes an unknown argument) are
:class:`~mosfw.manager.PluginLoadError`: one line naming the plugin,
``mosfw run`` exits 1.
"""

from __future__ import annotations

import signal

__all__ = [
    "Interrupted",
    "check_interrupt",
    "describe",
    "install_interrupt_handler",
    "raised_at",
    "raised_in",
    "where",
]


class Interrupted(KeyboardInterrupt):
    """A real interrupt (a signal), raised by mosfw's own handlers: never
    counted as a plugin error."""


def check_interrupt(exc: BaseException) -> None:
    """Re-raise ``exc`` when it is a real interrupt rather than something
    a plugin raised; call it where a plugin's exception is caught."""
    if isinstance(exc, Interrupted):
        raise exc
    if isinstance(exc, KeyboardInterrupt) and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        raise exc


def describe(exc: BaseException) -> str:
    """``Type: message`` of a plugin's exception, for one-line reports."""
    name = type(exc).__name__
    if isinstance(exc, SystemExit):
        return f"{name}: {exc.code!r} (a plugin cannot end the run with sys.exit())"
    msg = str(exc)
    return f"{name}: {msg}" if msg else name


def raised_at(exc: BaseException) -> str:
    """`` at FILE:LINE`` of the innermost frame an exception was raised
    in, for the one-line reports of plugin errors ("" when unknown)."""
    import traceback  # only when something raised: kept off start-up

    tb = traceback.extract_tb(exc.__traceback__)
    return f" at {tb[-1].filename}:{tb[-1].lineno}" if tb else ""


def raised_in(exc: BaseException, fn) -> str:
    """`` at FILE:LINE`` of the last line of ``fn``'s file the exception
    went through (the plugin's own line, not the library's it called);
    else :func:`raised_at`."""
    import traceback

    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is not None:
        for fr in reversed(traceback.extract_tb(exc.__traceback__)):
            if fr.filename == code.co_filename:
                return f" at {fr.filename}:{fr.lineno}"
    return raised_at(exc)


def where(fn) -> str:
    """`` (FILE:LINE)`` where a plugin function is defined ("" if unknown)."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return ""
    import linecache

    line = code.co_firstlineno  # the first decorator's line: show the def's
    for i in range(line, line + 40):
        if linecache.getline(code.co_filename, i).lstrip().startswith(("def ", "async def ")):
            line = i
            break
    return f" ({code.co_filename}:{line})"


def _on_sigint(signum, frame) -> None:
    raise Interrupted


def install_interrupt_handler() -> None:
    """Make Ctrl-C raise :class:`Interrupted` (still a KeyboardInterrupt:
    click's ``Aborted!``) while no run has its own handler, so that a
    KeyboardInterrupt a plugin raises is told from a real one. The
    ``mosfw`` command's entry point calls it; a library user keeps
    Python's default handler."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _on_sigint)
    except ValueError:  # not the main thread
        pass
