"""A mixed capture for the UDP/ICMP benchmark rows (bench/README.md, "UDP
and ICMP"): a TCP capture (bench/gen_capture.c) with UDP and ICMP flows
merged into its timeline, deterministic.

    .venv/bin/python bench/gen_mixed.py TCP.pcap OUT.pcap [--udp 20000] [--icmp 5000]

Each UDP flow is a DNS-like exchange (a 40-byte query to port 53 from its
own client port, a 120-byte answer 1 ms later); each ICMP flow an echo
request and reply, twice, 1 ms apart (one flow: Zeek's key). Their start
times are spread evenly over the TCP capture's time span. Prints the
packet and flow counts."""

from __future__ import annotations

import argparse
import heapq
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mosfw.testing.packets import icmp_packet, udp_packet  # noqa: E402


def read_records(path: Path):
    data = path.read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[pos : pos + 16])
        ts_ns = sec * 10**9 + (frac if nano else frac * 1000)
        yield ts_ns, data[pos + 16 : pos + 16 + incl], orig
        pos += 16 + incl
    return


def extra_records(t0: int, t1: int, n_udp: int, n_icmp: int):
    span = max(t1 - t0, 1)
    out = []
    for i in range(n_udp):
        t = t0 + span * i // max(n_udp, 1)
        cli = f"10.{100 + i // 65000}.{(i // 250) % 250}.{i % 250 + 1}"
        port = 20000 + i % 40000  # (above the tunnel ports the engine decapsulates)
        q = udp_packet(cli, port, "10.200.0.53", 53, bytes(40))
        a = udp_packet("10.200.0.53", 53, cli, port, bytes(120))
        out += [(t, q, len(q)), (t + 1_000_000, a, len(a))]
    for i in range(n_icmp):
        t = t0 + span * i // max(n_icmp, 1) + 500_000
        h = f"10.201.{(i // 250) % 250}.{i % 250 + 1}"
        for k in range(2):
            req = icmp_packet(h, "10.200.0.1", 8, 0, bytes(56))
            rep = icmp_packet("10.200.0.1", h, 0, 0, bytes(56))
            out += [(t + 2_000_000 * k, req, len(req)), (t + 2_000_000 * k + 1_000_000, rep, len(rep))]
    out.sort(key=lambda r: r[0])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("tcp", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--udp", type=int, default=20000)
    ap.add_argument("--icmp", type=int, default=5000)
    a = ap.parse_args()
    tcp = list(read_records(a.tcp))
    extra = extra_records(tcp[0][0], tcp[-1][0], a.udp, a.icmp)
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))  # nanosecond pcap
        n = 0
        for ts, frame, orig in heapq.merge(tcp, extra, key=lambda r: r[0]):
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(frame), orig) + frame)
            n += 1
    tcp_n, extra_n = len(tcp), len(extra)
    print(f"{a.out}: {n} packets: {tcp_n} TCP, {extra_n} UDP/ICMP ({a.udp} UDP flows, {a.icmp} ICMP flows)")


if __name__ == "__main__":
    main()
