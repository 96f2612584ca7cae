"""Running a configured job: plugins configured, cores run, report made.

Single-process for one core. (Multi-core, one worker process per core,
is tracked as its own issue; ``cores > 1`` is refused until then.)
"""

from __future__ import annotations

import signal

from contextlib import contextmanager
from typing import Callable, Iterator

from mosfw.engine import Core, RunResult
from mosfw.options import Config, UsageError

__all__ = ["run_job"]


@contextmanager
def _stop_on_signals(core: Core) -> Iterator[None]:
    """SIGINT/SIGTERM ask the core to finish (flows end with eof, final
    report still printed); a second signal interrupts at once."""
    seen = []

    def handler(signum, frame):
        if seen:
            raise KeyboardInterrupt
        seen.append(signum)
        core.request_stop()

    old = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        try:
            old[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_job(
    config: Config,
    fail_fast: bool = False,
    progress: Callable[[Core], None] | None = None,
) -> RunResult:
    """Configure the plugins, run the cores, call ``mosfw_report``."""
    pm = config.pluginmanager
    if config.cores != 1:
        raise UsageError(f"-c {config.cores}: multi-core runs are not available yet; use -c 1")
    pm.hook.mosfw_configure(config=config)
    core = Core(config, pm, core_id=0, shard_count=1, fail_fast=fail_fast)
    core.open()
    with _stop_on_signals(core):
        result = core.run(progress=progress)
    pm.hook.mosfw_report(config=config, stats=result.stats)
    try:
        config.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    return result


