"""Worker processes of a multi-core run: one forked process per core.

:func:`start_worker` forks a process that runs one per-core event loop
(:class:`~mosfw.engine.Core`) with its own flow table and its own plugin
state, and reports back to the parent over a pipe; :mod:`mosfw.runner`
supervises the workers and merges what they report.

Why fork: the parent has already imported mosfw and loaded the ``-p``
plugins; a forked worker has them at once (fork + exit + wait: ~1 ms on
the 2-core development machine), where a spawned interpreter re-imports
everything (a fresh ``python`` importing mosfw and loading eventlog:
~0.11 s of CPU per worker there) and cannot take plugin objects that were
registered directly rather than named by a ``-p`` spec. The worker calls
``mosfw_configure`` itself, after the fork, so plugin state made there
(files, sockets, threads) belongs to the worker; state a plugin set up at
import time is inherited, as it was in the parent.

Output: a worker writes ``config.stdout``/``config.stderr`` (and its
``sys.stdout``/``sys.stderr``) through :func:`~mosfw.linestream.line_stream`: buffered, and
each write(2) holds whole lines only, so lines of different cores never
interleave mid-line on a shared file, terminal or pipe (on a pipe or
socket each write(2) is at most ``PIPE_BUF`` bytes, the size the kernel
keeps atomic; a single line longer than that is written alone and may
interleave there). When the parent's stream has no file descriptor (a
``StringIO``, click's ``CliRunner``), the worker keeps its output in
memory and sends it with its result; the parent writes it in core order.

Messages, worker to parent (pickled tuples):
``("progress", RunStats, input_offset, CoreCounters)``, ``("tick", second, values)``
(each plugin's ``mosfw_tick_result``, pickled, by plugin name),
``("result", RunResult,
values, out, err, stdout_closed, stop_signal, CoreCounters)`` (values: each plugin's
``mosfw_core_result``, pickled, by plugin name; stop_signal: the first
SIGINT/SIGTERM the worker got, 0 if none; the counters: as
``mosfw_stats_update`` gets them) and ``("error", kind, message, out,
err)`` where kind is ``usage``, ``input``, ``engine``, ``plugin`` or
``crash``. A worker that exits without sending a result or an error has
died; the parent sees the pipe close and reads the exit status.
"""

from __future__ import annotations

import inspect
import io
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

import attrs

from mosfw._native import lib
from mosfw.engine import Core, EngineError, InputError, PluginError, raised_at
from mosfw.linestream import line_stream, stream_fd
from mosfw.runconfig import Config, UsageError
from mosfw.stats import CoreCounters
from mosfw.stopsignals import STOP_SIGNALS

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

    from mosfw.linestream import _LineAlignedRaw

__all__ = ["CoreLoss", "Worker", "collect_core_results", "line_stream", "start_worker", "wake_on_signals"]

#: how often a worker sends progress snapshots when asked to
PROGRESS_EVERY = 0.5


def pickle_values(core: Core, hook: str, values: dict[str, Any]) -> dict[str, bytes]:
    """Plugins' values pickled to be sent to the parent; a value that
    cannot be pickled is reported as a plugin error (of ``hook``) and
    dropped."""
    import pickle  # -c N only: kept off start-up

    out = {}
    for name, value in values.items():
        try:
            out[name] = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as e:  # noqa: BLE001
            err = TypeError(
                f"its value cannot be sent to the parent process (not picklable): {type(e).__name__}: {e}"
            )
            core._report(name, hook, None, err)
    return out


def collect_core_results(core: Core, pickled: bool) -> dict[str, Any]:
    """Call every ``mosfw_core_result`` implementation for ``core``; the
    non-None values by plugin name (``pickled``: as pickle bytes, to be
    sent to the parent). A hook that raises, or returns a value that
    cannot be pickled, is reported as a plugin error of that core and its
    value dropped."""
    values: dict[str, Any] = {}
    for name, fn in core.pm.direct_callers("mosfw_core_result"):
        try:
            value = fn(core.view)
        except PluginError:
            raise
        except BaseException as e:  # noqa: BLE001 - reported, the run goes on
            core._report(name, "mosfw_core_result", None, e)
            continue
        if value is not None:
            values[name] = value
    return pickle_values(core, "mosfw_core_result", values) if pickled else values


