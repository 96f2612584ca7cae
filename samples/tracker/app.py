"""tracker: one Zeek conn.log record per TCP connection, UDP flow and ICMP flow.

``mosfw run -r FILE -p samples/tracker`` (or ``samples/tracker/tracker
-r FILE``) writes, for every TCP connection the engine tracked, including
those picked up mid-stream, one record when the connection ends: FIN/FIN,
RST, idle timeout, eviction, port reuse, or end of input for the ones
still open. Fields, with Zeek's names and meaning
(``base/protocols/conn/main.zeek``)::

    ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto duration
    orig_bytes resp_bytes conn_state local_orig local_resp missed_bytes
    history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes ip_proto

and mosfw's own: ``orig_rexmit_pkts``, ``resp_rexmit_pkts`` (segments the
engine classified as retransmissions, REXMIT), ``cli_state``,
``svr_state`` (the emulated endpoints' final RFC 793 states, by mosfw's
client/server), ``close_reason`` (fin, rst, timeout, evicted, eof,
reused) and ``core``; for a connection that came through tags or
tunnels, Zeek's ``vlan`` and ``inner_vlan`` (the first two 802.1Q tags)
and mosfw's ``tunnels`` (its first 7 layers, outermost first, as
``kind:id`` -- ``vxlan:4242``, ``mpls:1000``; docs/encapsulation.md).

Options (``mosfw run -p samples/tracker --help``):

``--conn-format json|zeek``  JSON lines (default; unset fields left out,
                             as Zeek's JSON logs do) or Zeek's TSV with
                             ``#separator``/``#fields``/``#types``
                             headers that ``zeek-cut`` reads
``--conn-log PATH``          write the records to PATH instead of stdout
``--conn-protocols LIST``    tcp,udp,icmp (default): UDP and ICMP records by
                             Zeek's rules too (docs/zeek-rules.md)

JSON records not sent to ``--conn-log`` are records of the stream ``conn``
(:mod:`mosfw.records`): standard output by default, or wherever ``mosfw
run --sink URL`` sends them (a file with rotation, Redis, Kafka). The TSV
format is a file format, not records: it goes to stdout or ``--conn-log``.

Everything per connection is kept by the tracker's own C part
(``samples/tracker/native/``, built with cffi into ``_zeek`` beside this
file): an observer of the engine's core (``Core.attach_observer``) that
emulates Zeek's TCP endpoint bookkeeping after each TCP update and formats
each ended flow's record in C. No Python runs per packet or per
connection: the records of a batch are taken once, after it. Without the
tracker the engine keeps no Zeek view at all.

With ``-c N`` (or ``--dask``) each core (segment) writes its own records:
JSON lines to stdout go straight out; TSV or a ``--conn-log`` file are
written per core to a temporary file and joined, in core (time) order,
under one header by the run's process at its end (``mosfw_merge``)."""

from __future__ import annotations

import glob
import os
import sys
import time
from importlib.machinery import ExtensionFileLoader
from importlib.util import module_from_spec, spec_from_file_location

import click

import mosfw
from mosfw import hookspecs


def _load_zeek():
    """The tracker's cffi module, built next to this file by ``make build``
    (setup.py's cffi_modules), whatever name this file was loaded under."""
    here = os.path.dirname(os.path.abspath(__file__))
    found = sorted(glob.glob(os.path.join(here, "_zeek*.so")))
    if not found:
        raise ImportError(f"samples/tracker: no _zeek module in {here}: run `make build`")
    loader = ExtensionFileLoader("_zeek", found[0])
    spec = spec_from_file_location("_zeek", found[0], loader=loader)
    mod = module_from_spec(spec)
    loader.exec_module(mod)
    return mod


_zeek = _load_zeek()
zffi, zlib = _zeek.ffi, _zeek.lib

FORMATS = {"json": zlib.ZEEK_JSON, "zeek": zlib.ZEEK_TSV}

#: the records stream of the JSON records (:mod:`mosfw.records`)
RECORD_STREAM = "conn"
#: bytes of records held before they are written
FLUSH_BYTES = 64 * 1024
#: ... or seconds (wall time) since the last write, for live captures
FLUSH_SECONDS = 1.0
#: one record always fits (the C formatter's documented bound)
RECORD_MAX = 1024


