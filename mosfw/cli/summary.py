"""What ``mosfw run`` prints on stderr: the progress line during a run
and the summary at its end (one line per kind of counter that is not 0)."""

from __future__ import annotations

import os
import time


def _fmt_rate(n: float) -> str:
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.1f}{unit}"
    return f"{n:.0f}"


def _progress_printer(stream, file_size: int):
    start = time.monotonic()
    every = float(os.environ.get("MOSFW_PROGRESS_INTERVAL", "0.5"))
    due = [start + every]

    def show(core) -> None:
        now = time.monotonic()
        if now < due[0]:
            return
        due[0] = now + every
        st = core.stats()
        el = max(time.monotonic() - start, 1e-9)
        pos = core.input_offset()
        pct = f"  {100.0 * pos / file_size:5.1f}%" if file_size > 0 and pos >= 0 else ""
        stream.write(
            f"\r\x1b[K[mosfw] {_fmt_rate(st.packets)} pkts  {_fmt_rate(st.flows_created)} flows "
            f"({st.flows_active} open)  {_fmt_rate(st.packets / el)} pkt/s{pct}"
        )
        stream.flush()

    return show


#: IP protocol numbers the summary names (others are shown as numbers)
_PROTO_NAMES = {
    1: "icmp",
    2: "igmp",
    17: "udp",
    47: "gre",
    50: "esp",
    51: "ah",
    58: "icmpv6",
    89: "ospf",
    132: "sctp",
}


def _summary(stats, elapsed: float) -> str:
    s = stats
    other = s.non_tcp + s.fragments
    lines = [
        f"mosfw: {s.packets} packets ({s.tcp_packets} TCP, {other} other, {s.malformed} malformed) "
        f"in {elapsed:.2f} s ({_fmt_rate(s.packets / max(elapsed, 1e-9))} pkt/s)",
        f"mosfw: {s.flows_created} flows ({s.flows_midstream} mid-stream): {s.flows_ended_fin} fin, "
        f"{s.flows_ended_rst} rst, {s.flows_ended_timeout} timeout, {s.flows_evicted} evicted, "
        f"{s.flows_ended_eof} open at end, {s.flows_reused} reused; {s.flows_refused} refused",
        f"mosfw: {s.rexmits} retransmissions, {s.orphans} orphan packets",
    ]
    if s.bad_checksum:
        lines.append(f"mosfw: {s.bad_checksum} packets failed checksum verification")
    if getattr(s, "fragments", 0):
        lines.append(
            f"mosfw: {s.fragments} IP fragments: {s.frag_reassembled} datagrams reassembled, "
            f"{s.frag_timeouts} timed out, {s.frag_cap_drops} dropped by frag_memcap, "
            f"{s.frag_pending} incomplete at end; {s.frag_overlaps} overlaps "
            f"({s.frag_conflicts} with different bytes), {s.frag_malformed} malformed"
        )
    if s.unsupported_link:
        lines.append(f"mosfw: {s.unsupported_link} packets of an unsupported link type")
    if getattr(s, "truncated", 0):
        lines.append(
            f"mosfw: {s.truncated} packets cut by the capture's snaplen before the end of "
            "their TCP header (not tracked)"
        )
    tun = getattr(s, "tunnels", None) or {}
    for what, label in (
        ("packets", "decapsulated"),
        ("too_deep", "skipped (more tunnel layers than tunnel_max_depth)"),
        ("broken", "skipped (a broken header inside a tunnel)"),
    ):
        if tun.get(what):
            per = ", ".join(f"{k} {v}" for k, v in sorted(tun[what].items()))
            lines.append(f"mosfw: tunnels {label}: {per}")
    protos = getattr(s, "ip_protos", None) or {}
    if protos:
        per = ", ".join(f"{_PROTO_NAMES.get(k, k)} {v}" for k, v in sorted(protos.items()))
        lines.append(f"mosfw: non-TCP IP packets by protocol: {per}")
    if s.kernel_drops or s.iface_drops:
        lines.append(
            f"mosfw: capture drops: {s.kernel_drops} by the kernel, {s.iface_drops} by the interface"
        )
    if getattr(s, "nomem", 0):
        lines.append(
            f"mosfw: out of memory {s.nomem} times: new flows refused once the flow index could not "
            "grow, or payload not kept (no reassembly buffer)"
        )
    if getattr(s, "rmem_memcap_bytes", 0):
        lines.append(
            f"mosfw: {s.rmem_memcap_bytes} payload bytes not kept: the reassembly memory cap "
            "(rmem_memcap) was reached"
        )
    if s.plugin_errors:
        lines.append(f"mosfw: {s.plugin_errors} exceptions raised by plugins")
    return "\n".join(lines)
