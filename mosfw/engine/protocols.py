"""Which protocols a run tracks besides TCP, and which plugins get the
events of their flows (:func:`mosfw.hookspecs.mosfw_protocols`).

Each plugin asks for itself; the engine tracks the union
(``mosfw_config.protocols``), and a core's dispatch table routes the
records of a UDP or ICMP flow to handlers built from the plugins that
asked for that protocol only (:class:`ProtoView`). A run where nobody asks
keeps the TCP-only table unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mosfw._native import lib

__all__ = [
    "PROTOCOLS",
    "IP_PROTO_NAMES",
    "plugin_protocols",
    "protocol_bits",
    "ProtoView",
    "route_by_protocol",
]

#: protocol names a plugin may ask for, and their engine bit ("other": any
#: other IP protocol, a flow per address pair and protocol number)
PROTOCOLS = {
    "udp": int(lib.MOSFW_PROTO_UDP),
    "icmp": int(lib.MOSFW_PROTO_ICMP),
    "other": int(lib.MOSFW_PROTO_OTHER),
}
#: a flow's IP protocol number -> the name plugins ask for it by (any
#: number not here: "other")
IP_PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}


def plugin_protocols(pm, config) -> dict[str, frozenset[str]]:
    """``{plugin name: the protocols it asked for besides TCP}``, for the
    plugins that asked for any. An unknown name is a usage error."""
    from mosfw.runconfig import UsageError

    out: dict[str, frozenset[str]] = {}
    for name, fn, _argnames in pm.direct_impls("mosfw_protocols"):
        asked = fn(config=config) if "config" in _argnames else fn()
        if not asked:
            continue
        if isinstance(asked, str):
            asked = {asked}
        names = frozenset(str(a).lower() for a in asked) - {"tcp"}
        unknown = names - set(PROTOCOLS)
        if unknown:
            raise UsageError(
                f"plugin {name!r}: mosfw_protocols asked for {sorted(unknown)}; "
                f"known: {sorted(PROTOCOLS)} (TCP is always tracked)"
            )
        if names:
            out[name] = names
    return out


def protocol_bits(asked: dict[str, frozenset[str]]) -> int:
    """The engine's ``protocols`` bits for what the plugins asked for."""
    bits = 0
    for names in asked.values():
        for n in names:
            bits |= PROTOCOLS[n]
    return bits


class ProtoView:
    """The plugin manager as the dispatch table sees it, limited to some
    plugins: the handlers built from it call only their hook
    implementations (for the flows of a protocol they asked for)."""

    def __init__(self, pm, plugins: set[str]) -> None:
        self._pm = pm
        self._plugins = plugins

    def direct_impls(self, hook_name: str) -> list:
        return [i for i in self._pm.direct_impls(hook_name) if i[0] in self._plugins]

    def through_pluggy(self, hook_name: str) -> bool:
        return self._pm.through_pluggy(hook_name)

    def direct_callers(self, hook_name: str) -> list:
        return self._pm.direct_callers(hook_name, only=self._plugins)


def route_by_protocol(
    base: dict[int, Callable],
    by_proto: dict[str, dict[int, Callable]],
    bits: tuple[int, ...],
    proto_of: Callable,
) -> dict[int, Callable]:
    """The dispatch table: for the record types in ``bits``, a handler that
    passes a record about a UDP/ICMP/other flow to ``by_proto[the protocol's
    name]``'s handler (``proto_of(record)`` gives the name) and the others
    (TCP flows, records without a flow) to ``base``'s; the other types as
    in ``base``."""
    out = dict(base)
    for bit in bits:
        tcp = base[bit]
        others = {p: table[bit] for p, table in by_proto.items()}

        def handle(rec: Any, tcp=tcp, others=others) -> None:
            if not rec[1]:
                tcp(rec)
                return
            h = others.get(proto_of(rec))
            (tcp if h is None else h)(rec)

        out[bit] = handle
    return out
