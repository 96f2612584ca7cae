"""prometheus: ``/metrics`` for a running sensor (prometheus_client).

``mosfw run -i eth0 -c 4 -p prometheus --metrics-addr 127.0.0.1:9464``

Serves the engine's counters, merged over the cores and per core, for the
whole run, live or offline, from the process that merges the cores (the
parent with ``-c N``): it implements ``mosfw_stats_update``, which mosfw
calls there before the cores start, about twice a second while they run,
and once with the final counters. The names and labels are an interface
(``metrics.METRICS``, docs/metrics.md); the Grafana dashboard is
``dashboard.json`` next to this file.

Options:

``--metrics-addr HOST:PORT``
    where to listen (default ``127.0.0.1:9464``; ``[::1]:9464`` for IPv6,
    ``0.0.0.0:9464`` for every interface, port 0 for any free port). The
    address is printed on stderr. An address that cannot be listened on
    stops the run before it starts (exit 2).
``--metrics-linger SECONDS``
    after the run ended (summary and ``--stats-json`` written), keep
    serving the final values this long before exiting, so that a scraper
    reads them (default 0: exit at once). SIGINT/SIGTERM end the wait.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import mosfw

from .metrics import EXPORTED, METRICS, Collector

__all__ = [
    "mosfw_addoption",
    "mosfw_stats_update",
    "mosfw_configure",
    "Exporter",
    "parse_addr",
    "METRICS",
    "EXPORTED",
    "DEFAULT_ADDR",
    "DEFAULT_LINGER",
]

DEFAULT_ADDR = "127.0.0.1:9464"
#: seconds the final values are served after the run (--metrics-linger)
DEFAULT_LINGER = 0.0


def parse_addr(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT``) -> (host, port); UsageError if not."""
    host, sep, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise mosfw.UsageError(
            f"--metrics-addr {value!r}: give HOST:PORT (127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464)"
        )
    return host, int(port)


class Exporter:
    """The HTTP server and what it serves; lives in the process that
    merges the cores."""

    def __init__(self) -> None:
        self.collector = Collector()
        self.server: Any = None
        self.pid = 0  # the process the server runs in
        self.linger = DEFAULT_LINGER
        self.finished = False
        self.config: Any = None  # the run being served
        self._atexit = False

    def start(self, config: Any) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        host, port = parse_addr(config.getoption("metrics_addr") or DEFAULT_ADDR)
        linger = config.getoption("metrics_linger")
        self.linger = DEFAULT_LINGER if linger is None else float(linger)
        if not self.linger >= 0:
            raise mosfw.UsageError(f"--metrics-linger {linger}: give a number of seconds >= 0")
        registry = CollectorRegistry(auto_describe=True)
        registry.register(self.collector)
        try:
            self.server, _thread = start_http_server(port, addr=host, registry=registry)
        except OSError as e:
            raise mosfw.UsageError(
                f"--metrics-addr {host}:{port}: cannot listen there: {e.strerror or e}"
            ) from None
        self.pid = os.getpid()
        h, p = self.server.server_address[:2]
        shown = f"[{h}]" if ":" in h else h
        print(f"mosfw: prometheus: serving http://{shown}:{p}/metrics", file=config.stderr, flush=True)
        if not self._atexit:
            import atexit

            atexit.register(self.close)
            self._atexit = True

    def drop_inherited(self) -> None:
        """In a forked worker: close this process's copy of the listening
        socket (the parent serves)."""
        if self.server is not None and self.pid != os.getpid():
            try:
                self.server.socket.close()
            except OSError:
                pass
            self.server = None

    def close(self) -> None:
        """At exit of the serving process: linger (the final values stay
        up), then stop the server."""
        if self.server is None or self.pid != os.getpid():
            return
        if self.finished and self.linger > 0:
            _wait_or_signal(self.linger)
        self.stop()

    def stop(self) -> None:
        """Stop serving (in the process that serves)."""
        if self.server is not None and self.pid == os.getpid():
            self.server.shutdown()
            self.server.server_close()
            self.server = None


def _wait_or_signal(seconds: float) -> None:
    """Sleep ``seconds``; SIGINT or SIGTERM end it at once."""
    stop: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    try:
        old = {s: signal.signal(s, lambda signum, frame: stop.append(signum)) for s in sigs}
    except ValueError:  # not the main thread
        old = {}
    try:
        end = time.monotonic() + seconds
        while not stop and time.monotonic() < end:
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    sys.stderr.flush()


_exporter = Exporter()


@mosfw.hookimpl
def mosfw_addoption(parser):
    parser.addoption(
        "--metrics-addr",
        metavar="HOST:PORT",
        default=None,
        envvar="MOSFW_METRICS_ADDR",
        help=f"prometheus: serve /metrics on HOST:PORT (default {DEFAULT_ADDR}; port 0: any free port).",
    )
    parser.addoption(
        "--metrics-linger",
        metavar="SECONDS",
        type=float,
        default=None,
        envvar="MOSFW_METRICS_LINGER",
        help="prometheus: after the run, keep serving the final values SECONDS long "
        f"(default {DEFAULT_LINGER:g}); SIGINT/SIGTERM end it.",
    )


@mosfw.hookimpl
def mosfw_stats_update(config, stats, cores, final):
    ex = _exporter
    if ex.config is not config:  # the first call of a run: before any core starts
        ex.stop()  # an earlier run's, in this process (library use)
        ex.config = config
        ex.finished = False
        ex.start(config)
    live = bool(config.interface) and not config.read_file
    ex.finished = bool(final)
    ex.collector.set(stats, cores, shared_input=len(cores) > 1 and not live, finished=ex.finished)


@mosfw.hookimpl
def mosfw_configure(config):
    _exporter.drop_inherited()  # -c N: in each worker, after the fork
