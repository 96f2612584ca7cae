"""UDP checksums in the tracker: Zeek's switch and exceptions
(docs/zeek-rules.md, "UDP and ICMP").

Facts from Zeek's source (zeek/zeek),
src/packet_analysis/protocol/udp/UDP.cc ``UDPAnalyzer::DeliverPacket``:
the checksum is validated unless ``ignore_checksums`` (``zeek -C``,
``--no-checksums``) or the sender's address is in
``ignore_checksums_nets`` (``--ignore-checksums-nets``), and only when the frame and the IP payload were
captured whole; ``ValidateChecksum(ip, up, len)`` sums the pseudo-header
and ``len`` bytes, ``len`` being the IP payload's length (the UDP length
field is only compared with it for the ``UDP_datagram_length_mismatch``
weird, then used for the sizes: ``UpdateLength(is_orig, ulen)``); a
checksum of 0 is none in IPv4; a datagram to one of the
``PacketAnalyzer::VXLAN::vxlan_ports`` (4789) whose payload is longer
than a VXLAN and an Ethernet header and has the VXLAN I flag (0x08 in its
first byte) is not validated when its checksum is 0 (IPv6 too), and is
when it is not (``Tunnel::validate_vxlan_checksums = T``).
"""

from __future__ import annotations

import ipaddress

import pytest

from mosfw.testing import headers as H, packets as P

A, B = "10.0.0.1", "10.0.0.2"
A6, B6 = "fd00::1", "fd00::2"
BAD = 0x1234  # not the checksum of any datagram below


@pytest.fixture
def cap(mosfw_capture):
    return mosfw_capture(linktype="ether", start=1000.0, step=0.001)


def _pseudo(src: str, dst: str, length: int) -> bytes:
    return H._pseudo_header(ipaddress.ip_address(src), ipaddress.ip_address(dst), 17, length)


def _dgram(cap, src, dst, payload: bytes, csum: int | None = None, trailer: bytes = b"") -> None:
    """A UDP datagram whose UDP length covers ``payload`` and whose IP
    payload has ``trailer`` after it; its checksum field is ``csum`` (None:
    the right one over the whole IP payload, as Zeek computes it)."""
    ulen = 8 + len(payload)
    body = src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big") + ulen.to_bytes(2, "big")
    l4 = body + b"\0\0" + payload + trailer
    if csum is None:
        csum = H.checksum(_pseudo(src[0], dst[0], len(l4)) + l4) or 0xFFFF
    l4 = body + csum.to_bytes(2, "big") + payload + trailer
    cap.add_ip(P.ip(src[0], dst[0], P.IPPROTO_UDP, l4))


def _brief(r):
    return (r["conn_state"], r.get("history", "-"), r["orig_pkts"], r["resp_pkts"])


def _bad_and_good(cap):
    _dgram(cap, (A, 40000), (B, 53), b"q" * 30, BAD)
    _dgram(cap, (A, 40000), (B, 53), b"q" * 30)
    _dgram(cap, (B, 53), (A, 40000), b"r" * 90)
    _dgram(cap, (B, 53), (A, 40000), b"r" * 90, BAD)


def test_no_checksums_option_counts_bad_datagrams_as_good(cap, track):
    # ignore_checksums = T (zeek -C): no 'C'/'c', every datagram in the sizes
    _bad_and_good(cap)
    (r,) = track(cap, options={"no_checksums": True})
    assert _brief(r) == ("SF", "Dd", 2, 2)
    assert (r["orig_bytes"], r["resp_bytes"]) == (60, 180)
    (r,) = track(cap)  # by default checked: the rule of the table
    assert _brief(r) == ("SF", "CDdc", 2, 2)


