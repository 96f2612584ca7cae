"""The ``mosfw`` command: a click group, one module per command."""

from __future__ import annotations

import sys

import click

from mosfw import __version__
from mosfw.cli import startup
from mosfw.cli.hooks import hooks_command
from mosfw.cli.run import run_command


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Run `mosfw COMMAND --help` for a command's options. Docs: docs/ in the source tree.",
)
@click.version_option(__version__, prog_name="mosfw")
def cli() -> None:
    """mosfw: passive TCP monitors in Python at native speed.

    A C engine reads a capture file or a live interface, emulates both
    endpoints' TCP state machines for every connection and raises
    mOS-style events (connection start, state change, new data,
    retransmission, connection end, orphan, error) to plugins.

    \b
    Examples:
      mosfw run -r trace.pcap -p eventlog           # every event as JSON lines
      mosfw run -r trace.pcap -p samples/midstat    # netstat-like table
      mosfw run -r trace.pcap -p myapp.py --bpf 'port 443'
    """


cli.add_command(run_command)
cli.add_command(hooks_command)


def main() -> None:
    """Console entry point."""
    startup.hold()  # until plugins load (cli/startup.py)
    from mosfw.plugin_faults import install_interrupt_handler

    install_interrupt_handler()  # Ctrl-C: Interrupted, told from a plugin's KeyboardInterrupt
    try:
        cli(prog_name="mosfw")
    except SystemExit as e:
        dask_run = sys.modules.get("mosfw.cli.dask_run")
        if dask_run is not None and dask_run.RUN_ENDED:
            startup.release()
            dask_run.exit_without_teardown(e.code)
        raise
    finally:
        startup.release()
