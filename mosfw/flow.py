"""The Flow view: one tracked TCP connection as plugins see it.

A :class:`Flow` reads the engine's flow record in place (no copy per
event). What it returns is *state now*: as of the end of the batch of
events being dispatched. The state at the moment of an event is in the
:class:`~mosfw.events.Event` passed with it. After its CONN_END the flow
is frozen: the record is copied once and the view keeps working.
"""

from __future__ import annotations

import socket
from typing import Any

from mosfw._native import ffi
from mosfw.events import STATES, EndReason, Side, TcpState

__all__ = ["Flow", "format_endpoint"]


def _addr(raw, family: int) -> str:
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, bytes(raw[0:4]))
    return socket.inet_ntop(socket.AF_INET6, bytes(raw[0:16]))


def format_endpoint(ip: str, port: int) -> str:
    """``ip:port``, with IPv6 addresses in brackets (``[fd00::1]:80``)."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Flow:
    """A tracked TCP connection (mOS: the monitoring socket of a flow).

    Attributes:
        id: stable per-core flow id.
        core: the core that owns the flow.
        uctx: per-flow user context (mOS ``mtcp_set_uctx``): any object,
            ``None`` until an app sets it; dropped after CONN_END.
    """

    __slots__ = ("id", "core", "uctx", "_rec", "_ended", "_client", "_server", "_client_str", "_server_str",
                 "__weakref__")

    def __init__(self, rec, flow_id: int, core: int) -> None:
        self._rec = rec
        self.id = flow_id
        self.core = core
        self.uctx: Any = None
        self._ended = False
        self._client = None
        self._server = None
        self._client_str = None
        self._server_str = None

    # -- identity -----------------------------------------------------------

    @property
    def family(self) -> int:
        """4 or 6."""
        return self._rec.tuple.family

    @property
    def client(self) -> tuple[str, int]:
        """``(ip, port)`` of the client (the side that sent the first SYN,
        or the likely client when picked up mid-stream)."""
        if self._client is None:
            t = self._rec.tuple
            self._client = (_addr(t.cli_addr, t.family), t.cli_port)
        return self._client

    @property
    def server(self) -> tuple[str, int]:
        """``(ip, port)`` of the server."""
        if self._server is None:
            t = self._rec.tuple
            self._server = (_addr(t.srv_addr, t.family), t.srv_port)
        return self._server

    def endpoint(self, side: Side) -> tuple[str, int]:
        """``(ip, port)`` of one side."""
        return self.client if side == Side.CLIENT else self.server

    @property
    def client_str(self) -> str:
        """The client as ``ip:port`` (``[ip]:port`` for IPv6)."""
        if self._client_str is None:
            self._client_str = format_endpoint(*self.client)
        return self._client_str

    @property
    def server_str(self) -> str:
        """The server as ``ip:port`` (``[ip]:port`` for IPv6)."""
        if self._server_str is None:
            self._server_str = format_endpoint(*self.server)
        return self._server_str

    # -- state (now) --------------------------------------------------------

    def state(self, side: Side) -> TcpState:
        """Emulated TCP state of one endpoint, now."""
        return STATES[self._rec.side[side].state]

    @property
    def client_state(self) -> TcpState:
        return STATES[self._rec.side[0].state]

    @property
    def server_state(self) -> TcpState:
        return STATES[self._rec.side[1].state]

    @property
    def midstream(self) -> bool:
        """True when the flow was picked up without its handshake."""
        return bool(self._rec.midstream)

    @property
    def ended(self) -> bool:
        """True once CONN_END has been dispatched for this flow."""
        return self._ended

    @property
    def end_reason(self) -> EndReason | None:
        r = self._rec.end_reason
        return EndReason(r) if r else None

    @property
    def first_side(self) -> Side:
        """The side that sent the first packet the tap saw."""
        return Side(self._rec.first_dir)

    # -- counters -----------------------------------------------------------

    def pkts(self, side: Side) -> int:
        """Packets sent by ``side``."""
        return self._rec.side[side].pkts

    def ip_bytes(self, side: Side) -> int:
        """IP bytes (headers included) sent by ``side``."""
        return self._rec.side[side].ip_bytes

    def payload_bytes(self, side: Side) -> int:
        """TCP payload bytes sent by ``side``, retransmissions included."""
        return self._rec.side[side].payload_bytes

    def rexmit_pkts(self, side: Side) -> int:
        """Segments from ``side`` classified as retransmissions (REXMIT)."""
        return self._rec.side[side].rexmit_pkts

    def rexmit_bytes(self, side: Side) -> int:
        """Payload bytes in those segments."""
        return self._rec.side[side].rexmit_bytes

    def isn(self, side: Side) -> int | None:
        """Initial sequence number of ``side`` (None if its SYN was not seen)."""
        h = self._rec.side[side]
        return h.isn if h.flags & 0x12 else None  # SYN_SEEN | SYNACK_SEEN

    def seq_hi(self, side: Side) -> int | None:
        """Highest sequence end sent by ``side`` (None before it sent)."""
        h = self._rec.side[side]
        return h.seq_hi if h.flags & 0x01 else None

    def history_bits(self, side: Side) -> int:
        """Bit set of what ``side`` sent (``MOSFW_HIST_*`` in tcp_state.h)."""
        return self._rec.side[side].hist

    @property
    def first_ts(self) -> float:
        """Time of the first packet."""
        return self._rec.first_ts

    @property
    def last_ts(self) -> float:
        """Time of the last packet (for ended flows: when it ended)."""
        return self._rec.last_ts

    @property
    def duration(self) -> float:
        return self._rec.last_ts - self._rec.first_ts

    # -- engine side ----------------------------------------------------------

    def _freeze(self) -> None:
        """Copy the record out of the table (called after CONN_END)."""
        copy = ffi.new("struct mosfw_flow *")
        ffi.memmove(copy, self._rec, ffi.sizeof("struct mosfw_flow"))
        self._rec = copy
        self._ended = True
        self.uctx = None

    def __repr__(self) -> str:
        return (
            f"<Flow {self.id} {self.client_str} {self.client_state.name} -> "
            f"{self.server_str} {self.server_state.name}>"
        )
