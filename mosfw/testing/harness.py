"""Run plugins over a capture in-process and record what the engine raised.

This is what the ``mosfw_run`` pytest fixture calls (through
:class:`Runner`); mosfw's own event-sequence tests use it too (there is no
second, private harness).

Synthetic input (a :class:`~mosfw.testing.flows.Capture`, a
:class:`~mosfw.testing.flows.Conversation` or a list of ``(ts, frame)``
records) is written to a pcap file under the hood and the engine reads that
file, exactly as ``mosfw run -r FILE`` would: the C engine only reads
files or interfaces, and going through a real file means the scenario a
test describes is the one Wireshark shows. The :class:`Runner` keeps that
file (``RunRecord.pcap``) in the test's ``tmp_path``.

The run is the one ``mosfw run`` does, in-process and on one core:
plugins are loaded (objects, classes, modules, ``-p`` specs), their
options declared with ``mosfw_addoption`` get their defaults,
``mosfw_configure`` runs, the core runs, ``mosfw_report`` runs.
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "Recorded",
    "RunRecord",
    "Runner",
    "run_capture",
    "ALL_EVENT_NAMES",
    "DEFAULT_EVENT_NAMES",
    "ENGINE_OPTIONS",
    "MOS_OPTIONS",
]

ALL_EVENT_NAMES = (
    "pkt_in",
    "conn_start",
    "tcp_state_change",
    "conn_new_data",
    "rexmit",
    "conn_end",
    "orphan",
    "error",
    "tick",
)
#: what is recorded unless ``events=`` says otherwise (no per-packet or
#: per-second records)
DEFAULT_EVENT_NAMES = tuple(e for e in ALL_EVENT_NAMES if e not in ("pkt_in", "tick"))


def _engine_option_names() -> tuple[str, ...]:
    from mosfw.runconfig import Config

    not_engine = {
        "read_file",
        "interface",
        "bpf",
        "cores",
        "options",
        "explicit",
        "mos",
        "pluginmanager",
        "stdout",
        "stderr",
    }
    return tuple(f.name for f in attrs.fields(Config) if f.name not in not_engine)


def _mos_option_names() -> tuple[str, ...]:
    from mosfw.mosconf import MosConfig

    not_here = {"notes", "warnings", "source", "forward", "cores"}
    return tuple(f.name for f in attrs.fields(MosConfig) if f.name not in not_here)


#: engine settings a run accepts as keywords: the fields of
#: :class:`mosfw.Config` that ``mosfw run`` options set (``max_concurrency``,
#: ``tcp_timeout``, ``tcp_tw_interval``, ``verify_checksums``, ...)
ENGINE_OPTIONS = _engine_option_names()
#: mos.conf keys accepted as keywords that are no engine setting: they
#: reach plugins through ``config.mos`` (``stat_print``, ``mos_log``, ...)
MOS_OPTIONS = tuple(k for k in _mos_option_names() if k not in ENGINE_OPTIONS)


@attrs.frozen
class Recorded:
    """One event as recorded, with the state *at event time*."""

    event: str  #: conn_start, tcp_state_change, conn_new_data, rexmit, conn_end, orphan, error, pkt_in, tick
    side: str | None = None  #: client / server (None for orphan, tick, flow-less error)
    client: str | None = None  #: ip:port of the client (orphan: the sender)
    server: str | None = None  #: ip:port of the server (orphan: the receiver)
    old: str | None = None  #: tcp_state_change: state before
    new: str | None = None  #: tcp_state_change: state after; conn_start: the side's state
    reason: str | None = None  #: conn_end: the end reason; error: the error code
    midstream: bool | None = None  #: conn_start only: the flow was picked up without its handshake
    seq: int | None = None  #: rexmit / conn_new_data / pkt_in / orphan
    len: int | None = None  #: rexmit / conn_new_data / pkt_in / orphan
    ts: float = 0.0  #: packet time (conn_end by timeout: the deadline; tick: the second)
    flow_id: int = 0  #: engine flow id (0: orphan, tick, flow-less error)
    client_state: str | None = None  #: the client's TCP state right after the event
    server_state: str | None = None  #: the server's TCP state right after the event
    ack: int | None = None  #: ack field of the packet (packet-driven events)
    window: int | None = None  #: raw window field of the packet (packet-driven events)
    flags: str | None = None  #: TCP flags of the packet as letters (``"SA"``), "" when timer-driven
    pkt_index: int = 0  #: 1-based index in the input of the packet that caused it
    proto: str | None = None  #: the flow's protocol (tcp, udp, icmp; None without a flow)

    @property
    def short(self) -> tuple:
        """A compact tuple for exact-sequence assertions:
        ``("tcp_state_change", "client", "CLOSED", "SYN_SENT")``,
        ``("conn_start", "server")`` (``+ ("midstream",)``),
        ``("rexmit", "client", seq, len)``, ``("conn_new_data", side, seq,
        len)``, ``("conn_end", "fin")``, ``("error", "table_full")``,
        ``("orphan",)``, ``("pkt_in", side)``, ``("tick", ts)``."""
        e = self.event
        if e == "tcp_state_change":
            return (e, self.side, self.old, self.new)
        if e in ("rexmit", "conn_new_data"):
            return (e, self.side, self.seq, self.len)
        if e == "conn_start":
            return (e, self.side) + (("midstream",) if self.midstream else ())
        if e in ("conn_end", "error"):
            return (e, self.reason)
        if e == "orphan":
            return (e,)
        if e == "tick":
            return (e, self.ts)
        return (e, self.side)


def _client_key(who) -> str:
    """``"ip:port"`` for a string, an ``(ip, port)`` pair or a Conversation."""
    if isinstance(who, str):
        return who
    addr = getattr(who, "addr", None)
    if addr is not None and hasattr(who, "port"):  # a Conversation
        ip, port = addr["client"], who.port["client"]
    else:
        ip, port = who
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def _plugin_names(p, spec) -> set:
    names = {type(p).__name__}
    if spec is not None:
        names |= {spec, os.path.basename(spec.rstrip("/" + os.sep))}
    mod = getattr(p, "__name__", None)
    if isinstance(mod, str):
        names |= {mod, mod.rsplit(".", 1)[-1]}
    f = getattr(p, "__file__", None)
    if isinstance(f, str):
        stem = os.path.splitext(os.path.basename(f))[0]
        names.add(stem)
        if stem in ("app", "__init__"):
            names.add(os.path.basename(os.path.dirname(f)))
    return names


@attrs.define
class RunRecord:
    """What a run produced: the engine's events and the plugins' results."""

    events: list[Recorded]  #: every recorded event, in dispatch order
    stats: Any  #: the engine counters (:class:`mosfw.RunStats`)
    status: str  #: done / error / stopped
    error: str  #: read error message when status == error
    plugins: list  #: the plugin objects/modules that ran, in the order given
    stdout: str  #: what plugins wrote to ``config.stdout``
    stderr: str  #: what the engine and plugins wrote to ``config.stderr``
    config: Any = None  #: the run's :class:`mosfw.Config`
    pcap: str | None = None  #: the capture file that was read (kept by the fixture)
    specs: list | None = None  #: the ``-p`` spec each plugin was given as (None: an object)

    def of(self, *names: str) -> list[Recorded]:
        """Recorded events of the given kinds."""
        return [e for e in self.events if e.event in names]

    def short(self, *names: str) -> list[tuple]:
        """``Recorded.short`` of every event (or of the given kinds)."""
        return [e.short for e in self.events if not names or e.event in names]

    def flows(self) -> dict[int, list[Recorded]]:
        """Events grouped by flow id, flows in order of first event
        (orphans, ticks and flow-less errors left out)."""
        out: dict[int, list[Recorded]] = {}
        for e in self.events:
            if e.flow_id:
                out.setdefault(e.flow_id, []).append(e)
        return out

    def flow(self, client, *names: str) -> list[Recorded]:
        """The events of the flow(s) whose client is ``client`` (``"ip:port"``,
        ``(ip, port)`` or a Conversation), optionally only of the given
        kinds. Several flows with the same client follow one another."""
        key = _client_key(client)
        return [e for e in self.events if e.flow_id and e.client == key and (not names or e.event in names)]

    def ends(self) -> dict[str, list[str]]:
        """End reasons by client ``ip:port`` (a list: a client port may be
        reused)."""
        out: dict[str, list[str]] = {}
        for e in self.of("conn_end"):
            if e.client is not None and e.reason is not None:  # always, for conn_end
                out.setdefault(e.client, []).append(e.reason)
        return out

    def plugin(self, which):
        """A plugin that ran: the one that is ``which``, or an instance of
        the class ``which``, or, for a string, the one given as that ``-p``
        spec or whose name is that: module name (last dotted part too),
        file name without ``.py``, app folder name, class name."""
        for p, spec in zip(self.plugins, self.specs or [None] * len(self.plugins), strict=True):
            if p is which or (isinstance(which, type) and isinstance(p, which)):
                return p
            if isinstance(which, str) and which in _plugin_names(p, spec):
                return p
        raise LookupError(f"no plugin {which!r} in this run: {self.plugins!r}")

    def __repr__(self) -> str:
        return (
            f"<RunRecord {len(self.events)} events, {self.stats.flows_created} flows, status={self.status}>"
        )


class _Recorder:
    def __init__(self, events: Iterable[str], protocols: Iterable[str] = ()) -> None:
        import mosfw
        from mosfw.testing.packets import flags_str

        if protocols:  # records UDP/ICMP flows' events too (mosfw_protocols)
            asked = set(protocols)
            self.mosfw_protocols = mosfw.hookimpl(lambda: asked)

        self.events: list[Recorded] = []
        rec = self.events.append

        def common(event, flow=None) -> dict:
            d = {
                "ts": event.ts,
                "ack": event.ack,
                "window": event.window,
                "flags": flags_str(event.tcp_flags),
                "pkt_index": event.pkt_index,
            }
            if flow is not None:
                d.update(
                    client=flow.client_str,
                    server=flow.server_str,
                    flow_id=flow.id,
                    client_state=event.client_state.name,
                    server_state=event.server_state.name,
                    proto=flow.proto,
                )
            return d

        impls: dict[str, Callable[..., None]] = {
            "pkt_in": lambda flow, side, event: rec(
                Recorded("pkt_in", side.label, seq=event.seq, len=event.len, **common(event, flow))
            ),
            "conn_start": lambda flow, side, event: rec(
                Recorded(
                    "conn_start",
                    side.label,
                    new=event.new_state.name,
                    midstream=event.midstream,
                    **common(event, flow),
                )
            ),
            "tcp_state_change": lambda flow, side, old, new, event: rec(
                Recorded("tcp_state_change", side.label, old=old.name, new=new.name, **common(event, flow))
            ),
            "conn_new_data": lambda flow, side, event: rec(
                Recorded("conn_new_data", side.label, seq=event.seq, len=event.len, **common(event, flow))
            ),
            "rexmit": lambda flow, side, event: rec(
                Recorded("rexmit", side.label, seq=event.seq, len=event.len, **common(event, flow))
            ),
            "conn_end": lambda flow, reason, event: rec(
                Recorded("conn_end", "client", reason=reason.label, **common(event, flow))
            ),
            "orphan": lambda event, src, dst: rec(
                Recorded(
                    "orphan",
                    None,
                    client=_client_key(src),
                    server=_client_key(dst),
                    seq=event.seq,
                    len=event.len,
                    **common(event),
                )
            ),
            "error": lambda flow, code, event: rec(
                Recorded(
                    "error",
                    event.side.label if flow else None,
                    reason=code.label if code is not None else f"code_{event[11]}",
                    **common(event, flow),
                )
            ),
            "tick": lambda ts: rec(Recorded("tick", ts=ts)),
        }
        for name in events:
            if name not in impls:
                raise ValueError(f"unknown event {name!r}; choose from {', '.join(ALL_EVENT_NAMES)}")
            setattr(self, f"mosfw_{name}", mosfw.hookimpl(impls[name]))


def _write_source(source, path: str, linktype: str) -> None:
    """Write a synthetic source to ``path`` as a pcap."""
    from mosfw.testing import packets as P

    capture = getattr(source, "capture", None)
    if capture is not None and hasattr(capture, "write_pcap"):  # a Conversation
        source = capture
    if hasattr(source, "write_pcap"):
        source.write_pcap(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        with open(path, "wb") as fh:
            fh.write(source)
    else:
        P.write_pcap(path, list(source), linktype=linktype)


def _is_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _option_values(pm, given: Mapping[str, Any]) -> dict[str, Any]:
    """Plugin option values as ``mosfw run`` would make them: every option
    declared with ``mosfw_addoption`` at its default (environment
    variables named with ``envvar=`` are not read: tests stay hermetic),
    overridden by ``given`` (keys are destination names or ``--flag``
    spellings; string values are converted by the option's type, as on a
    command line)."""
    import click

    from mosfw.runconfig import OptionParser

    parser = OptionParser()
    pm.add_options(parser)  # one that raises: a PluginLoadError naming it
    ctx = click.Context(click.Command("mosfw-test"))
    by_flag = {}
    values: dict[str, Any] = {}
    for opt in parser.options:
        for flag in opt.opts + opt.secondary_opts:
            by_flag[flag] = opt.name
        by_flag[opt.name] = opt.name
        default = opt.get_default(ctx, call=True)
        if type(default).__module__.split(".")[0] == "click":  # click's "no default" sentinel
            default = None
        values[opt.name] = opt.type_cast_value(ctx, default)  # as click does: None -> () if multiple
    declared = {opt.name: opt for opt in parser.options}
    for key, value in dict(given).items():
        name = (
            by_flag.get(key) or by_flag.get("--" + key.replace("_", "-")) or key.lstrip("-").replace("-", "_")
        )
        decl = declared.get(name)
        if decl is not None and isinstance(value, str):
            value = decl.type_cast_value(ctx, value)
        values[name] = value
    return values


def _mos_config(conf, mos_overrides: Mapping[str, Any]):
    """A MosConfig from a path, mos.conf text, or MosConfig, with overrides."""
    from mosfw.mosconf import MosConfig, default_config, load_config, parse_config

    if conf is None:
        mos = default_config()
    elif isinstance(conf, MosConfig):
        mos = conf
    elif isinstance(conf, os.PathLike) or (isinstance(conf, str) and not any(c in conf for c in "\n={")):
        mos = load_config(os.fspath(conf))
    else:
        mos = parse_config(conf)
    return mos.merged(**mos_overrides) if mos_overrides else mos


def run_capture(
    source,
    plugins: Iterable = (),
    events: Iterable[str] | None = DEFAULT_EVENT_NAMES,
    bpf: str | None = None,
    fail_fast: bool = False,
    options: dict | None = None,
    conf=None,
    linktype: str = "ether",
    pcap_path: str | os.PathLike | None = None,
    protocols: Iterable[str] = (),
    **engine_options,
) -> RunRecord:
    """Run ``plugins`` over ``source`` in-process and record events.

    The run is that of ``mosfw run -c 1`` (:func:`mosfw.runner.run_job`):
    every hook is called as there, ``mosfw_tick_merge``,
    ``mosfw_core_result`` and ``mosfw_merge`` included.

    :param source: a :class:`~mosfw.testing.flows.Capture`, a
        :class:`~mosfw.testing.flows.Conversation` (its capture), a list of
        ``(ts, frame)`` records (framed for ``linktype``), the bytes of a
        pcap/pcapng file, or a path to one.
    :param plugins: plugin objects, classes (instantiated with no
        arguments), modules, or ``-p`` specs (registered names, ``.py``
        paths, app folders, module names).
    :param events: which events to record (:data:`ALL_EVENT_NAMES`; None:
        record none, so only the plugins' own subscriptions apply).
    :param bpf: a global BPF filter, as ``--bpf``.
    :param fail_fast: a plugin that raises stops the run with
        :class:`mosfw.engine.PluginError` (chained to the plugin's
        exception); otherwise it is reported on ``stderr``, counted in
        ``stats.plugin_errors``, and the run goes on.
    :param options: plugin option values (as ``config.getoption`` sees
        them); options declared with ``mosfw_addoption`` and not given get
        their defaults.
    :param conf: a mos.conf: a path, its text (a string holding ``=``,
        ``{`` or a newline), or a :class:`mosfw.mosconf.MosConfig`. Its
        engine settings (``max_concurrency``, ``tcp_timeout``,
        ``tcp_tw_interval``, ``rmem_size``, ``no_ring_buffers``) apply
        unless given as keywords; plugins see it as ``config.mos``.
    :param linktype: link type of a list of records.
    :param pcap_path: where to write a synthetic source (kept); default: a
        temporary file, removed after the run.
    :param protocols: record the events of these protocols' flows too
        (``"udp"``, ``"icmp"``: the recorder asks for them with
        ``mosfw_protocols``, so the engine tracks them).
    :param engine_options: :data:`ENGINE_OPTIONS`, the engine settings of
        :class:`mosfw.Config` (``max_concurrency``, ``tcp_timeout``,
        ``tcp_tw_interval``, ``verify_checksums``, ``rmem_size``,
        ``no_ring_buffers``), and :data:`MOS_OPTIONS` (other mos.conf keys,
        which only plugins read, through ``config.mos``).
    """
    from mosfw.manager import MosfwPluginManager
    from mosfw.runconfig import Config
    from mosfw.runner import run_job

    unknown = sorted(set(engine_options) - set(ENGINE_OPTIONS) - set(MOS_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown engine option(s) {', '.join(unknown)}; known: {', '.join(ENGINE_OPTIONS + MOS_OPTIONS)}"
        )
    mos_overrides = {k: v for k, v in engine_options.items() if k in MOS_OPTIONS}
    mos = _mos_config(conf, mos_overrides) if (conf is not None or mos_overrides) else None

    tmp = None
    if _is_path(source):
        path = os.fspath(source)
    elif pcap_path is not None:
        path = os.fspath(pcap_path)
        _write_source(source, path, linktype)
    else:
        fd, tmp = tempfile.mkstemp(suffix=".pcap", prefix="mosfw-")
        os.close(fd)
        _write_source(source, tmp, linktype)
        path = tmp
    try:
        pm = MosfwPluginManager()
        loaded, specs = [], []
        for p in plugins:
            specs.append(os.fspath(p) if _is_path(p) else None)
            if _is_path(p):
                p = pm.load(p)
            else:
                if isinstance(p, type):
                    p = p()
                if not pm.is_registered(p):
                    pm.register(p)
            loaded.append(p)
        recorder = _Recorder(events or (), protocols)
        pm.register(recorder, name="mosfw-test-recorder")
        pm.check()
        out, err = io.StringIO(), io.StringIO()
        config = Config(
            read_file=path,
            bpf=bpf,
            options=_option_values(pm, options or {}),
            mos=mos,
            pluginmanager=pm,
            stdout=out,
            stderr=err,
        )
        if mos is not None:  # what mos.conf sets, unless given as a keyword
            for k in ENGINE_OPTIONS:
                if hasattr(mos, k):
                    setattr(config, k, getattr(mos, k))
        for k in ENGINE_OPTIONS:
            if k in engine_options:
                setattr(config, k, engine_options[k])
        config.explicit = frozenset(engine_options)
        # as `mosfw run` runs one core: configure, the core's loop (ticks
        # merged as they come), mosfw_core_result -> mosfw_merge, report
        result = run_job(config, fail_fast=fail_fast)
        return RunRecord(
            recorder.events,
            result.stats,
            result.status,
            result.error,
            loaded,
            out.getvalue(),
            err.getvalue(),
            config=config,
            pcap=None if tmp else path,
            specs=specs,
        )
    finally:
        if tmp:
            os.unlink(tmp)


class Runner:
    """Runs plugins over synthetic or recorded traffic (the ``mosfw_run``
    fixture).

    ``runner(source, plugins=[...], **kw)`` is :func:`run_capture` with
    two differences: a synthetic source is written to a numbered file in
    ``directory`` and kept (``rec.pcap``: open it in Wireshark when a test
    fails), and ``fail_fast`` defaults to True, so an exception in a
    plugin fails the test instead of being counted. Keyword defaults for
    every call can be given to the constructor or changed with
    :meth:`configure` (``mosfw_run.configure(tcp_timeout=5)``).
    """

    def __init__(self, directory: str | os.PathLike | None = None, **defaults: Any) -> None:
        self.directory = directory
        self.defaults: dict[str, Any] = {"fail_fast": True}
        self.defaults.update(defaults)
        self.runs: list[RunRecord] = []  #: every RunRecord this runner returned
        self._n = itertools.count(1)

    def configure(self, **defaults: Any) -> Runner:
        """Set keyword defaults for later calls; returns the runner."""
        self.defaults.update(defaults)
        return self

    def __call__(self, source, plugins: Iterable = (), **kw: Any) -> RunRecord:
        args = dict(self.defaults)
        args.update(kw)
        if self.directory is not None and not _is_path(source) and "pcap_path" not in kw:
            args["pcap_path"] = os.path.join(os.fspath(self.directory), f"mosfw-run-{next(self._n)}.pcap")
        rec = run_capture(source, plugins, **args)
        self.runs.append(rec)
        return rec