def call_lifecycle(
    config: Config, hook: str, fail_fast: bool, *args, counts: dict[tuple[str, str], int] | None = None
) -> int:
    """Call a life-cycle hook's implementations outside a core's loop
    (``mosfw_configure``, ``mosfw_report``) the way the engine calls event
    hooks: an exception is reported once with the plugin's name and
    counted, and the others still run; ``UsageError`` stops the run, and
    with ``fail_fast`` so does any exception. Returns the count (and adds
    it to ``counts`` by (plugin, hook), when given)."""
    from mosfw.engine import PluginError
    from mosfw.manager import raised_by
    from mosfw.plugin_faults import check_interrupt, describe
    from mosfw.runconfig import UsageError

    errors = 0
    for name, fn in config.pluginmanager.direct_callers(hook):
        try:
            fn(*args)
        except UsageError:
            raise
        except BaseException as e:
            check_interrupt(e)  # a real Ctrl-C goes on up
            name = raised_by(e, name)  # through pluggy: the plugin that raised
            if fail_fast:
                raise PluginError(f"plugin {name!r} raised in {hook}: {describe(e)}") from e
            errors += 1
            if counts is not None:
                counts[(name, hook)] = counts.get((name, hook), 0) + 1
            print(f"mosfw: plugin {name!r} raised in {hook}: {describe(e)}{raised_at(e)}", file=config.stderr)
    return errors


def _new_core(
    config: Config, core_id: int, cores: int, fail_fast: bool, fanout_group: int, feed=None
) -> Core:
    """``Core(...)`` for one worker, joining an AF_PACKET fanout group when
    ``fanout_group`` is set (live input), reading its ring of the parent's
    ``feed`` (:class:`mosfw.feed.Feed`) when there is one (offline)."""
    kwargs: dict[str, Any] = {"core_id": core_id, "shard_count": cores, "fail_fast": fail_fast}
    if feed is not None:
        kwargs["feed"] = feed
    if not fanout_group:
        return Core(config, config.pluginmanager, **kwargs)
    if "fanout_group" in inspect.signature(Core).parameters:
        return Core(config, config.pluginmanager, fanout_group=fanout_group, **kwargs)
    # Transitional, until engine.Core takes fanout_group: this worker
    # process sets the field on the C config as Core creates its core.
    import mosfw.engine as engine

    real = engine.lib

    class _WithFanout:
        def __getattr__(self, name):
            return getattr(real, name)

        def mosfw_core_new(self, cfg, err):
            cfg.fanout_group = fanout_group
            return real.mosfw_core_new(cfg, err)

    engine.lib = _WithFanout()
    try:
        return Core(config, config.pluginmanager, **kwargs)
    finally:
        engine.lib = real


@contextmanager
def wake_on_signals(core: Core) -> Iterator[None]:
    """While the body runs, a SIGINT/SIGTERM also stops the C loop at once.

    Python runs signal handlers only between bytecodes, so a loop blocked
    in C (a live capture on an idle interface: libpcap's TPACKET_V3 poll
    has no timeout) would never see the request. Python's C-level handler
    writes every signal to the wakeup fd at once; a helper thread waiting
    on it calls ``mosfw_core_stop`` (async-signal-safe, and
    ``pcap_breakloop`` wakes libpcap's poll from another thread). The
    Python-level handlers still run as before once the loop returns.
    Does nothing outside the main thread."""
    try:
        r, w = os.pipe()
    except OSError:
        yield
        return
    os.set_blocking(w, False)
    try:
        old = signal.set_wakeup_fd(w)
    except ValueError:  # not the main thread
        os.close(r)
        os.close(w)
        yield
        return
    stop = lib.mosfw_core_stop
    handle = core._c  # the C core; mosfw_core_stop is safe from any thread

    def waiter() -> None:
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if not data:
                return
            if any(b in _STOP_SIGNUMS for b in data):
                stop(handle)

    t = threading.Thread(target=waiter, name="mosfw-stop-waker", daemon=True)
    try:
        t.start()
    except RuntimeError as e:  # "can't start new thread": no memory for its stack
        signal.set_wakeup_fd(old)
        os.close(w)
        os.close(r)
        raise EngineError(f"out of memory: cannot start a thread ({e})") from None
    try:
        yield
    finally:
        signal.set_wakeup_fd(old)
        os.close(w)
        t.join()
        os.close(r)


_STOP_SIGNUMS = frozenset(int(s) for s in (signal.SIGINT, signal.SIGTERM))


def _die_with_parent(parent: int) -> None:
    """Ask the kernel to send SIGTERM to this worker if the parent dies
    (so a killed parent leaves no live capture running). Through the
    engine's own library: loading libc's prctl() with cffi's parser or
    ctypes cost the parent 10-30 ms of every ``-c N`` run."""
    from mosfw._native import lib

    lib.mosfw_worker_parent_death_signal(int(signal.SIGTERM))
    if os.getppid() != parent:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _pin(core_id: int, cores: int) -> None:
    """Pin this process to the core_id-th CPU it may run on, when there
    are at least as many CPUs as cores (else leave it to the scheduler)."""
    if os.environ.get("MOSFW_NO_PIN"):
        return
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if cores <= len(cpus):
            os.sched_setaffinity(0, {cpus[core_id]})
    except (AttributeError, OSError):
        pass


