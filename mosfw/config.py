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

This module is self-contained (standard library and attrs only).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import IO, TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import pathlib

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
# defaults

DEFAULT_MAX_CONCURRENCY = 1_000_000
"""Flow-table capacity per core (mOS: 100000, a DPDK preallocation)."""
DEFAULT_RMEM_SIZE = 8192
"""Per-side stream buffer, bytes (same as mOS)."""
DEFAULT_TCP_TIMEOUT = 30
"""Idle seconds before a flow ends with reason timeout (same as mOS)."""
DEFAULT_TCP_TW_INTERVAL = 5
"""Seconds a flow is kept in TIME_WAIT (mOS: 0, drop at once)."""
DEFAULT_NO_RING_BUFFERS = 0
"""0 = keep per-side stream buffers (same as mOS)."""

_U32_MAX = 2**32 - 1
_I32_MAX = 2**31 - 1

FORWARD_ERROR = (
    "forward = {value} is not supported: mosfw runs in passive mode only "
    "(it watches traffic and never forwards a packet); set forward = 0 "
    "or remove the line"
)


# ---------------------------------------------------------------------------
# errors and diagnostics


def _where(filename: str | None, line: int | None, column: int | None) -> str:
    parts = [str(p) for p in (filename, line, column) if p is not None]
    return ":".join(parts) + ": " if parts else ""


