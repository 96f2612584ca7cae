"""What a :class:`~mosfw.flow.Flow` says of its protocol: TCP, or a UDP or
ICMP flow tracked for a plugin that asked for it
(:func:`mosfw.hookspecs.mosfw_protocols`)."""

from __future__ import annotations

from typing import Any

__all__ = ["FlowProto", "PROTO_NAMES"]

#: IP protocol number -> ``Flow.proto``
PROTO_NAMES = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp"}
_ONE_WAY = 0x100  # MOSFW_ICMP_ONE_WAY (native/mosfw_api.h)


class FlowProto:
    """The protocol accessors of a Flow (a base of it: reads ``_rec``)."""

    __slots__ = ()
    _rec: Any

    @property
    def proto(self) -> str:
        """``"tcp"``, ``"udp"``, ``"icmp"`` (ICMP and ICMPv6) or ``"other"``
        (another IP protocol, :attr:`ip_proto`: a flow per address pair
        and protocol, ports 0)."""
        return PROTO_NAMES.get(self._rec.tuple.proto, "other")

    @property
    def ip_proto(self) -> int:
        """The IP protocol number: 6, 17, 1 (ICMP), 58 (ICMPv6), or another."""
        return self._rec.tuple.proto

    @property
    def icmp_type(self) -> int | None:
        """An ICMP flow's type: that of its first packet (sent by the
        client); None for TCP and UDP. The flow's key is this type and
        its counterpart (an echo request and its replies are one flow)
        or, for a one-way message, its code (:attr:`icmp_code`)."""
        return self._rec.tuple.cli_port if self.proto == "icmp" else None

    @property
    def icmp_code(self) -> int | None:
        """An ICMP flow's code when its messages are one-way (destination
        unreachable, time exceeded...: the code is part of the key); 0
        for request/reply pairs (their code is 0, RFC 792); None for TCP
        and UDP."""
        if self.proto != "icmp":
            return None
        srv = self._rec.tuple.srv_port
        return srv & 0xFF if srv & _ONE_WAY else 0

    @property
    def icmp_counterpart(self) -> int | None:
        """The type that answers :attr:`icmp_type` (echo reply for an echo
        request...), None for a one-way message and for TCP/UDP. The
        server's ``port`` (:attr:`Flow.server`) is this type, or the code
        for a one-way message, as Zeek writes ``resp_p``."""
        if self.proto != "icmp":
            return None
        srv = self._rec.tuple.srv_port
        return None if srv & _ONE_WAY else srv
