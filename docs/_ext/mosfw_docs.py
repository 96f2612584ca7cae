"""Sphinx directive ``mosfw-cli``: the live ``--help`` of a mosfw command,
so the CLI reference cannot drift from the code."""

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


def setup(app):
    app.add_directive("mosfw-cli", CliHelp)
    return {"parallel_read_safe": True}