def _load_sibling(name: str):
    """A module of this folder, by its file (as _zeek: from a checkout or
    installed as mosfw_tracker)."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = spec_from_file_location(f"_tracker_{name}", os.path.join(here, f"{name}.py"))
    mod = module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


output = _load_sibling("output")
_Sink = output.Sink


schema = _load_sibling("schema")
FIELDS, TYPES = schema.FIELDS, schema.TYPES


def zeek_header(path: str = "conn", t: float | None = None) -> str:
    """Zeek's TSV log header (what ``zeek-cut`` needs: the separator, the
    #fields and #types lines)."""
    return schema.zeek_header(path, output.zeek_time(t))


def zeek_footer(t: float | None = None) -> str:
    return schema.zeek_footer(output.zeek_time(t))


_CoreFile = output.CoreFile


# ---------------------------------------------------------------------------
# the observer: Zeek's view in C, attached to a core


#: core id -> (the core, its Zeek observer: struct zeek_log *). The core
#: frees the observer when it is freed; holding the core here keeps the
#: pointer valid until the entry is dropped (the writer's
#: mosfw_core_finish) or replaced (the next run on that core id).
_attached: dict[int, tuple[object, object]] = {}


def _observe(core, fmt_code: int, after_burst=None, local_nets=(), checksum_nets=()):
    """Attach a Zeek observer (zeek_log.c) to core; the core frees it."""
    z = zlib.zeek_log_new(core.slots, fmt_code)
    if z == zffi.NULL:
        raise MemoryError("tracker: cannot allocate the conn.log views")
    for option, add, nets in (
        ("--local-nets", zlib.zeek_log_add_local_net, local_nets),
        ("--ignore-checksums-nets", zlib.zeek_log_add_checksum_net, checksum_nets),
    ):
        for family, addr, bits in nets:
            if add(z, family, addr, bits) < 0:
                zlib.zeek_log_free(z)
                raise mosfw.UsageError(f"{option}: cannot use /{bits} for IPv{family}")
    try:
        core.attach_observer(int(zffi.cast("uintptr_t", zlib.zeek_log_observer(z))), after_burst)
    except Exception:
        zlib.zeek_log_free(z)
        raise
    _attached[core.id] = (core, z)
    return z


def keep_views(core) -> None:
    """Keep Zeek's view of every flow of this core (for :class:`ConnView`)
    without writing a log; the tracker's own writer keeps it anyway. Call
    it from ``mosfw_core_start``."""
    got = _attached.get(core.id)
    if got is None or got[0] is not core:
        _observe(core, zlib.ZEEK_VIEW_ONLY)


#: Zeek's TCP inactivity timeout (init-bare.zeek ``tcp_inactivity_timeout``
#: = 5 min): the engine's idle timeout in a tracker run unless
#: ``--tcp-timeout`` (or mos.conf's ``tcp_timeout``) sets another. Zeek's
#: ``tcp_close_delay`` and ``tcp_reset_delay`` (5 s) are the engine's
#: ``tcp_tw_interval`` default already.
ZEEK_TCP_INACTIVITY_TIMEOUT = 300.0
#: Zeek's ``tcp_attempt_delay`` (5 s): an unanswered SYN's connection is
#: removed then; the engine's ``tcp_attempt_delay`` in a tracker run
ZEEK_TCP_ATTEMPT_DELAY = 5.0
#: Zeek's ``udp_inactivity_timeout`` and ``icmp_inactivity_timeout``
#: (init-bare.zeek, 1 min each): the engine's in a tracker run unless
#: ``--udp-timeout``/``--icmp-timeout`` (or mos.conf) set others
ZEEK_UDP_INACTIVITY_TIMEOUT = 60.0
ZEEK_ICMP_INACTIVITY_TIMEOUT = 60.0
#: the protocols the tracker writes records of by default (Zeek's conn.log: all three)
DEFAULT_PROTOCOLS = "tcp,udp,icmp"


_site_nets = _load_sibling("site_nets")


def parse_local_nets(text: str, option: str = "--local-nets") -> list[tuple[int, bytes, int]]:
    """``--local-nets`` (or ``option``) parsed (site_nets.py), at most ZEEK_LOCAL_NETS_MAX."""
    return _site_nets.parse_local_nets(text, zlib.ZEEK_LOCAL_NETS_MAX, option)


