"""What a run returns: :class:`JobResult` (the whole run) and a
:class:`CoreResult` per core, and :class:`WorkerError` when every worker
died. Made by :mod:`mosfw.runner`, re-exported there."""

from __future__ import annotations

import attrs

from mosfw.engine import EngineError, RunResult
from mosfw.stats import RunStats
from mosfw.workers import CoreLoss

__all__ = ["CoreResult", "JobResult", "WorkerError"]


class WorkerError(EngineError):
    """A worker process died or failed unexpectedly; the message names
    its core."""


@attrs.frozen
class CoreResult:
    """What one core of a run reported (one per core, in core order)."""

    id: int  #: the core
    status: str  #: done / error / stopped (as RunResult.status), or lost: its worker died
    error: str  #: read error message when status == error; how it died when lost
    stats: RunStats  #: that core's counters (lost: its last progress report's, not merged)
    values: dict  #: every plugin's ``mosfw_core_result`` value, by plugin name


class JobResult(RunResult):
    """A :class:`~mosfw.engine.RunResult` for the whole run (stats merged
    over the cores that reported) plus ``cores``: the :class:`CoreResult`
    of each core, ``sink_lost``: records lost by each sink but stdout (by
    name, 0 included), and ``lost``: a :class:`~mosfw.workers.CoreLoss` for
    each core whose results are missing (its worker died) or partial (it
    was stopped by a signal sent to it alone). ``status`` is
    ``incomplete`` when there is one and the run was neither stopped on
    request nor ended by a read error."""

    def __init__(
        self,
        status: str,
        error: str,
        stats: RunStats,
        cores: list[CoreResult],
        lost: list[CoreLoss] | None = None,
        sink_lost: dict[str, int] | None = None,
        input_files: list | None = None,
    ) -> None:
        super().__init__(status, error, stats, input_files)
        self.cores = cores
        self.lost = lost or []
        self.sink_lost = sink_lost or {}
