"""``mosfw hooks``: list every hook with the first line of its docs."""

from __future__ import annotations

import inspect

import click


@click.command("hooks")
@click.option("-v", "--verbose", is_flag=True, help="Print each hook's whole docstring.")
def hooks_command(verbose: bool) -> None:
    """List the hooks a plugin can implement."""
    from mosfw import hookspecs

    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("mosfw_"):
            continue
        sig = inspect.signature(fn)
        args = ", ".join(sig.parameters)
        doc = inspect.getdoc(fn) or ""
        click.echo(f"{name}({args})")
        if verbose:
            click.echo("    " + doc.replace("\n", "\n    ") + "\n")
        else:
            click.echo("    " + doc.splitlines()[0] if doc else "")
