"""The run's configuration as plugins see it, and plugin CLI options."""

from __future__ import annotations

import sys
from typing import Any, TextIO

import attrs
import click

__all__ = ["Config", "OptionParser", "UsageError", "frag_settings_of", "rmem_memcap_of"]


class UsageError(Exception):
    """Raised by a plugin (e.g. in ``mosfw_configure``) to stop the run
    with a one-line message and exit code 2."""


@attrs.define
class Config:
    """Everything a run was asked to do.

    Engine settings come from mos.conf (``-f``) overridden by the command
    line; plugin options from the plugins' ``mosfw_addoption``.
    """

    #: capture file to read (or None when live)
    read_file: str | None = None
    #: the capture file's size in bytes when the run started (0: unknown);
    #: set by the runner before ``-c N`` workers open the file: a worker
    #: that finds it smaller reports that it shrank (rotation, truncation)
    read_file_size: int = 0
    #: many capture files read as one stream (``-r`` repeated, ``-r DIR``,
    #: compressed captures: mosfw.inputs); read_file is then the first
    read_files: list[str] | None = None
    #: a --dask task (mosfw.archive): (segment index, window start, window
    #: end); the task owns the flows first seen in the window. None otherwise
    segment: tuple[int, float, float] | None = None
    #: a --dask task: the run's parts directory (shared by every worker),
    #: where a plugin puts a file the run's process reads back in
    #: ``mosfw_merge`` (its name returned by ``mosfw_core_result``)
    parts_dir: str | None = None
    #: the process of a --dask run (mosfw.archive): its cores are the
    #: segments, run elsewhere as Dask tasks and merged here as a ``-c N``
    #: parent merges its workers' (``cores`` is 1 in ``mosfw_configure``:
    #: the number of segments follows from the timeouts settled there)
    segmented: bool = False
    #: interface to capture from (or None when reading a file)
    interface: str | None = None
    #: global BPF filter compiled by libpcap
    bpf: str | None = None
    #: number of cores (per-core event loops)
    cores: int = 1
    #: flow table capacity per core
    max_concurrency: int = 1_000_000
    #: idle seconds before CONN_END(timeout); 0 = never
    tcp_timeout: float = 30.0
    #: seconds an ended flow's tuple is remembered (late packets = orphans)
    tcp_tw_interval: float = 5.0
    #: > 0: a flow opened by a SYN its server never answered ends (reason
    #: timeout) at its first packet this many seconds after its first
    #: (Zeek's tcp_attempt_delay, 5 s in a tracker run); 0 = never (mOS)
    tcp_attempt_delay: float = 0.0
    #: a FIN from a side whose peer never sent a packet ends the flow
    #: (reason fin; late packets for tcp_tw_interval), as Zeek's complete
    #: close (set in a tracker run); False keeps it until the idle timeout (mOS)
    tcp_one_sided_close: bool = False
    #: any first TCP packet starts a flow (Zeek's partial_connection_ok):
    #: a lone RST, RST+ACK, a FIN without ACK, a packet without flags
    #: (--tcp-partial-open; the tracker's default); False makes them
    #: orphans (mOS)
    tcp_partial_open: bool = False
    #: idle seconds (packet time) before a UDP / ICMP flow ends (timeout);
    #: 0 = never. Only used for flows of a protocol a plugin asked for
    #: (``mosfw_protocols``); the tracker uses Zeek's 60 s
    udp_timeout: float = 60.0
    icmp_timeout: float = 60.0
    #: verify UDP checksums and flag bad ones to observers (mosfw_seg),
    #: counting the packets as usual: set in a tracker run (Zeek's 'C'/'c')
    udp_checksums: bool = False
    #: verify IPv4/TCP checksums (off: captures with offload show bad ones)
    verify_checksums: bool = False
    #: after the capture is open, drop root and run as this user (--user)
    user: str | None = None
    #: bytes of reassembly buffer per side of a flow (peek/ppeek); None: the
    #: mos.conf's ``rmem_size`` (``config.mos``), else 8192
    rmem_size: int | None = None
    #: bytes one core's reassembly buffers may take together (0: no cap);
    #: None: the mos.conf's ``rmem_memcap``, else 1 GiB (rmem_memcap_of)
    rmem_memcap: int | None = None
    #: True: keep no reassembly buffers (peek returns nothing); None: the
    #: mos.conf's ``no_ring_buffers``, else False
    no_ring_buffers: bool | None = None
    #: the engine settings given on the command line, in mos.conf (with a
    #: value other than mosfw's default) or as a keyword: an app may pick
    #: its own default for the others in ``mosfw_configure`` (the tracker
    #: uses Zeek's 300 s TCP inactivity timeout where ``tcp_timeout`` is
    #: not here)
    explicit: frozenset[str] = frozenset()

    #: decapsulation settings from the command line, by mos.conf key
    #: (``tunnel_max_depth``, ``vxlan_ports`` ...; docs/encapsulation.md):
    #: they override the mos.conf's
    decap: dict[str, Any] = attrs.field(factory=dict)
    #: plugin values keyed by option destination name
    options: dict[str, Any] = attrs.field(factory=dict)
    #: the parsed mos.conf (mosfw.mosconf.MosConfig) when -f was given
    mos: Any = None
    #: the plugin manager
    pluginmanager: Any = None
    #: where plugins write their main output
    stdout: TextIO = attrs.field(default=sys.stdout)
    #: where diagnostics go
    stderr: TextIO = attrs.field(default=sys.stderr)
    #: the run's records (:class:`mosfw.records.Records`): plugins emit
    #: their records through it (``config.records.emit(stream, record)``);
    #: the runner makes one (JSON lines on ``stdout``) when it is None
    records: Any = None

    #: a --dask task's side files (mosfw.side_outputs): (PATH, part, file)
    side_outputs: list[tuple[str, str, Any]] = attrs.field(factory=list, repr=False)

    def open_output(self, path: str) -> TextIO:
        """Open a file for this plugin's own output (``--http-log PATH``):
        text, line-buffered, appended to. The plugin writes whole lines
        and closes it (or leaves that to the process's end). With ``-c N``
        every worker appends to PATH; in a ``--dask`` task the lines go to
        a file of the run's parts directory, appended to PATH by the run's
        process in segment order once every segment finished, so a task
        Dask runs again writes nothing twice (:mod:`mosfw.side_outputs`)."""
        from mosfw.side_outputs import open_side_output

        return open_side_output(self, path)

    def getoption(self, name: str, default: Any = None) -> Any:
        """Value of a plugin option by destination name (``--conn-log`` ->
        ``conn_log``)."""
        return self.options.get(name.lstrip("-").replace("-", "_"), default)


