"""Run plugins over a capture in-process and record what the engine raised.

This is what the ``mosfw_run`` pytest fixture calls; mosfw's own
event-sequence tests use it too (there is no second, private harness).
"""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any, Iterable

import attrs

__all__ = ["Recorded", "RunRecord", "run_capture", "ALL_EVENT_NAMES"]

ALL_EVENT_NAMES = (
    "pkt_in",
    "conn_start",
    "tcp_state_change",
    "conn_new_data",
    "rexmit",
    "conn_end",
    "orphan",
    "error",
)
DEFAULT_EVENT_NAMES = tuple(e for e in ALL_EVENT_NAMES if e != "pkt_in")


@attrs.frozen
class Recorded:
    """One event as recorded (state at event time)."""

    event: str  #: conn_start, tcp_state_change, ...
    side: str | None = None  #: client / server (None for orphan)
    client: str | None = None  #: ip:port of the client (orphan: sender)
    server: str | None = None  #: ip:port of the server (orphan: receiver)
    old: str | None = None  #: tcp_state_change: state before
    new: str | None = None  #: tcp_state_change: state after; conn_start: state
    reason: str | None = None  #: conn_end reason, error code
    midstream: bool | None = None  #: conn_start only
    seq: int | None = None  #: rexmit / conn_new_data / pkt_in
    len: int | None = None  #: rexmit / conn_new_data / pkt_in
    ts: float = 0.0  #: packet time
    flow_id: int = 0  #: engine flow id

    @property
    def short(self) -> tuple:
        """A compact tuple for exact-sequence assertions:
        ``("tcp_state_change", "client", "CLOSED", "SYN_SENT")``,
        ``("conn_start", "server")``, ``("rexmit", "client", seq, len)``,
        ``("conn_end", "fin")``, ``("orphan",)``."""
        e = self.event
        if e == "tcp_state_change":
            return (e, self.side, self.old, self.new)
        if e in ("rexmit", "conn_new_data"):
            return (e, self.side, self.seq, self.len)
        if e == "conn_start":
            return (e, self.side) + (("midstream",) if self.midstream else ())
        if e == "conn_end":
            return (e, self.reason)
        if e == "error":
            return (e, self.reason)
        if e == "orphan":
            return (e,)
        return (e, self.side)


@attrs.define
class RunRecord:
    """What a run produced."""

    events: list[Recorded]  #: every recorded event, in order
    stats: Any  #: mosfw.RunStats
    status: str  #: done / error / stopped
    error: str  #: read error message when status == error
    plugins: list  #: the plugin objects/modules that ran
    stdout: str  #: what plugins wrote to config.stdout
    stderr: str  #: what the engine and plugins wrote to config.stderr

    def of(self, *names: str) -> list[Recorded]:
        """Recorded events of the given kinds."""
        return [e for e in self.events if e.event in names]

    def short(self, *names: str) -> list[tuple]:
        """``Recorded.short`` of every event (or of the given kinds)."""
        return [e.short for e in self.events if not names or e.event in names]

    def flows(self) -> dict[int, list[Recorded]]:
        """Events grouped by flow id (orphans left out)."""
        out: dict[int, list[Recorded]] = {}
        for e in self.events:
            if e.flow_id:
                out.setdefault(e.flow_id, []).append(e)
        return out


class _Recorder:
    def __init__(self, events: Iterable[str]) -> None:
        import mosfw

        self.events: list[Recorded] = []
        rec = self.events.append

        def flow_fields(flow):
            return {"client": flow.client_str, "server": flow.server_str, "flow_id": flow.id}

        impls = {
            "pkt_in": lambda flow, side, event: rec(
                Recorded("pkt_in", side.label, seq=event.seq, len=event.len, ts=event.ts, **flow_fields(flow))
            ),
            "conn_start": lambda flow, side, event: rec(
                Recorded("conn_start", side.label, new=event.new_state.name, midstream=event.midstream,
                         ts=event.ts, **flow_fields(flow))
            ),
            "tcp_state_change": lambda flow, side, old, new, event: rec(
                Recorded("tcp_state_change", side.label, old=old.name, new=new.name, ts=event.ts, **flow_fields(flow))
            ),
            "conn_new_data": lambda flow, side, event: rec(
                Recorded("conn_new_data", side.label, seq=event.seq, len=event.len, ts=event.ts, **flow_fields(flow))
            ),
            "rexmit": lambda flow, side, event: rec(
                Recorded("rexmit", side.label, seq=event.seq, len=event.len, ts=event.ts, **flow_fields(flow))
            ),
            "conn_end": lambda flow, reason, event: rec(
                Recorded("conn_end", "client", reason=reason.label, ts=event.ts, **flow_fields(flow))
            ),
            "orphan": lambda event, src, dst: rec(
                Recorded("orphan", None, client=f"{src[0]}:{src[1]}", server=f"{dst[0]}:{dst[1]}", ts=event.ts)
            ),
            "error": lambda flow, code, event: rec(
                Recorded("error", event.side.label if flow else None, reason=code.label if code else None,
                         ts=event.ts, **(flow_fields(flow) if flow else {}))
            ),
        }
        for name in events:
            if name not in impls:
                raise ValueError(f"unknown event {name!r}; choose from {', '.join(ALL_EVENT_NAMES)}")
            setattr(self, f"mosfw_{name}", mosfw.hookimpl(impls[name]))


def run_capture(
    source,
    plugins: Iterable = (),
    events: Iterable[str] | None = DEFAULT_EVENT_NAMES,
    bpf: str | None = None,
    fail_fast: bool = False,
    options: dict | None = None,
    **engine_options,
) -> RunRecord:
    """Run ``plugins`` over ``source`` and record events.

    :param source: a :class:`mosfw.testing.flows.Capture`, or a path to a
        pcap/pcapng file.
    :param plugins: plugin objects, modules, or ``-p`` specs (names,
        paths).
    :param events: which events to record (None: record none, so only the
        plugins' own subscriptions apply).
    :param options: plugin option values (as ``config.getoption`` sees).
    :param engine_options: ``max_concurrency``, ``tcp_timeout``,
        ``tcp_tw_interval``, ``verify_checksums``.
    """
    from mosfw.engine import Core
    from mosfw.manager import MosfwPluginManager
    from mosfw.options import Config

    tmp = None
    if hasattr(source, "write_pcap"):
        fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="mosfw-")
        os.close(fd)
        source.write_pcap(tmp)
        path = tmp
    else:
        path = os.fspath(source)
    try:
        pm = MosfwPluginManager()
        loaded = []
        for p in plugins:
            if isinstance(p, (str, os.PathLike)):
                p = pm.load(p)
            else:
                pm.register(p)
            loaded.append(p)
        recorder = _Recorder(events or ())
        pm.register(recorder, name="mosfw-test-recorder")
        pm.check()
        out, err = io.StringIO(), io.StringIO()
        config = Config(read_file=path, bpf=bpf, options=dict(options or {}), pluginmanager=pm, stdout=out, stderr=err)
        for k, v in engine_options.items():
            if not hasattr(config, k):
                raise TypeError(f"unknown engine option {k!r}")
            setattr(config, k, v)
        pm.hook.mosfw_configure(config=config)
        core = Core(config, pm, fail_fast=fail_fast)
        core.open()
        result = core.run()
        pm.hook.mosfw_report(config=config, stats=result.stats)
        return RunRecord(recorder.events, result.stats, result.status, result.error, loaded,
                         out.getvalue(), err.getvalue())
    finally:
        if tmp:
            os.unlink(tmp)
