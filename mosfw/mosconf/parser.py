"""The mos.conf tokenizer and parser: mOS's syntax, strictly (part of :mod:`mosfw.mosconf`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from mosfw.mosconf.errors import ConfigError, Diagnostic, _Invalid
from mosfw.mosconf.model import MosConfig, _cores_of
from mosfw.mosconf.values import (
    _INT_CHECKS,
    _NUM_RE,
    _PORT_KEYS,
    _check_mask,
    _check_value,
    _parse_int,
    _to_nets,
    _to_ports,
)

# ---------------------------------------------------------------------------
# the parser

_HONOURED_KEYS = (
    "forward",
    "max_concurrency",
    "rmem_size",
    "rmem_memcap",
    "frag_memcap",
    "frag_timeout",
    "tcp_timeout",
    "tcp_tw_interval",
    "udp_timeout",
    "icmp_timeout",
    "no_ring_buffers",
    "mos_log",
    "stat_print",
    "local_nets",
    "tunnel_max_depth",
    "tunnel_key",
    "tunnel_live_rehash",
    "mpls_pseudowire",
    *_PORT_KEYS,
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
            elif name == "local_nets":
                parsed = _to_nets(tuple(value.split()))
            elif name in _PORT_KEYS:
                parsed = _to_ports(value, name)
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
