"""Records and sinks: what plugins write, and where it goes.

A plugin writes its output as *records* on a named *stream* (the tracker:
``conn``, httplog: ``http``, eventlog: ``events``) through the run's
:class:`Records` object, ``config.records``, instead of printing::

    @mosfw.hookimpl
    def mosfw_configure(config):
        records = config.records
        ...
        records.emit("alerts", {"ts": ts, "uid": uid, "what": "port scan"})

``mosfw run --sink URL`` (repeatable) chooses where records go; every sink
gets every record. Without ``--sink`` they are JSON lines on standard
output (:class:`StdoutSink`). ``file:PATH`` (with rotation) is built in;
other schemes come from the ``mosfw.sinks`` entry point group of installed
distributions (``redis://`` from ``mosfw-redis``, ``kafka://`` from
``mosfw-kafka``), so a client library is installed only by those who use
it. A sink writer subclasses :class:`Sink` (or :class:`BufferedSink` for
a network server) and names the class in that group.

With ``-c N`` each worker process opens its own sinks after the fork;
the parent only checks, before forking, that each sink can be opened.
"""

from __future__ import annotations

from mosfw.records.base import BufferedSink, Sink, SinkError, SinkURL, record_key
from mosfw.records.router import Records, parse_sink

__all__ = ["BufferedSink", "Records", "Sink", "SinkError", "SinkURL", "parse_sink", "record_key"]
