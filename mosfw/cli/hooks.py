"""``mosfw hooks``: list every hook with the first sentence of its docs."""

from __future__ import annotations

import inspect
import re
import shutil

import click

_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")  # :func:`mosfw_merge` -> mosfw_merge()
_LITERAL = re.compile(r"``([^`]+)``")  # ``MOS_ON_CONN_END`` -> MOS_ON_CONN_END
_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.!?](?=\s|$)")


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring (which may wrap over several
    lines), as plain text: reST roles and literals lose their markup."""
    para = " ".join(doc.strip().split("\n\n")[0].split())
    para = _ROLE.sub(
        lambda m: m.group(1) + ("()" if m.group(0).startswith((":func:", ":meth:")) else ""), para
    )
    para = _LITERAL.sub(r"\1", para)
    end = _SENTENCE_END.search(para)
    return para[: end.end()] if end else para


@click.command("hooks")
@click.option("-v", "--verbose", is_flag=True, help="Print each hook's whole docstring.")
def hooks_command(verbose: bool) -> None:
    """List the hooks a plugin can implement."""
    from mosfw import hookspecs

    width = min(shutil.get_terminal_size().columns, 100)
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("mosfw_"):
            continue
        sig = inspect.signature(fn)
        args = ", ".join(sig.parameters)
        doc = inspect.getdoc(fn) or ""
        click.echo(f"{name}({args})")
        if verbose:
            click.echo("    " + doc.replace("\n", "\n    ") + "\n")
        elif doc:
            click.echo(
                click.wrap_text(first_sentence(doc), width, initial_indent="    ", subsequent_indent="    ")
            )