class Worker:
    """The parent's handle on one worker process."""

    def __init__(self, core: int, pid: int, conn: Connection) -> None:
        self.core = core  #: core id
        self.pid = pid  #: process id
        self.conn = conn  #: read end of the worker's pipe
        self.message: tuple | None = None  #: the final "result" or "error" message
        self.exit_status: int | None = None  #: os.waitpid status once reaped
        self.kill_reason = ""  #: why the parent killed it, if it did
        self.progress: tuple | None = None  #: latest (stats, input_offset)
        self.counters: CoreCounters | None = None  #: latest counters (progress or result)
        self.progress_at: float | None = None  #: when it came (time.monotonic())
        self.stop_sent = False  #: the parent asked it to stop

    @property
    def finished(self) -> bool:
        return self.message is not None

    def signal(self, signum: int) -> None:
        """Send a signal unless the process has been reaped."""
        if self.exit_status is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def reap(self, block: bool = True) -> bool:
        """Collect the exit status; True once reaped."""
        if self.exit_status is not None:
            return True
        try:
            pid, status = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.exit_status = 0
            return True
        if pid == 0:
            return False
        self.exit_status = status
        return True

    def describe_exit(self) -> str:
        st = self.exit_status
        if st is None:
            return "still running"
        if os.WIFSIGNALED(st):
            n = os.WTERMSIG(st)
            try:
                name = signal.Signals(n).name
            except ValueError:
                name = "?"
            return f"killed by signal {n} ({name})"
        return f"exited with status {os.waitstatus_to_exitcode(st)}"

    def loss(self, stopped_by: int = 0, packets: int = 0, others_stopped: bool = False) -> CoreLoss:
        """What is lost of this worker's core: ``stopped_by`` a signal
        sent to it alone (it reported ``packets``), or it died."""
        if stopped_by:
            return CoreLoss(
                self.core, self.pid, f"stopped by {signal.Signals(stopped_by).name}", packets, partial=True
            )
        ago = None
        if self.progress is not None:
            packets = self.progress[0].packets
            if self.progress_at is not None:
                ago = round(max(0.0, time.monotonic() - self.progress_at), 3)
        return CoreLoss(
            self.core,
            self.pid,
            self.describe_exit(),
            packets,
            partial=False,
            kill_reason=self.kill_reason,
            report_age=ago,
            others_stopped=others_stopped,
        )


@attrs.frozen
class CoreLoss:
    """A core of a ``-c N`` run whose results are missing (its worker
    died: ``partial`` False) or partial (stopped by a signal sent to its
    worker alone: ``partial`` True)."""

    core: int
    pid: int  #: its worker's process id
    how: str  #: "killed by signal 9 (SIGKILL)", "exited with status 70", "stopped by SIGTERM"
    packets: int  #: input packets it had read (died: as of its last progress report)
    partial: bool
    kill_reason: str = ""  #: why the parent killed it, if it did
    report_age: float | None = None  #: died: seconds between its last progress report and its end
    others_stopped: bool = False  #: died: the other cores were stopped (live)

    def message(self) -> str:
        who = f"core {self.core} (worker pid {self.pid})"
        if self.partial:
            return (
                f"{who} was {self.how} sent to it alone after {self.packets} packets: its results "
                "above cover those packets only (its open flows were ended, reason eof)"
            )
        how = f"{self.how}: it {self.kill_reason}" if self.kill_reason else self.how
        if self.report_age is None:
            when = f"before its first progress report ({PROGRESS_EVERY:g} s)"
        else:
            when = f"after {self.packets} packets (its last progress report, {self.report_age:.1f} s before)"
        rest = (
            "the other cores were stopped (open flows ended, reason eof)"
            if self.others_stopped
            else "the other cores read the input to its end"
        )
        return f"{who} died ({how}) {when}: its results are missing from those above; {rest}"

    def asdict(self) -> dict:
        return {
            "core": self.core,
            "pid": self.pid,
            "how": self.how,
            "packets": self.packets,
            "partial": self.partial,
        }


