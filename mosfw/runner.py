"""Running a configured job: plugins configured, cores run, results merged,
report made.

``cores == 1`` runs the one event loop in this process (no worker, no
extra cost). ``cores == N > 1`` forks N worker processes
(:mod:`mosfw.workers`), one per core, each pinned to a CPU when there are
enough, each with its own flow table and plugin state:

- offline (``-r FILE``), every worker keeps the flows whose symmetric hash
  falls in its shard (both directions of a connection hash alike), so
  packet time and results are those of a single core, split by flow. The
  parent makes a shared index (native/shared_input.h) before forking: the
  workers each parse 1/N of a classic pcap file and then read only their
  own packets; for other files, or when the index cannot be used, every
  worker reads the whole file;
- live (``-i IFACE``), every worker opens the interface and joins one
  AF_PACKET fanout group in hash mode: the kernel hands each flow (both
  directions) to one worker.

The parent only supervises: it waits on the workers' pipes, merges what
they report (``mosfw_tick_result`` -> ``mosfw_tick_merge`` once a second,
``mosfw_core_result`` -> ``mosfw_merge`` at the end; engine counters
summed, except that offline the input counters -- packets, bytes, parse
outcomes -- are those of one reading of the file), then calls
``mosfw_report`` once. Ctrl-C/SIGTERM are passed on to every worker, which
ends its flows (reason eof) and reports as usual, so the merged report is
still made; a second signal kills the workers at once. A worker that dies
or fails is reported with its core, the others are stopped, and the run
fails (:class:`WorkerError`, or the worker's own setup/plugin error); no
worker is left behind and nothing waits forever.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import attrs

from mosfw._native import ffi, lib
from mosfw.engine import Core, EngineError, InputError, PluginError, RunResult, raised_at
from mosfw.options import Config, UsageError
from mosfw.plugin_faults import Interrupted, check_interrupt, describe
from mosfw.privileges import drop_privileges
from mosfw.stats import RunStats
from mosfw.workers import (
    STOP_SIGNALS,
    Worker,
    call_lifecycle,
    collect_core_results,
    start_worker,
    wake_on_signals,
)

__all__ = ["CoreResult", "JobResult", "WorkerError", "merge_stats", "run_job"]

#: seconds the workers get to finish after a stop request or a failure
STOP_TIMEOUT = 30.0

#: live with -c N: seconds a second's per-core results (mosfw_tick_result)
#: wait for the cores that have not reported it yet before it is merged
#: without them (reading a file, a second waits for every core)
TICK_MERGE_WAIT = 1.5

#: counters of the input itself: offline, every core counts the whole
#: file's (from the shared index, or by reading it all), so the merged
#: value is one reading's
INPUT_COUNTERS = tuple(
    f for f in ("packets", "bytes", "tcp_packets", "non_tcp", "malformed", "truncated",
                "unsupported_link", "fragments", "bad_checksum")
    if f in attrs.fields_dict(RunStats))


class WorkerError(EngineError):
    """A worker process died or failed unexpectedly; the message names
    its core."""


@attrs.frozen
class CoreResult:
    """What one core of a run reported (one per core, in core order)."""

    id: int  #: the core
    status: str  #: done / error / stopped (as RunResult.status)
    error: str  #: read error message when status == error
    stats: RunStats  #: that core's counters
    values: dict  #: every plugin's ``mosfw_core_result`` value, by plugin name


class JobResult(RunResult):
    """A :class:`~mosfw.engine.RunResult` for the whole run (stats merged
    over cores) plus ``cores``: the :class:`CoreResult` of each core."""

    def __init__(self, status: str, error: str, stats: RunStats, cores: list[CoreResult]) -> None:
        super().__init__(status, error, stats)
        self.cores = cores


def merge_stats(per_core: list[RunStats], same_input: bool) -> RunStats:
    """Sum per-core counters. ``same_input``: every core read the same
    file, so the input counters are taken from the core that read the
    most (they are equal when all read to the end) instead of summed."""
    total = per_core[0]
    for s in per_core[1:]:
        total = total + s
    if same_input and len(per_core) > 1:
        total = attrs.evolve(total, **{f: max(getattr(s, f) for s in per_core) for f in INPUT_COUNTERS})
    return total


def _overall(results: list[CoreResult]) -> tuple[str, str]:
    for r in results:
        if r.status == "error":
            return "error", r.error
    if any(r.status == "stopped" for r in results):
        return "stopped", ""
    return "done", ""


def _merge_and_report(config: Config, cores: list[CoreResult], stats: RunStats, fail_fast: bool = False) -> RunStats:
    """Call every ``mosfw_merge`` implementation with its own values, then
    ``mosfw_report``; returns stats with merge errors counted."""
    pm = config.pluginmanager
    errors = 0
    for name, fn in pm.direct_callers("mosfw_merge"):
        try:
            fn(config, [c.values.get(name) for c in cores], cores)
        except BaseException as e:  # noqa: BLE001 - reported, the report still runs
            errors += 1
            _report_merge_error(config, name, "mosfw_merge", e)
    if errors:
        stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + errors)
    errors = call_lifecycle(config, "mosfw_report", fail_fast, config, stats)
    if errors:
        stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + errors)
    return stats


def _report_merge_error(config: Config, name: str, hook: str, e: BaseException) -> None:
    check_interrupt(e)  # a real Ctrl-C goes on up
    print(f"mosfw: plugin {name!r} raised in {hook}: {describe(e)}{raised_at(e)}", file=config.stderr)


def _tick_merge_here(config: Config) -> Callable:
    """``-c 1``: a core's tick sink calling ``mosfw_tick_merge`` at once,
    each plugin with its own value."""
    callers = config.pluginmanager.direct_callers("mosfw_tick_merge")

    def sink(core: Core, ts: float, values: dict) -> None:
        if core.stdout_closed:  # nobody reads the output any more
            return
        for name, fn in callers:
            if name not in values:
                continue
            try:
                fn(config, ts, [values.get(name)])
            except BrokenPipeError:  # the output was closed: finish the run
                core.stdout_closed = True
                core.request_stop()
            except BaseException as e:  # noqa: BLE001 - reported, the run goes on
                core._report(name, "mosfw_tick_merge", None, e)

    return sink


class _TickMerger:
    """``-c N``: the cores' ``mosfw_tick_result`` values, held by second
    until every core has reported it (or a later second, or finished;
    live, also when TICK_MERGE_WAIT went by, and not waiting for a core
    that has not ticked yet: it ticks from its first packet on), then
    passed to ``mosfw_tick_merge`` in order of seconds."""

    def __init__(self, config: Config, n: int, live: bool) -> None:
        self.config = config
        self.n = n
        self.wait = TICK_MERGE_WAIT if live else None
        self.callers = config.pluginmanager.direct_callers("mosfw_tick_merge")
        self.pending: dict[float, dict[int, dict]] = {}  # second -> core -> {name: pickled value}
        self.first_seen: dict[float, float] = {}  # second -> monotonic time of its first report
        self.latest: dict[int, float] = {}  # core -> latest second reported
        self.done: set[int] = set()  # cores that finished
        self.merged_upto = float("-inf")
        self.errors = 0
        self.late = 0  # values that came after their second was merged
        self.broken = False  # a mosfw_tick_merge found its output closed

    def add(self, core: int, ts: float, blobs: dict) -> None:
        if ts <= self.merged_upto:
            self.late += 1
            return
        self.pending.setdefault(ts, {})[core] = blobs
        self.first_seen.setdefault(ts, time.monotonic())
        self.latest[core] = max(ts, self.latest.get(core, ts))
        self.flush()

    def finished(self, core: int) -> None:
        self.done.add(core)
        self.flush()

    def flush(self, final: bool = False) -> None:
        now = time.monotonic()
        while self.pending:
            ts = min(self.pending)
            got = self.pending[ts]
            complete = all(c in got or c in self.done or self.latest.get(c, ts) > ts
                           # live, a core that has seen no packet yet does not tick
                           or (self.wait is not None and c not in self.latest)
                           for c in range(self.n))
            if not (complete or final or (self.wait is not None and now - self.first_seen[ts] > self.wait)):
                return
            del self.pending[ts], self.first_seen[ts]
            self.merged_upto = ts
            self._merge(ts, got)

    def _merge(self, ts: float, got: dict[int, dict]) -> None:
        import pickle

        for name, fn in self.callers:
            if self.broken or not any(name in blobs for blobs in got.values()):
                continue
            results = []
            for c in range(self.n):
                blob = got.get(c, {}).get(name)
                try:
                    results.append(None if blob is None else pickle.loads(blob))
                except Exception as e:  # noqa: BLE001
                    self.errors += 1
                    results.append(None)
                    print(f"mosfw: core {c}: plugin {name!r}: the value of mosfw_tick_result could not "
                          f"be read back: {type(e).__name__}: {e}", file=self.config.stderr)
            try:
                fn(self.config, ts, results)
            except BrokenPipeError:
                self.broken = True
            except BaseException as e:  # noqa: BLE001 - reported, the run goes on
                self.errors += 1
                _report_merge_error(self.config, name, "mosfw_tick_merge", e)


def _flush(*streams) -> None:
    for s in streams:
        try:
            s.flush()
        except (AttributeError, OSError, ValueError):
            pass


# ---------------------------------------------------------------------------
# one core, in this process


@contextmanager
def _stop_on_signals(core: Core) -> Iterator[None]:
    """SIGINT/SIGTERM ask the core to finish (flows end with eof, final
    report still printed); a second signal interrupts at once."""
    seen = []

    def handler(signum, frame):
        if seen:
            raise Interrupted  # a KeyboardInterrupt no plugin error check swallows
        seen.append(signum)
        core.request_stop()

    old = {}
    for s in STOP_SIGNALS:
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_single(config: Config, fail_fast: bool, progress) -> JobResult:
    pm = config.pluginmanager
    conf_errors = call_lifecycle(config, "mosfw_configure", fail_fast, config)
    core = Core(config, pm, core_id=0, shard_count=1, fail_fast=fail_fast)
    core.tick_sink = _tick_merge_here(config)
    core.add_plugin_errors(conf_errors)
    core.open()
    if config.user:
        drop_privileges(config.user)
    with _stop_on_signals(core), wake_on_signals(core):
        result = core.run(progress=progress)
    values = collect_core_results(core, pickled=False)
    stats = core.stats()  # counts errors raised by mosfw_core_result too
    cores = [CoreResult(0, result.status, result.error, stats, values)]
    stats = _merge_and_report(config, cores, stats, fail_fast)
    if core.stdout_closed:  # as with -c N: the caller exits quietly
        raise BrokenPipeError("stdout was closed")
    return JobResult(result.status, result.error, stats, cores)


# ---------------------------------------------------------------------------
# N cores, N worker processes


class _ProgressView:
    """What the progress callback sees in a multi-core run: a stand-in for
    a Core with ``stats()`` (merged) and ``input_offset()``."""

    def __init__(self, config: Config, workers: list[Worker], same_input: bool) -> None:
        self.id = None
        self.config = config
        self._workers = workers
        self._same_input = same_input

    def stats(self) -> RunStats:
        snaps = [w.progress[0] for w in self._workers if w.progress]
        return merge_stats(snaps, self._same_input) if snaps else RunStats()

    def input_offset(self) -> int:
        offs = [w.progress[1] for w in self._workers if w.progress]
        return min(offs) if offs else -1


class _Supervisor:
    """Waits on the workers, passes stop requests on, enforces deadlines."""

    def __init__(self, workers: list[Worker], stop_timeout: float, ticks: _TickMerger) -> None:
        self.workers = workers
        self.ticks = ticks
        self.stop_timeout = stop_timeout
        self.deadline: float | None = None
        self.first_failure: Worker | None = None
        self.signalled = 0

    def stop_all(self, signum: int = signal.SIGTERM) -> None:
        """Ask every unfinished worker to finish; start the deadline."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.stop_timeout
        for w in self.workers:
            if not w.finished:
                w.signal(signum)

    def kill_all(self, reason: str) -> None:
        for w in self.workers:
            if w.exit_status is None:
                if not w.finished and not w.kill_reason:
                    w.kill_reason = reason
                w.signal(signal.SIGKILL)

    def on_signal(self, signum, frame) -> None:
        if self.signalled:
            self.kill_all("interrupted twice")
            raise Interrupted  # a KeyboardInterrupt no plugin error check swallows
        self.signalled = signum
        self.stop_all()

    def failed(self, w: Worker) -> None:
        if self.first_failure is None:
            self.first_failure = w
        self.stop_all()

    def run(self, progress: Callable | None, view: _ProgressView) -> None:
        from multiprocessing.connection import wait as wait_any  # -c N only: kept off start-up

        pending = {w.conn: w for w in self.workers}
        next_progress = time.monotonic() + 0.5
        while pending:
            for conn in wait_any(list(pending), timeout=0.25):
                w = pending[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    del pending[conn]
                    conn.close()
                    self._reap(w)
                    if not w.finished:
                        self.failed(w)
                    self.ticks.finished(w.core)
                    continue
                except Exception as e:  # noqa: BLE001 - a message that cannot be read
                    w.message = ("error", "crash", f"unreadable message from the worker: {e!r}", None, None)
                    self.failed(w)
                    continue
                if msg[0] == "progress":
                    w.progress = (msg[1], msg[2])
                    continue
                if msg[0] == "tick":
                    self.ticks.add(w.core, msg[1], msg[2])
                    if self.ticks.broken:  # the output was closed: finish
                        self.stop_all()
                    continue
                w.message = msg
                self.ticks.finished(w.core)
                if msg[0] == "error":
                    self.failed(w)
            self.ticks.flush()
            now = time.monotonic()
            if self.deadline is not None and now > self.deadline:
                self.kill_all(f"did not finish within {self.stop_timeout:g} s of the stop request")
            if progress is not None and now >= next_progress and any(w.progress for w in self.workers):
                progress(view)
                next_progress = now + 0.5

    def _reap(self, w: Worker) -> None:
        # the pipe closed: the worker is exiting; give it up to 2 s
        if w.reap(block=False) or _wait_exit(w.pid, 2.0) and w.reap(block=False):
            return
        for _ in range(20):
            if w.reap(block=False):
                return
            time.sleep(0.01)
        w.kill_reason = w.kill_reason or "closed its pipe but did not exit"
        w.signal(signal.SIGKILL)
        w.reap(block=True)


#: from this many cores on, the workers share the parsing of a file by
#: default: bench/scaling.py measured it slower at 2 (each core still
#: touches nearly every page, and waits for the others' part of the
#: index), within noise of the whole-file mode at 4 (two runs, one each
#: way), and ahead from 8 (-c 16: about 30 % less CPU time)
SHARED_INDEX_MIN_CORES = 8


def _make_share(config: Config, n: int):
    """The shared index of the input file for n workers (they split its
    parsing: native/shared_input.h), or None: fewer than
    SHARED_INDEX_MIN_CORES workers (MOSFW_SHARED_INDEX=1: any number;
    =0: never), or a file that cannot be shared (not a classic pcap of
    this byte order...: every worker then reads it all)."""
    how = os.environ.get("MOSFW_SHARED_INDEX", "")
    if not config.read_file or how == "0" or (how != "1" and n < SHARED_INDEX_MIN_CORES):
        return None
    err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
    share = lib.mosfw_share_new(n, os.fsencode(config.read_file), err)
    return None if share == ffi.NULL else share


def _wait_exit(pid: int, timeout: float) -> bool:
    """Wait until process pid exits (without reaping it), up to timeout
    seconds; False when that cannot be waited for this way."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return False
    try:
        import select

        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def _fanout_group() -> int:
    """An AF_PACKET fanout group id (1..65535) for this run."""
    return os.getpid() % 0xFFFF + 1


def _worker_error(w: Worker) -> Exception:
    """The exception a failed worker stands for."""
    if w.message is not None and w.message[0] == "error":
        kind, msg = w.message[1], w.message[2]
        if kind == "usage":
            return UsageError(msg)
        if kind == "input":
            return InputError(msg)
        if kind == "plugin":
            return PluginError(msg)
        if kind == "engine":
            return EngineError(msg)
        first, _, rest = msg.partition("\n")
        return WorkerError(f"core {w.core} (worker pid {w.pid}) failed: {first}"
                           + (f"\n{rest}" if rest else ""))
    how = w.describe_exit()
    if w.kill_reason:
        how = f"{how}: it {w.kill_reason}"
    return WorkerError(f"core {w.core} (worker pid {w.pid}) died ({how}) before reporting; "
                       "the run's results are incomplete")


def _run_multi(config: Config, fail_fast: bool, progress, stop_timeout: float) -> JobResult:
    n = config.cores
    live = bool(config.interface) and not config.read_file
    same_input = not live
    group = _fanout_group() if live else 0
    _flush(config.stdout, config.stderr, sys.stdout, sys.stderr)

    share = _make_share(config, n) if not live else None
    workers: list[Worker] = []
    ticks = _TickMerger(config, n, live)
    sup = _Supervisor(workers, stop_timeout, ticks)
    old_handlers = {}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        for s in STOP_SIGNALS:
            try:
                old_handlers[s] = signal.signal(s, sup.on_signal)
            except ValueError:  # not the main thread: the caller handles signals
                pass
        for k in range(n):
            workers.append(start_worker(config, k, n, fail_fast, fanout_group=group,
                                        progress=progress is not None,
                                        close_in_child=[w.conn for w in workers], share=share))
    except BaseException:
        sup.kill_all("the run could not start")
        for w in workers:
            w.reap(block=True)
        if share is not None:
            lib.mosfw_share_free(share)
        for s, h in old_handlers.items():
            signal.signal(s, h)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    try:
        sup.run(progress, _ProgressView(config, workers, same_input))
    finally:
        sup.kill_all("was still running when the parent gave up")
        for w in workers:
            w.reap(block=True)
            w.conn.close()
        if share is not None:
            lib.mosfw_share_free(share)
        for s, h in old_handlers.items():
            signal.signal(s, h)

    # output a worker kept in memory (the parent's stream has no fd)
    for w in workers:
        if w.message is not None:
            out, err = w.message[-3:-1] if w.message[0] == "result" else w.message[-2:]
            if out:
                config.stdout.write(out)
            if err:
                config.stderr.write(err)
    if sup.first_failure is not None:
        raise _worker_error(sup.first_failure)
    missing = [w for w in workers if not w.finished or w.message[0] != "result"]
    if missing:  # cannot happen: every non-result is a failure
        raise _worker_error(missing[0])

    import pickle

    cores = []
    for w in workers:
        _, result, blobs, _, _, _ = w.message
        values = {}
        errors = 0
        for name, blob in blobs.items():
            try:
                values[name] = pickle.loads(blob)
            except Exception as e:  # noqa: BLE001
                errors += 1
                print(f"mosfw: core {w.core}: plugin {name!r}: the value of mosfw_core_result "
                      f"could not be read back: {type(e).__name__}: {e}", file=config.stderr)
        stats = result.stats
        if errors:
            stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + errors)
        cores.append(CoreResult(w.core, result.status, result.error, stats, values))
    ticks.flush(final=True)
    if ticks.late:
        print(f"mosfw: {ticks.late} per-second result(s) of a core came more than {TICK_MERGE_WAIT:g} s "
              "after the other cores' and were left out of their second's merge", file=config.stderr)
    stats = merge_stats([c.stats for c in cores], same_input)
    if ticks.errors:
        stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + ticks.errors)
    status, error = _overall(cores)
    stats = _merge_and_report(config, cores, stats, fail_fast)
    if ticks.broken or any(w.message[5] for w in workers):  # the reader of stdout went away
        raise BrokenPipeError("stdout was closed")
    return JobResult(status, error, stats, cores)


# ---------------------------------------------------------------------------


def run_job(
    config: Config,
    fail_fast: bool = False,
    progress: Callable[[Core], None] | None = None,
    stop_timeout: float = STOP_TIMEOUT,
) -> JobResult:
    """Configure the plugins, run the cores, merge, call ``mosfw_report``.

    :param config: the run; ``config.cores`` event loops (1: in this
        process; N: N worker processes).
    :param fail_fast: stop at the first exception a plugin raises
        (:class:`~mosfw.engine.PluginError`).
    :param progress: called about twice a second with the core (with
        ``-c N``: a view whose ``stats()`` are merged over the cores and
        ``input_offset()`` is the slowest core's).
    :param stop_timeout: seconds the workers get to finish after Ctrl-C,
        SIGTERM or a failed worker before they are killed.
    :raises UsageError, InputError, EngineError, PluginError: as with one
        core (the first failing worker's);
    :raises WorkerError: a worker died or crashed.
    """
    if config.cores < 1:
        raise UsageError(f"-c {config.cores}: the number of cores must be at least 1")
    if config.cores == 1:
        result = _run_single(config, fail_fast, progress)
    else:
        result = _run_multi(config, fail_fast, progress, stop_timeout)
    _flush(config.stdout)
    return result