class ConnView:
    """Zeek's conn.log view of a live flow, *state now* (the tracker, or
    :func:`keep_views`, must be attached to its core). "Originator" and
    "responder" are Zeek's roles, decided by Zeek's rules: the first
    packet's sender, flipped for a first packet that is not a SYN and
    comes from a likely server port, or for a SYN/ACK-first connection
    once it carries ACKs or data. They can differ from mosfw's client and
    server. Read it in the flow's handlers (up to its CONN_END)."""

    def __init__(self, flow) -> None:
        got = _attached.get(flow.core)
        z = got[1] if got is not None else zffi.NULL
        self._nets = zlib.zeek_log_nets(z)
        self._f = zffi.cast("const struct mosfw_flow *", flow.c_address)
        self._k = zlib.zeek_log_view(z, self._f, flow.slot)
        self._l = zlib.zeek_log_layers(z, self._f, flow.slot)

    @property
    def orig_side(self) -> mosfw.Side:
        """The side Zeek calls the originator (``id.orig_h``)."""
        return mosfw.Side(self._k.orig_side)

    @property
    def history(self) -> str:
        """Zeek's history letters so far (``ShADadFf``): upper case from the
        originator, lower case from the responder; ``^`` where the roles
        were flipped."""
        return zffi.string(self._k.history).decode("ascii")

    @property
    def conn_state(self) -> str:
        """Zeek's conn_state code (``S0``, ``S1``, ``SF``, ``REJ``, ``S2``,
        ``S3``, ``RSTO``, ``RSTR``, ``RSTOS0``, ``RSTRH``, ``SH``, ``SHR``
        or ``OTH``)."""
        return zffi.string(zlib.zeek_conn_state(self._k)).decode("ascii")

    @property
    def orig_bytes(self) -> int:
        """Payload bytes sent by the originator, from sequence numbers."""
        return zlib.zeek_conn_size(self._k, 0)

    @property
    def resp_bytes(self) -> int:
        """Payload bytes sent by the responder, from sequence numbers."""
        return zlib.zeek_conn_size(self._k, 1)

    @property
    def uid(self) -> str:
        """Zeek-style uid (``C`` + 17 base62 characters), a hash of the tuple
        and the first packet time: the same on every run."""
        buf = zffi.new("char[19]")
        zlib.zeek_conn_uid(self._f, buf)
        return zffi.string(buf).decode("ascii")

    def record(self, format: str = "json") -> bytes:
        """The flow's record as the tracker writes it (one JSON object or
        one Zeek TSV line, newline-terminated)."""
        buf = zffi.new("char[1024]")
        n = zlib.zeek_conn_record_layers(
            self._f, self._k, self._nets, self._l, FORMATS[format], buf, RECORD_MAX
        )
        return zffi.unpack(buf, n)


