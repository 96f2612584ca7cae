"""The run's records object: what plugins emit into, and the sinks it
fans out to (``--sink URL``, repeatable)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from mosfw.records.base import Sink, SinkError, SinkURL

__all__ = ["FLUSH_TIMEOUT", "Records", "StreamOutput", "parse_sink", "run_records", "sink_class"]

#: entry point group of sink classes, by URL scheme
ENTRY_POINT_GROUP = "mosfw.sinks"
#: seconds the end of a run waits for each sink to send what it holds
FLUSH_TIMEOUT = 10.0
#: where a scheme's sink comes from when it is not installed
_PACKAGES = {
    "redis": "mosfw-redis (pip install ./plugins/redis_sink)",
    "kafka": "mosfw-kafka (pip install ./plugins/kafka_sink)",
}


def sink_class(scheme: str) -> type[Sink]:
    """The sink class of a URL scheme: ``stdout`` and ``file`` built in,
    others from the ``mosfw.sinks`` entry points (looked up once per
    scheme; :mod:`mosfw.records.entry_points` reads the installed
    distributions' entry_points.txt without importing
    :mod:`importlib.metadata`, which is only asked about a scheme it
    does not find). ValueError when none."""
    from mosfw.records.sinks import FileSink, PartsSink, StdoutSink

    if scheme in ("stdout", "-"):
        return StdoutSink
    if scheme == "file":
        return FileSink
    if scheme == "parts":  # (a --dask task's, internal)
        return PartsSink
    cls = _SINK_CLASSES.get(scheme)
    if cls is not None:
        return cls
    from mosfw.records.entry_points import entry_point_value, load

    value = entry_point_value(ENTRY_POINT_GROUP, scheme)
    if value is not None:
        cls = load(value)  # type: ignore[assignment]
    else:
        from importlib import metadata

        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name == scheme:
                cls = ep.load()
                break
    if cls is None:
        hint = f"; install {_PACKAGES[scheme]}" if scheme in _PACKAGES else ""
        raise ValueError(f"--sink: no sink for the URL scheme {scheme!r}{hint}")
    _SINK_CLASSES[scheme] = cls
    return cls


#: sink classes found by scheme (sink_class)
_SINK_CLASSES: dict[str, type[Sink]] = {}


def parse_sink(text: str, internal: bool = False) -> SinkURL:
    """Check a ``--sink`` value (scheme known, parameters valid): the
    parsed URL. ValueError naming the problem otherwise (``parts:``, a
    ``--dask`` task's, only when ``internal``)."""
    url = SinkURL("stdout" if text == "-" else text)
    if url.scheme == "parts" and not internal:
        raise ValueError("--sink: parts: is a --dask task's own, not a sink to give")
    cls = sink_class(url.scheme)
    cls(SinkURL(url.text)).url.check_used()  # parameters the sink does not know
    return url


class Records:
    """The run's records (``config.records``): plugins emit records on
    named streams; each goes to every sink of the run.

    :param urls: the ``--sink`` values; none: JSON lines on the run's
        standard output (``config.stdout``), as plugins printed before.
    """

    def __init__(self, urls: list[str] | tuple[str, ...] = (), internal: bool = False) -> None:
        self.urls = list(urls) or ["stdout"]
        for u in self.urls:
            parse_sink(u, internal)
        self.sinks: list[Sink] = []
        self._config: Any = None
        self._opened = False
        self._write: Callable[[str, Any], None] = self._open_then_write

    def _make(self, config: Any, core: int) -> list[Sink]:
        out = []
        for text in self.urls:
            url = SinkURL("stdout" if text == "-" else text)
            out.append(sink_class(url.scheme)(url, config, core))
        return out

    # -- the life cycle (the runner calls these) -------------------------------

    def probe(self, config: Any) -> None:
        """The parent of a ``-c N`` run: check that every sink can be
        opened (SinkError otherwise), open none."""
        for s in self._make(config, -1):
            if s.scheme != "stdout":
                s.probe()

    def open(self, config: Any, core: int = 0) -> None:
        """Open the sinks in this process (a ``-c N`` worker: after the
        fork) for ``core``; SinkError names the first that cannot be
        opened (those opened before are closed)."""
        if self._opened:
            return
        self._config = config
        sinks = self._make(config, core)
        opened: list[Sink] = []
        try:
            for s in sinks:
                s.open()
                opened.append(s)
        except BaseException:
            for s in opened:
                s.close(0.0)
            raise
        self.sinks = sinks
        self._opened = True
        if len(sinks) == 1:
            self._write = sinks[0].write
        else:
            writes = [s.write for s in sinks]

            def fan_out(stream: str, data: Any) -> None:
                for w in writes:
                    w(stream, data)

            self._write = fan_out

    def attach(self, config: Any) -> None:
        """Remember the run's config: a record emitted before :meth:`open`
        (a plugin writing from ``mosfw_report`` in the parent of a ``-c N``
        run) opens the sinks then."""
        self._config = config

    def _open_then_write(self, stream: str, data: Any) -> None:
        if self._config is None:
            raise SinkError("records emitted before the run started (config.records is not open)")
        self.open(self._config)
        self._write(stream, data)

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what the sinks hold and close them, each within
        ``timeout`` seconds; what is left is counted in :meth:`lost`."""
        if not self._opened:
            return
        for s in self.sinks:
            try:
                s.close(timeout)
            except Exception as e:  # noqa: BLE001 - a sink's bug must not stop the report
                s.warn(f"closing failed: {type(e).__name__}: {e}")
        self._opened = False
        self._write = self._open_then_write

    # -- what plugins call -----------------------------------------------------

    def emit(self, stream: str, record: dict) -> None:
        """Write one record (a dict of JSON values) on ``stream``. It is
        serialized with :func:`json.dumps` (``", "`` and ``": "``
        separators, as ``print(json.dumps(record))`` wrote it)."""
        self._write(stream, json.dumps(record) + "\n")

    def emit_json(self, stream: str, data: str | bytes | memoryview) -> None:
        """Write records already serialized: one JSON object per line,
        each line ending with a newline (a C formatter's batch, or a line
        a plugin formats itself). ``data`` is only read during the call."""
        self._write(stream, data)

    def json_writer(self, stream: str) -> Callable[[str | bytes], None]:
        """A callable taking what :meth:`emit_json` takes, for ``stream``:
        the fast form for a plugin that writes a record per event. Get it
        in ``mosfw_configure`` or later."""
        records = self

        def write(data: str | bytes) -> None:
            records._write(stream, data)

        return write

    def output(self, stream: str) -> StreamOutput:
        """A file-like object for ``stream``: ``write(data)`` takes what
        :meth:`emit_json` takes, ``flush()`` is :meth:`flush`; for a
        writer that wrote JSON lines to a file object."""
        return StreamOutput(self, stream)

    def flush(self) -> None:
        """Hand what the sinks hold to their servers or files now (a
        writer calls it when it has finished a batch, e.g. once a second
        live); it does not wait for answers."""
        for s in self.sinks:
            s.flush()

    # -- counters --------------------------------------------------------------

    def lost(self) -> dict[str, int]:
        """Records counted as lost so far, by sink name: every sink that
        can lose records (all but stdout), 0 included, so that a metric
        has its series from the start."""
        out: dict[str, int] = {}
        for s in self.sinks:
            if s.scheme != "stdout":
                out[s.name] = out.get(s.name, 0) + s.lost
        return out

    def lost_total(self) -> int:
        return sum(s.lost for s in self.sinks)


class StreamOutput:
    """What :meth:`Records.output` returns: a file-like object writing
    records already serialized as JSON lines to one stream."""

    #: write() is done with its data when it returns (a writer may hand it
    #: a buffer it reuses)
    writes_through = True

    def __init__(self, records: Records, stream: str) -> None:
        self.records = records
        self.stream = stream

    def write(self, data: str | bytes | memoryview) -> None:
        self.records._write(self.stream, data)

    def flush(self) -> None:
        self.records.flush()


@contextmanager
def run_records(config: Any) -> Iterator[Records]:
    """The records of one run (:func:`mosfw.runner.run_job`): made when
    ``config.records`` is None (JSON lines on ``config.stdout``); with one
    core the sinks are opened here (SinkError: one that cannot be), with
    ``-c N`` only checked (each worker opens its own after the fork, and
    this process opens them if it emits records itself). Closed at the end
    (bounded: :data:`FLUSH_TIMEOUT` per sink)."""
    if config.records is None:
        config.records = Records()
    records = config.records
    records.attach(config)
    if config.cores > 1:
        records.probe(config)
    else:
        records.open(config, 0)
    try:
        yield records
    finally:
        records.close()
