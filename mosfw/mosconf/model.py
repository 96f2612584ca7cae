"""The validated configuration, :class:`MosConfig` (part of :mod:`mosfw.mosconf`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs

from mosfw.mosconf.defaults import (
    DEFAULT_FRAG_MEMCAP,
    DEFAULT_FRAG_TIMEOUT,
    DEFAULT_ICMP_TIMEOUT,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_NO_RING_BUFFERS,
    DEFAULT_RMEM_MEMCAP,
    DEFAULT_RMEM_SIZE,
    DEFAULT_TCP_TIMEOUT,
    DEFAULT_TCP_TW_INTERVAL,
    DEFAULT_TUNNEL_MAX_DEPTH,
    DEFAULT_TUNNEL_PORTS,
    DEFAULT_UDP_TIMEOUT,
)
from mosfw.mosconf.errors import ConfigError, Diagnostic, _Invalid
from mosfw.mosconf.values import (
    _INT_KEYS,
    _PORT_KEYS,
    _check_value,
    _to_int,
    _to_names,
    _to_netdevs,
    _to_nets,
    _to_ports,
)

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

    local_nets: tuple[str, ...] = ()
    """mosfw's own key: the site's networks (``10.0.0.0/8 fd00::/8``), Zeek's
    ``Site::local_nets``; the tracker's ``local_orig``/``local_resp`` test
    addresses against them (``--local-nets`` overrides)."""

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

    rmem_memcap: int = DEFAULT_RMEM_MEMCAP
    """Bytes all reassembly buffers of one core may take together; a side
    whose buffer would go past it keeps no payload (counted). 0 = no cap."""

    tcp_timeout: int = DEFAULT_TCP_TIMEOUT
    """Idle seconds after which a flow ends (CONN_END, reason timeout);
    0 = never time out idle flows (mOS's ``-1``, which is read as 0)."""

    udp_timeout: int = DEFAULT_UDP_TIMEOUT
    """Idle seconds (packet time) after which a UDP flow ends (timeout);
    0 = never. Only flows of runs where a plugin asked for UDP
    (``mosfw_protocols``); not a mOS key."""

    icmp_timeout: int = DEFAULT_ICMP_TIMEOUT
    """As ``udp_timeout``, for ICMP and ICMPv6 flows."""

    tcp_tw_interval: int = DEFAULT_TCP_TW_INTERVAL
    """Seconds a flow whose sides both reached TIME_WAIT/CLOSED is kept
    before it is removed (late FIN/ACK retransmissions still match it);
    0 = remove it at once (mOS's default)."""

    no_ring_buffers: int = DEFAULT_NO_RING_BUFFERS
    """1 = keep no per-side payload buffers (peek returns nothing; byte
    counts are still kept); 0 = keep them (``rmem_size`` bytes per side)."""

    frag_memcap: int = DEFAULT_FRAG_MEMCAP
    """Bytes one core's incomplete IP datagrams may take together (the
    oldest are dropped first, counted); 0 = no fragment reassembly
    (fragments are only counted). See docs/fragments.md."""

    frag_timeout: int = DEFAULT_FRAG_TIMEOUT
    """Seconds of packet time after its first fragment that an incomplete
    IP datagram is dropped (counted)."""

    tunnel_max_depth: int = DEFAULT_TUNNEL_MAX_DEPTH
    """Tunnel layers a packet may come through (VLAN tags do not count, an
    MPLS stack counts once); a deeper packet is skipped and counted. 0 =
    decapsulate nothing (docs/encapsulation.md)."""

    tunnel_key: int = 0
    """1 = key flows by their tunnel identity (VLAN ids, VNI, GRE key ...)
    as well as by the inner 5-tuple: for sensors that receive overlapping
    private address spaces."""

    tunnel_live_rehash: int = 0
    """1 = live ``-c N`` does not use the kernel's AF_PACKET fanout (which
    hashes the outer headers of UDP tunnels): every core reads every
    packet and keeps its shard of the inner 5-tuple."""

    mpls_pseudowire: int = 0
    """MPLS payload that is neither IPv4 nor IPv6: 0 = not decoded, 1 =
    Ethernet pseudowire, 2 = Ethernet pseudowire with a control word."""

    vxlan_ports: tuple[int, ...] = DEFAULT_TUNNEL_PORTS["vxlan_ports"]
    """UDP destination ports of VXLAN (at most 4; () = none)."""
    geneve_ports: tuple[int, ...] = DEFAULT_TUNNEL_PORTS["geneve_ports"]
    """UDP destination ports of Geneve."""
    gtpu_ports: tuple[int, ...] = DEFAULT_TUNNEL_PORTS["gtpu_ports"]
    """UDP ports (either side) of GTP-U."""
    teredo_ports: tuple[int, ...] = DEFAULT_TUNNEL_PORTS["teredo_ports"]
    """UDP ports (either side) of Teredo."""
    ayiya_ports: tuple[int, ...] = DEFAULT_TUNNEL_PORTS["ayiya_ports"]
    """UDP ports (either side) of AYIYA."""

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
            for name in _PORT_KEYS:
                if name in given:
                    changes[name] = _to_ports(given[name], name)
            if "mos_log" in given:
                changes["mos_log"] = os.fspath(given["mos_log"]) or None
            if "stat_print" in given:
                changes["stat_print"] = _to_names(given["stat_print"])
            if "local_nets" in given:
                changes["local_nets"] = _to_nets(_to_names(given["local_nets"]))
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