class ConnLog:
    """The record writer. The tracker's observer formats and buffers the
    records in C (attached in ``mosfw_core_start``) and hands over each
    batch's records as one bytes object: no Python call per
    connection. This plugin implements ``mosfw_core_start``,
    ``mosfw_core_finish`` (write what is left) and, capturing live,
    ``mosfw_tick`` (a second passed: write what is held), so the engine
    produces no event record at all for it (one TICK per second live)."""

    def __init__(self, sink, fmt: str, live: bool = False, local_nets=(), checksum_nets=()) -> None:
        self.sink = sink
        chunks: list[bytes] = []
        held = [0]
        monotonic = time.monotonic
        last_write = [monotonic()]
        through = getattr(sink, "writes_through", False)

        def flush() -> None:
            if chunks:
                sink.write(b"".join(chunks))
                chunks.clear()
                held[0] = 0
            sink.flush()
            last_write[0] = monotonic()

        def take(data: bytes) -> None:
            chunks.append(data)
            held[0] += len(data)
            if held[0] >= FLUSH_BYTES:
                flush()

        def mosfw_core_start(core) -> None:
            data = zffi.new("const char **")
            z = None

            def take_batch() -> None:
                n = zlib.zeek_log_take(z, data)
                if not n:
                    return
                if through and held[0] + n >= FLUSH_BYTES:
                    # due to be written: straight from the observer's
                    # buffer (valid until the next burst), no copy
                    if chunks:
                        sink.write(b"".join(chunks))
                        chunks.clear()
                        held[0] = 0
                    sink.write(zffi.buffer(data[0], n))
                    sink.flush()
                    last_write[0] = monotonic()
                else:
                    take(zffi.buffer(data[0], n)[:])

            z = _observe(core, FORMATS[fmt], take_batch, local_nets, checksum_nets)

        # Once per second of input time (wall time live, even when no
        # packet comes): what is held is written within about a second.
        def mosfw_tick(core, ts) -> None:
            if chunks and monotonic() - last_write[0] >= FLUSH_SECONDS:
                flush()

        def mosfw_core_finish(core) -> None:
            _attached.pop(core.id, None)
            flush()
            close = getattr(sink, "close", None)
            if close is not None:
                close()

        # --conn-rotate-interval: rotation on input time, once a second
        # of it (offline too); what is held goes to the old file first
        def mosfw_tick_rotating(core, ts) -> None:
            if sink.due(ts, None if sink.now is not None else core.stats().first_ts):
                flush()
                sink.rotate(ts)
            elif live:
                mosfw_tick(core, ts)

        self.flush = flush
        self.take = take
        self.mosfw_core_start = mosfw.hookimpl(mosfw_core_start)
        if getattr(sink, "interval", 0) > 0:
            self.mosfw_tick = mosfw.hookimpl(mosfw_tick_rotating)
        elif live:  # a file is read fast and written out at its end
            self.mosfw_tick = mosfw.hookimpl(mosfw_tick)
        self.mosfw_core_finish = mosfw.hookimpl(trylast=True)(mosfw_core_finish)


# ---------------------------------------------------------------------------
# hooks of the module


@mosfw.hookimpl
def mosfw_addoption(parser):
    parser.addoption(
        "--conn-format",
        "conn_format",
        type=click.Choice(sorted(FORMATS)),
        default="json",
        envvar="MOSFW_CONN_FORMAT",
        show_default=True,
        help="tracker: record format: JSON lines, or Zeek's TSV conn.log (zeek-cut reads it).",
    )
    parser.addoption(
        "--conn-log",
        "conn_log",
        metavar="PATH",
        default=None,
        envvar="MOSFW_CONN_LOG",
        help="tracker: write the records to PATH (default: standard output).",
    )
    parser.addoption(
        "--local-nets",
        "local_nets",
        metavar="NETS",
        default=None,
        envvar="MOSFW_LOCAL_NETS",
        help="tracker: Zeek's Site::local_nets, e.g. '10.0.0.0/8,fd00::/8' (default: mos.conf's "
        "local_nets): sets local_orig/local_resp (unset without it). Timeouts: the tracker runs "
        "with Zeek's TCP inactivity timeout, 300 s "
        "(mOS's 30 s for other apps) unless --tcp-timeout is given, and Zeek's attempt delay, 5 s "
        "(--tcp-attempt-delay); --tcp-tw-interval (5 s) is Zeek's close delay, within which late "
        "packets still count. Any first TCP packet (a lone RST, a FIN, no flags) starts a "
        "connection, as Zeek's partial_connection_ok: a setting of the whole run, other apps "
        "see these flows too (--no-tcp-partial-open: orphans, as mOS).",
    )
    parser.addoption(
        "--conn-protocols",
        "conn_protocols",
        metavar="LIST",
        default=DEFAULT_PROTOCOLS,
        envvar="MOSFW_CONN_PROTOCOLS",
        show_default=True,
        help="tracker: the protocols to write records of (tcp is always written; udp and icmp "
        "flows are tracked for them, with Zeek's 60 s inactivity timeouts unless --udp-timeout/"
        "--icmp-timeout say otherwise; 'other': other IP protocols as unknown_transport records, "
        "one per address pair and protocol).",
    )
    parser.addoption(
        "--no-checksums",
        "no_checksums",
        is_flag=True,
        default=False,
        envvar="MOSFW_NO_CHECKSUMS",
        help="tracker: do not check UDP checksums (zeek -C, --no-checksums): a datagram with a "
        "wrong one counts as any other, no 'C'/'c' in the history.",
    )
    parser.addoption(
        "--ignore-checksums-nets",
        "ignore_checksums_nets",
        metavar="NETS",
        default=None,
        envvar="MOSFW_IGNORE_CHECKSUMS_NETS",
        help="tracker: Zeek's ignore_checksums_nets, e.g. '192.168.1.0/24': datagrams sent from "
        "these networks are not checked (a host's own packets captured before its NIC fills in "
        "the checksum).",
    )
    parser.addoption(
        "--conn-rotate-interval",
        "conn_rotate_interval",
        type=click.FloatRange(min=0),
        default=0.0,
        metavar="SECONDS",
        envvar="MOSFW_CONN_ROTATE_INTERVAL",
        help="tracker: with --conn-log PATH, rotate it every SECONDS of input time (at whole "
        "multiples, as Zeek): PATH is renamed NAME.<open time>.EXT and a new one opened; 0 = never.",
    )
    parser.addoption(
        "--conn-rotate-size",
        "conn_rotate_size",
        type=click.IntRange(min=0),
        default=0,
        metavar="BYTES",
        envvar="MOSFW_CONN_ROTATE_SIZE",
        help="tracker: with --conn-log PATH, rotate it once it holds BYTES; 0 = never.",
    )


