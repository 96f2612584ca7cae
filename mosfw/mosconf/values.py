"""mos.conf value checks, shared by the parser and :meth:`MosConfig.merged` (part of :mod:`mosfw.mosconf`)."""

from __future__ import annotations

import re
from typing import Any

from mosfw.mosconf.defaults import _I32_MAX, _U32_MAX, FORWARD_ERROR
from mosfw.mosconf.errors import _Invalid

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
    "rmem_memcap": _check_range("rmem_memcap", 0, 2**63 - 1, " bytes"),
    "frag_memcap": _check_range("frag_memcap", 0, 2**63 - 1, " bytes"),
    "frag_timeout": _check_range("frag_timeout", 1, _I32_MAX, " seconds"),
    "tcp_timeout": _check_tcp_timeout,
    "tcp_tw_interval": _check_range("tcp_tw_interval", 0, _I32_MAX, " seconds"),
    "udp_timeout": _check_range("udp_timeout", 0, _I32_MAX, " seconds"),
    "icmp_timeout": _check_range("icmp_timeout", 0, _I32_MAX, " seconds"),
    "no_ring_buffers": _check_bool01("no_ring_buffers"),
    "tunnel_max_depth": _check_range("tunnel_max_depth", 0, 32, " layers"),
    "tunnel_key": _check_bool01("tunnel_key"),
    "tunnel_live_rehash": _check_bool01("tunnel_live_rehash"),
    "mpls_pseudowire": _check_range(
        "mpls_pseudowire", 0, 2, " (0 none, 1 Ethernet, 2 Ethernet with control word)"
    ),
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


def _to_nets(names: tuple[str, ...]) -> tuple[str, ...]:
    """``local_nets``: each an IPv4 or IPv6 network (or address)."""
    import ipaddress  # only with local_nets: kept off start-up

    for n in names:
        try:
            ipaddress.ip_network(n, strict=False)
        except ValueError as e:
            raise _Invalid(f"local_nets: {n!r} is not a network ({e})") from None
    return names


#: mos.conf keys holding a list of UDP ports (docs/encapsulation.md)
_PORT_KEYS = ("vxlan_ports", "geneve_ports", "gtpu_ports", "teredo_ports", "ayiya_ports")


def _to_ports(value: Any, key: str) -> tuple[int, ...]:
    """A port list: "4789 8472", "4789,8472", a sequence of ints; "0" (or
    nothing) = none; at most 4 ports, each 1..65535."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    ports = [_to_int(x, key) for x in items]
    if ports == [0]:
        return ()
    for p in ports:
        if not 1 <= p <= 65535:
            raise _Invalid(f"{key}: port {p} is not in 1..65535 (0 alone = no port)")
    if len(ports) > 4:
        raise _Invalid(f"{key}: at most 4 ports, got {len(ports)}")
    return tuple(dict.fromkeys(ports))
