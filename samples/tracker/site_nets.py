"""Zeek's ``Site::local_nets`` for the tracker's ``local_orig`` and
``local_resp`` fields: the ``--local-nets`` text (or mos.conf's
``local_nets``) parsed into the networks the C view tests addresses
against."""

from __future__ import annotations

import ipaddress

import mosfw


def parse_local_nets(text: str, max_nets: int, option: str = "--local-nets") -> list[tuple[int, bytes, int]]:
    """``--local-nets`` (or ``option``, e.g. ``--ignore-checksums-nets``):
    networks separated by commas or spaces (``10.0.0.0/8,fd00::/8``; an
    address alone is a /32 or /128), as (family, 16 address bytes, prefix
    length). A bad one, or more than ``max_nets``, is a UsageError naming
    it and the option."""
    nets = []
    for item in text.replace(",", " ").split():
        try:
            n = ipaddress.ip_network(item, strict=False)
        except ValueError as e:
            raise mosfw.UsageError(f"{option}: {item!r} is not a network: {e}") from None
        nets.append((n.version, n.network_address.packed.ljust(16, b"\0"), n.prefixlen))
    if len(nets) > max_nets:
        raise mosfw.UsageError(f"{option}: at most {max_nets} networks, not {len(nets)}")
    return nets
