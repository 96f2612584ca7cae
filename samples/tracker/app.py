"""tracker: one Zeek conn.log record per TCP connection.

``mosfw run -r FILE -p samples/tracker`` (or ``samples/tracker/tracker
-r FILE``) writes, for every TCP connection the engine tracked, including
those picked up mid-stream, one record when the connection ends: FIN/FIN,
RST, idle timeout, eviction, port reuse, or end of input for the ones
still open. Fields, with Zeek's names and meaning
(``base/protocols/conn/main.zeek``)::

    ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto duration
    orig_bytes resp_bytes conn_state history orig_pkts orig_ip_bytes
    resp_pkts resp_ip_bytes

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

Everything per connection is kept by the tracker's own C part
(``samples/tracker/native/``, built with cffi into ``_zeek`` beside this
file): an observer of the engine's core (``Core.attach_observer``) that
emulates Zeek's TCP endpoint bookkeeping after each TCP update and formats
each ended flow's record in C. No Python runs per packet or per
connection: the records of a batch are taken once, after it. Without the
tracker the engine keeps no Zeek view at all.

With ``-c N`` each core writes its own records: JSON lines to stdout go
straight out (whole lines, never mixed); TSV or a ``--conn-log`` file
are written per core to a temporary file next to the output and joined,
in core order, under one header by the parent when the run ends.
"""

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

#: conn.log columns, in Zeek's order, then mosfw's
FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "orig_rexmit_pkts",
    "resp_rexmit_pkts",
    "cli_state",
    "svr_state",
    "close_reason",
    "core",
    "vlan",
    "inner_vlan",
    "tunnels",
)
#: their Zeek types (the #types line)
TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "interval",
    "count",
    "count",
    "string",
    "string",
    "count",
    "count",
    "count",
    "count",
    "count",
    "count",
    "string",
    "string",
    "string",
    "count",
    "int",
    "int",
    "set[string]",
)
FORMATS = {"json": zlib.ZEEK_JSON, "zeek": zlib.ZEEK_TSV}

#: bytes of records held before they are written
FLUSH_BYTES = 64 * 1024
#: ... or seconds (wall time) since the last write, for live captures
FLUSH_SECONDS = 1.0
#: one record always fits (the C formatter's documented bound)
RECORD_MAX = 1024


def _zeek_time() -> str:
    return time.strftime("%Y-%m-%d-%H-%M-%S", time.localtime())


def zeek_header(path: str = "conn") -> str:
    """Zeek's TSV log header (what ``zeek-cut`` needs: the separator, the
    #fields and #types lines)."""
    return (
        "#separator \\x09\n"
        "#set_separator\t,\n"
        "#empty_field\t(empty)\n"
        "#unset_field\t-\n"
        f"#path\t{path}\n"
        f"#open\t{_zeek_time()}\n"
        "#fields\t" + "\t".join(FIELDS) + "\n"
        "#types\t" + "\t".join(TYPES) + "\n"
    )


def zeek_footer() -> str:
    return f"#close\t{_zeek_time()}\n"


class _Sink:
    """Where formatted records go: a binary file object, or a text stream
    (``sys.stdout`` through its buffer; a StringIO in tests gets ASCII
    text)."""

    def __init__(self, stream) -> None:
        self.stream = stream
        raw = getattr(stream, "buffer", None)
        self._binary = raw is not None or "b" in getattr(stream, "mode", "")
        self._raw = raw if raw is not None else stream
        #: write() is done with its data when it returns (ConnLog may then
        #: hand it the observer's own buffer, not a copy)
        self.writes_through = self._binary

    def write(self, data: bytes) -> None:
        if self._binary:
            if self._raw is not self.stream:
                self.stream.flush()  # keep order with text already written
            self._raw.write(data)
        else:
            self.stream.write(data.decode("ascii"))

    def flush(self) -> None:
        try:
            if self._binary and self._raw is not self.stream:
                self._raw.flush()
            self.stream.flush()
        except (OSError, ValueError):
            pass


class _CoreFile:
    """``-c N`` with TSV or a file: this core's records go to a temporary
    file, opened when the core starts; ``mosfw_core_result`` hands its
    name to the parent, whose ``mosfw_merge`` joins the cores' files."""

    writes_through = True  # as _Sink's

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path: str | None = None
        self.fh = None

    @mosfw.hookimpl(tryfirst=True)
    def mosfw_core_start(self, core) -> None:
        import tempfile  # only here and with -c N (shutil, random...: 4 ms of start-up)

        fd, self.path = tempfile.mkstemp(
            prefix=f".tracker-core{core.id}-", suffix=".part", dir=self.directory
        )
        self.fh = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> None:
        self.fh.write(data)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


