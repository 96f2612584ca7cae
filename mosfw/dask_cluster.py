"""The Dask client of a ``--dask`` run (:func:`mosfw.archive.run_archive`):
the scheduler at an address, or a ``LocalCluster`` the run starts and
stops itself.

The local cluster's worker processes are *forked* from the run's process
(Dask's ``distributed.worker.multiprocessing-method``) where the platform
has ``fork`` and the user's Dask config still has Dask's default
(``spawn``): the run has imported mosfw, Dask and its ``-p`` plugins
already, so a forked worker has them at once, as the ``-c N`` workers do
(mosfw.workers). Spawned workers start a new interpreter and import all
of it again: on the 2-core bench machine that took the cluster start from
~0.2 s to ~0.7 s and its close from ~0.04 s to ~0.17 s (bench/README.md).
The setting holds for the whole run, not only the start: a worker that
dies is started again by its nanny, and is forked too. The local cluster
has no dashboard, and its workers take no statistical profile (Dask's
``distributed.worker.profile.enabled``), which only the dashboard shows.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Iterator
from typing import Any

#: Dask's default start method for worker processes (where the user has
#: not chosen one, the local cluster forks instead)
DASK_DEFAULT_METHOD = "spawn"


def local_start_method(dask_config: Any) -> str:
    """How the local cluster starts its worker processes: ``fork`` where
    the platform has it and the user kept Dask's default, else what the
    user's Dask config says."""
    chosen = dask_config.get("distributed.worker.multiprocessing-method", DASK_DEFAULT_METHOD)
    if chosen == DASK_DEFAULT_METHOD and "fork" in multiprocessing.get_all_start_methods():
        return "fork"
    return chosen


@contextlib.contextmanager
def dask_client(address: str | None, workers: int, *streams: Any) -> Iterator[Any]:
    """A ``distributed.Client`` for the run, closed (with the cluster the
    run started) when the block ends. ``streams`` are flushed before the
    local workers are forked (a forked process flushes what it inherited
    in its buffers when it exits: the output would be written twice).

    :raises mosfw.archive.ArchiveError: Dask is not installed (the message
        says how to install it).
    """
    from mosfw.archive import INSTALL_HINT, ArchiveError

    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArchiveError(INSTALL_HINT) from None
    if address:
        try:
            client = Client(address)
        except (OSError, TimeoutError, ValueError) as e:  # refused, unknown host, timed out; not an address
            tries = " (how long it tries: Dask's distributed.comm.timeouts.connect)"
            wait = "" if isinstance(e, ValueError) else tries
            raise ArchiveError(f"--dask: cannot reach the Dask scheduler at {address}: {e}{wait}") from None
        try:
            yield client
        finally:
            client.close()
        return
    for stream in (sys.stdout, sys.stderr, *streams):
        with contextlib.suppress(AttributeError, OSError, ValueError):
            stream.flush()
    settings = {
        # one segment at a time on each worker: a worker that dies takes
        # only the segment it was running with it (the others are not suspected)
        "distributed.scheduler.worker-saturation": 1.0,
        "distributed.worker.multiprocessing-method": local_start_method(dask.config),
        # no dashboard, so nobody reads the workers' statistical profile:
        # not taken (a thread sampling every thread's stack every 10 ms cost
        # ~0.1 s of CPU per 5 s segment on the bench archive, bench/README.md)
        "distributed.worker.profile.enabled": False,
    }
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
        )
        try:
            client = Client(cluster)
            try:
                yield client
            finally:
                client.close()
        finally:
            cluster.close()
