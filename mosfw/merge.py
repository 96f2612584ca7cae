"""Merging what the cores of a run report: engine counters
(:func:`merge_stats`), each plugin's ``mosfw_core_result`` values
(``mosfw_merge``, then ``mosfw_report``), the per-second values of
``mosfw_tick_result`` (``mosfw_tick_merge``: :class:`TickMerger` with
``-c N``, :func:`tick_merge_here` with one core) and the running
counters (``mosfw_stats_update``: :class:`StatsUpdates`). Used by
:mod:`mosfw.runner`; split from it by concern.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from mosfw.engine import Core, raised_at
from mosfw.plugin_faults import check_interrupt, describe
from mosfw.runconfig import Config
from mosfw.stats import CoreCounters, RunStats
from mosfw.workers import call_lifecycle

if TYPE_CHECKING:
    from mosfw.runner import CoreResult

__all__ = [
    "INPUT_COUNTERS",
    "STATS_UPDATE_EVERY",
    "StatsUpdates",
    "TICK_MERGE_WAIT",
    "TickMerger",
    "merge_and_report",
    "merge_stats",
    "overall_status",
    "tick_merge_here",
]

#: live with -c N: seconds a second's per-core results (mosfw_tick_result)
#: wait for the cores that have not reported it yet before it is merged
#: without them (reading a file, a second waits for every core)
TICK_MERGE_WAIT = 1.5

#: seconds of wall time between two ``mosfw_stats_update`` calls while
#: the cores run
STATS_UPDATE_EVERY = 0.5

#: counters of the input itself: offline, every core counts the whole
#: input's (the -c N reader's, native/feed.c), so the merged
#: value is one reading's
INPUT_COUNTERS = tuple(
    f
    for f in (
        "packets",
        "bytes",
        "tcp_packets",
        "non_tcp",
        "malformed",
        "truncated",
        "unsupported_link",
        "fragments",
        "bad_checksum",
        # every core reassembles every fragment (docs/fragments.md)
        "frag_reassembled",
        "frag_timeouts",
        "frag_cap_drops",
        "frag_overlaps",
        "frag_conflicts",
        "frag_malformed",
        "frag_pending",
        "frag_mem_peak",
    )
    if f in attrs.fields_dict(RunStats)
)


def merge_stats(per_core: list[RunStats], same_input: bool) -> RunStats:
    """Sum per-core counters. ``same_input``: every core read the same
    file, so the input counters are taken from the core that read the
    most (they are equal when all read to the end) instead of summed."""
    total = per_core[0]
    for s in per_core[1:]:
        total = total + s
    if same_input and len(per_core) > 1:
        total = attrs.evolve(total, **{f: max(getattr(s, f) for s in per_core) for f in INPUT_COUNTERS})
        if "tunnels" in attrs.fields_dict(RunStats):  # input counters too: the most-read core's
            total = attrs.evolve(total, tunnels=max(per_core, key=lambda s: s.packets).tunnels)
        if "ip_protos" in attrs.fields_dict(RunStats):
            total = attrs.evolve(total, ip_protos=max(per_core, key=lambda s: s.packets).ip_protos)
    return total


def overall_status(results: list[CoreResult]) -> tuple[str, str]:
    for r in results:
        if r.status == "error":
            return "error", r.error
    if any(r.status == "stopped" for r in results):
        return "stopped", ""
    return "done", ""


def merge_and_report(
    config: Config, cores: list[CoreResult], stats: RunStats, fail_fast: bool = False
) -> RunStats:
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


def tick_merge_here(config: Config) -> Callable:
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


class TickMerger:
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
            complete = all(
                c in got
                or c in self.done
                or self.latest.get(c, ts) > ts
                # live, a core that has seen no packet yet does not tick
                or (self.wait is not None and c not in self.latest)
                for c in range(self.n)
            )
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
                    results.append(None if blob is None else pickle.loads(blob))  # noqa: S301 - our own worker's value, through its pipe
                except Exception as e:  # noqa: BLE001
                    self.errors += 1
                    results.append(None)
                    print(
                        f"mosfw: core {c}: plugin {name!r}: the value of mosfw_tick_result could not "
                        f"be read back: {type(e).__name__}: {e}",
                        file=self.config.stderr,
                    )
            try:
                fn(self.config, ts, results)
            except BrokenPipeError:
                self.broken = True
            except BaseException as e:  # noqa: BLE001 - reported, the run goes on
                self.errors += 1
                _report_merge_error(self.config, name, "mosfw_tick_merge", e)


class StatsUpdates:
    """The calls of ``mosfw_stats_update`` (when it fires: its docstring):
    :meth:`start` before the cores, :meth:`update` while they run (when
    :meth:`due`) and once with ``final``. An exception is reported once
    per plugin and counted in ``errors`` (a ``UsageError`` from
    :meth:`start` stops the run; with ``fail_fast`` any exception does,
    as a :class:`~mosfw.engine.PluginError`)."""

    HOOK = "mosfw_stats_update"

    def __init__(self, config: Config, fail_fast: bool) -> None:
        self.config = config
        self.fail_fast = fail_fast
        self.callers = config.pluginmanager.direct_callers(self.HOOK)
        self.errors = 0  #: exceptions raised by the implementations
        self._reported: set[str] = set()
        self._next = 0.0

    def __bool__(self) -> bool:
        return bool(self.callers)

    def start(self, n: int) -> None:
        """The first call: every counter 0, for ``n`` cores."""
        if self.callers:
            zero = [CoreCounters(k) for k in range(n)]
            self.errors += call_lifecycle(
                self.config, self.HOOK, self.fail_fast, self.config, RunStats(), zero, False
            )
            self._next = time.monotonic() + STATS_UPDATE_EVERY

    def due(self) -> bool:
        """True when the next periodic call is due."""
        return bool(self.callers) and time.monotonic() >= self._next

    def update(self, stats: RunStats, cores: list[CoreCounters], final: bool = False) -> None:
        from mosfw.engine import PluginError
        from mosfw.manager import raised_by

        self._next = time.monotonic() + STATS_UPDATE_EVERY
        for name, fn in self.callers:
            try:
                fn(self.config, stats, cores, final)
            except BaseException as e:
                check_interrupt(e)  # a real Ctrl-C goes on up
                name = raised_by(e, name)
                if self.fail_fast:
                    raise PluginError(f"plugin {name!r} raised in {self.HOOK}: {describe(e)}") from e
                self.errors += 1
                if name not in self._reported:
                    self._reported.add(name)
                    print(
                        f"mosfw: plugin {name!r} raised in {self.HOOK}: {describe(e)}{raised_at(e)} "
                        f"(further errors from it in {self.HOOK} are only counted)",
                        file=self.config.stderr,
                    )
