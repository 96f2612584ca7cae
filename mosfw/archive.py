"""One run over a capture archive spread over a Dask cluster (``--dask``).

The archive (files read as one stream, :mod:`mosfw.inputs`) is cut into
time segments at file boundaries. A segment's task (:func:`run_segment`,
in a Dask worker) reads from a lead-in before its start (the idle timeout
plus the TIME_WAIT interval, rounded out to whole files) and *owns* the
flows whose first packet falls in its segment: the engine tracks the other
flows silently (``mosfw_core_own_window``: no event, no observer, no flow
counter), so that a packet of a flow that began earlier is never taken for
a new flow. Owned flows run to their end, into later files as needed; the
task stops reading once it is past its segment and every flow it owns has
ended. So per-flow output (tracker's records, eventlog's lines of owned
flows) is that of one process reading the whole archive.

Each task writes what its plugins print to ``segment-NNNNN.out`` in the
parts directory (a temporary name, renamed when the task succeeded), so a
task Dask runs again after its worker died leaves nothing twice; the
driver joins the parts in segment order, each as soon as the segments
before it have ended (no part is written when the output is /dev/null).
Each segment plays the part of a core for the merge hooks: its
``mosfw_core_result`` values go to ``mosfw_merge`` (then
``mosfw_report``), its per-second ``mosfw_tick_result`` values to
``mosfw_tick_merge`` (a second belongs to one segment).

From a notebook::

    from mosfw.archive import run_archive
    res = run_archive(["/data/caps"], plugins=["samples/tracker"], workers=4)
    res.stats.packets, res.seconds

The cut (each file's first packet time, the segments and their lead-in)
is :mod:`mosfw.archive_plan`'s; what the run's process joins from the
tasks (their output, their records for the sinks, files plugins opened
with ``Config.open_output``) is :mod:`mosfw.side_outputs`'s. Exactness
rules: docs/archives.md.
"""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

import attrs

from mosfw.archive_plan import (
    INSTALL_HINT,
    ArchiveError,
    ScannedFile,
    Segment,
    default_segments,
    plan_segments,
    scan_files,
)
from mosfw.stats import RunStats

__all__ = [
    "INSTALL_HINT",
    "ArchiveError",
    "ScannedFile",
    "ArchiveResult",
    "Segment",
    "SegmentResult",
    "plan_segments",
    "default_segments",
    "run_archive",
    "run_segment",
    "scan_files",
]


@attrs.frozen
class SegmentJob:
    """Everything a task needs (pickled to the worker)."""

    segment: Segment
    plugins: tuple[str, ...]
    options: dict
    engine: dict  #: tcp_timeout, tcp_tw_interval, max_concurrency, bpf, verify_checksums
    parts_dir: str
    to_sinks: bool = False  #: the run has --sink servers: records kept for them (PartsSink)
    mos: Any = None  #: the run's parsed mos.conf (Config.mos)
    decap: dict = attrs.field(factory=dict)  #: the command line's decapsulation settings (Config.decap)
    fail_fast: bool = False  #: --fail-fast: a plugin's exception ends the task (PluginError)
    discard_output: bool = False  #: the run's output is /dev/null: no part file is written


@attrs.frozen
class SegmentResult:
    """What a task sends back."""

    index: int
    status: str  #: done / error (as RunResult.status)
    error: str
    stats: RunStats
    values: dict  #: plugin name -> pickled mosfw_core_result value
    ticks: list  #: (second, {plugin name: pickled mosfw_tick_result value}) in time order
    input_files: list  #: mosfw.inputs.InputFile of the files the task read
    part: str  #: the output file it wrote ("" when the run's output is /dev/null)
    seconds: float  #: wall time inside the task
    pid: int  #: the worker process
    side_outputs: list = attrs.field(factory=list)  #: (PATH, part file): Config.open_output's
    record_parts: list = attrs.field(factory=list)  #: (stream, part file): records for the sinks
    counters: Any = None  #: its CoreCounters (events, plugin errors), for mosfw_stats_update