def test_no_checksums_on_the_command_line(cap, tracker_cli, tmp_path):
    import json

    _bad_and_good(cap)
    pcap = tmp_path / "bad.pcap"
    cap.write(pcap)
    out = tracker_cli(pcap, "--no-checksums")
    assert out.returncode == 0, out.stderr
    (r,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert r["history"] == "Dd"
    assert "--no-checksums" in tracker_cli(pcap, "--help").stdout


@pytest.mark.parametrize(
    "nets, want",
    [
        ("10.0.0.1/32", ("SF", "Ddc", 2, 2)),  # the originator's bad query counts as good
        ("10.0.0.0/24", ("SF", "Dd", 2, 2)),  # both senders in the nets
        ("fd00::/8,10.0.0.2", ("SF", "CDd", 2, 2)),  # the responder only
        ("192.168.0.0/16", ("SF", "CDdc", 2, 2)),  # neither: checked as usual
    ],
)
def test_ignore_checksums_nets_skips_senders_in_them(cap, track, nets, want):
    # init-bare.zeek ignore_checksums_nets: UDP.cc validates a datagram only
    # when ! ignore_checksums_nets->Contains(ip->IPHeaderSrcAddr()): the
    # sender's address, not the connection's originator
    _bad_and_good(cap)
    (r,) = track(cap, options={"ignore_checksums_nets": nets})
    assert _brief(r) == want
    good_orig, good_resp = ("C" not in want[1]), ("c" not in want[1])
    assert (r["orig_bytes"], r["resp_bytes"]) == (30 + 30 * good_orig, 90 + 90 * good_resp)


def test_ignore_checksums_nets_on_the_command_line(cap, tracker_cli, tmp_path):
    import json

    _bad_and_good(cap)
    pcap = tmp_path / "bad.pcap"
    cap.write(pcap)
    out = tracker_cli(pcap, "--ignore-checksums-nets", "10.0.0.0/8")
    assert out.returncode == 0, out.stderr
    (r,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert r["history"] == "Dd"
    bad = tracker_cli(pcap, "--ignore-checksums-nets", "10.0.0.300/8")
    assert bad.returncode != 0 and "--ignore-checksums-nets: '10.0.0.300/8' is not a network" in bad.stderr
    assert "--ignore-checksums-nets" in tracker_cli(pcap, "--help").stdout


def _vxlan_payload() -> bytes:
    # VXLAN header (I flag, VNI 1), then more than an Ethernet header
    return b"\x08\x00\x00\x00\x00\x00\x01\x00" + b"\x00" * 14 + b"inner..."


def test_ipv6_vxlan_port_zero_checksum_is_not_checked(cap, track):
    # not decapsulated (tunnel_max_depth = 0): the outer datagram is a UDP
    # connection; its 0 checksum is accepted (IPv6, VXLAN port)
    _dgram(cap, (A6, 40000), (B6, 4789), _vxlan_payload(), 0)
    (r,) = track(cap, conf="tunnel_max_depth = 0\n")
    assert _brief(r) == ("S0", "D", 1, 0)


@pytest.mark.parametrize(
    "dport, payload, csum",
    [
        (4789, _vxlan_payload(), BAD),  # not 0: validated (validate_vxlan_checksums)
        (4790, _vxlan_payload(), 0),  # not a VXLAN port
        (4789, b"\x00" + _vxlan_payload()[1:], 0),  # no I flag
        (4789, _vxlan_payload()[: 8 + 14], 0),  # not longer than VXLAN + Ethernet headers
    ],
)
def test_ipv6_vxlan_exception_needs_all_its_conditions(cap, track, dport, payload, csum):
    _dgram(cap, (A6, 40000), (B6, dport), payload, csum)
    (r,) = track(cap, conf="tunnel_max_depth = 0\n")
    assert _brief(r) == ("OTH", "C", 1, 0)


def test_udp_length_shorter_than_the_ip_payload_is_checked_over_the_ip_payload(cap, track):
    # the checksum right over the whole IP payload: good; the sizes from
    # the UDP length (UpdateLength(ulen))
    _dgram(cap, (A, 40000), (B, 53), b"q" * 10, None, trailer=b"\x01\x02\x03")
    (r,) = track(cap)
    assert _brief(r) == ("S0", "D", 1, 0)
    assert r["orig_ip_bytes"] == 20 + 8 + 10 + 3


def test_udp_length_shorter_with_the_checksum_of_the_udp_length_is_bad(cap, track):
    # the sender's checksum over the UDP length only: wrong over the IP
    # payload (its length is in the pseudo-header): 'C'
    payload, trailer = b"q" * 10, b"\x01\x02\x03"
    ulen = 8 + len(payload)
    udp = (40000).to_bytes(2, "big") + (53).to_bytes(2, "big") + ulen.to_bytes(2, "big") + b"\0\0" + payload
    over_ulen = H.checksum(_pseudo(A, B, ulen) + udp) or 0xFFFF
    _dgram(cap, (A, 40000), (B, 53), payload, over_ulen, trailer=trailer)
    (r,) = track(cap)
    assert _brief(r) == ("OTH", "C", 1, 0)