class ConfigError(Exception):
    """A mos.conf that cannot be used.

    ``str(err)`` is one line in the compiler style
    ``mos.conf:7:12: error: <message>``; the parts that are not known are
    left out (``mos.conf: error: ...`` for a file that cannot be read,
    ``error: ...`` for a bad command-line override).
    """

    def __init__(
        self,
        message: str,
        filename: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.message = message
        """The message without the location prefix."""
        self.filename = filename
        """The file name as given to :func:`load_config` / :func:`parse_config`, or None."""
        self.line = line
        """1-based line number, or None."""
        self.column = column
        """1-based column (characters; a tab counts as one), or None."""
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{_where(self.filename, self.line, self.column)}error: {self.message}"

    def __reduce__(self):  # keep it picklable across worker processes
        return (type(self), (self.message, self.filename, self.line, self.column))


class Diagnostic(str):
    """A note or warning: a ``str`` (``mos.conf:12: warning: ...``) that
    also carries ``kind`` ("note" or "warning"), ``message``, ``filename``,
    ``line`` and ``key`` (the key or block name it is about)."""

    kind: str
    message: str
    filename: str | None
    line: int | None
    key: str | None

    def __new__(
        cls,
        kind: str,
        message: str,
        filename: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> Diagnostic:
        self = super().__new__(cls, f"{_where(filename, line, None)}{kind}: {message}")
        self.kind = kind
        self.message = message
        self.filename = filename
        self.line = line
        self.key = key
        return self

    def __reduce__(self):
        return (Diagnostic, (self.kind, self.message, self.filename, self.line, self.key))


class _Invalid(Exception):
    """A value problem; the caller adds the location."""


# ---------------------------------------------------------------------------
# the configuration


def _popcount(mask: int) -> int:
    return bin(mask).count("1")


def _cores_of(netdevs: Sequence[tuple[str, int]]) -> int:
    union = 0
    for _, mask in netdevs:
        union |= mask
    return _popcount(union) or 1


@attrs.frozen
class MosConfig:
    """A validated mos.conf (or the defaults). Immutable; use
    :meth:`merged` to apply command-line overrides."""

    forward: int = 0
    """Always 0: mosfw is passive. mOS's ``forward = 1`` (inline
    forwarding, mOS's own default) is rejected with a :class:`ConfigError`."""

    netdevs: tuple[tuple[str, int], ...] = ()
    """``netdev { IFACE MASK }`` lines, in file order: (interface name,
    core mask). Empty when the file names no interface (offline input)."""

    cores: int = 1
    """Number of per-core workers: the number of bits set in the union of
    the netdev core masks (as mOS computes ``num_cores``); 1 without netdev."""

    stat_print: tuple[str, ...] = ()
    """Interfaces whose per-second packet/byte statistics are printed."""

    mos_log: str | None = None
    """Directory for the run's log files (relative paths are relative to
    the working directory, as in mOS), or None for no log files. See
    :func:`ensure_log_dir`."""

    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    """Most flows tracked at once per core (flow-table capacity); beyond
    it, flows are evicted or refused and an ERROR event is raised."""

    rmem_size: int = DEFAULT_RMEM_SIZE
    """Bytes of in-order payload kept per side of a flow for peek/ppeek
    (mOS: the receive buffer of a monitor socket)."""

    tcp_timeout: int = DEFAULT_TCP_TIMEOUT
    """Idle seconds after which a flow ends (CONN_END, reason timeout);
    0 = never time out idle flows (mOS's ``-1``, which is read as 0)."""

    tcp_tw_interval: int = DEFAULT_TCP_TW_INTERVAL
    """Seconds a flow whose sides both reached TIME_WAIT/CLOSED is kept
    before it is removed (late FIN/ACK retransmissions still match it);
    0 = remove it at once (mOS's default)."""

    no_ring_buffers: int = DEFAULT_NO_RING_BUFFERS
    """1 = keep no per-side payload buffers (peek returns nothing; byte
    counts are still kept); 0 = keep them (``rmem_size`` bytes per side)."""

    notes: tuple[Diagnostic, ...] = ()
    """One line per accepted-but-ignored setting (DPDK-only keys,
    ``application`` and forwarding-table blocks), naming key and line."""

    warnings: tuple[Diagnostic, ...] = ()
    """One line per suspicious setting: unknown keys and blocks (with a
    suggestion), keys set twice, stat_print names not in netdev."""

    source: str | None = None
    """The path the configuration was loaded from, or None."""

    def merged(self, **overrides: Any) -> MosConfig:
        """Return a new config with command-line ``overrides`` applied.

        Keyword names are field names; ``None`` values are ignored, so
        unset click options can be passed straight through. Values are
        validated like the file's (``ConfigError`` on a bad one) and may be
        ints or strings (``"0x10"``). ``netdevs`` items are ``(iface,
        mask)`` pairs or bare interface names (mask: all ``cores``);
        ``stat_print`` may be a space-separated string. When ``netdevs`` is
        overridden and ``cores`` is not, ``cores`` is recomputed.
        ``notes``, ``warnings`` and ``source`` are kept as they are.
        """
        unknown = sorted(set(overrides) - _OVERRIDABLE)
        if unknown:
            raise TypeError(f"MosConfig.merged() got unknown override(s): {', '.join(unknown)}")
        given = {k: v for k, v in overrides.items() if v is not None}
        changes: dict[str, Any] = {}
        try:
            if "cores" in given:
                cores = _to_int(given["cores"], "cores")
                if cores <= 0:
                    raise _Invalid(f"cores must be greater than 0, got {cores}")
                changes["cores"] = cores
            for name in _INT_KEYS:
                if name in given:
                    changes[name] = _check_value(name, _to_int(given[name], name))
            if "mos_log" in given:
                changes["mos_log"] = os.fspath(given["mos_log"]) or None
            if "stat_print" in given:
                changes["stat_print"] = _to_names(given["stat_print"])
            if "netdevs" in given:
                cores = changes.get("cores", self.cores)
                netdevs = _to_netdevs(given["netdevs"], (1 << cores) - 1)
                changes["netdevs"] = netdevs
                if "cores" not in changes:
                    changes["cores"] = _cores_of(netdevs)
        except _Invalid as exc:
            raise ConfigError(str(exc)) from None
        return attrs.evolve(self, **changes)


_OVERRIDABLE = frozenset(
    f.name for f in attrs.fields(MosConfig) if f.name not in ("notes", "warnings", "source")
)


def default_config() -> MosConfig:
    """The configuration used when no mos.conf is given."""
    return MosConfig()


# ---------------------------------------------------------------------------
# value checks, shared by the parser and MosConfig.merged()

_NUM_RE = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)\Z")


def _parse_int(text: str, key: str) -> int:
    s = text.strip()
    if not s:
        raise _Invalid(f"missing value for '{key}'")
    if not _NUM_RE.match(s):
        raise _Invalid(
            f"bad number '{s}' for '{key}' (expected a decimal or 0x-prefixed hexadecimal integer)"
        )
    sign = -1 if s[0] == "-" else 1
    body = s.lstrip("+-")
    if body[:2].lower() == "0x":
        return sign * int(body[2:], 16)
    if len(body) > 1 and body[0] == "0":
        raise _Invalid(
            f"ambiguous number '{s}' for '{key}': mOS reads a leading 0 as octal; "
            "write it without the leading 0, or in hex as 0x..."
        )
    return sign * int(body)


def _to_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return _parse_int(value, key)
    raise _Invalid(f"'{key}' must be an integer, got {value!r}")


def _check_forward(v: int) -> int:
    if v != 0:
        raise _Invalid(FORWARD_ERROR.format(value=v))
    return 0


def _check_range(key: str, low: int, high: int, what: str = ""):
    def check(v: int) -> int:
        if v < low:
            bound = "greater than 0" if low == 1 else f"at least {low}"
            raise _Invalid(f"{key} must be {bound}{what}, got {v}")
        if v > high:
            raise _Invalid(f"{key} must be at most {high}{what}, got {v}")
        return v

    return check


def _check_tcp_timeout(v: int) -> int:
    if v == -1:  # mOS's documented spelling of "no timeout checking"
        return 0
    if v < 0:
        raise _Invalid(
            f"tcp_timeout must be 0 or more seconds (0, or mOS's -1, turns the idle timeout off), got {v}"
        )
    if v > _I32_MAX:
        raise _Invalid(f"tcp_timeout must be at most {_I32_MAX} seconds, got {v}")
    return v


def _check_bool01(key: str):
    def check(v: int) -> int:
        if v not in (0, 1):
            raise _Invalid(f"{key} must be 0 or 1, got {v}")
        return v

    return check


_INT_CHECKS = {
    "forward": _check_forward,
    "max_concurrency": _check_range("max_concurrency", 1, _U32_MAX),
    "rmem_size": _check_range("rmem_size", 1, _I32_MAX, " bytes"),
    "tcp_timeout": _check_tcp_timeout,
    "tcp_tw_interval": _check_range("tcp_tw_interval", 0, _I32_MAX, " seconds"),
    "no_ring_buffers": _check_bool01("no_ring_buffers"),
}
_INT_KEYS = tuple(_INT_CHECKS)


def _check_value(key: str, v: int) -> int:
    return _INT_CHECKS[key](v)


def _to_names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(value.split())
    names: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _Invalid(f"stat_print entries must be interface names, got {item!r}")
        names.extend(item.split())
    return tuple(names)


def _check_mask(iface: str, mask: int) -> int:
    if mask <= 0:
        raise _Invalid(f"core mask of '{iface}' must be greater than 0, got {mask}")
    return mask


def _to_netdevs(value: Any, default_mask: int) -> tuple[tuple[str, int], ...]:
    if isinstance(value, str):
        value = value.split()
    out: dict[str, int] = {}
    for item in value:
        if isinstance(item, str):
            iface, mask = item, default_mask
        else:
            try:
                iface, mask = item
            except (TypeError, ValueError):
                raise _Invalid(
                    f"netdevs entries must be (iface, mask) pairs or names, got {item!r}"
                ) from None
            mask = _to_int(mask, f"{iface} mask")
        if not isinstance(iface, str) or not iface:
            raise _Invalid(f"netdev interface names must be non-empty strings, got {iface!r}")
        out[iface] = _check_mask(iface, mask)
    return tuple(out.items())


# ---------------------------------------------------------------------------
# the parser

_HONOURED_KEYS = (
    "forward",
    "max_concurrency",
    "rmem_size",
    "tcp_timeout",
    "tcp_tw_interval",
    "no_ring_buffers",
    "mos_log",
    "stat_print",
)

# mos { } keys mOS reads that mean nothing to a passive libpcap monitor.
_IGNORED_MOS_KEYS = {
    "nb_mem_channels": "a DPDK setting (memory channels per CPU socket); "
    "mosfw captures with libpcap and ignores it",
    "wmem_size": "the send-buffer size of mOS end-host (mTCP) sockets; "
    "a passive monitor never sends, so mosfw ignores it",
    "multiprocess": "a DPDK multi-process setting; mosfw starts its own worker per core and ignores it",
    "port": "read but never used by mOS; mosfw ignores it",
}
_MOS_KEYS = _HONOURED_KEYS + tuple(_IGNORED_MOS_KEYS)

# application { } keys (mOS reads type, run, cpu_mask, ip_forward; its
# templates and man page write core_mask).
_APP_KEYS = ("type", "run", "cpu_mask", "core_mask", "ip_forward")

_TABLE_BLOCKS = {
    "arp_table": "static ARP entries are for mOS's forwarding and end-host "
    "modes; a passive monitor sends nothing",
    "route_table": "static routes are for mOS's forwarding and end-host "
    "modes; a passive monitor sends nothing",
    "nic_forward_table": "bump-in-the-wire forwarding is not possible in passive mode",
}
_BLOCKS = ("mos", "application", "netdev") + tuple(_TABLE_BLOCKS)


@attrs.frozen
class _Tok:
    kind: str  # "word", "{", "}", "=", "nl", "eof"
    text: str
    line: int
    col: int  # 1-based
    end: int  # 1-based, exclusive


def _tokenize(text: str) -> tuple[list[_Tok], list[str]]:
    toks: list[_Tok] = []
    lines: list[str] = []
    raw_lines = text.split("\n")
    if raw_lines and raw_lines[-1] == "":
        raw_lines.pop()
    for lineno, raw in enumerate(raw_lines, 1):
        hash_at = raw.find("#")
        line = raw if hash_at < 0 else raw[:hash_at]
        lines.append(line)
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if c.isspace():
                i += 1
            elif c in "{}=":
                toks.append(_Tok(c, c, lineno, i + 1, i + 2))
                i += 1
            else:
                j = i
                while j < n and not line[j].isspace() and line[j] not in "{}=":
                    j += 1
                toks.append(_Tok("word", line[i:j], lineno, i + 1, j + 1))
                i = j
        end = len(line.rstrip()) + 1
        toks.append(_Tok("nl", "", lineno, end, end))
    last = len(lines)
    toks.append(_Tok("eof", "", max(last, 1), 1, 1))
    return toks, lines


def _suggest(word: str, candidates: Iterable[str]) -> str:
    import difflib  # only for a misspelt key

    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


class _Parser:
    def __init__(self, text: str, filename: str | None) -> None:
        self.filename = filename
        self.toks, self.lines = _tokenize(text)
        self.pos = 0
        self.values: dict[str, tuple[Any, _Tok]] = {}  # key -> (value, key token)
        self.netdevs: dict[str, int] = {}
        self.netdev_lines: dict[str, int] = {}
        self.notes: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.entry_counts: list[int] = []
        self.mos_blocks = 0

    # -- helpers ------------------------------------------------------------

    def error(self, message: str, tok: _Tok, col: int | None = None) -> ConfigError:
        return ConfigError(message, self.filename, tok.line, tok.col if col is None else col)

    def note(self, message: str, line: int, key: str) -> None:
        self.notes.append(Diagnostic("note", message, self.filename, line, key))

    def warn(self, message: str, line: int, key: str | None) -> None:
        self.warnings.append(Diagnostic("warning", message, self.filename, line, key))

    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.pos + k, len(self.toks) - 1)]

    def take(self) -> _Tok:
        tok = self.peek()
        if tok.kind != "eof":
            self.pos += 1
        return tok

    def next_significant(self) -> _Tok:
        while self.peek().kind == "nl":
            self.pos += 1
        return self.take()

    def brace_follows(self) -> bool:
        """A '{' next, on this line or after blank/comment lines."""
        k = 0
        while self.peek(k).kind == "nl":
            k += 1
        return self.peek(k).kind == "{"

    def rest_of_line(self, what: str) -> list[_Tok]:
        """Tokens up to the end of the line or a closing '}' (not taken)."""
        out = []
        while self.peek().kind not in ("nl", "}", "eof"):
            tok = self.take()
            if tok.kind == "{":
                raise self.error(f"unexpected '{{' in {what}", tok)
            out.append(tok)
        return out

    # -- grammar ------------------------------------------------------------

    def parse(self) -> None:
        self.body("mos", None)

    def body(self, scope: str, opener: tuple[_Tok, _Tok] | None) -> None:
        while True:
            tok = self.next_significant()
            if tok.kind == "eof":
                if opener is not None:
                    name, brace = opener
                    raise self.error(
                        f"block '{name.text}' is never closed (missing '}}' for "
                        f"the '{{' on line {brace.line})",
                        brace,
                    )
                return
            if tok.kind == "}":
                if opener is None:
                    raise self.error("unmatched '}' (no block is open here)", tok)
                return
            if tok.kind == "{":
                raise self.error("'{' without a block name before it", tok)
            if tok.kind == "=":
                raise self.error("'=' without a key before it", tok)
            # a word
            if self.peek().kind == "=":
                self.take()
                self.key_value(scope, tok)
            elif self.brace_follows():
                brace = self.next_significant()
                self.block(scope, tok, brace)
            else:
                words = [tok] + self.rest_of_line(f"the line starting '{tok.text}'")
                self.entry(scope, words)

    def block(self, scope: str, name: _Tok, brace: _Tok) -> None:
        bname = name.text
        if scope in ("netdev",) + tuple(_TABLE_BLOCKS):
            raise self.error(f"a block cannot be nested inside '{scope}'", name)
        child = "unknown"
        if scope == "mos":
            if bname in _BLOCKS:
                child = bname
            else:
                self.warn(
                    f"unknown block '{bname}' (its contents are ignored)" + _suggest(bname, _BLOCKS),
                    name.line,
                    bname,
                )
        elif scope == "application":
            self.warn(
                f"unknown block '{bname}' inside 'application' (its contents are ignored)",
                name.line,
                bname,
            )
        if child == "mos":
            self.mos_blocks += 1
            if self.mos_blocks == 2:
                self.warn(
                    "more than one 'mos' block; their settings are combined",
                    name.line,
                    "mos",
                )
        elif child == "application":
            self.note(
                "'application' block ignored: mosfw takes the monitor apps to "
                "run from its command line, not from mos.conf",
                name.line,
                "application",
            )
        self.entry_counts.append(0)
        self.body(child, (name, brace))
        entries = self.entry_counts.pop()
        if child in _TABLE_BLOCKS and entries:
            s = "y" if entries == 1 else "ies"
            self.note(
                f"'{bname}' block ignored ({entries} entr{s}): {_TABLE_BLOCKS[child]}",
                name.line,
                bname,
            )

    def entry(self, scope: str, words: list[_Tok]) -> None:
        first = words[0]
        if scope == "netdev":
            self.netdev_entry(words)
            return
        if scope in _TABLE_BLOCKS or scope == "unknown":
            if self.entry_counts:
                self.entry_counts[-1] += 1
            return
        # mos (or top level) and application scopes hold settings only
        if len(words) == 1:
            raise self.error(
                f"'{first.text}' alone is not a setting: expected "
                f"'{first.text} = value' or a block '{first.text} {{ ... }}'",
                first,
            )
        hint = ""
        if scope == "mos" and first.text not in _MOS_KEYS and _NUM_RE.match(words[1].text):
            hint = " (interface lines such as 'eth0 0x0001' go inside 'netdev { }')"
        raise self.error(f"expected '=' after '{first.text}'{hint}", words[1])

    def netdev_entry(self, words: list[_Tok]) -> None:
        iface = words[0]
        if len(words) == 1:
            raise self.error(
                f"missing core mask after '{iface.text}' in netdev (expected e.g. '{iface.text} 0x0001')",
                iface,
                iface.end,
            )
        if len(words) > 2:
            raise self.error(
                f"unexpected '{words[2].text}' after the core mask of '{iface.text}' "
                "(netdev lines are 'IFACE MASK')",
                words[2],
            )
        masktok = words[1]
        try:
            mask = _check_mask(iface.text, _parse_int(masktok.text, f"{iface.text} core mask"))
        except _Invalid as exc:
            raise self.error(str(exc), masktok) from None
        if iface.text in self.netdevs:
            self.warn(
                f"netdev '{iface.text}' listed again (first on line "
                f"{self.netdev_lines[iface.text]}); the last mask wins",
                iface.line,
                iface.text,
            )
        else:
            self.netdev_lines[iface.text] = iface.line
        self.netdevs[iface.text] = mask

    def key_value(self, scope: str, key: _Tok) -> None:
        eq = self.toks[self.pos - 1]
        vtoks = self.rest_of_line(f"the value of '{key.text}'")
        if vtoks:
            line = self.lines[key.line - 1]
            value = line[vtoks[0].col - 1 : vtoks[-1].end - 1]
            vtok = vtoks[0]
        else:
            value = ""
            vtok = _Tok("word", "", eq.line, eq.end, eq.end)
        name = key.text

        if scope == "netdev" or scope in _TABLE_BLOCKS:
            what = "'IFACE MASK' lines" if scope == "netdev" else "table entries"
            raise self.error(f"'{scope}' holds {what}, not 'key = value'", key)
        if scope == "unknown":
            return
        if scope == "application":
            if name not in _APP_KEYS:
                where = " (it belongs in the 'mos' block)" if name in _MOS_KEYS else _suggest(name, _APP_KEYS)
                self.warn(f"unknown key '{name}' in 'application' block{where}", key.line, name)
            return

        # mos scope
        if name not in _MOS_KEYS:
            self.warn(f"unknown key '{name}'" + _suggest(name, _MOS_KEYS), key.line, name)
            return
        if name in self.values:
            first = self.values[name][1].line
            self.warn(
                f"'{name}' is set again (first on line {first}); the last value wins",
                key.line,
                name,
            )
        if name in _IGNORED_MOS_KEYS:
            self.note(f"'{name}' is {_IGNORED_MOS_KEYS[name]}", key.line, name)
            self.values[name] = (value, key)
            return
        try:
            if name in _INT_CHECKS:
                parsed: Any = _check_value(name, _parse_int(value, name))
            elif name == "stat_print":
                parsed = tuple(value.split())
            else:  # mos_log
                parsed = value or None
        except _Invalid as exc:
            raise self.error(str(exc), vtok) from None
        self.values[name] = (parsed, key)

    # -- result ---------------------------------------------------------------

    def config(self) -> MosConfig:
        kw: dict[str, Any] = {}
        for name in _HONOURED_KEYS:
            if name in self.values:
                kw[name] = self.values[name][0]
        netdevs = tuple(self.netdevs.items())
        if netdevs and "stat_print" in self.values:
            names, key = self.values["stat_print"]
            for n in names:
                if n not in self.netdevs:
                    self.warn(
                        f"stat_print names '{n}', which is not in netdev" + _suggest(n, self.netdevs),
                        key.line,
                        "stat_print",
                    )
        return MosConfig(
            netdevs=netdevs,
            cores=_cores_of(netdevs),
            notes=tuple(self.notes),
            warnings=tuple(self.warnings),
            **kw,
        )


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