# ---------------------------------------------------------------------------
# the observer: Zeek's view in C, attached to a core


#: core id -> (the core, its Zeek observer: struct zeek_log *). The core
#: frees the observer when it is freed; holding the core here keeps the
#: pointer valid until the entry is dropped (the writer's
#: mosfw_core_finish) or replaced (the next run on that core id).
_attached: dict[int, tuple[object, object]] = {}


def _observe(core, fmt_code: int, after_burst=None):
    """Attach a Zeek observer (zeek_log.c) to core; the core frees it."""
    z = zlib.zeek_log_new(core.slots, fmt_code)
    if z == zffi.NULL:
        raise MemoryError("tracker: cannot allocate the conn.log views")
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
        n = zlib.zeek_conn_record_layers(self._f, self._k, self._l, FORMATS[format], buf, RECORD_MAX)
        return zffi.unpack(buf, n)


class ConnLog:
    """The record writer. The tracker's observer formats and buffers the
    records in C (attached in ``mosfw_core_start``) and hands over each
    batch's records as one bytes object: no Python call per
    connection. This plugin implements ``mosfw_core_start``,
    ``mosfw_core_finish`` (write what is left) and, capturing live,
    ``mosfw_tick`` (a second passed: write what is held), so the engine
    produces no event record at all for it (one TICK per second live)."""

    def __init__(self, sink, fmt: str, live: bool = False) -> None:
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

            z = _observe(core, FORMATS[fmt], take_batch)

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

        self.flush = flush
        self.take = take
        self.mosfw_core_start = mosfw.hookimpl(mosfw_core_start)
        if live:  # a file is read fast and written out at its end
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


class _Run:
    """What the module keeps about the current run."""

    def __init__(self, fmt: str = "json", path: str | None = None) -> None:
        self.fmt = fmt
        self.path = path
        self.out = None  # the --conn-log file (closed in mosfw_report)
        self.sink: _Sink | None = None
        self.core_file: _CoreFile | None = None  # -c N


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


@mosfw.hookimpl
def mosfw_configure(config):
    global _run
    fmt, path = _options(config)
    _run = run = _Run(fmt, path)
    pm = config.pluginmanager
    if config.cores > 1 and (fmt == "zeek" or path):
        # a worker of a -c N run: a temporary file per core, joined in the
        # parent by mosfw_merge (one header, core order)
        import tempfile

        directory = os.path.dirname(os.path.abspath(path)) if path else tempfile.gettempdir()
        run.core_file = _CoreFile(directory)
        pm.register(run.core_file, name=f"tracker-core-file-{os.getpid()}")
        pm.register(
            ConnLog(run.core_file, fmt, live=bool(config.interface)), name=f"tracker-writer-{os.getpid()}"
        )
        return
    if path:
        try:
            run.out = open(path, "wb")  # noqa: SIM115 - closed in mosfw_report
        except OSError as e:
            raise mosfw.UsageError(f"--conn-log: cannot write {path}: {e.strerror}") from None
        run.sink = _Sink(run.out)
    else:
        run.sink = _Sink(config.stdout)
    if fmt == "zeek" and config.cores == 1:
        run.sink.write(zeek_header().encode())
    pm.register(ConnLog(run.sink, fmt, live=bool(config.interface)), name=f"tracker-writer-{os.getpid()}")


@mosfw.hookimpl
def mosfw_report(config, stats):
    run = _run
    if run.sink is None:
        return
    if run.fmt == "zeek" and config.cores == 1:
        run.sink.write(zeek_footer().encode())
    run.sink.flush()
    if run.out is not None:
        run.out.close()
    run.out = run.sink = None


def _join_parts(config, parts: list[str]) -> None:
    fmt, path = _options(config)
    out = open(path, "wb") if path else None  # noqa: SIM115 - closed below
    sink = _Sink(out if out is not None else config.stdout)
    try:
        if fmt == "zeek":
            sink.write(zeek_header().encode())
        for part in parts:
            try:
                with open(part, "rb") as fh:
                    while chunk := fh.read(1 << 20):
                        sink.write(chunk)
            finally:
                try:
                    os.unlink(part)
                except OSError:
                    pass
        if fmt == "zeek":
            sink.write(zeek_footer().encode())
        sink.flush()
    finally:
        if out is not None:
            out.close()


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
