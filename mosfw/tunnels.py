"""The layers a flow or a packet came through (docs/encapsulation.md):
VLAN tags, MPLS labels, PPPoE, PBB, FabricPath, VN-Tag and the tunnels
(IP in IP, GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, AYIYA), as the C
parser (native/decap.c) recorded them, outermost first."""

from __future__ import annotations

from _socket import AF_INET, AF_INET6, inet_ntop
from typing import Any

import attrs

from mosfw._native import ffi, lib

__all__ = ["Tunnel", "TUNNEL_KINDS", "tunnels_from_c", "decap_settings", "set_decap_config"]

#: kind names by enum mosfw_tunnel_kind value
TUNNEL_KINDS: tuple[str, ...] = tuple(
    ffi.string(lib.mosfw_tunnel_kind_name(k)).decode() for k in range(lib.MOSFW_TUN_KINDS)
)


@attrs.frozen
class Tunnel:
    """One layer. ``src``/``dst``/``sport``/``dport`` are the outer IP
    header's addresses and, for tunnels over UDP, ports; layer-2 layers
    (``vlan``, ``mpls``, ``pppoe``, ``pbb``, ``fabricpath``, ``vntag``)
    have ``src`` and ``dst`` None."""

    #: ``vlan``, ``mpls``, ``pppoe``, ``pbb``, ``fabricpath``, ``vntag``,
    #: ``ipip``, ``gre``, ``erspan``, ``vxlan``, ``geneve``, ``gtpu``,
    #: ``teredo`` or ``ayiya``
    kind: str
    #: the layer's identifier: VLAN id, MPLS label, PPPoE session, I-SID,
    #: FTag, VN-Tag destination VIF, GRE key (0 without), ERSPAN session,
    #: VNI, TEID; 0 for the others
    id: int = 0
    src: str | None = None  #: outer source address
    dst: str | None = None  #: outer destination address
    sport: int = 0  #: outer UDP source port (UDP tunnels)
    dport: int = 0  #: outer UDP destination port (UDP tunnels)

    def asdict(self) -> dict[str, Any]:
        """The layer as JSON-ready dict (address and port keys only where set)."""
        d: dict[str, Any] = {"kind": self.kind, "id": self.id}
        if self.src is not None:
            d["src"], d["dst"] = self.src, self.dst
        if self.sport or self.dport:
            d["sport"], d["dport"] = self.sport, self.dport
        return d


def tunnels_from_c(arr: Any, n: int) -> tuple[Tunnel, ...]:
    """Tunnels from the first ``n`` of a ``struct mosfw_tunnel[]``."""
    out = []
    for i in range(n):
        t = arr[i]
        kind = TUNNEL_KINDS[t.kind] if t.kind < len(TUNNEL_KINDS) else str(t.kind)
        src = dst = None
        if t.family == 4:
            src = inet_ntop(AF_INET, bytes(t.src[0:4]))
            dst = inet_ntop(AF_INET, bytes(t.dst[0:4]))
        elif t.family == 6:
            src = inet_ntop(AF_INET6, bytes(t.src[0:16]))
            dst = inet_ntop(AF_INET6, bytes(t.dst[0:16]))
        out.append(Tunnel(kind, t.id, src, dst, t.sport, t.dport))
    return tuple(out)


#: the mos.conf keys of decapsulation (docs/encapsulation.md)
DECAP_KEYS = (
    "tunnel_max_depth",
    "tunnel_key",
    "tunnel_live_rehash",
    "mpls_pseudowire",
    "vxlan_ports",
    "geneve_ports",
    "gtpu_ports",
    "teredo_ports",
    "ayiya_ports",
)


def decap_settings(config: Any) -> dict[str, Any]:
    """The run's decapsulation settings by mos.conf key: the command line's
    (``config.decap``) over the mos.conf's (``config.mos``) over the
    defaults; a bad value raises :class:`mosfw.mosconf.ConfigError`."""
    from mosfw.mosconf import default_config

    mos = getattr(config, "mos", None) or default_config()
    over = getattr(config, "decap", None)
    if over:
        mos = mos.merged(**over)
    return {k: getattr(mos, k) for k in DECAP_KEYS}


def set_decap_config(c: Any, config: Any) -> None:
    """Fill a ``struct mosfw_decap_config`` from the run's settings."""
    d = decap_settings(config)
    c.max_depth = d["tunnel_max_depth"]
    c.key_by_tunnel = d["tunnel_key"]
    c.mpls_pw = d["mpls_pseudowire"]
    for key in DECAP_KEYS[4:]:
        arr = getattr(c, key)
        ports = d[key]
        for i in range(4):
            arr[i] = ports[i] if i < len(ports) else 0