def start_worker(
    config: Config,
    core_id: int,
    cores: int,
    fail_fast: bool,
    *,
    fanout_group: int = 0,
    progress: bool = False,
    close_in_child: Iterable[Connection] = (),
    feed=None,
) -> Worker:
    """Fork the worker of core ``core_id`` (of ``cores``). Call with
    SIGINT/SIGTERM blocked: the child installs its own handlers first.
    ``close_in_child``: the parent's ends of earlier workers' pipes.
    ``feed``: the parent's reader of the input (offline, :mod:`mosfw.feed`)."""
    from multiprocessing import Pipe  # -c N only: kept off start-up

    recv_end, send_end = Pipe(duplex=False)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 70
        try:
            recv_end.close()
            for c in close_in_child:
                c.close()
            code = _worker_main(
                config, core_id, cores, fail_fast, fanout_group, progress, send_end, parent, feed
            )
        except BaseException:  # noqa: BLE001 - never return into the parent's code
            try:
                import traceback

                traceback.print_exc()
            except Exception:  # noqa: BLE001, S110 - stderr itself is gone: nothing left to tell
                pass
        finally:
            os._exit(code)
    send_end.close()
    return Worker(core_id, pid, recv_end)


def _worker_main(
    config: Config,
    core_id: int,
    cores: int,
    fail_fast: bool,
    fanout_group: int,
    progress: bool,
    conn: Connection,
    parent: int,
    feed=None,
) -> int:
    core_box: list[Core] = []
    stop_asked: list[int] = []

    def on_stop(signum, frame):
        stop_asked.append(signum)
        if core_box:
            core_box[0].request_stop()

    for s in STOP_SIGNALS:
        signal.signal(s, on_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    _die_with_parent(parent)
    _pin(core_id, cores)

    def stdout_closed() -> None:  # the reader went away (`| head`): finish
        on_stop(signal.SIGPIPE, None)

    out_fd, err_fd = stream_fd(config.stdout), stream_fd(config.stderr)
    out = line_stream(out_fd, config.stdout, on_broken=stdout_closed) if out_fd is not None else io.StringIO()
    err = line_stream(err_fd, config.stderr, line_buffering=True) if err_fd is not None else io.StringIO()
    config.stdout, config.stderr = out, err
    sys.stdout, sys.stderr = out, err

    def finish_streams() -> tuple[str | None, str | None, bool]:
        captured: list[str | None] = []
        for s in (out, err):
            try:
                if isinstance(s, io.StringIO):
                    captured.append(s.getvalue())
                else:
                    s.close()
                    captured.append(None)
            except (OSError, ValueError):
                captured.append(None)
        broken = not isinstance(out, io.StringIO) and cast("_LineAlignedRaw", out.buffer.raw).broken
        return captured[0], captured[1], broken

    try:
        config.records.open(config, core_id)  # this worker's own sinks (producers, connections)
        by: dict[tuple[str, str], int] = {}
        call_lifecycle(config, "mosfw_configure", fail_fast, config, counts=by)
        core = _new_core(config, core_id, cores, fail_fast, fanout_group, feed)
        core.add_plugin_errors(by)
        core.open()
        if config.user:
            from mosfw.privileges import drop_privileges

            drop_privileges(config.user)
        core_box.append(core)
        if stop_asked:
            core.request_stop()

        def send_progress(c: Core) -> None:
            counters = c.counters()  # holds c.stats(): read once
            conn.send(("progress", counters.stats, c.input_offset(), counters))

        def send_tick(c: Core, ts: float, values: dict) -> None:
            conn.send(("tick", ts, pickle_values(c, "mosfw_tick_result", values)))

        core.tick_sink = send_tick

        with wake_on_signals(core):
            result = core.run(progress=send_progress if progress else None, progress_every=PROGRESS_EVERY)
        values = collect_core_results(core, pickled=True)
        config.records.close()  # sent, or counted lost, before the final counters
        result.stats = core.stats()  # with errors raised by mosfw_core_result
    except UsageError as e:
        kind, msg = "usage", str(e)
    except InputError as e:
        kind, msg = "input", str(e)
    except PluginError as e:
        kind, msg = "plugin", str(e)
    except EngineError as e:
        kind, msg = "engine", str(e)
    except Exception as e:  # noqa: BLE001 - a bug: reported with its traceback
        import traceback

        kind = "crash"
        msg = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exception(e)).rstrip()
    else:
        o, e_, broken = finish_streams()
        stopped_by = next((s for s in stop_asked if s in _STOP_SIGNUMS), 0)
        return _send_last(conn, ("result", result, values, o, e_, broken, stopped_by, core.counters()), 0)
    config.records.close(1.0)
    o, e_, _ = finish_streams()
    return _send_last(conn, ("error", kind, msg, o, e_), 1)


def _send_last(conn: Connection, msg: tuple, code: int) -> int:
    """Send the final message; a parent that is gone is not an error of
    the worker's to print (it was killed: nobody is listening)."""
    try:
        conn.send(msg)
        conn.close()
    except (BrokenPipeError, ConnectionResetError):
        return 1
    return code