@attrs.frozen
class ArchiveResult:
    """The merged result of :func:`run_archive`."""

    status: str  #: done, or error (a file of the archive failed: see files)
    stats: RunStats  #: counters summed over the segments (each counts its own window)
    segments: list[SegmentResult]  #: in segment order
    files: list  #: ScannedFile of every file, in read order
    seconds: float  #: wall time of the whole run
    failed: list[str]  #: messages of files that could not be read
    sink_lost: dict = attrs.field(factory=dict)  #: records the run's --sink servers lost, by sink


def _plugin_manager(plugins: Sequence[str], options: dict) -> tuple[Any, dict]:
    from mosfw.manager import MosfwPluginManager
    from mosfw.runconfig import OptionParser

    pm = MosfwPluginManager()
    for spec in plugins:
        pm.load(spec)
    parser = OptionParser()
    pm.add_options(parser)
    pm.check()
    opts = {}
    for o in parser.options:
        d = o.default
        opts[o.name] = None if callable(d) or type(d).__name__ == "Sentinel" else d
    opts.update(options)
    return pm, opts


def run_segment(job: SegmentJob) -> SegmentResult:
    """A Dask task: run one segment in this process (see the module's
    docstring); the plugins' output goes to the segment's part file,
    renamed into place only when the segment finished (to /dev/null, and
    no part, when the run's output goes there)."""
    from mosfw.engine import Core
    from mosfw.runconfig import Config
    from mosfw.workers import call_lifecycle, collect_core_results, pickle_values

    t_start = time.monotonic()
    seg = job.segment
    pm, opts = _plugin_manager(job.plugins, job.options)
    part = Path(job.parts_dir) / f"segment-{seg.index:05d}.out"
    tmp = part.with_name(f".{part.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    ticks: list = []
    # whole lines in each write(2): the tasks of a worker's siblings write
    # to the same stderr (print() writes a message and its newline apart)
    from mosfw.linestream import line_stream, stream_fd

    fd = stream_fd(sys.stderr)
    err = line_stream(fd, sys.stderr, line_buffering=True) if fd is not None else sys.stderr
    with open(os.devnull if job.discard_output else tmp, "w", encoding="utf-8") as out:
        config = Config(
            read_file=seg.files[0],
            read_files=list(seg.files),
            cores=1,
            options=opts,
            pluginmanager=pm,
            stdout=out,
            stderr=err,
            explicit=frozenset(job.engine),  # as settled in run_archive(): kept
            mos=job.mos,
            decap=dict(job.decap),
            **job.engine,
        )
        config.segment = (seg.index, seg.t0, seg.t1)
        config.parts_dir = job.parts_dir
        if job.to_sinks:  # kept for the run's sinks, sent by the run's process
            from mosfw.records import Records

            config.records = Records([f"parts:{job.parts_dir}?segment={seg.index}"], internal=True)
            config.records.open(config, 0)
        by: dict[tuple[str, str], int] = {}
        call_lifecycle(config, "mosfw_configure", job.fail_fast, config, counts=by)
        core = Core(config, pm, core_id=0, shard_count=1, fail_fast=job.fail_fast)
        core.tick_sink = lambda c, ts, values: ticks.append(
            (ts, pickle_values(c, "mosfw_tick_result", values))
        )
        core.add_plugin_errors(by)
        core.open()
        core.own_window(seg.t0, seg.t1)
        result = core.run()
        values = collect_core_results(core, pickled=True)
        stats = core.stats()
        counters = core.counters()
        # (no fsync: the rename below guards against a worker that dies,
        # which is what Dask retries; an OS crash loses the run anyway, and
        # the joined output is not synced either. It cost 0.1 s a 300 MB part.)
        out.flush()
        err.flush()
    from mosfw.inputs import archive_report
    from mosfw.side_outputs import close_side_outputs

    side = close_side_outputs(config)
    kept = []
    if config.records is not None:
        config.records.close()
        kept = config.records.sinks[0].files

    if archive_report(result.input_files)["overlaps"]:
        tmp.unlink(missing_ok=True)
        raise ArchiveError(
            f"segment {seg.index}: files overlap in time; --dask needs files that follow one "
            "another (a rotated capture): read overlapping files without --dask"
        )
    if not job.discard_output:
        os.replace(tmp, part)
    return SegmentResult(
        seg.index,
        result.status,
        result.error,
        stats,
        values,
        ticks,
        result.input_files,
        "" if job.discard_output else str(part),
        time.monotonic() - t_start,
        os.getpid(),
        side,
        kept,
        attrs.evolve(counters, core=seg.index),
    )


#: engine settings a plugin may change in mosfw_configure, which decide
#: how long a flow lives (and so a segment's lead-in)
_TIMEOUTS = ("tcp_timeout", "tcp_tw_interval", "tcp_attempt_delay", "udp_timeout", "icmp_timeout")


def _idle_timeout(config: Any, pm: Any) -> float:
    """The longest idle timeout of the protocols the run tracks (TCP's,
    and UDP's / ICMP's when a plugin asked for them: mosfw_protocols); the
    engine's segment mode uses the same (native/core_api.c)."""
    from mosfw.engine.protocols import plugin_protocols

    asked = set().union(*plugin_protocols(pm, config).values())
    idle = float(config.tcp_timeout)
    if asked & {"udp", "other"}:
        idle = max(idle, float(config.udp_timeout))
    if "icmp" in asked:
        idle = max(idle, float(config.icmp_timeout))
    return idle


def _check_exact(engine: dict) -> None:
    if float(engine.get("tcp_timeout", 30.0)) <= 0:
        raise ArchiveError(
            "--dask cannot split this run exactly: tcp_timeout 0 (no idle timeout) lets a flow stay "
            "open across any lead-in; give an idle timeout, or run without --dask"
        )


def _segment_error(seg: Segment, e: BaseException) -> ArchiveError:
    kind = type(e).__name__
    if kind == "KilledWorker":
        return ArchiveError(
            f"segment {seg.index} (from {seg.t0:.6f} to {seg.t1:.6f}, files from {seg.files[0]!r}) "
            f"killed every worker that ran it; its results are missing ({e})",
            seg.index,
        )
    if isinstance(e, ArchiveError):
        return ArchiveError(str(e), seg.index)
    return ArchiveError(f"segment {seg.index} failed: {kind}: {e}", seg.index)


def run_archive(
    inputs: Sequence[str | os.PathLike[str]],
    plugins: Sequence[str] = (),
    options: dict | None = None,
    *,
    address: str | None = None,
    workers: int = 2,
    segments: int | None = None,
    parts_dir: str | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    progress: Callable[[int, int, int, int], None] | None = None,
    sinks: Sequence[str] = (),
    mos: Any = None,
    decap: dict | None = None,
    fail_fast: bool = False,
    **engine: Any,
) -> ArchiveResult:
    """Run ``plugins`` over a capture archive on Dask and merge.

    :param inputs: files and directories (as ``-r``).
    :param plugins: plugin specs (as ``-p``: a name, a .py file, an app folder, a module).
    :param options: plugin options by destination name (``{"conn_log": ...}``).
    :param address: a Dask scheduler (``tcp://host:8786``); None starts a
        ``LocalCluster`` of ``workers`` processes (forked from this one:
        :mod:`mosfw.dask_cluster`), closed before this returns.
    :param segments: time segments (default: :func:`default_segments`:
        one a worker, up to 4 while the lead-ins stay small; at most one a file).
    :param parts_dir: where tasks write their output (shared by every
        worker: on a cluster, a shared file system); default: a temporary
        directory, removed at the end.
    :param stdout: where the joined output goes (default sys.stdout).
    :param progress: called as segments finish: ``(done, total, bytes_done, bytes_total)``.
    :param sinks: ``--sink`` URLs for the plugins' records (default: JSON lines
        on ``stdout``): opened here first (SinkError: a server that is down);
        the tasks keep their records, sent from here in segment order once
        every segment has finished, so each record reaches a sink once.
    :param mos: a parsed mos.conf (``-f``: :func:`mosfw.mosconf.load_config`)
        and ``decap``: decapsulation settings by mos.conf key (the command
        line's ``--tunnel-*``), for every task as for one process.
    :param fail_fast: ``--fail-fast``: a plugin's first exception in a task
        ends the run (:class:`mosfw.engine.PluginError`, the others cancelled).
    :param engine: ``tcp_timeout``, ``tcp_tw_interval``, ``tcp_attempt_delay``,
        ``max_concurrency``, ``bpf``, ``verify_checksums`` (otherwise the
        engine's defaults, or what the plugins set in ``mosfw_configure``:
        the tracker's Zeek timeouts; the lead-in follows those).
    :raises ArchiveError: the split cannot be exact, Dask is missing, the
        scheduler at ``address`` cannot be reached, or a segment failed
        (named).
    """
    from mosfw.dask_cluster import dask_client
    from mosfw.inputs import expand_inputs
    from mosfw.merge import StatsUpdates, merge_and_report, merge_stats
    from mosfw.runconfig import Config
    from mosfw.runner import CoreResult
    from mosfw.side_outputs import append_part, append_side_outputs, replay_records
    from mosfw.workers import call_lifecycle

    t_start = time.monotonic()
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    engine = {k: v for k, v in engine.items() if v is not None}
    _check_exact(engine)
    plugin_specs = tuple(str(Path(p).resolve()) if os.path.exists(p) else str(p) for p in plugins)
    files = scan_files(expand_inputs([os.fspath(p) for p in inputs]))
    readable = [f.path for f in files if f.state == "unread"]
    pm, opts = _plugin_manager(plugin_specs, dict(options or {}))
    to_sinks = any(u not in ("stdout", "-") for u in sinks)
    config = Config(
        read_file=readable[0] if readable else "",
        cores=1,
        options=opts,
        pluginmanager=pm,
        stdout=stdout,
        stderr=stderr,
        explicit=frozenset(engine),
        segmented=True,
        mos=mos,
        decap=dict(decap or {}),
        **engine,
    )
    if to_sinks:  # (opened below, before any task)
        from mosfw.records import Records

        config.records = Records(list(sinks))
    # the plugins may set the engine's timeouts here (the tracker takes
    # Zeek's 300 s where the user gave none): the lead-in follows what the
    # tasks will run with, and the tasks get exactly these values
    call_lifecycle(config, "mosfw_configure", fail_fast, config)
    for key in _TIMEOUTS:
        engine[key] = getattr(config, key)
    _check_exact(engine)
    lead_in = _idle_timeout(config, pm) + float(config.tcp_tw_interval)
    plan = plan_segments(files, segments or default_segments(files, workers, lead_in), lead_in)
    if not plan:
        raise ArchiveError("no capture file of the archive holds a packet that can be read")
    own_parts = parts_dir is None
    discard = _is_devnull(stdout)
    parts = Path(parts_dir or tempfile.mkdtemp(prefix=".mosfw-dask-", dir="."))
    try:
        parts.mkdir(parents=True, exist_ok=True)
        if to_sinks:  # a server that is down: before any task (the run's own sinks: one core's)
            config.records.open(config, 0)
        config.cores = len(plan)
        # mosfw_stats_update (its docstring): once before the tasks (the local
        # cluster's workers are forked after: a plugin that listens closes its
        # copy in mosfw_configure), as segments end, and once at the end
        updates = StatsUpdates(config, fail_fast)
        updates.start(len(plan))
        with dask_client(address, workers, stdout, stderr) as client:
            jobs = [
                SegmentJob(
                    s,
                    plugin_specs,
                    dict(options or {}),
                    engine,
                    str(parts.resolve()),
                    to_sinks,
                    mos,
                    config.decap,
                    fail_fast,
                    discard,
                )
                for s in plan
            ]

            def join(r: SegmentResult) -> None:
                if r.part:
                    append_part(r.part, stdout)

            # joined in time order, each part once, as soon as the segments
            # before it have ended; the output is complete here, before the
            # cluster's close
            ordered = _run_segments(client, jobs, progress, updates, join)
            stdout.flush()
            append_side_outputs(r.side_outputs for r in ordered)  # (--http-log PATH ...)
            if to_sinks:
                replay_records(config.records, (r.record_parts for r in ordered))
        _merge_ticks(config, ordered)
        cores = [
            CoreResult(r.index, r.status, r.error, r.stats, {k: pickle.loads(v) for k, v in r.values.items()})  # noqa: S301 - our own task's values
            for r in ordered
        ]
        stats = merge_stats([r.stats for r in ordered], same_input=False)
        if updates:
            updates.update(stats, _counters(ordered, len(plan)), final=True)
            stats = attrs.evolve(stats, plugin_errors=stats.plugin_errors + updates.errors)
        # (the plugins' mosfw_merge may read files their tasks left in the
        # parts directory: it is removed after)
        stats = merge_and_report(config, cores, stats, fail_fast)
    finally:
        if to_sinks:
            config.records.close()  # sent, or counted lost (after mosfw_report's records)
        if own_parts:
            shutil.rmtree(parts, ignore_errors=True)
    failed = sorted({f.error for r in ordered for f in r.input_files if f.state == "failed"})
    failed += [f.error for f in files if f.state == "failed" and f.error not in failed]
    lost = config.records.lost() if to_sinks else {}
    return ArchiveResult(
        "error" if failed else "done", stats, ordered, files, time.monotonic() - t_start, failed, lost
    )


def _is_devnull(stream: TextIO) -> bool:
    """Is ``stream`` /dev/null (the same character device)?"""
    try:
        st, null = os.fstat(stream.fileno()), os.stat(os.devnull)
    except (AttributeError, OSError, ValueError):
        return False
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev


def _run_segments(
    client: Any,
    jobs: list[SegmentJob],
    progress: Callable | None,
    updates: Any,
    join: Callable[[SegmentResult], None],
) -> list[SegmentResult]:
    """Submit a task a segment, wait for them all (progress and, when due,
    ``mosfw_stats_update`` as they end); the results in segment order.
    ``join`` is called with each result in segment order, as soon as it
    and every one before it have ended. The first failure cancels the
    others."""
    from distributed import as_completed

    from mosfw.engine import PluginError
    from mosfw.stopsignals import RunStopped

    token = uuid.uuid4().hex[:8]
    futures = {
        client.submit(
            run_segment, job, key=f"mosfw-segment-{job.segment.index:05d}-{token}", pure=False
        ): job.segment
        for job in jobs
    }
    results: dict[int, SegmentResult] = {}
    total_bytes = sum(s.own_bytes for s in futures.values())
    done_bytes = joined = 0
    for fut in as_completed(futures):
        seg = futures[fut]
        try:
            res = fut.result()
        except BaseException as e:
            for f in futures:
                f.cancel()
            if isinstance(e, (PluginError, RunStopped)):  # --fail-fast (as in one process), a stop signal
                raise
            raise _segment_error(seg, e) from e
        results[seg.index] = res
        while joined < len(jobs) and jobs[joined].segment.index in results:
            join(results[jobs[joined].segment.index])
            joined += 1
        done_bytes += seg.own_bytes
        if progress is not None:
            progress(len(results), len(futures), done_bytes, total_bytes)
        if updates.due() and len(results) < len(futures):
            from mosfw.merge import merge_stats

            done = list(results.values())
            updates.update(merge_stats([r.stats for r in done], same_input=False), _counters(done, len(jobs)))
    return [results[job.segment.index] for job in jobs]


def _counters(done: list[SegmentResult], n: int) -> list:
    """A CoreCounters a segment (those not finished yet: 0), in order."""
    from mosfw.stats import CoreCounters

    have = {r.index: r.counters for r in done if r.counters is not None}
    return [have.get(k) or CoreCounters(k) for k in range(n)]


def _merge_ticks(config: Any, ordered: list[SegmentResult]) -> None:
    """``mosfw_tick_merge`` once per second, in time order (a second is
    one segment's: each plugin gets a one-element list, as with one core)."""
    callers = config.pluginmanager.direct_callers("mosfw_tick_merge")
    if not callers:
        return
    for r in ordered:
        for ts, blobs in r.ticks:
            for name, fn in callers:
                if name in blobs:
                    fn(config, ts, [pickle.loads(blobs[name])])  # noqa: S301 - our own task's values
