"""mos.conf: the mOS configuration file, parsed and validated for mosfw.

mosfw reads the configuration syntax of the mOS networking stack
(``core/src/config.c`` in mOS): ``#`` comments running to the end of the
line, nested ``name { ... }`` blocks (``mos { }`` holding ``netdev { }``,
``arp_table { }``, ...; ``application { }``), ``key = value`` settings and,
inside ``netdev { }``, lines of an interface name and a core mask
(``eth0 0x0003``). Numbers are decimal or ``0x`` hexadecimal.

Where mOS silently skips what it cannot read, mosfw is strict about syntax
(an error naming file, line and column) and lenient about meaning: settings
that only make sense for DPDK or for mOS's forwarding / end-host modes are
accepted with a note, unknown keys with a warning. ``docs/mos-conf.md`` is
the reference for every key.

Public API: :func:`load_config`, :func:`parse_config`, :func:`default_config`,
:class:`MosConfig` (with :meth:`MosConfig.merged` for command-line
overrides), :class:`ConfigError`, :func:`ensure_log_dir`,
:func:`emit_diagnostics`.

This is the public surface; the parts are the modules of this package
(defaults, errors, values, model, parser). Standard library and attrs only.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    import pathlib

from mosfw.mosconf.defaults import (  # noqa: F401 - public constants, documented here
    DEFAULT_FRAG_MEMCAP,
    DEFAULT_FRAG_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NO_RING_BUFFERS,
    DEFAULT_RMEM_MEMCAP,
    DEFAULT_RMEM_SIZE,
    DEFAULT_TCP_TIMEOUT,
    DEFAULT_TCP_TW_INTERVAL,
    FORWARD_ERROR,
)
from mosfw.mosconf.errors import ConfigError, Diagnostic
from mosfw.mosconf.model import MosConfig, default_config
from mosfw.mosconf.parser import _HONOURED_KEYS, _IGNORED_MOS_KEYS, _Parser  # noqa: F401 - the keys: docs tests

__all__ = [
    "ConfigError",
    "Diagnostic",
    "MosConfig",
    "default_config",
    "emit_diagnostics",
    "ensure_log_dir",
    "load_config",
    "parse_config",
]


# ---------------------------------------------------------------------------
# entry points


def parse_config(text: str, filename: str | None = "mos.conf") -> MosConfig:
    """Parse mos.conf ``text``; ``filename`` is only used in messages.

    Raises :class:`ConfigError` on a syntax error or an invalid value.
    The result's ``source`` is None (see :func:`load_config`).
    """
    parser = _Parser(text, filename)
    parser.parse()
    return parser.config()


def load_config(path: str | os.PathLike[str]) -> MosConfig:
    """Read and parse the mos.conf at ``path`` (``source`` is set to it).

    Raises :class:`ConfigError` if the file cannot be read, is not UTF-8
    text, or does not parse.
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"cannot read configuration file: {reason}", name) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError("not UTF-8 text", name, line, column) from None
    return attrs.evolve(parse_config(text, name), source=name)


def ensure_log_dir(cfg: MosConfig) -> pathlib.Path | None:
    """Create ``cfg.mos_log`` (and its parents) if missing; return it.

    Returns None when no ``mos_log`` is configured. Raises
    :class:`ConfigError` naming the directory when it cannot be created
    or is not a writable directory.
    """
    if not cfg.mos_log:
        return None
    import pathlib  # only with mos_log: kept off start-up

    path = pathlib.Path(cfg.mos_log)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(
            f"cannot create log directory '{cfg.mos_log}' (mos_log): {reason}", cfg.source
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"log directory '{cfg.mos_log}' (mos_log) is not writable", cfg.source)
    return path


def emit_diagnostics(cfg: MosConfig, stream: IO[str] | None = None) -> int:
    """Write ``cfg``'s notes and warnings to ``stream`` (default stderr),
    one per line, in line order. Returns how many were written."""
    out = sys.stderr if stream is None else stream
    items = sorted(
        list(cfg.notes) + list(cfg.warnings),
        key=lambda d: getattr(d, "line", None) or 0,
    )
    for item in items:
        out.write(f"{item}\n")
    return len(items)
