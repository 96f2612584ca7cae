"""``mosfw run``: run plugins over a capture file or a live interface."""

from __future__ import annotations

import os
import sys
import time

import click

from mosfw.cli.summary import _progress_printer, _summary

EXIT_OK = 0
EXIT_SETUP = 1
EXIT_USAGE = 2
EXIT_INPUT_DAMAGED = 3
EXIT_PLUGIN_ERRORS = 4
EXIT_CORE_LOST = 5
EXIT_RECORDS_LOST = 6
EXIT_INTERRUPTED = 130

EPILOG = """\b
Plugins (-p, repeatable): a registered name (eventlog), a .py file, an app
folder (samples/midstat) or an importable module. Plugins may add their own
options; they are listed here when -p comes first:
  mosfw run -p eventlog --help

\b
Exit codes:
  0    the input was read to its end (or a live capture was stopped)
  1    could not start: unreadable input, bad filter, bad mos.conf, a
       plugin that does not load (import error, misspelt hook or callback
       argument, mosfw_addoption raising), a missing interface, no
       permission, a --stats-json path that cannot be written, a --sink
       whose server cannot be reached or file cannot be written (named
       with its address)
  2    bad command line (a -p naming no file, folder or plugin included;
       also -r - with more than one core)
  3    the input ended with a read error (a truncated or corrupt file,
       or a live interface that went down or disappeared): everything
       before it was processed and reported; with many files, one of
       them could not be read to its end (named; the run went on)
  4    plugin hooks raised (each reported once, all counted; sys.exit()
       in a plugin too); with --fail-fast the run stopped at the first one
  5    with -c N, a core was lost: its worker died (SIGKILL, SIGSEGV), or
       was stopped by a signal sent to it alone; the other cores'
       results were reported, and the lost core is named
  6    a --sink lost records (its server went away and did not come
       back within the retry time, its buffer filled up, or the flush at
       the end timed out): the count per sink is in the summary, in
       --stats-json and in mosfw_sink_records_lost_total; 3 and 5 take
       precedence, and 6 takes precedence over 4
  130  interrupted while reading a file (final report still printed;
       with --dask: the tasks cancelled, no report)

\b
SIGINT/SIGTERM ends the run cleanly (open flows end, report printed); a
second one within 2 s of the first is the same request (GNU timeout and
signals to the process group deliver two); one after that aborts at once.
"""


def _prescan_plugins(args: list[str]) -> list[str]:
    """The -p/--plugin values in args, before click parses them."""
    specs = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a in ("-p", "--plugin") and i + 1 < len(args):
            specs.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--plugin="):
            specs.append(a.split("=", 1)[1])
        elif a.startswith("-p") and len(a) > 2 and not a.startswith("--"):
            specs.append(a[2:])
        i += 1
    return specs


