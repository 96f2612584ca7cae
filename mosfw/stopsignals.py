"""Stop signals of a run (SIGINT, SIGTERM): the first asks the run to
finish (flows end with reason eof, the final report is still made);
another one interrupts at once -- unless it comes within
:data:`SIGNAL_GRACE` seconds of the first.

Why the grace: one request to stop often arrives as two signals a few
milliseconds apart. GNU ``timeout`` sends its signal to the command and
then to the command's process group (of which the command is a member);
``kill -- -PGID`` after a ``kill PID``, a supervisor that signals the
group and the main process, a terminal's Ctrl-C during a ``kill``... Taken
as "abort now", the second copy lost the report of runs it was meant to
stop cleanly.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from types import FrameType

    #: what signal.signal() takes and returns (typeshed's private signal._HANDLER)
    _Handler: TypeAlias = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

__all__ = ["SIGNAL_GRACE", "STOP_SIGNALS", "RunStopped", "StopSignals"]

#: the signals that ask a run to finish (flows end with eof, report made)
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

#: seconds after a first stop signal during which another stop signal is
#: the same request (ignored); one after that interrupts at once
SIGNAL_GRACE = 2.0


class RunStopped(BaseException):
    """A stop signal ended a run that cannot end its flows and report
    (``--dask``: raised in the main thread by its handler; a
    BaseException, as KeyboardInterrupt, so that no ``except Exception``
    takes it for an error)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class StopSignals:
    """Handlers for :data:`STOP_SIGNALS` while a run goes on.

    The first signal calls ``on_stop(signum)``; another one within
    :data:`SIGNAL_GRACE` seconds of the first is ignored; one after that
    calls ``on_abort(signum)`` (which raises, as a rule). :meth:`install`
    puts the handlers in place (in the main thread; elsewhere it does
    nothing), :meth:`restore` puts the old ones back.
    """

    def __init__(
        self, on_stop: Callable[[int], None], on_abort: Callable[[int], None], grace: float = SIGNAL_GRACE
    ) -> None:
        self.on_stop = on_stop
        self.on_abort = on_abort
        self.grace = grace
        self.first_signal = 0  #: the first stop signal received (0: none)
        self.first_at: float | None = None  #: when (time.monotonic())
        self.ignored = 0  #: signals ignored within the grace
        self._old: dict[int, _Handler] = {}

    def handler(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.first_at is None:
            self.first_at, self.first_signal = now, signum
            self.on_stop(signum)
        elif now - self.first_at <= self.grace:
            self.ignored += 1
        else:
            self.on_abort(signum)

    def install(self) -> None:
        for s in STOP_SIGNALS:
            try:
                self._old[s] = signal.signal(s, self.handler)
            except ValueError:  # not the main thread: the caller handles signals
                pass

    def restore(self) -> None:
        """Put the old handlers back. Within the grace of a first signal
        (the run is finishing because of it: its report is still to be
        printed), a handler that ignores stop signals until the grace is
        over stays instead; the first one after it puts the old handlers
        back and gets what they would have done (KeyboardInterrupt,
        termination)."""
        old, self._old = self._old, {}
        if not old:
            return
        if self.first_at is None or time.monotonic() - self.first_at > self.grace:
            for s, h in old.items():
                signal.signal(s, h)
            return
        until = self.first_at + self.grace

        def linger(signum: int, frame: FrameType | None) -> None:
            if time.monotonic() <= until:
                return
            for s, h in old.items():
                signal.signal(s, h)
            h = old.get(signum)
            if callable(h):
                h(signum, frame)
            elif h == signal.SIG_DFL:
                os.kill(os.getpid(), signum)

        for s in old:
            signal.signal(s, linger)
