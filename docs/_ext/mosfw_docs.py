"""Sphinx glue for the mosfw docs.

- Directive ``mosfw-cli``: the live ``--help`` of a mosfw command, so the
  CLI reference cannot drift from the code.
- napoleon reads the first line of every attribute, property and data
  docstring as Google-style ``type: description``, so a prose line with a
  colon in it ("TCP sequence number (REXMIT: the segment's; ...)") came
  out as a bogus ``Type:`` field. mosfw's attribute docs are prose and
  never use that form: napoleon still handles every other docstring
  (``Attributes:`` sections and the like), attribute docstrings pass
  through as written.
"""

from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst import Directive


class CliHelp(Directive):
    required_arguments = 0
    optional_arguments = 10
    has_content = False

    def run(self):
        from click.testing import CliRunner

        from mosfw.cli import cli

        args = list(self.arguments) + ["--help"]
        result = CliRunner().invoke(cli, args, prog_name="mosfw", terminal_width=100)
        if result.exit_code != 0:
            raise self.error(f"mosfw {' '.join(args)} failed: {result.output}")
        block = nodes.literal_block(result.output, result.output)
        block["language"] = "text"
        return [block]


_PROSE = frozenset({"attribute", "property", "data"})


def _napoleon_except_attributes(napoleon_handler):
    def handler(app, what, name, obj, options, lines):
        if what not in _PROSE:
            napoleon_handler(app, what, name, obj, options, lines)

    return handler


def setup(app):
    from sphinx.errors import ExtensionError
    from sphinx.ext import napoleon

    app.add_directive("mosfw-cli", CliHelp)
    app.setup_extension("sphinx.ext.napoleon")
    ours = [
        listener
        for listener in app.events.listeners["autodoc-process-docstring"]
        if listener.handler is napoleon._process_docstring
    ]
    if len(ours) != 1:  # a Sphinx that wires napoleon differently: fail the build, not garble the docs
        raise ExtensionError("mosfw_docs: cannot find napoleon's autodoc-process-docstring listener")
    app.disconnect(ours[0].id)
    app.connect(
        "autodoc-process-docstring",
        _napoleon_except_attributes(napoleon._process_docstring),
        priority=ours[0].priority,
    )
    return {"parallel_read_safe": True}
