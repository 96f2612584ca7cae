"""``mosfw run --dask``: the run spread over Dask (mosfw.archive), with
the same summary, --stats-json and exit codes as a run in one process."""

from __future__ import annotations

import atexit
import json
import os
import signal
import sys
import time

import click

from mosfw.cli.run import (
    EXIT_CORE_LOST,
    EXIT_INPUT_DAMAGED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_PLUGIN_ERRORS,
    EXIT_RECORDS_LOST,
    EXIT_SETUP,
    _summary,
)

#: set when a --dask run has written all its output and closed its cluster
#: (mosfw.cli.main then skips the interpreter's teardown)
RUN_ENDED = False


def exit_without_teardown(code: int | str | None) -> None:
    """End the process at once (os._exit) once a --dask run is over: its
    cluster is closed (no process left behind); the exit handlers run here
    (what the plugins and Dask registered, logging's among them) and the
    standard streams are flushed; what is skipped is the interpreter's
    teardown of the modules Dask imported, ~0.2 s of a run on the bench
    machine (bench/README.md). Only from the console entry point
    (mosfw.cli.main), never in a caller's process."""
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1
    os._exit(code or 0)


def _progress(stream):
    start = time.monotonic()

    def show(done: int, total: int, nbytes: int, total_bytes: int) -> None:
        pct = 100.0 * nbytes / total_bytes if total_bytes else 100.0
        stream.write(
            f"\r\x1b[K[mosfw] {done}/{total} segments  {pct:5.1f}%  {time.monotonic() - start:.1f} s"
        )
        stream.flush()

    return show


def run_dask(
    ctx, config, plugins, address, segments, parts, progress, quiet, stats_json, fail_fast=False
) -> None:
    """Run, report, exit (never returns)."""
    from mosfw.archive import ArchiveError, run_archive
    from mosfw.engine import EngineError, PluginError
    from mosfw.stopsignals import RunStopped, StopSignals

    err = sys.stderr
    files = config.read_files or [config.read_file]
    if "-" in files:
        raise click.UsageError("--dask cuts capture files into time segments: not standard input (-r -)", ctx)
    show = progress if progress is not None else err.isatty()
    # timeouts and partial opens only where the user gave them: the plugins' mosfw_configure
    # may set the others (the tracker: Zeek's), and run_archive() plans the
    # lead-in from the result
    explicit: frozenset[str] = getattr(config, "explicit", frozenset())
    engine = {
        key: getattr(config, key) if key in explicit else None
        for key in (
            "tcp_timeout",
            "tcp_tw_interval",
            "tcp_attempt_delay",
            "tcp_partial_open",
            "udp_timeout",
            "icmp_timeout",
        )
    }
    engine |= {
        "max_concurrency": config.max_concurrency,
        "bpf": config.bpf,
        "verify_checksums": config.verify_checksums,
        "rmem_size": config.rmem_size,
        "rmem_memcap": config.rmem_memcap,
        "no_ring_buffers": config.no_ring_buffers,
    }
    driver = os.getpid()

    def stop(signum: int) -> None:
        # (not in the local cluster's workers, forked with this handler:
        # the cluster's close ends them)
        if os.getpid() == driver:
            raise RunStopped(signum)

    stops = StopSignals(stop, stop)
    stops.install()
    try:
        res = run_archive(
            files,
            plugins,
            dict(config.options),
            address=None if address == "local" else address,
            workers=config.cores,
            segments=segments,
            parts_dir=parts,
            stdout=config.stdout,
            stderr=err,
            progress=_progress(err) if show else None,
            sinks=tuple(config.records.urls) if config.records is not None else (),
            mos=config.mos,  # -f: its engine settings and what plugins read there (local_nets)
            decap=config.decap,  # --tunnel-max-depth ...
            fail_fast=fail_fast,
            **engine,
        )
    except ArchiveError as e:
        if show:
            err.write("\r\x1b[K")
        click.echo(f"mosfw: {e}", err=True)
        ctx.exit(EXIT_CORE_LOST if e.segment is not None else EXIT_SETUP)
    except PluginError as e:  # --fail-fast: a task's plugin raised
        if show:
            err.write("\r\x1b[K")
        click.echo(f"mosfw: {e} (--fail-fast)", err=True)
        ctx.exit(EXIT_PLUGIN_ERRORS)
    except EngineError as e:  # a --sink server that is down (SinkError)
        click.echo(f"mosfw: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours, as in
        # one process (the cluster is closed: the tasks still running end)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        ctx.exit(EXIT_OK)
    except RunStopped as e:  # the cluster is closed, the parts directory removed
        if show:
            err.write("\r\x1b[K")
        click.echo(
            f"mosfw: stopped on request ({signal.Signals(e.signum).name}) before every segment had "
            "ended: the tasks were cancelled and no report was made (the output holds the segments "
            "joined until then)",
            err=True,
        )
        ctx.exit(EXIT_INTERRUPTED)
    finally:
        stops.restore()
    global RUN_ENDED
    RUN_ENDED = True
    if show:
        err.write("\r\x1b[K")
    if not quiet:
        click.echo(_summary(res.stats, res.seconds), err=True)
        task = sum(s.seconds for s in res.segments)
        click.echo(
            f"mosfw: --dask: {len(res.segments)} segments on {len({s.pid for s in res.segments})} worker "
            f"process(es), {task:.2f} s inside tasks, {res.seconds:.2f} s wall",
            err=True,
        )
    if stats_json:
        doc = dict(
            res.stats.asdict(),
            status=res.status,
            seconds=round(res.seconds, 6),
            segments=[
                {"index": s.index, "seconds": round(s.seconds, 6), "pid": s.pid, "packets": s.stats.packets}
                for s in res.segments
            ],
            failed=res.failed,
            sink_records_lost_by_sink=dict(res.sink_lost),
        )
        text = json.dumps(doc, sort_keys=True)
        if stats_json == "-":
            click.echo(text, err=True)
        else:
            with open(stats_json, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
    for msg in res.failed:
        click.echo(f"mosfw: error: {msg} (the run went on)", err=True)
    for name, n in sorted((k, v) for k, v in res.sink_lost.items() if v):
        click.echo(f"mosfw: sink {name}: {n} records lost (not confirmed by the server; see above)", err=True)
    if res.failed:
        ctx.exit(EXIT_INPUT_DAMAGED)
    if any(res.sink_lost.values()):
        ctx.exit(EXIT_RECORDS_LOST)
    if res.stats.plugin_errors:
        ctx.exit(EXIT_PLUGIN_ERRORS)
    ctx.exit(EXIT_OK)
