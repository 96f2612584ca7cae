"""mos.conf defaults and the limits of its values (part of :mod:`mosfw.mosconf`)."""

from __future__ import annotations

# ---------------------------------------------------------------------------
# defaults

DEFAULT_MAX_CONCURRENCY = 1_000_000
"""Flow-table capacity per core (mOS: 100000, a DPDK preallocation)."""
DEFAULT_RMEM_SIZE = 8192
"""Per-side stream buffer, bytes (same as mOS)."""
DEFAULT_RMEM_MEMCAP = 1 << 30
"""Bytes all stream buffers of a core may take together (mosfw's own)."""
DEFAULT_TCP_TIMEOUT = 30
"""Idle seconds before a flow ends with reason timeout (same as mOS)."""
DEFAULT_TCP_TW_INTERVAL = 5
#: idle seconds before a UDP / ICMP flow ends (flows of protocols a plugin asked for)
DEFAULT_UDP_TIMEOUT = 60
DEFAULT_ICMP_TIMEOUT = 60
"""Seconds a flow is kept in TIME_WAIT (mOS: 0, drop at once)."""
DEFAULT_NO_RING_BUFFERS = 0
"""0 = keep per-side stream buffers (same as mOS)."""
DEFAULT_FRAG_MEMCAP = 32 << 20
"""Bytes one core's incomplete IP datagrams may take together (mosfw's
own; Suricata's defrag memcap is 32 MB too); 0 = no reassembly."""
DEFAULT_FRAG_TIMEOUT = 30
"""Seconds of packet time an incomplete IP datagram is kept after its
first fragment (Linux's ipfrag_time, net.ipv4.ipfrag_time = 30)."""

_U32_MAX = 2**32 - 1
_I32_MAX = 2**31 - 1

FORWARD_ERROR = (
    "forward = {value} is not supported: mosfw runs in passive mode only "
    "(it watches traffic and never forwards a packet); set forward = 0 "
    "or remove the line"
)

DEFAULT_TUNNEL_MAX_DEPTH = 4
"""Tunnel layers a packet may come through (docs/encapsulation.md)."""
DEFAULT_TUNNEL_PORTS = {
    "vxlan_ports": (4789,),
    "geneve_ports": (6081,),
    "gtpu_ports": (2152,),
    "teredo_ports": (3544,),
    "ayiya_ports": (5072,),
}
"""UDP ports each UDP tunnel is recognised on (at most 4 each)."""
