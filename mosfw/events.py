"""Event types, sides, TCP states, end reasons and the event record.

The integer values come from the C engine (``mosfw._native``); the names
are what hooks, the eventlog and midstat use.
"""

from __future__ import annotations

import enum
import struct
from typing import Any

from mosfw._native import ffi, lib

__all__ = ["EventType", "Side", "TcpState", "EndReason", "ErrorCode", "Event", "EVENT_STRUCT"]


class EventType(enum.IntFlag):
    """mOS event bits (``MOS_ON_*``); also the subscription mask."""

    PKT_IN = lib.MOSFW_EV_PKT_IN
    CONN_START = lib.MOSFW_EV_CONN_START
    TCP_STATE_CHANGE = lib.MOSFW_EV_TCP_STATE_CHANGE
    CONN_NEW_DATA = lib.MOSFW_EV_CONN_NEW_DATA
    REXMIT = lib.MOSFW_EV_REXMIT
    CONN_END = lib.MOSFW_EV_CONN_END
    ORPHAN = lib.MOSFW_EV_ORPHAN
    ERROR = lib.MOSFW_EV_ERROR
    TIMEOUT = lib.MOSFW_EV_TIMEOUT
    TICK = lib.MOSFW_EV_TICK

    @property
    def label(self) -> str:
        """Lower-case name as the eventlog prints it (``conn_start``)."""
        name: bytes = ffi.string(lib.mosfw_event_name(int(self)))
        return name.decode()


class Side(enum.IntEnum):
    """The endpoint an event is about (``MOS_SIDE_CLI``/``MOS_SIDE_SVR``)."""

    CLIENT = lib.MOSFW_SIDE_CLIENT
    SERVER = lib.MOSFW_SIDE_SERVER

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def peer(self) -> Side:
        return Side(1 - self)


class TcpState(enum.IntEnum):
    """RFC 793 states (mOS's ``TCP_ST_*`` without the prefix)."""

    CLOSED = lib.MOSFW_TCP_CLOSED
    LISTEN = lib.MOSFW_TCP_LISTEN
    SYN_SENT = lib.MOSFW_TCP_SYN_SENT
    SYN_RCVD = lib.MOSFW_TCP_SYN_RCVD
    ESTABLISHED = lib.MOSFW_TCP_ESTABLISHED
    FIN_WAIT_1 = lib.MOSFW_TCP_FIN_WAIT_1
    FIN_WAIT_2 = lib.MOSFW_TCP_FIN_WAIT_2
    CLOSE_WAIT = lib.MOSFW_TCP_CLOSE_WAIT
    CLOSING = lib.MOSFW_TCP_CLOSING
    LAST_ACK = lib.MOSFW_TCP_LAST_ACK
    TIME_WAIT = lib.MOSFW_TCP_TIME_WAIT


class EndReason(enum.IntEnum):
    """Why CONN_END fired."""

    FIN = lib.MOSFW_END_FIN
    RST = lib.MOSFW_END_RST
    TIMEOUT = lib.MOSFW_END_TIMEOUT
    EVICTED = lib.MOSFW_END_EVICTED
    EOF = lib.MOSFW_END_EOF
    REUSED = lib.MOSFW_END_REUSED

    @property
    def label(self) -> str:
        return self.name.lower()


class ErrorCode(enum.IntEnum):
    """Codes of ERROR events."""

    TABLE_FULL = lib.MOSFW_ERR_TABLE_FULL
    BAD_SEQUENCE = lib.MOSFW_ERR_BAD_SEQUENCE
    BAD_CHECKSUM = lib.MOSFW_ERR_BAD_CHECKSUM
    BUFFER_OVERRUN = lib.MOSFW_ERR_BUFFER_OVERRUN
    FRAG_OVERLAP = lib.MOSFW_ERR_FRAG_OVERLAP

    @property
    def label(self) -> str:
        return self.name.lower()


# Layout of struct mosfw_event (the record fields of an Event, in order).
EVENT_STRUCT = struct.Struct("=dQIIIIIHBBBBBBBBHII")
if EVENT_STRUCT.size != ffi.sizeof("struct mosfw_event"):  # pragma: no cover
    raise ImportError("mosfw._native is out of date: struct mosfw_event changed; rebuild it")

SIDES = (Side.CLIENT, Side.SERVER)
STATES = tuple(TcpState(i) for i in range(len(TcpState)))
REASONS = {int(r): r for r in EndReason}
ERRORS = {int(e): e for e in ErrorCode}
TYPE_BY_BIT = {int(t): t for t in EventType}


class Event(tuple[Any, ...]):
    """One event record, as the engine wrote it at event time.

    A tuple (cheap to build from the bulk-unpacked records) with named
    accessors. Everything here is *state at event time*: ``client_state``
    and ``server_state`` are the emulated states right after the event;
    the :class:`~mosfw.Flow` passed with it shows *state now* (as of the
    end of the batch being dispatched).
    """

    __slots__ = ()

    ts = property(lambda self: self[0], doc="packet time (s) of the packet that caused it")
    flow_id = property(lambda self: self[1], doc="stable per-core flow id (0: no flow)")
    type = property(lambda self: TYPE_BY_BIT[self[3]], doc="the EventType")
    seq = property(
        lambda self: self[4], doc="TCP sequence number (REXMIT: the segment's; NEW_DATA: first new byte)"
    )
    ack = property(lambda self: self[5], doc="ack number of the packet")
    len = property(lambda self: self[6], doc="payload bytes (REXMIT: the segment; NEW_DATA: the new bytes)")
    window = property(lambda self: self[7], doc="raw window field of the packet")
    side = property(lambda self: SIDES[self[8]], doc="the Side the event is about")
    old_state = property(lambda self: STATES[self[9]], doc="TCP_STATE_CHANGE: state before")
    new_state = property(
        lambda self: STATES[self[10]], doc="TCP_STATE_CHANGE: state after; CONN_START: state now"
    )
    reason = property(lambda self: REASONS.get(self[11]), doc="CONN_END: the EndReason")
    error = property(lambda self: ERRORS.get(self[11]), doc="ERROR: the ErrorCode")
    midstream = property(
        lambda self: bool(self[12] & lib.MOSFW_EVF_MIDSTREAM), doc="CONN_START of a flow picked up mid-stream"
    )
    late = property(
        lambda self: bool(self[12] & lib.MOSFW_EVF_LATE),
        doc="ORPHAN of a packet of a flow that ended on FIN or RST less than tcp_tw_interval ago",
    )
    tcp_flags = property(
        lambda self: self[13], doc="TCP flags byte of the packet (0 for timer-driven events)"
    )
    client_state = property(lambda self: STATES[self[14]], doc="client's state at event time")
    server_state = property(lambda self: STATES[self[15]], doc="server's state at event time")
    pkt_index = property(lambda self: self[17], doc="1-based index of the packet in the input")

    def __repr__(self) -> str:
        t = TYPE_BY_BIT.get(self[3])
        return (
            f"<Event {t.label if t else self[3]} side={SIDES[self[8]].label} ts={self[0]:.6f} flow={self[1]}>"
        )
