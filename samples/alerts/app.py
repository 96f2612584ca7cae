"""alerts: rule-based alerts on packets, a passive simple firewall.

mOS's ``simple_firewall`` sample matches packets against rules and drops
or forwards them; a passive monitor cannot drop, so this app *logs* an
alert instead. Each rule is a **user-defined event over PKT_IN with a BPF
filter** evaluated in C on every packet of a tracked flow
(``mosfw.api.define_event(EventType.PKT_IN, bpf)``). A rule with
``contains`` chains a second user-defined event on top of it, whose
Python filter looks into the packet's payload (``flow.last_packet()``),
so Python only sees packets the BPF filter already accepted. An
``ignore`` rule stops monitoring matching flows (``MOS_STOP_MON``): the
engine stops producing events for them.

Rules (``--alert-rules PATH``, default ``rules.txt`` next to this file),
one per line, ``#`` comments::

    alert  NAME "BPF" [contains "TEXT"] [once] [msg "TEXT"]
    ignore NAME "BPF"

``once``: at most one alert per flow and rule. Each alert is one JSON line
(``--alert-log PATH``, default stdout): ``ts``, ``rule``, ``msg``,
``src``, ``dst`` (the packet's sender and receiver), ``side`` (of the
sender), ``flags``, ``len``, ``seq``, ``flow`` (client -> server).

    mosfw run -r capture.pcap -p samples/alerts [--alert-rules my.rules]
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import attrs

import mosfw
from mosfw import EventType
from mosfw.api import define_event

__all__ = ["Rule", "RuleError", "parse_rules", "Alerts"]

DEFAULT_RULES = Path(__file__).with_name("rules.txt")
_FLAGS = "FSRPAU"


class RuleError(ValueError):
    """A rules file line that cannot be parsed (message names the line)."""


@attrs.frozen
class Rule:
    action: str  #: "alert" or "ignore"
    name: str
    bpf: str
    contains: bytes | None = None
    once: bool = False
    msg: str = ""
    line: int = 0


def parse_rules(text: str, source: str = "rules") -> list[Rule]:
    rules, names = [], set()
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise RuleError(f"{source}:{no}: {e}") from None
        if len(words) < 3 or words[0] not in ("alert", "ignore"):
            raise RuleError(f"{source}:{no}: expected 'alert|ignore NAME \"BPF\" ...', got {raw.strip()!r}")
        action, name, bpf, rest = words[0], words[1], words[2], words[3:]
        if name in names:
            raise RuleError(f"{source}:{no}: rule {name!r} defined twice")
        names.add(name)
        kw = {}
        while rest:
            w = rest.pop(0)
            if w == "once":
                kw["once"] = True
            elif w in ("contains", "msg") and rest:
                v = rest.pop(0)
                kw[w] = v.encode() if w == "contains" else v
            else:
                raise RuleError(f"{source}:{no}: unexpected {w!r}")
        if action == "ignore" and kw:
            raise RuleError(f"{source}:{no}: 'ignore' takes only a name and a BPF filter")
        rules.append(Rule(action, name, bpf, line=no, **kw))
    return rules


def _flags(b: int) -> str:
    return "".join(f for i, f in enumerate(_FLAGS) if b & (1 << i))


class Alerts:
    """The plugin object: one user-defined event (or a chain of two) per
    rule, registered as callbacks when the core starts."""

    def __init__(self, rules: list[Rule], out) -> None:
        self.rules = rules
        self.out = out
        self.count = 0
        self.events = []
        for r in rules:
            ev = define_event(EventType.PKT_IN, r.bpf, name=r.name)
            if r.contains is not None:
                needle = r.contains
                ev = define_event(
                    ev,
                    lambda flow, _n=needle: _n in (flow.last_packet().payload or b""),
                    name=f"{r.name}/contains",
                )
            self.events.append((r, ev))

    @mosfw.hookimpl
    def mosfw_core_start(self, core) -> None:
        for rule, ev in self.events:
            if rule.action == "ignore":
                core.register(ev, lambda flow: flow.stop_monitoring())
            else:
                core.register(ev, lambda flow, event, _r=rule: self._alert(_r, flow, event))

    def _alert(self, rule: Rule, flow, event) -> None:
        if rule.once:
            seen = flow.store(self, set)  # this app's own per-flow set of rules that fired
            if rule.name in seen:
                return
            seen.add(rule.name)
        pkt = flow.last_packet()
        side = pkt.side if pkt is not None else event.side
        src, dst = (
            (flow.client_str, flow.server_str)
            if side == mosfw.Side.CLIENT
            else (flow.server_str, flow.client_str)
        )
        self.count += 1
        self.out.write(
            json.dumps(
                {
                    "ts": round(event.ts, 6),
                    "rule": rule.name,
                    "msg": rule.msg or rule.name,
                    "src": src,
                    "dst": dst,
                    "side": side.label,
                    "flags": _flags(event.tcp_flags),
                    "len": event.len,
                    "seq": event.seq,
                    "flow": f"{flow.client_str} -> {flow.server_str}",
                }
            )
            + "\n"
        )

    @mosfw.hookimpl
    def mosfw_core_finish(self, core) -> None:
        self.out.flush()


@mosfw.hookimpl
def mosfw_addoption(parser) -> None:
    parser.addoption(
        "--alert-rules",
        default=None,
        metavar="PATH",
        help="alerts: the rules file (default: samples/alerts/rules.txt).",
    )
    parser.addoption(
        "--alert-log",
        default=None,
        metavar="PATH",
        help="alerts: write the JSON lines to PATH (default: stdout).",
    )


@mosfw.hookimpl
def mosfw_configure(config) -> None:
    path = config.getoption("alert_rules") or DEFAULT_RULES
    try:
        rules = parse_rules(Path(path).read_text(), str(path))
    except OSError as e:
        raise mosfw.UsageError(f"alerts: cannot read rules: {e}") from None
    except RuleError as e:
        raise mosfw.UsageError(f"alerts: {e}") from None
    log = config.getoption("alert_log")
    opener = getattr(config, "open_output", None) or (lambda path: open(path, "a", buffering=1))  # noqa: SIM115
    out = opener(log) if log else config.stdout  # appended to (with --dask: per segment, then joined)
    config.pluginmanager.register(Alerts(rules, out), name=f"alerts-{id(config)}")