class _Run:
    """What the module keeps about the current run."""

    def __init__(self, fmt: str = "json", path: str | None = None, protocols=()) -> None:
        self.fmt = fmt
        self.protocols = set(protocols)  # besides TCP (mosfw_protocols)
        self.path = path
        self.out = None  # the --conn-log file (closed in mosfw_report)
        self.sink = None  # _Sink, or mosfw.records.StreamOutput (the records stream)
        self.core_file: _CoreFile | None = None  # -c N
        self.rotating = None  # output.RotatingLog: --conn-rotate-*


_run = _Run()


def _options(config) -> tuple[str, str | None]:
    def opt(name, default):
        v = config.getoption(name)
        if v is None or type(v).__module__.startswith("click"):  # unset
            return default
        return v

    fmt = opt("conn_format", "json")
    if fmt not in FORMATS:
        raise mosfw.UsageError(f"--conn-format: {fmt!r} is not one of {', '.join(sorted(FORMATS))}")
    path = opt("conn_log", None)
    return fmt, (None if path in (None, "", "-") else path)


def _protocols(config) -> set[str]:
    v = config.getoption("conn_protocols")
    text = v if isinstance(v, str) else DEFAULT_PROTOCOLS
    names = {p.strip().lower() for p in text.split(",") if p.strip()} - {"tcp"}
    if names - {"udp", "icmp", "other"}:
        raise mosfw.UsageError(f"--conn-protocols: {text!r}: choose from tcp, udp, icmp, other")
    return names


@mosfw.hookimpl
def mosfw_protocols(config):
    """The UDP and ICMP flows the records are written of (--conn-protocols)."""
    return set(_run.protocols)


