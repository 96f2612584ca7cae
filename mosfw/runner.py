"""Running a configured job: plugins configured, cores run, results merged,
report made.

``cores == 1`` runs the one event loop in this process (no worker, no
extra cost). ``cores == N > 1`` forks N worker processes
(:mod:`mosfw.workers`), one per core, each pinned to a CPU when there are
enough, each with its own flow table and plugin state:

- offline (``-r FILE``, ``-r DIR``, ``-r`` repeated, compressed files),
  every worker keeps the flows whose symmetric hash falls in its shard
  (both directions of a connection hash alike), so packet time and
  results are those of a single core, split by flow. The input is read
  once: the parent opens it before forking (:class:`mosfw.feed.Feed`)
  and, once the workers are forked, a reader thread of its own copies
  each packet into the ring (shared memory) of the worker that owns it,
  with a time mark to the others when a packet opens a new second
  (native/feed.c); the input counters are the reader's;
- live (``-i IFACE``), every worker opens the interface and joins one
  AF_PACKET fanout group in hash mode: the kernel hands each flow (both
  directions) to one worker.

The parent only supervises: it waits on the workers' pipes, merges what
they report (``mosfw_tick_result`` -> ``mosfw_tick_merge`` once a second,
progress reports -> ``mosfw_stats_update`` twice a second,
``mosfw_core_result`` -> ``mosfw_merge`` at the end; engine counters
summed, except that offline the input counters -- packets, bytes, parse
outcomes -- are those of one reading of the file), then calls
``mosfw_report`` once. Ctrl-C/SIGTERM are passed on to every worker, which
ends its flows (reason eof) and reports as usual, so the merged report is
still made; a second signal (past :data:`~mosfw.stopsignals.SIGNAL_GRACE`)
kills the workers at once. A worker that fails (setup or --fail-fast
plugin error) stops the others and the run fails with its error. A worker
that dies (killed, crashed) loses its core's results only: reading a file,
the other cores read to its end (its packets are dropped from then on;
live, they are stopped, as on SIGTERM), and their results are merged and reported as
usual, with the lost core in ``JobResult.lost``; so is a core stopped by a
signal sent to its worker alone (its results cover what it read). Only
when every core died does the run fail (:class:`WorkerError`). No worker
is left behind and nothing waits forever.
"""

from __future__ import annotations

import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, cast

import attrs

from mosfw.engine import Core, EngineError, InputError, PluginError
from mosfw.feed import Feed
from mosfw.jobresult import CoreResult, JobResult, WorkerError
from mosfw.merge import (  # noqa: F401 - TICK_MERGE_WAIT, INPUT_COUNTERS: documented here
    INPUT_COUNTERS,
    TICK_MERGE_WAIT,
    StatsUpdates,
    TickMerger,
    merge_and_report,
    merge_stats,
    overall_status,
    tick_merge_here,
)
from mosfw.plugin_faults import Interrupted
from mosfw.privileges import drop_privileges
from mosfw.records.router import run_records
from mosfw.runconfig import Config, UsageError
from mosfw.stats import CoreCounters, RunStats, sum_by_key
from mosfw.stopsignals import STOP_SIGNALS, StopSignals
from mosfw.workers import (
    Worker,
    call_lifecycle,
    collect_core_results,
    start_worker,
    wake_on_signals,
)

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["CoreResult", "JobResult", "WorkerError", "merge_stats", "run_job"]

#: seconds the workers get to finish after a stop request or a failure
STOP_TIMEOUT = 30.0