class PluginOptionsCommand(click.Command):
    """A command that loads the -p plugins first and adds their options
    (``mosfw_addoption``) before parsing the command line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        from mosfw.cli import startup
        from mosfw.engine import Core  # noqa: F401 - imported before the freeze below
        from mosfw.manager import MosfwPluginManager, PluginLoadError, PluginNotFound
        from mosfw.runconfig import OptionParser
        from mosfw.runner import run_job  # noqa: F401 - likewise

        startup.release()  # plugin code runs with the collector on
        pm = MosfwPluginManager()
        parser = OptionParser()
        try:
            for spec in _prescan_plugins(args):
                pm.load(spec)
            pm.add_options(parser)  # mosfw_addoption, each plugin's guarded
        except PluginNotFound as e:  # -p names nothing: a bad command line
            raise click.UsageError(str(e), ctx) from None
        except PluginLoadError as e:  # found, but does not load: could not start
            click.echo(f"mosfw: {e}", err=True)
            ctx.exit(EXIT_SETUP)
        # start from the command's own options on every invocation
        if not hasattr(self, "_base_params"):
            self._base_params = list(self.params)
        self.params = list(self._base_params)
        known = {o for p in self.params for o in getattr(p, "opts", [])}
        for opt in parser.options:
            clash = [o for o in opt.opts if o in known]
            if clash:
                raise click.UsageError(
                    f"a plugin option clashes with an existing one: {', '.join(clash)}", ctx
                )
            self.params.append(opt)
        ctx.meta["mosfw.pm"] = pm
        ctx.meta["mosfw.plugin_opts"] = [o.name for o in parser.options]
        return super().parse_args(ctx, args)


@click.command(
    "run",
    cls=PluginOptionsCommand,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.option(
    "-r",
    "--read",
    "read_file",
    metavar="FILE|DIR",
    envvar="MOSFW_READ",
    multiple=True,
    help="Read packets from a pcap or pcapng file (packet time drives timeouts). Repeat it, or give "
    "a directory, to read many files as one stream in packet-time order (gzip/zstd/xz/lz4-compressed "
    "captures too): docs/archives.md.",
)
@click.option(
    "-i", "--interface", metavar="IFACE", help="Capture live from an interface (needs root or CAP_NET_RAW)."
)
@click.option(
    "-p",
    "--plugin",
    "plugins",
    metavar="PLUGIN",
    multiple=True,
    help="Load a plugin (repeatable). See below.",
)
@click.option("--bpf", metavar="EXPR", help="Global BPF filter, compiled by libpcap (e.g. 'tcp port 80').")
@click.option(
    "-f",
    "--conf",
    "conf",
    metavar="MOS.CONF",
    type=click.Path(dir_okay=False),
    help="mOS configuration file; command-line options override it.",
)
@click.option(
    "-c",
    "--cores",
    type=click.IntRange(min=1),
    default=None,
    help="Number of cores (default 1, or mos.conf's netdev mask).",
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Flow table capacity per core (default 1000000).",
)
@click.option(
    "--tcp-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Idle seconds before a flow ends with reason timeout; 0 = never (default 30, mOS's; "
    "the tracker's default is Zeek's 300, tcp_inactivity_timeout).",
)
@click.option(
    "--tcp-tw-interval",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds an ended flow is remembered so late packets are orphans (default 5; "
    "the tracker counts them in the record, as Zeek's tcp_close_delay).",
)
@click.option(
    "--tcp-attempt-delay",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds after which an unanswered SYN's flow ends at its next packet; 0 = never "
    "(default 0, mOS; the tracker's default is Zeek's tcp_attempt_delay, 5).",
)
@click.option(
    "--tcp-partial-open/--no-tcp-partial-open",
    default=None,
    help="A lone RST, a FIN, a packet without SYN starts a flow (Zeek's partial_connection_ok; "
    "default off, mOS: orphans; the tracker's default is on).",
)
@click.option(
    "--udp-timeout",
    type=click.FloatRange(min=0),
    default=None,
    help="Idle seconds before a UDP flow ends (when a plugin asked for UDP); 0 = never (default 60, Zeek's).",
)
@click.option(
    "--icmp-timeout", type=click.FloatRange(min=0), default=None, help="As --udp-timeout, for ICMP."
)
@click.option(
    "--user",
    metavar="NAME",
    help="Drop root and run as NAME once the capture is open (live capture as a service).",
)
@click.option(
    "--tunnel-max-depth",
    type=click.IntRange(0, 32),
    default=None,
    help="Tunnel layers a packet may come through; deeper ones are skipped and counted; "
    "0 = decapsulate nothing (default 4, mos.conf tunnel_max_depth).",
)
@click.option(
    "--tunnel-key/--no-tunnel-key",
    default=None,
    help="Key flows by tunnel identity (VLAN, VNI, GRE key...) as well as the inner 5-tuple "
    "(overlapping address spaces; mos.conf tunnel_key).",
)
@click.option(
    "--tunnel-ports",
    metavar="KIND=P[,P..]",
    multiple=True,
    help="UDP ports of a tunnel kind (vxlan, geneve, gtpu, teredo, ayiya), e.g. vxlan=4789,8472; "
    "0 = none (repeatable; mos.conf KIND_ports).",
)
@click.option(
    "--mpls-pseudowire",
    type=click.Choice(["none", "eth", "eth-cw"]),
    default=None,
    help="Non-IP MPLS payload: not decoded, Ethernet, or Ethernet after a control word "
    "(mos.conf mpls_pseudowire 0/1/2).",
)
@click.option(
    "--tunnel-rehash",
    is_flag=True,
    default=None,
    help="Live -c N: shard by the inner 5-tuple in software (every core reads every packet) "
    "instead of the kernel's fanout hash (mos.conf tunnel_live_rehash).",
)
@click.option("--verify-checksums", is_flag=True, help="Verify IPv4/TCP checksums (off by default: offload).")
@click.option("--fail-fast", is_flag=True, help="Stop at the first exception raised by a plugin.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress line on stderr (default: only when stderr is a terminal).",
)
@click.option("-q", "--quiet", is_flag=True, help="No summary on stderr.")
@click.option("--stats-json", metavar="PATH", help="Write the final counters as JSON to PATH ('-' = stderr).")
@click.option(
    "--sink",
    "sinks",
    metavar="URL",
    multiple=True,
    help="Where plugins' records go (repeatable; default: JSON lines on stdout): stdout, "
    "file:PATH[?max_bytes=N&seconds=S&keep=K], redis://HOST:PORT/DB?stream=NAME[&maxlen=N], "
    "kafka://BROKER[,BROKER]?topic=NAME. See docs/cli.md.",
)
@click.option(
    "--dask",
    "dask",
    metavar="[ADDRESS]",
    is_flag=False,
    flag_value="local",
    default=None,
    help="Split the archive (-r) into time segments run on Dask: a LocalCluster of -c worker processes, "
    "or the scheduler at ADDRESS (tcp://host:8786). Needs pip install 'mosfw[dask]'; docs/archives.md.",
)
@click.option(
    "--segments",
    type=click.IntRange(min=1),
    default=None,
    help="--dask: time segments (default one a worker, up to 4 while the lead-ins stay small: "
    "docs/archives.md).",
)
@click.option(
    "--dask-parts",
    metavar="DIR",
    default=None,
    help="--dask: where tasks write their output (shared by every worker; default: a temporary directory).",
)
@click.pass_context
def run_command(
    ctx: click.Context,
    read_file,
    interface,
    plugins,
    bpf,
    conf,
    cores,
    max_concurrency,
    tcp_timeout,
    tcp_tw_interval,
    tcp_attempt_delay,
    tcp_partial_open,
    udp_timeout,
    icmp_timeout,
    tunnel_max_depth,
    tunnel_key,
    tunnel_ports,
    mpls_pseudowire,
    tunnel_rehash,
    user,
    verify_checksums,
    fail_fast,
    progress,
    quiet,
    stats_json,
    sinks,
    dask,
    segments,
    dask_parts,
    **plugin_opts,
):
    """Run plugins over a capture file (-r) or a live interface (-i).

    With no plugin the engine still tracks every connection and prints
    its counters: a quick way to check a capture.
    """
    from mosfw.manager import PluginLoadError
    from mosfw.records import Records
    from mosfw.runconfig import Config

    if not sinks and os.environ.get("MOSFW_SINK"):
        sinks = tuple(os.environ["MOSFW_SINK"].split())
    try:
        records = Records(sinks)
    except ValueError as e:
        raise click.UsageError(str(e), ctx) from None
    pm = ctx.meta["mosfw.pm"]
    err = sys.stderr
    mos = None
    if conf:
        from mosfw.mosconf import ConfigError, emit_diagnostics, load_config

        try:
            mos = load_config(conf)
        except ConfigError as e:
            click.echo(f"mosfw: {e}", err=True)
            ctx.exit(EXIT_SETUP)
        emit_diagnostics(mos, err)
    read_files = None
    if read_file:
        from mosfw.inputs import expand_inputs, needs_set

        try:
            files = expand_inputs(list(read_file))
        except ValueError as e:
            raise click.UsageError(str(e), ctx) from None
        read_files = files if needs_set(files) else None
        read_file = files[0]
    else:
        read_file = None
    if read_file and interface:
        raise click.UsageError("give either -r FILE or -i IFACE, not both", ctx)
    if not read_file and not interface and mos is not None and mos.netdevs:
        interface = mos.netdevs[0][0]
    if not read_file and not interface:
        raise click.UsageError("no input: give a capture file (-r FILE) or an interface (-i IFACE)", ctx)

    given = {"tcp_attempt_delay": tcp_attempt_delay, "tcp_partial_open": tcp_partial_open}
    explicit: set[str] = {name for name, v in given.items() if v is not None}

    def pick(cli_value, mos_name, default):
        if cli_value is not None:
            explicit.add(mos_name)
            return cli_value
        if mos is not None:
            v = getattr(mos, mos_name)
            if v != default:
                explicit.add(mos_name)
            return v
        return default

    config = Config(
        read_file=read_file,
        read_files=read_files,
        interface=interface,
        bpf=bpf,
        cores=pick(cores, "cores", 1),
        max_concurrency=pick(max_concurrency, "max_concurrency", 1_000_000),
        tcp_timeout=pick(tcp_timeout, "tcp_timeout", 30.0),
        tcp_tw_interval=pick(tcp_tw_interval, "tcp_tw_interval", 5.0),
        tcp_attempt_delay=tcp_attempt_delay if tcp_attempt_delay is not None else 0.0,
        tcp_partial_open=bool(tcp_partial_open),
        udp_timeout=pick(udp_timeout, "udp_timeout", 60.0),
        icmp_timeout=pick(icmp_timeout, "icmp_timeout", 60.0),
        verify_checksums=verify_checksums,
        decap=_decap_options(ctx, tunnel_max_depth, tunnel_key, tunnel_ports, mpls_pseudowire, tunnel_rehash),
        user=user,
        explicit=frozenset(explicit),
        options=dict(plugin_opts),
        mos=mos,
        pluginmanager=pm,
        stdout=sys.stdout,
        stderr=err,
        records=records,
    )
    if mos is not None and mos.mos_log:
        from mosfw.mosconf import ConfigError, ensure_log_dir

        try:
            ensure_log_dir(mos)
        except ConfigError as e:
            click.echo(f"mosfw: {e}", err=True)
            ctx.exit(EXIT_SETUP)
    try:
        pm.check()
    except PluginLoadError as e:
        click.echo(f"mosfw: {e}", err=True)
        ctx.exit(EXIT_SETUP)

    if dask is not None:
        from mosfw.cli.dask_run import run_dask

        if not read_file:
            raise click.UsageError("--dask reads capture files: give -r FILE|DIR", ctx)
        run_dask(ctx, config, plugins, dask, segments, dask_parts, progress, quiet, stats_json, fail_fast)
    stats_fh = None
    if stats_json and stats_json != "-":
        stats_fh, stats_made = _open_stats_json(stats_json)
        if stats_fh is None:
            click.echo(f"mosfw: --stats-json: cannot write {stats_json!r}: {stats_made}", err=True)
            ctx.exit(EXIT_SETUP)
    try:
        _run_and_report(ctx, config, read_file, interface, fail_fast, progress, quiet, stats_json, stats_fh)
    finally:
        if stats_fh is not None and not stats_fh.closed:  # the run did not get to write it
            stats_fh.close()
            if stats_made:
                _unlink_quietly(stats_json)


def _decap_options(ctx, max_depth, key, ports, pseudowire, rehash) -> dict:
    """The decapsulation options given, by mos.conf key (checked here: a
    bad one is a usage error)."""
    from mosfw.mosconf import ConfigError, default_config

    d: dict = {}
    if max_depth is not None:
        d["tunnel_max_depth"] = max_depth
    if key is not None:
        d["tunnel_key"] = int(key)
    if rehash:
        d["tunnel_live_rehash"] = 1
    if pseudowire is not None:
        d["mpls_pseudowire"] = ("none", "eth", "eth-cw").index(pseudowire)
    for spec in ports:
        kind, sep, value = spec.partition("=")
        if not sep or kind not in ("vxlan", "geneve", "gtpu", "teredo", "ayiya"):
            raise click.BadParameter(
                f"{spec!r}: expected KIND=PORT[,PORT..] with KIND one of vxlan, geneve, gtpu, teredo, ayiya",
                ctx,
                param_hint="--tunnel-ports",
            )
        d[f"{kind}_ports"] = value
    try:
        default_config().merged(**d)
    except ConfigError as e:
        raise click.BadParameter(str(e), ctx, param_hint="tunnel options") from None
    return d


def _open_stats_json(path: str):
    """Open the --stats-json file before the run (without truncating it:
    a run that cannot start leaves it as it was): ``(file, created)``, or
    ``(None, reason)`` when it cannot be written."""
    existed = os.path.lexists(path)
    try:
        fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by the caller
    except OSError as e:
        return None, e.strerror or str(e)
    return fh, not existed


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _run_and_report(
    ctx: click.Context, config, read_file, interface, fail_fast, progress, quiet, stats_json, stats_fh
) -> None:
    """Run the job, print the summary and what went wrong, exit with the
    documented code."""
    from mosfw.engine import EngineError, PluginError
    from mosfw.runconfig import UsageError
    from mosfw.runner import run_job

    err = sys.stderr
    show_progress = progress if progress is not None else err.isatty()
    printer = None
    if show_progress:
        names = config.read_files or ([read_file] if read_file else [])
        size = sum(os.path.getsize(f) for f in names if os.path.isfile(f))
        printer = _progress_printer(err, size)
    t0 = time.monotonic()
    try:
        result = run_job(config, fail_fast=fail_fast, progress=printer)
    except UsageError as e:
        click.echo(f"mosfw: {e}", err=True)
        ctx.exit(EXIT_USAGE)
    except PluginError as e:
        if printer:
            err.write("\r\x1b[K")
        click.echo(f"mosfw: {e} (--fail-fast)", err=True)
        ctx.exit(EXIT_PLUGIN_ERRORS)
    except EngineError as e:
        click.echo(f"mosfw: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    except MemoryError:
        click.echo("mosfw: out of memory (a memory limit, prlimit --as or ulimit -v?)", err=True)
        ctx.exit(EXIT_SETUP)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the final flush
        ctx.exit(EXIT_OK)
    elapsed = time.monotonic() - t0
    if printer:
        err.write("\r\x1b[K")
    stats = result.stats
    lost = getattr(result, "lost", [])
    archive = None
    if config.read_files:
        from mosfw.inputs import archive_report, report_lines

        archive = archive_report(result.input_files)
    if not quiet:
        click.echo(_summary(stats, elapsed), err=True)
        for line in report_lines(archive) if archive else []:
            click.echo(line, err=True)
    for loss in lost:
        click.echo(f"mosfw: {loss.message()}", err=True)
    sink_lost = getattr(result, "sink_lost", {})
    for name, n in sorted((k, v) for k, v in sink_lost.items() if v):
        click.echo(f"mosfw: sink {name}: {n} records lost (not confirmed by the server; see above)", err=True)
    if stats_json:
        doc = dict(
            stats.asdict(),
            status=result.status,
            error=result.error,
            seconds=round(elapsed, 6),
            cores_lost=[loss.asdict() for loss in lost],
            sink_records_lost_by_sink=dict(sink_lost),
        )
        if archive is not None:
            doc["archive"] = archive
        import json  # only for --stats-json

        text = json.dumps(doc, sort_keys=True)
        if stats_json == "-":
            click.echo(text, err=True)
        else:
            try:
                with stats_fh:
                    if stats_fh.seekable():  # a regular file: written anew
                        stats_fh.seek(0)
                        stats_fh.truncate()
                    stats_fh.write(text + "\n")
            except OSError as e:
                click.echo(f"mosfw: --stats-json: cannot write {stats_json!r}: {e.strerror or e}", err=True)
                ctx.exit(EXIT_SETUP)
    if result.status == "error":
        what = read_file or interface
        click.echo(
            f"mosfw: error: input {what!r} ended with a read error after {stats.packets} packets: "
            f"{result.error} (results above cover what was read)",
            err=True,
        )
        ctx.exit(EXIT_INPUT_DAMAGED)
    if archive and archive["failed"]:
        for f in archive["failed"]:
            click.echo(
                f"mosfw: error: {f['error']} (after {f['packets']} packets; the run went on)", err=True
            )
        ctx.exit(EXIT_INPUT_DAMAGED)
    if result.status == "stopped":
        click.echo(
            f"mosfw: stopped on request (SIGINT/SIGTERM) after {stats.packets} packets: "
            "open flows were ended (reason eof) and reported",
            err=True,
        )
    if lost:
        ctx.exit(EXIT_CORE_LOST)
    if any(sink_lost.values()):
        ctx.exit(EXIT_RECORDS_LOST)
    if stats.plugin_errors:
        ctx.exit(EXIT_PLUGIN_ERRORS)
    if result.status == "stopped" and read_file:
        ctx.exit(EXIT_INTERRUPTED)
    ctx.exit(EXIT_OK)
