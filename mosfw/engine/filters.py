"""BPF monitor filters (``mtcp_bind_monitor_filter``) of a core."""

from __future__ import annotations

from mosfw._native import ffi, lib
from mosfw.engine.errors import EngineError
from mosfw.engine.state import CoreState


class _MonitorFilters(CoreState):
    """Monitor filters (a part of :class:`~mosfw.engine.Core`)."""

    # -- monitor filters (mtcp_bind_monitor_filter) ----------------------------

    def set_monitor_filter(self, syn: str | None = None, orphan: str | None = None) -> None:
        """BPF monitor filters (mOS ``stream_syn_filter`` and
        ``stream_orphan_filter``, ``mtcp_bind_monitor_filter``), evaluated
        in C on the packet.

        :param syn: which new connections are tracked at all: applied to
            every packet that would start a flow (a SYN, or a SYN/ACK or
            data packet of a connection picked up mid-stream); a packet
            that does not match is neither tracked nor an orphan. Later
            packets of an untracked connection are tested again as they
            would start it. "" removes the filter.
        :param orphan: which orphan packets raise ORPHAN ("" removes it).

        Call from ``mosfw_configure``/``mosfw_core_start`` (before the first
        packet) or later; a bad expression raises :class:`EngineError`.
        """
        if not hasattr(self, "_monitor_filters"):
            self._monitor_filters: dict[int, str] = {}
        for which, expr in ((lib.MOSFW_FILTER_SYN, syn), (lib.MOSFW_FILTER_ORPHAN, orphan)):
            if expr is None:
                continue
            self._monitor_filters[which] = expr
            if self._opened:
                self._set_monitor_filter(which, expr)

    def _set_monitor_filter(self, which: int, expr: str) -> None:
        err = ffi.new("char[]", lib.MOSFW_ERRBUF_SIZE)
        if lib.mosfw_core_set_filter(self._c, which, 0, expr.encode(), err) < 0:
            kind = "stream_syn_filter" if which == lib.MOSFW_FILTER_SYN else "stream_orphan_filter"
            raise EngineError(f"{kind}: {ffi.string(err).decode(errors='replace')}")