def _with_errors(stats: RunStats, n: int) -> RunStats:
    """stats with n more plugin errors (raised outside the cores)."""
    return attrs.evolve(stats, plugin_errors=stats.plugin_errors + n) if n else stats


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
    report still printed); a second signal interrupts at once, unless it
    comes within SIGNAL_GRACE seconds of the first
    (:mod:`mosfw.stopsignals`)."""

    def abort(signum: int) -> None:
        raise Interrupted  # a KeyboardInterrupt no plugin error check swallows

    stops = StopSignals(lambda signum: core.request_stop(), abort)
    stops.install()
    try:
        yield
    finally:
        stops.restore()


def _run_single(config: Config, fail_fast: bool, progress, updates: StatsUpdates) -> JobResult:
    pm = config.pluginmanager
    by: dict[tuple[str, str], int] = {}
    call_lifecycle(config, "mosfw_configure", fail_fast, config, counts=by)
    core = Core(config, pm, core_id=0, shard_count=1, fail_fast=fail_fast)
    core.tick_sink = tick_merge_here(config)
    core.add_plugin_errors(by)
    core.open()
    if config.user:
        drop_privileges(config.user)
    if updates:  # mosfw_stats_update between bursts, next to the progress line

        def on_burst(c: Core) -> None:
            if progress is not None:
                progress(c)
            if updates.due():
                updates.update(_with_errors(c.stats(), updates.errors), [c.counters()])

        progress_hook = on_burst
    else:
        progress_hook = progress
    with _stop_on_signals(core), wake_on_signals(core):
        result = core.run(progress=progress_hook)
    values = collect_core_results(core, pickled=False)
    config.records.close()  # what the sinks hold is sent (or counted lost) before the counters are read
    stats = core.stats()  # counts errors raised by mosfw_core_result too
    if updates:
        updates.update(_with_errors(stats, updates.errors), [core.counters()], final=True)
        stats = _with_errors(stats, updates.errors)
    cores = [CoreResult(0, result.status, result.error, stats, values)]
    stats = merge_and_report(config, cores, stats, fail_fast)
    if core.stdout_closed:  # as with -c N: the caller exits quietly
        raise BrokenPipeError("stdout was closed")
    sink_lost = core.counters().sink_records_lost
    return JobResult(
        result.status, result.error, stats, cores, sink_lost=sink_lost, input_files=result.input_files
    )


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
    """Waits on the workers, passes stop requests on, enforces deadlines.
    ``stop_on_loss``: a core that dies makes the others stop (live); else
    they read the file to its end (``feed``: it stops feeding the dead
    one's ring)."""

    def __init__(
        self,
        workers: list[Worker],
        stop_timeout: float,
        ticks: TickMerger,
        stop_on_loss: bool,
        updates: StatsUpdates,
        same_input: bool,
        feed: Feed | None = None,
    ) -> None:
        self.workers = workers
        self.feed = feed
        self.ticks = ticks
        self.updates = updates
        self.same_input = same_input
        self.stop_timeout = stop_timeout
        self.stop_on_loss = stop_on_loss
        self.deadline: float | None = None
        self.first_failure: Worker | None = None
        self.lost: list[Worker] = []  #: workers that died before reporting, in order
        self.stops = StopSignals(lambda signum: self.stop_all(), self._abort)

    def stop_all(self, signum: int = signal.SIGTERM) -> None:
        """Ask every unfinished worker to finish; start the deadline."""
        if self.deadline is None:
            self.deadline = time.monotonic() + self.stop_timeout
        for w in self.workers:
            if not w.finished:
                w.stop_sent = True
                w.signal(signum)

    def kill_all(self, reason: str) -> None:
        for w in self.workers:
            if w.exit_status is None:
                if not w.finished and not w.kill_reason:
                    w.kill_reason = reason
                w.signal(signal.SIGKILL)

    def _abort(self, signum: int) -> None:  # a second signal, past the grace
        self.kill_all("interrupted twice")
        raise Interrupted  # a KeyboardInterrupt no plugin error check swallows

    def failed(self, w: Worker) -> None:
        if self.first_failure is None:
            self.first_failure = w
        self.stop_all()

    def died(self, w: Worker) -> None:
        self.lost.append(w)
        if self.feed is not None:
            self.feed.drop(w.core)
        if self.stop_on_loss:
            self.stop_all()

    def run(self, progress: Callable | None, view: _ProgressView) -> None:
        from multiprocessing.connection import wait as wait_any  # -c N only: kept off start-up

        pending = {w.conn: w for w in self.workers}
        next_progress = time.monotonic() + 0.5
        while pending:
            # wait() returns those of the objects given that are ready: here Connections
            for conn in cast("list[Connection]", wait_any(list(pending), timeout=0.25)):
                w = pending[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):
                    del pending[conn]
                    conn.close()
                    self._reap(w)
                    if not w.finished:
                        self.died(w)
                    self.ticks.finished(w.core)
                    continue
                except Exception as e:  # noqa: BLE001 - a message that cannot be read
                    w.message = ("error", "crash", f"unreadable message from the worker: {e!r}", None, None)
                    self.failed(w)
                    continue
                if msg[0] == "progress":
                    w.progress = (msg[1], msg[2])
                    w.counters = msg[3]
                    w.progress_at = time.monotonic()
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
            if self.updates.due():
                self.updates.update(*self.counters())
            now = time.monotonic()
            if self.deadline is not None and now > self.deadline:
                self.kill_all(f"did not finish within {self.stop_timeout:g} s of the stop request")
            if progress is not None and now >= next_progress and any(w.progress for w in self.workers):
                progress(view)
                next_progress = now + 0.5

    def counters(self, final: bool = False) -> tuple[RunStats, list[CoreCounters]]:
        """The merged counters (errors raised outside the cores included)
        and each core's, as of the workers' latest reports (``final``: their
        results) for ``mosfw_stats_update``."""
        cores = []
        for w in self.workers:
            c = w.counters or CoreCounters(w.core)
            if final and w not in self.lost and w.message is not None and len(w.message) > 7:
                c = w.message[7]
            cores.append(attrs.evolve(c, lost=True) if w in self.lost else c)
        live = [c.stats for c in cores if not (final and c.lost)]
        stats = merge_stats(live, self.same_input) if live else RunStats()
        return _with_errors(stats, self.updates.errors + self.ticks.errors), cores

    def _reap(self, w: Worker) -> None:
        # the pipe closed: the worker is exiting; give it up to 2 s
        if w.reap(block=False) or (_wait_exit(w.pid, 2.0) and w.reap(block=False)):
            return
        for _ in range(20):
            if w.reap(block=False):
                return
            time.sleep(0.01)
        w.kill_reason = w.kill_reason or "closed its pipe but did not exit"
        w.signal(signal.SIGKILL)
        w.reap(block=True)


def _file_size(path: str | None) -> int:
    """The size of the capture file ``path``; 0 when it is not a regular
    file (a pipe, ``-``) or cannot be read (the worker then says why)."""
    try:
        st = os.stat(path) if path and path != "-" else None
    except OSError:
        return 0
    return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else 0


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


def _live_rehash(config: Config) -> bool:
    from mosfw.tunnels import decap_settings

    return bool(decap_settings(config)["tunnel_live_rehash"])


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
        return WorkerError(
            f"core {w.core} (worker pid {w.pid}) failed: {first}" + (f"\n{rest}" if rest else "")
        )
    how = w.describe_exit()
    if w.kill_reason:
        how = f"{how}: it {w.kill_reason}"
    return WorkerError(
        f"core {w.core} (worker pid {w.pid}) died ({how}) before reporting; the run's results are incomplete"
    )


#: from this many cores on, offline input is read once by the parent's
#: reader thread and fed to the cores (native/feed.c); below, every worker
#: reads the input itself and keeps its shard, as that costs less CPU and
#: wall time at 2 cores (bench/README.md, issue 22); ``MOSFW_FEED=1`` feeds
#: from 2 cores on, ``MOSFW_FEED=0`` never
FEED_MIN_CORES = 4


def _use_feed(cores: int) -> bool:
    forced = os.environ.get("MOSFW_FEED", "")
    if forced in ("0", "1"):
        return forced == "1"
    return cores >= FEED_MIN_CORES


def _run_multi(
    config: Config, fail_fast: bool, progress, stop_timeout: float, updates: StatsUpdates
) -> JobResult:
    n = config.cores
    live = bool(config.interface) and not config.read_file
    same_input = not live
    # the kernel's fanout hashes the outer headers of UDP tunnels: with
    # tunnel_live_rehash every core reads every packet and keeps its shard
    # of the inner 5-tuple instead (docs/encapsulation.md)
    group = _fanout_group() if live and not _live_rehash(config) else 0
    _flush(config.stdout, config.stderr, sys.stdout, sys.stderr)

    if not live:  # what the workers must find when they open the file
        config.read_file_size = _file_size(config.read_file)
    feed = Feed(config, n) if not live and _use_feed(n) else None  # (the input is opened here)
    workers: list[Worker] = []
    ticks = TickMerger(config, n, live)
    sup = _Supervisor(workers, stop_timeout, ticks, live, updates, same_input, feed)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        sup.stops.install()
        for k in range(n):  # progress always: it says how far a core that dies got
            workers.append(
                start_worker(
                    config,
                    k,
                    n,
                    fail_fast,
                    fanout_group=group,
                    progress=True,
                    close_in_child=[w.conn for w in workers],
                    feed=feed,
                )
            )
        if feed is not None:
            feed.start()
    except BaseException:
        sup.kill_all("the run could not start")
        for w in workers:
            w.reap(block=True)
        if feed is not None:
            feed.close()
        sup.stops.restore()
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    files = None
    try:
        sup.run(progress, _ProgressView(config, workers, same_input))
    finally:
        sup.kill_all("was still running when the parent gave up")
        for w in workers:
            w.reap(block=True)
            w.conn.close()
        if feed is not None:
            files = feed.finish()
            feed.close()
        sup.stops.restore()

    # output a worker kept in memory (the parent's stream has no fd)
    for w in workers:
        if w.message is not None:
            out, err = w.message[3:5]
            if out:
                config.stdout.write(out)
            if err:
                config.stderr.write(err)
    if sup.first_failure is not None:
        raise _worker_error(sup.first_failure)
    if len(sup.lost) == n:  # nothing to report
        raise _worker_error(sup.lost[0])
    return _finish_multi(config, workers, sup, same_input, fail_fast, files)


def _finish_multi(
    config: Config,
    workers: list[Worker],
    sup: _Supervisor,
    same_input: bool,
    fail_fast: bool,
    feed_files: list | None = None,
) -> JobResult:
    """Merge what the workers reported (those that died: left out, and
    named in ``JobResult.lost``), call the merge hooks and the report."""
    import pickle

    signalled = sup.stops.first_signal != 0
    cores, lost = [], []
    for w in workers:
        if w in sup.lost:
            lost.append(w.loss(others_stopped=sup.stop_on_loss))
            snap = w.progress[0] if w.progress else RunStats()
            cores.append(CoreResult(w.core, "lost", lost[-1].how, snap, {}))
            continue
        # a worker not lost sent its "result": run() read every pipe to its end, and an error
        # message made _run_multi raise before this
        assert w.message is not None  # noqa: S101 - narrows the type; -O dropping it is harmless
        result, blobs, stop_signal = w.message[1], w.message[2], w.message[6]
        if stop_signal in STOP_SIGNALS and not w.stop_sent and not signalled:
            lost.append(w.loss(stopped_by=stop_signal, packets=result.stats.packets))
        values = {}
        errors = 0
        for name, blob in blobs.items():
            try:
                values[name] = pickle.loads(blob)  # noqa: S301 - our own worker's value, through its pipe
            except Exception as e:  # noqa: BLE001
                errors += 1
                print(
                    f"mosfw: core {w.core}: plugin {name!r}: the value of mosfw_core_result "
                    f"could not be read back: {type(e).__name__}: {e}",
                    file=config.stderr,
                )
        stats = result.stats
        if errors:
            stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + errors)
        cores.append(CoreResult(w.core, result.status, result.error, stats, values))
    ticks = sup.ticks
    ticks.flush(final=True)
    if ticks.late:
        print(
            f"mosfw: {ticks.late} per-second result(s) of a core came more than {TICK_MERGE_WAIT:g} s "
            "after the other cores' and were left out of their second's merge",
            file=config.stderr,
        )
    reported = [c for c in cores if c.status != "lost"]
    stats = merge_stats([c.stats for c in reported], same_input)
    sink_lost = sum_by_key(c.sink_records_lost for c in sup.counters(final=True)[1])
    if sup.updates:  # the final mosfw_stats_update
        sup.updates.update(
            _with_errors(stats, ticks.errors + sup.updates.errors), sup.counters(final=True)[1], final=True
        )
    stats = _with_errors(stats, ticks.errors + sup.updates.errors)
    status, error = overall_status(reported)
    if lost and status != "error" and not signalled:
        status = "incomplete"
    stats = merge_and_report(config, cores, stats, fail_fast)
    if ticks.broken or any(w.message[5] for w in workers if w.message):  # the reader of stdout went away
        raise BrokenPipeError("stdout was closed")
    files: list = feed_files or []  # (the reader's: the input was read once)
    return JobResult(status, error, stats, cores, lost, sink_lost, files)


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
    :raises WorkerError: a worker crashed, or every worker died (one that
        dies while others report is in ``JobResult.lost``).
    """
    if config.cores < 1:
        raise UsageError(f"-c {config.cores}: the number of cores must be at least 1")
    if config.cores > 1 and config.read_file == "-":
        raise UsageError(
            f"-r - (standard input) cannot be shared by {config.cores} cores: -c N reads files "
            "only; use -c 1, or write the capture to a file first"
        )
    with run_records(config):  # -c 1: the sinks open here; -c N: checked, opened by each worker
        updates = StatsUpdates(config, fail_fast)
        updates.start(config.cores)  # mosfw_stats_update: before any core starts (or worker forks)
        if config.cores == 1:
            result = _run_single(config, fail_fast, progress, updates)
        else:
            result = _run_multi(config, fail_fast, progress, stop_timeout, updates)
    _flush(config.stdout)
    return result
