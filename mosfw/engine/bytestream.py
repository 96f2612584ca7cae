"""Bytestream access (``mtcp_peek``/``mtcp_ppeek``, ``MOS_INFO_*BUF``)
and the packet of the event being dispatched (``mtcp_getlastpkt``)."""

from __future__ import annotations

from mosfw._native import ffi, lib
from mosfw.engine.state import CoreState
from mosfw.events import EventType, Side
from mosfw.flow import Flow
from mosfw.tunnels import tunnels_from_c

_peek = lib.mosfw_core_peek
_MAX_TUN = lib.MOSFW_MAX_TUNNELS
_unpack = ffi.unpack


class _Bytestream(CoreState):
    """Bytestream and packet access (a part of :class:`~mosfw.engine.Core`)."""

    # -- bytestream ---------------------------------------------------------------

    def enable_bytestream(self) -> bool:
        """Keep reassembly buffers (``rmem_size`` bytes per side) for flows'
        payload from now on, although no plugin implements
        ``mosfw_conn_new_data`` (which turns them on by itself). Call it in
        ``mosfw_core_start`` when a plugin peeks from other events. Returns
        False when buffers are off (``no_ring_buffers = 1``)."""
        self._bytestream_asked = True
        self._bytestream = bool(lib.mosfw_core_set_bytestream(self._c, 1))
        return self._bytestream

    def flow_peek(self, flow: Flow, side: int, n: int | None, with_lost: bool):
        """:meth:`Flow.peek <mosfw.flow.Flow.peek>` of a live flow."""
        want = self._pbuf_len if n is None or n > self._pbuf_len else (n if n > 0 else 0)
        r = _peek(self._c, flow.slot, flow.id, side, self._pbuf, want, self._lost)
        if r > 0:
            out = _unpack(self._pbuf, r)
        else:
            out = b""
            if r == -2 and not self._bytestream_asked:
                self.enable_bytestream()  # a first peek asks for buffers from now on
        if with_lost:
            return (self._lost[0] if r >= 0 else 0), out
        return out

    def flow_ppeek(self, flow: Flow, side: int, offset: int, n: int) -> bytes:
        r = lib.mosfw_core_ppeek(
            self._c, flow.slot, flow.id, side, offset, self._pbuf, min(n, self._pbuf_len)
        )
        if r == -2 and not self._bytestream_asked:
            self.enable_bytestream()
        return ffi.unpack(self._pbuf, r) if r > 0 else b""

    def flow_stream_info(self, flow: Flow, side: int):
        from mosfw.api import StreamInfo

        out = ffi.new("struct mosfw_stream_info *")
        if lib.mosfw_core_stream_info(self._c, flow.slot, flow.id, side, out) != 0:
            return None
        return StreamInfo.from_c(out)

    def flow_fragments(self, flow: Flow, side: int) -> list[tuple[int, int]]:
        out = ffi.new("struct mosfw_stream_frag[]", 40)
        n = lib.mosfw_core_stream_frags(self._c, flow.slot, flow.id, side, out, 40)
        if n > 40:
            out = ffi.new("struct mosfw_stream_frag[]", n)
            n = lib.mosfw_core_stream_frags(self._c, flow.slot, flow.id, side, out, n)
        return [(out[i].offset, out[i].len) for i in range(max(0, n))]

    def flow_stream_offset(self, flow: Flow, side: int, seq: int) -> int | None:
        if lib.mosfw_core_stream_offset(self._c, flow.slot, flow.id, side, seq & 0xFFFFFFFF, self._i64):
            return None
        return self._i64[0]

    def flow_set_overlap(self, flow: Flow, side: int, policy: int) -> None:
        if not self._bytestream and not (self.event_mask & int(EventType.CONN_NEW_DATA)):
            self.enable_bytestream()
        lib.mosfw_core_set_overlap(self._c, flow.slot, flow.id, side, policy)

    # -- the packet of the event ----------------------------------------------------

    def last_packet(self):
        """The packet of the event being dispatched, whatever it is about
        (an ORPHAN's packet too), as a :class:`~mosfw.api.Packet`; None for
        events that came from no packet and outside dispatch. ``side`` and
        ``offset`` are None (see :meth:`Flow.last_packet
        <mosfw.flow.Flow.last_packet>` for a flow's view)."""
        from mosfw.api import Packet

        rec = self._cur[0]
        if rec is None or not rec[16]:
            return None
        p = lib.mosfw_core_packet(self._c, rec[17])
        if p == ffi.NULL:
            return None
        return self._with_tunnels(Packet(p, ffi.buffer(p.frame, p.caplen)[:], None, None))

    def _with_tunnels(self, pkt):
        """pkt with its ``tunnels`` (decoded from its frame only when its
        inner IP header is not at the start of a plain link header)."""
        if pkt._l3 > 14:  # tags or tunnels before the IP header (or a long link header)
            frame = pkt.frame
            n = lib.mosfw_core_frame_tunnels(self._c, frame, len(frame), self._tunbuf, _MAX_TUN)
            pkt.tunnels = tunnels_from_c(self._tunbuf, n)
        return pkt

    def flow_tunnels(self, flow: Flow):
        """:attr:`Flow.tunnels <mosfw.flow.Flow.tunnels>`: stored when the flow was created."""
        n = lib.mosfw_core_flow_tunnels(self._c, flow.slot, self._tunbuf, _MAX_TUN)
        return tunnels_from_c(self._tunbuf, n) if n else ()

    def flow_last_packet(self, flow: Flow):
        from mosfw.api import Packet

        rec = self._cur[0]
        if rec is None or rec[1] != flow.id or not rec[16]:
            return None
        p = lib.mosfw_core_packet(self._c, rec[17])
        if p == ffi.NULL:
            return None
        frame = ffi.buffer(p.frame, p.caplen)[:]
        t = flow.record.tuple
        # the sender: compare the source port and address with the client's
        l3, l4 = p.l3_off, p.l4_off
        sport = int.from_bytes(frame[l4 : l4 + 2], "big") if len(frame) >= l4 + 2 else 0
        if p.family == 4:
            src = frame[l3 + 12 : l3 + 16]
            cli = bytes(t.cli_addr[0:4])
        else:
            src = frame[l3 + 8 : l3 + 24]
            cli = bytes(t.cli_addr[0:16])
        side = Side.CLIENT if (sport == t.cli_port and src == cli) else Side.SERVER
        offset = None
        if p.payload_len:
            seq = (p.seq + (1 if p.tcp_flags & 0x02 else 0)) & 0xFFFFFFFF
            offset = self.flow_stream_offset(flow, int(side), seq)
        return self._with_tunnels(Packet(p, frame, side, offset))