class OptionParser:
    """Collects plugin options (what ``mosfw_addoption`` receives)."""

    def __init__(self) -> None:
        self.options: list[click.Option] = []

    def addoption(self, *names: str, **kwargs: Any) -> None:
        """Add an option; arguments as for :func:`click.option`."""
        self.options.append(click.Option(list(names), **kwargs))


def rmem_memcap_of(config: Config) -> int:
    """The run's ``rmem_memcap``: the Config's own value when set, else the
    mos.conf's (``config.mos``), else 1 GiB; 0 = no cap."""
    from mosfw.mosconf import DEFAULT_RMEM_MEMCAP

    v = getattr(config, "rmem_memcap", None)
    if v is None and getattr(config, "mos", None) is not None:
        v = getattr(config.mos, "rmem_memcap", None)
    v = DEFAULT_RMEM_MEMCAP if v is None else int(v)
    if not 0 <= v < 2**63:
        raise UsageError(f"rmem_memcap must be between 0 (no cap) and 2^63-1 bytes, not {v}")
    return v


def frag_settings_of(config: Config) -> tuple[int, float]:
    """The run's IP fragment reassembly settings, ``(frag_memcap,
    frag_timeout)``: the mos.conf's (``config.mos``) or the defaults
    (32 MiB, 30 s); a memcap of 0 turns reassembly off."""
    from mosfw.mosconf import DEFAULT_FRAG_MEMCAP, DEFAULT_FRAG_TIMEOUT

    mos = getattr(config, "mos", None)
    cap = getattr(mos, "frag_memcap", None)
    timeout = getattr(mos, "frag_timeout", None)
    return (
        DEFAULT_FRAG_MEMCAP if cap is None else int(cap),
        float(DEFAULT_FRAG_TIMEOUT if timeout is None else timeout),
    )
