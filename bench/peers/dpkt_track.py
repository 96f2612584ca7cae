#!/usr/bin/env python3
"""The dpkt peer of bench/run_bench.py: a plain Python tracking loop.

    python dpkt_track.py FILE

Reads the capture with dpkt, parses Ethernet / 802.1Q / Linux SLL / raw IP,
IPv4 and IPv6, keeps every TCP connection in a dict under its canonical
5-tuple, counts connections (a client SYN on a closed or unknown tuple, or
the first packet of a flow picked up mid-stream; late packets of a closed
connection are ignored), connections closed (both FINs then an ACK, or a
RST) and retransmissions: a segment (payload, SYN or
FIN) that starts before the highest sequence end already seen in its
direction, keep-alive probes excluded (mosfw's REXMIT definition). Prints
one ``key=value`` line. This is what a user would write in an afternoon
with dpkt: the cost is dpkt's parsing plus the interpreter.
"""

from __future__ import annotations

import sys

import dpkt

FIN, SYN, RST, ACK = dpkt.tcp.TH_FIN, dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_ACK
M32 = 0xFFFFFFFF
HALF = 0x80000000


def open_reader(f):
    try:
        return dpkt.pcap.Reader(f)
    except ValueError:
        f.seek(0)
        return dpkt.pcapng.Reader(f)


def main(path: str) -> int:
    packets = tcp_packets = conns = n_closed = resets = rexmits = 0
    flows: dict[tuple, list] = {}
    closed: dict[tuple, bool] = {}  # tuples of closed connections (late packets are not new ones)
    eth_cls, sll_cls, ip_cls, ip6_cls, tcp_cls = (
        dpkt.ethernet.Ethernet,
        dpkt.sll.SLL,
        dpkt.ip.IP,
        dpkt.ip6.IP6,
        dpkt.tcp.TCP,
    )
    with open(path, "rb") as f:
        rd = open_reader(f)
        dlt = rd.datalink()
        for _ts, buf in rd:
            packets += 1
            try:
                if dlt == dpkt.pcap.DLT_EN10MB:
                    ip = eth_cls(buf).data
                elif dlt == dpkt.pcap.DLT_LINUX_SLL:
                    ip = sll_cls(buf).data
                elif dlt in (dpkt.pcap.DLT_RAW, 101):
                    ip = ip_cls(buf) if buf[0] >> 4 == 4 else ip6_cls(buf)
                else:
                    continue
            except (dpkt.UnpackError, IndexError):
                continue
            if not isinstance(ip, (ip_cls, ip6_cls)):
                continue
            tcp = ip.data
            if not isinstance(tcp, tcp_cls):
                continue
            tcp_packets += 1
            a, b = (ip.src, tcp.sport), (ip.dst, tcp.dport)
            if a < b:
                key, d = (a, b), 0
            else:
                key, d = (b, a), 1
            flags = tcp.flags
            f = flows.get(key)
            if f is None and key in closed:
                if not flags & SYN:
                    continue  # a late packet of a closed connection (a resent FIN, an ACK)
                del closed[key]
            if f is None or (flags & SYN and not flags & ACK and f[2]):
                # [highest seq end dir 0, dir 1, FIN bits]
                f = flows[key] = [None, None, 0]
                conns += 1
            if flags & RST:
                resets += 1
                del flows[key]
                closed[key] = True
                continue
            plen = len(tcp.data)
            seglen = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            if seglen:
                seq = tcp.seq
                end = (seq + seglen) & M32
                hi = f[d]
                if hi is None:
                    f[d] = end
                elif (seq - hi) & M32 >= HALF:  # starts before the highest end
                    if not (seglen <= 1 and not flags & (SYN | FIN) and seq == (hi - 1) & M32):
                        rexmits += 1  # (a keep-alive probe is not one)
                    if (end - hi) & M32 and (end - hi) & M32 < HALF:
                        f[d] = end
                else:
                    f[d] = end
            if flags & FIN:
                f[2] |= 1 << d
            elif f[2] == 3 and flags & ACK:
                n_closed += 1
                del flows[key]
                closed[key] = True
    print(
        f"packets={packets} tcp_packets={tcp_packets} connections={conns} closed={n_closed} "
        f"reset={resets} open_at_end={len(flows)} rexmits={rexmits}"
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: dpkt_track.py FILE")
    sys.exit(main(sys.argv[1]))
