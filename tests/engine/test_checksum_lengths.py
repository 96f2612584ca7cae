"""The Internet checksum the engine verifies (native/csum.h: 8 bytes at a
time, the tail in 4, 2 and 1) against the definition, for every length of
payload up to 71 bytes and around a full Ethernet segment, IPv4 and IPv6:
a segment with a right checksum passes, the same with one bit flipped in
its checksum fails. TCP through ``verify_checksums`` (the parser's
``bad_checksum`` counter), UDP through the tracker's check (``C``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mosfw.testing import headers as H, packets as P

ROOT = Path(__file__).resolve().parents[2]
LENGTHS = [*range(72), 1399, 1400, 1401, 1459, 1460]
ADDRS = {4: ("10.0.0.1", "10.0.0.2"), 6: ("fd00::1", "fd00::2")}


def _payload(n: int) -> bytes:
    return bytes((i * 37 + n * 11 + 0xA5) & 0xFF for i in range(n))


def _reference_ok(ip_packet: bytes) -> bool:
    """The checksum by its definition (headers.checksum, RFC 1071)."""
    import ipaddress

    v4 = ip_packet[0] >> 4 == 4
    off, proto = ((ip_packet[0] & 0xF) * 4, ip_packet[9]) if v4 else (40, ip_packet[6])
    src, dst = (ip_packet[12:16], ip_packet[16:20]) if v4 else (ip_packet[8:24], ip_packet[24:40])
    l4 = ip_packet[off:]
    pseudo = H._pseudo_header(ipaddress.ip_address(src), ipaddress.ip_address(dst), proto, len(l4))
    return H.checksum(pseudo + l4) == 0


@pytest.mark.parametrize("version", [4, 6])
def test_tcp_checksums_of_every_length(mosfw_capture, mosfw_run, version):
    a, b = ADDRS[version]
    cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
    bad = 0
    for n in LENGTHS:
        good = P.tcp_packet(a, 20000 + n, b, 80, seq=1, ack=1, flags="PA", payload=_payload(n), linktype=None)
        flipped = H.corrupt_l4_checksum(good, xor=0x0001)
        assert _reference_ok(good) and not _reference_ok(flipped)
        cap.add_ip(good)
        cap.add_ip(flipped)
        bad += 1
    rec = mosfw_run(cap, verify_checksums=True)
    assert rec.stats.bad_checksum == bad
    assert rec.stats.packets == 2 * bad


@pytest.mark.parametrize("version", [4, 6])
def test_udp_checksums_of_every_length(mosfw_capture, mosfw_run, version):
    a, b = ADDRS[version]
    cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
    for n in LENGTHS:
        good = P.udp_packet(a, 20000 + n, b, 9999, payload=_payload(n), linktype=None)
        cap.add_ip(good)  # a flow of its own, a right checksum: 'D'
        other = P.udp_packet(a, 40000 + n, b, 9999, payload=_payload(n), linktype=None)
        flipped = H.corrupt_l4_checksum(other, 1)
        assert not _reference_ok(flipped)
        cap.add_ip(flipped)  # another: 'C'
    rec = mosfw_run(cap, plugins=[str(ROOT / "samples" / "tracker")], events=None)
    hist = {json.loads(x)["id.orig_p"]: json.loads(x).get("history") for x in rec.stdout.splitlines()}
    assert {p: h for p, h in hist.items() if p < 40000} == {20000 + n: "D" for n in LENGTHS}
    assert {p: h for p, h in hist.items() if p >= 40000} == {40000 + n: "C" for n in LENGTHS}