@mosfw.hookimpl
def mosfw_configure(config):
    global _run
    fmt, path = _options(config)
    nets = config.getoption("local_nets")
    if not (isinstance(nets, str) and nets) and getattr(config, "mos", None) is not None:
        nets = " ".join(getattr(config.mos, "local_nets", ()))  # mos.conf's
    nets = parse_local_nets(nets) if isinstance(nets, str) and nets else []
    _run = run = _Run(fmt, path, _protocols(config))
    unchecked = config.getoption("ignore_checksums_nets")
    unchecked = parse_local_nets(unchecked, "--ignore-checksums-nets") if unchecked else []
    nets = {"local_nets": nets, "checksum_nets": unchecked}
    pm = config.pluginmanager

    def register_writer(sink) -> None:
        writer = ConnLog(sink, fmt, live=bool(config.interface), **nets)
        pm.register(writer, name=f"tracker-writer-{os.getpid()}")

    explicit = getattr(config, "explicit", ())
    if "tcp_timeout" not in explicit:
        config.tcp_timeout = ZEEK_TCP_INACTIVITY_TIMEOUT
    if "udp_timeout" not in explicit:
        config.udp_timeout = ZEEK_UDP_INACTIVITY_TIMEOUT
    if "icmp_timeout" not in explicit:
        config.icmp_timeout = ZEEK_ICMP_INACTIVITY_TIMEOUT
    if "tcp_attempt_delay" not in explicit:
        config.tcp_attempt_delay = ZEEK_TCP_ATTEMPT_DELAY
    config.tcp_one_sided_close = True  # Zeek's close with an inactive peer
    if "tcp_partial_open" not in explicit:  # --no-tcp-partial-open: mOS's orphans
        config.tcp_partial_open = True  # Zeek: partial_connection_ok (a lone RST, a FIN ... start one)
    # Zeek checks them (ignore_checksums = F): 'C'/'c'; -C / --no-checksums: not
    config.udp_checksums = not config.getoption("no_checksums")
    every = float(config.getoption("conn_rotate_interval") or 0)
    size = int(config.getoption("conn_rotate_size") or 0)
    segment_dir = getattr(config, "parts_dir", None) if getattr(config, "segment", None) else None
    dask = segment_dir is not None or getattr(config, "segmented", False)
    if every or size:
        if not path:
            raise mosfw.UsageError("--conn-rotate-interval/--conn-rotate-size need --conn-log PATH")
        if config.cores > 1 or dask:
            how = "--dask" if dask else "-c N"
            raise mosfw.UsageError(f"--conn-rotate-interval/--conn-rotate-size: not with {how} (one core)")
        head = (lambda t: zeek_header(t=t).encode()) if fmt == "zeek" else (lambda t: b"")
        foot = (lambda t: zeek_footer(t).encode()) if fmt == "zeek" else (lambda t: b"")
        run.sink = run.rotating = output.RotatingLog(path, head, foot, every, size)
        return register_writer(run.sink)
    if (config.cores > 1 or dask) and (fmt == "zeek" or path):
        # a worker of a -c N run or a --dask segment: a temporary file each
        # (next to PATH or in /tmp; a segment's in the run's parts
        # directory), joined (one header, core or time order) by the run's
        # process in mosfw_merge
        import tempfile

        where = os.path.dirname(os.path.abspath(path)) if path else tempfile.gettempdir()
        run.core_file = _CoreFile(segment_dir or where)
        pm.register(run.core_file, name=f"tracker-core-file-{os.getpid()}")
        return register_writer(run.core_file)
    if path:
        try:
            run.out = open(path, "wb")  # noqa: SIM115 - closed in mosfw_report
        except OSError as e:
            raise mosfw.UsageError(f"--conn-log: cannot write {path}: {e.strerror}") from None
        run.sink = _Sink(run.out)
    elif fmt == "json" and getattr(config, "records", None) is not None:
        # the records stream "conn": stdout by default, or --sink
        run.sink = config.records.output(RECORD_STREAM)
    else:
        run.sink = _Sink(config.stdout)
    if fmt == "zeek" and config.cores == 1:
        run.sink.write(zeek_header().encode())
    register_writer(run.sink)


@mosfw.hookimpl
def mosfw_report(config, stats):
    run = _run
    if run.sink is None:
        return
    if run.rotating is not None:  # closed with its footer by ConnLog
        run.rotating.close()
        run.sink = run.rotating = None
        return
    if run.fmt == "zeek" and config.cores == 1:
        run.sink.write(zeek_footer().encode())
    run.sink.flush()
    if run.out is not None:
        run.out.close()
    run.out = run.sink = None


def _join_parts(config, parts: list[str]) -> None:
    fmt, path = _options(config)
    head = zeek_header().encode() if fmt == "zeek" else b""

    def foot() -> bytes:
        return zeek_footer().encode() if fmt == "zeek" else b""

    output.join_parts(parts, path, config.stdout, head, foot)


# Multi-core hooks, defined only when this mosfw has them (a hook the
# manager does not know would be refused as a misspelling).
if hasattr(hookspecs, "mosfw_merge") and hasattr(hookspecs, "mosfw_core_result"):

    @mosfw.hookimpl
    def mosfw_core_result(core):
        """``-c N``: the name of this core's temporary file."""
        cf = _run.core_file
        return cf.path if cf is not None else None

    @mosfw.hookimpl
    def mosfw_merge(config, results, cores):
        """``-c N``: join the cores' temporary files under one header, in
        core order, into --conn-log PATH or stdout."""
        parts = [p for p in results if p]
        if parts:
            _join_parts(config, parts)


if __name__ == "__main__":  # pragma: no cover - use the launcher or mosfw run
    sys.exit("run it with: mosfw run -r FILE -p samples/tracker (or samples/tracker/tracker)")
