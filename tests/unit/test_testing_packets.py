"""Tests of mosfw.testing.packets and mosfw.testing.flows.

Two kinds: pure-Python checks against hand-computed bytes and an independent
checksum, and tshark as an external oracle that must decode what we write
(addresses, ports, absolute sequence numbers, flags, lengths, checksums,
timestamps, link types, TCP analysis flags).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from mosfw.testing import packets as P
from mosfw.testing.flows import Capture, Segment, pattern

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark not installed")

GOOD = "1"  # tcp/ip/udp.checksum.status: 0 Bad, 1 Good, 2 Unverified (tshark 4.0)


def tshark(path, fields, *, display_filter=None, opts=()):
    """Rows of the given fields, one list per frame."""
    cmd = [
        TSHARK,
        "-n",
        "-r",
        str(path),
        "-o",
        "tcp.relative_sequence_numbers:FALSE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        *opts,
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]
    if display_filter:
        cmd += ["-Y", display_filter]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines()]


def ones_sum_ok(data: bytes) -> bool:
    """Independent check: the 16-bit ones' complement sum of a block that
    includes its checksum is 0xffff."""
    if len(data) % 2:
        data += b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def expected_rows(conv_segments, conv):
    """What tshark should print for each emitted segment of one conversation."""
    rows = []
    for seg in conv_segments:
        (sip, sport), (dip, dport) = conv.endpoints(seg.side)
        rows.append(
            [
                sip,
                dip,
                str(sport),
                str(dport),
                str(seg.seq),
                str(seg.ack),
                f"0x{seg.flags:04x}",
                str(len(seg.payload)),
                str(seg.window),
            ]
        )
    return rows


TCP_FIELDS_V4 = [
    "ip.src",
    "ip.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.seq",
    "tcp.ack",
    "tcp.flags",
    "tcp.len",
    "tcp.window_size_value",
]
TCP_FIELDS_V6 = ["ipv6.src", "ipv6.dst"] + TCP_FIELDS_V4[2:]


# ---------------------------------------------------------------------------
# pure encoding


def test_checksum_rfc1071_example():
    # RFC 1071 section 3: words 0001 f203 f4f5 f6f7 sum to 0xddf2
    assert P.checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2 & 0xFFFF)
    assert P.checksum(b"\x01") == (~0x0100 & 0xFFFF)  # odd length is zero-padded


def test_ipv4_header_matches_known_bytes():
    # classic example header: 4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7
    pkt = P.ipv4("192.168.0.1", "192.168.0.199", P.IPPROTO_UDP, b"\0" * (0x73 - 20), ident=0, ttl=64, df=True)
    assert pkt[:20] == bytes.fromhex("450000730000400040 11b861c0a80001c0a800c7".replace(" ", ""))
    no_df = P.ipv4("1.2.3.4", "5.6.7.8", 6, b"", ident=0xBEEF, ttl=3, df=False)
    assert no_df[4:9] == bytes.fromhex("beef000003") and ones_sum_ok(no_df[:20])


def _pseudo(src, dst, proto, length):
    import ipaddress

    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        return s.packed + d.packed + bytes([0, proto]) + length.to_bytes(2, "big")
    return s.packed + d.packed + length.to_bytes(4, "big") + bytes([0, 0, 0, proto])


@settings(max_examples=60, deadline=None)
@given(
    v6=st.booleans(),
    seq=st.integers(-(2**33), 2**34),
    ack=st.integers(0, 2**33),
    flags=st.integers(0, 255),
    window=st.integers(0, 65535),
    payload=st.binary(max_size=300),
    mss=st.none() | st.integers(1, 65535),
)
def test_tcp_checksum_and_fields_property(v6, seq, ack, flags, window, payload, mss):
    src, dst = ("2001:db8::1", "2001:db8::2") if v6 else ("192.0.2.1", "198.51.100.7")
    opts = P.tcp_options(P.opt_mss(mss), P.opt_wscale(7)) if mss else b""
    seg = P.tcp(src, dst, 1234, 80, seq, ack, flags, window=window, payload=payload, options=opts)
    assert ones_sum_ok(_pseudo(src, dst, 6, len(seg)) + seg)
    sport, dport, s, a, off, fl, win = struct.unpack("!HHIIBBH", seg[:16])
    assert (sport, dport, fl, win) == (1234, 80, flags, window)
    assert s == seq % 2**32 and a == ack % 2**32
    assert off >> 4 == (20 + len(opts)) // 4 and seg[(off >> 4) * 4 :] == payload


def test_tcp_options_padding_and_limits():
    assert P.tcp_options(P.opt_mss(1460), P.opt_wscale(7)) == bytes.fromhex("020405b4030307") + b"\x01"
    assert P.parse_flags("SA") == P.SYN | P.ACK and P.flags_str(0x19) == "FPA"
    with pytest.raises(ValueError):
        P.tcp("1.1.1.1", "2.2.2.2", 1, 2, 0, options=b"\x01" * 41)
    with pytest.raises(ValueError):
        P.parse_flags("SX")


def test_udp_icmp_checksums():
    d = P.udp("10.0.0.1", "10.0.0.2", 53, 5353, b"hello")
    assert ones_sum_ok(_pseudo("10.0.0.1", "10.0.0.2", 17, len(d)) + d)
    assert ones_sum_ok(P.icmp(8, 0, b"ping"))
    m = P.icmpv6("fe80::1", "fe80::2", 128, 0, b"ping")
    assert ones_sum_ok(_pseudo("fe80::1", "fe80::2", 58, len(m)) + m)


def test_vlan_tags_single_and_qinq():
    single = P.ethernet(P.ipv4("1.1.1.1", "2.2.2.2", 6, b""), vlan=100)
    assert single[12:18] == bytes.fromhex("8100 0064 0800".replace(" ", ""))
    qinq = P.ethernet(P.ipv6("::1", "::2", 59, b""), vlan=[100, 200])
    assert qinq[12:22] == bytes.fromhex("88a8 0064 8100 00c8 86dd".replace(" ", ""))
    pcp = P.vlan_tags([(5, 3)])
    assert pcp == bytes.fromhex("81006005")
    with pytest.raises(ValueError):
        P.link(P.ipv4("1.1.1.1", "2.2.2.2", 6, b""), "raw", vlan=5)


def test_ipv6_extension_header_chain():
    pkt = P.ipv6(
        "2001:db8::1",
        "2001:db8::2",
        P.IPPROTO_TCP,
        b"T" * 20,
        ext_headers=["hbh", "dstopts", "routing", "fragment"],
    )
    assert pkt[6] == P.IPPROTO_HOPOPTS
    assert int.from_bytes(pkt[4:6], "big") == len(pkt) - 40
    off, nxt, chain = 40, pkt[6], []
    while nxt in (0, 43, 44, 60):
        hlen = 8 if nxt == 44 else (pkt[off + 1] + 1) * 8
        chain.append((nxt, hlen))
        nxt = pkt[off]
        off += hlen
    assert chain == [(0, 8), (60, 8), (43, 24), (44, 8)]
    assert nxt == P.IPPROTO_TCP and pkt[off:] == b"T" * 20
    # PadN used to fill an options header: 2 fixed bytes + 6 bytes PadN(4)
    assert pkt[42:48] == bytes([1, 4, 0, 0, 0, 0])


def test_linktype_headers():
    v4 = P.ipv4("1.1.1.1", "2.2.2.2", 6, b"")
    v6 = P.ipv6("::1", "::2", 6, b"")
    assert P.link(v4, "raw") == v4
    assert P.link(v4, "null")[:4] == b"\x02\0\0\0" and P.link(v6, "null")[:4] == b"\x1e\0\0\0"
    assert P.link(v4, "loop")[:4] == b"\0\0\0\x02" and P.link(v6, "loop")[:4] == b"\0\0\0\x1e"
    s1 = P.link(v4, "sll", outgoing=True)
    assert len(s1) - len(v4) == 16 and s1[:2] == b"\0\x04" and s1[14:16] == b"\x08\x00"
    s2 = P.link(v6, "sll2")
    assert len(s2) - len(v6) == 20 and s2[:2] == b"\x86\xdd"
    assert {k: P.linktype_number(k) for k in P.LINKTYPES} == {
        "null": 0,
        "ether": 1,
        "raw": 101,
        "loop": 108,
        "sll": 113,
        "sll2": 276,
    }
    with pytest.raises(ValueError):
        P.linktype_number("token-ring")


def test_pcap_writer_headers_truncation_and_timestamps():
    frames = [(Decimal("1.000000999"), b"x" * 100), (2.5, b"y" * 10)]
    raw = P.pcap_bytes(frames, linktype="raw", snaplen=64)
    magic, vmaj, vmin, _, _, snap, lt = struct.unpack_from("<IHHiIII", raw)
    assert (magic, vmaj, vmin, snap, lt) == (0xA1B2C3D4, 2, 4, 64, 101)
    sec, usec, caplen, wirelen = struct.unpack_from("<IIII", raw, 24)
    assert (sec, usec, caplen, wirelen) == (1, 0, 64, 100)  # usec truncated, frame cut
    sec, usec, caplen, wirelen = struct.unpack_from("<IIII", raw, 24 + 16 + 64)
    assert (sec, usec, caplen, wirelen) == (2, 500000, 10, 10)
    assert len(raw) == 24 + 16 + 64 + 16 + 10
    ns = P.pcap_bytes(frames, nanosecond=True, endian=">")
    assert struct.unpack_from(">I", ns)[0] == 0xA1B23C4D
    assert struct.unpack_from(">II", ns, 24) == (1, 999)


def _pcapng_blocks(raw):
    off, out = 0, []
    while off < len(raw):
        btype, blen = struct.unpack_from("<II", raw, off)
        assert blen % 4 == 0 and struct.unpack_from("<I", raw, off + blen - 4)[0] == blen
        out.append((btype, raw[off + 8 : off + blen - 4]))
        off += blen
    assert off == len(raw)
    return out


def test_pcapng_writer_blocks():
    frames = [(Decimal("7.000000123"), b"z" * 61)]
    blocks = _pcapng_blocks(P.pcapng_bytes(frames, linktype="sll2", snaplen=50, nanosecond=True))
    assert [b[0] for b in blocks] == [0x0A0D0D0A, 1, 6]
    assert struct.unpack_from("<I", blocks[0][1])[0] == 0x1A2B3C4D
    lt, _, snap = struct.unpack_from("<HHI", blocks[1][1])
    assert (lt, snap) == (276, 50)
    assert b"\x09\x00\x01\x00\x09" in blocks[1][1]  # if_tsresol = 9
    _iface, hi, lo, caplen, wirelen = struct.unpack_from("<IIIII", blocks[2][1])
    assert ((hi << 32) | lo, caplen, wirelen) == (7_000_000_123, 50, 61)
    us = _pcapng_blocks(P.pcapng_bytes(frames))
    assert b"\x09\x00\x01\x00" not in us[1][1]
    _, hi, lo, _, _ = struct.unpack_from("<IIIII", us[2][1])
    assert (hi << 32) | lo == 7_000_000


# ---------------------------------------------------------------------------
# conversation model (no tshark)


def test_sequence_tracking_and_segments():
    cap = Capture(start=10.0, step=0.5)
    c = cap.conversation(
        client=("10.0.0.1", 40000), server=("10.0.0.2", 80), client_isn=1000, server_isn=5000
    )
    syn, synack, ack = c.handshake()
    assert (syn.seq, syn.ack, syn.flag_str) == (1000, 0, "S")
    assert (synack.seq, synack.ack, synack.flag_str) == (5000, 1001, "SA")
    assert (ack.seq, ack.ack, ack.flag_str) == (1001, 5001, "A")
    d = c.send("client", 100)
    assert isinstance(d, Segment) and d.side == "client"
    assert (d.seq, d.ack, d.flag_str, len(d.payload)) == (1001, 5001, "PA", 100)
    assert d.payload == pattern("client", 0, 100) and d.payload[:3] == b"abc"
    r = c.send("server", b"HTTP/1.1 200 OK\r\n\r\n")
    assert (r.seq, r.ack) == (5001, 1101)
    lost = c.send("client", 10, emit=False)
    assert lost.payload == b"wxyzabcdef"  # stream offset 100: 100 % 26 == 22 -> 'w'
    n = len(cap)
    k = c.keepalive("client")
    assert (k.seq, k.payload) == (1110, b"") and c.client_nxt == 1111
    k1 = c.keepalive("client", one_byte=True)
    assert (k1.seq, k1.payload) == (1110, b"\x00")
    z = c.zero_window("server")
    assert z.window == 0 and z.ack == 1111 and z.flags == P.ACK
    stale = c.ack("server", ack=1001)
    assert stale.ack == 1001
    f = c.fin("client")
    assert f.flag_str == "FA" and f.seq == 1111 and c.client_nxt == 1112
    rst = c.rst("server")
    assert rst.flag_str == "RA" and rst.seq == c.server_nxt == 5020 and rst.ack == 1112
    assert len(cap) == n + 6  # the lost segment wrote nothing
    c.emit(lost)
    assert len(cap) == n + 7
    assert c.stream("client") == pattern("client", 0, 110)
    ts = [t for t, _ in cap.packets]
    assert ts[:3] == [10.0, 10.5, 11.0]
    cap.advance(100)
    c.ack("client")
    assert cap.packets[-1][0] == pytest.approx(ts[-1] + 100.5)


def test_pattern_is_stream_offset_based():
    assert pattern("client", 100, 3) == b"wxy"  # 100 % 26 == 22 -> 'w'
    assert pattern("server", 25, 2) == b"ZA"
    cap = Capture()
    c = cap.conversation(("10.0.0.1", 1), ("10.0.0.2", 2))
    c.handshake()
    c.send("client", 100)
    assert c.send("client", 3, emit=False).payload == b"wxy"


def test_sequence_wrap_in_model():
    cap = Capture()
    c = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80), client_isn=2**32 - 50)
    c.handshake()
    seg = c.send("client", 100)
    assert seg.seq == 2**32 - 49 and seg.end_seq == 51 and c.client_nxt == 51
    assert c.ack("server").ack == 51


def test_rexmit_is_same_segment_new_ip_id():
    cap = Capture(linktype="raw")
    c = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
    c.handshake()
    seg = c.send("client", 20)
    c.rexmit(seg)
    a, b = cap.records[-2][1], cap.records[-1][1]
    assert a[:4] == b[:4] and a[6:10] == b[6:10] and a[20:] == b[20:]
    assert a[4:6] != b[4:6]  # fresh IP id
    assert ones_sum_ok(a[:20]) and ones_sum_ok(b[:20])


def test_capture_rejects_bad_input():
    with pytest.raises(ValueError):
        Capture(linktype="fddi")
    cap = Capture()
    with pytest.raises(ValueError):
        cap.conversation(("10.0.0.1", 1), ("::2", 2))
    c = cap.conversation(("10.0.0.1", 1), ("10.0.0.2", 2))
    with pytest.raises(ValueError):
        c.send("middle", 1)


# ---------------------------------------------------------------------------
# tshark as the oracle


def _script(cap, **kw):
    """A conversation exercising most segment kinds; returns (conv, emitted segments)."""
    c = cap.conversation(**kw)
    out = list(c.handshake(mss=1460, wscale=7, sack_perm=True))
    out.append(c.send("client", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    out.append(c.send("server", 700))
    out.append(c.ack("client"))
    out.append(c.fin("server"))
    out.append(c.fin("client"))
    out.append(c.ack("server"))
    return c, out


@needs_tshark
@pytest.mark.parametrize("fmt", ["pcap", "pcap-ns", "pcapng", "pcapng-ns", "pcap-swapped"])
def test_tshark_reads_each_file_format(tmp_path, fmt):
    cap = Capture(start=1_700_000_000.123456, step=Decimal("0.000001001"))
    c, segs = _script(
        cap, client=("10.0.0.1", 40000), server=("10.0.0.2", 80), client_isn=1000, server_isn=5000
    )
    path = tmp_path / f"x.{fmt}"
    ns = fmt.endswith("-ns")
    if fmt.startswith("pcapng"):
        cap.write_pcapng(path, nanosecond=ns)
    else:
        cap.write_pcap(path, nanosecond=ns, endian=">" if fmt == "pcap-swapped" else "<")
    rows = tshark(
        path,
        TCP_FIELDS_V4
        + [
            "frame.time_epoch",
            "tcp.checksum.status",
            "ip.checksum.status",
            "tcp.options.mss_val",
            "tcp.options.wscale.shift",
        ],
    )
    assert [r[:9] for r in rows] == expected_rows(segs, c)
    assert {(r[10], r[11]) for r in rows} == {(GOOD, GOOD)}
    assert rows[0][12:14] == ["1460", "7"] and rows[1][12:14] == ["1460", "7"]
    for (ns_ts, _), r in zip(cap.records, rows, strict=True):
        want = Decimal(ns_ts) / 10**9
        if not ns:
            want = Decimal(ns_ts // 1000) / 10**6
        assert Decimal(r[9]) == want


@needs_tshark
@pytest.mark.parametrize(
    "linktype,encap,proto0",
    [
        ("ether", "1", "eth"),
        ("raw", "7", "raw"),
        ("sll", "25", "sll"),
        ("sll2", "210", "sll"),
        ("null", "15", "null"),
        ("loop", "174", "null"),
    ],
)
def test_tshark_reads_each_linktype(tmp_path, linktype, encap, proto0):
    cap = Capture(linktype=linktype)
    c4, s4 = _script(cap, client=("10.1.0.1", 40000), server=("10.1.0.2", 8080))
    c6, s6 = _script(
        cap, client=("2001:db8::1", 40001), server=("2001:db8::2", 443), client_isn=77, server_isn=2**31
    )
    path = tmp_path / f"{linktype}.pcapng"
    cap.write_pcapng(path)
    rows = tshark(
        path,
        [
            "frame.encap_type",
            "frame.protocols",
            "tcp.checksum.status",
            "ip.checksum.status",
            "sll.pkttype",
            "null.family",
        ]
        + TCP_FIELDS_V4
        + TCP_FIELDS_V6[:2],
    )
    assert len(rows) == len(s4) + len(s6)
    assert {r[0] for r in rows} == {encap}
    assert all(r[1].startswith(proto0 + ":") and ":tcp" in r[1] for r in rows)
    assert {r[2] for r in rows} == {GOOD}
    v4, v6 = rows[: len(s4)], rows[len(s4) :]
    assert [r[6:15] for r in v4] == expected_rows(s4, c4)
    assert [r[15:17] + r[8:15] for r in v6] == expected_rows(s6, c6)
    if linktype.startswith("sll"):
        # capture taken on the client: its packets are outgoing (4), the server's to-us (0)
        assert [r[4] for r in v4] == ["4" if s.side == "client" else "0" for s in s4]
    if linktype in ("null", "loop"):
        assert {r[5] for r in v4} == {"2"} and {r[5] for r in v6} == {"30"}


@needs_tshark
def test_tshark_vlan_and_qinq(tmp_path):
    cap = Capture()
    _c1, s1 = _script(cap, client=("10.0.0.1", 1111), server=("10.0.0.2", 80), vlan=100)
    _c2, s2 = _script(cap, client=("10.0.0.1", 2222), server=("10.0.0.2", 80), vlan=[300, 42])
    _c3, s3 = _script(cap, client=("fd00::1", 3333), server=("fd00::2", 80), vlan=[7, 8])
    path = tmp_path / "vlan.pcap"
    cap.write_pcap(path)
    # tshark: the outer 802.1ad tag is ieee8021ad.*, the inner 802.1Q tag vlan.*
    rows = tshark(
        path,
        [
            "eth.type",
            "ieee8021ad.id",
            "frame.protocols",
            "vlan.id",
            "vlan.etype",
            "tcp.checksum.status",
            "tcp.seq",
        ],
    )
    n1, n2 = len(s1), len(s2)
    for r in rows:
        r[2] = r[2].removesuffix(":http")
    assert {tuple(r[:5]) for r in rows[:n1]} == {
        ("0x8100", "", "eth:ethertype:vlan:ethertype:ip:tcp", "100", "0x0800")
    }
    assert {tuple(r[:5]) for r in rows[n1 : n1 + n2]} == {
        ("0x88a8", "300", "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ip:tcp", "42", "0x0800")
    }
    assert {tuple(r[:5]) for r in rows[n1 + n2 :]} == {
        ("0x88a8", "7", "eth:ethertype:ieee8021ad:ethertype:vlan:ethertype:ipv6:tcp", "8", "0x86dd")
    }
    assert {r[5] for r in rows} == {GOOD}
    assert [r[6] for r in rows] == [str(s.seq) for s in s1 + s2 + s3]


@needs_tshark
def test_tshark_ipv6_extension_headers(tmp_path):
    cap = Capture(linktype="raw")
    c1, s1 = _script(
        cap,
        client=("2001:db8::1", 40000),
        server=("2001:db8::2", 80),
        ext_headers=[P.hop_by_hop(bytes([5, 2, 0, 0])), "dstopts", "routing"],
    )
    # a routing header with segments left: the checksum uses the final destination
    c2, s2 = _script(
        cap,
        client=("2001:db8::1", 40001),
        server=("2001:db8::2", 80),
        ext_headers=[P.routing(["2001:db8::99", "2001:db8::98"], segments_left=1)],
    )
    c3, s3 = _script(cap, client=("2001:db8::1", 40002), server=("2001:db8::2", 80), ext_headers=["fragment"])
    path = tmp_path / "ext.pcap"
    cap.write_pcap(path)
    rows = tshark(
        path,
        TCP_FIELDS_V6
        + [
            "tcp.checksum.status",
            "frame.protocols",
            "ipv6.nxt",
            "ipv6.hopopts.nxt",
            "ipv6.dstopts.nxt",
            "ipv6.routing.nxt",
            "ipv6.routing.segleft",
            "ipv6.fraghdr.nxt",
            "ipv6.plen",
        ],
    )
    n1, n2 = len(s1), len(s2)
    assert [r[:9] for r in rows] == (expected_rows(s1, c1) + expected_rows(s2, c2) + expected_rows(s3, c3))
    assert {r[9] for r in rows} == {GOOD}
    for r in rows:
        r[10] = r[10].removesuffix(":http")
    assert {tuple(r[10:16]) for r in rows[:n1]} == {
        ("raw:ipv6:ipv6.hopopts:ipv6.dstopts:ipv6.routing:tcp", "0", "60", "43", "6", "0")
    }
    assert {tuple(r[10:16]) for r in rows[n1 : n1 + n2]} == {
        ("raw:ipv6:ipv6.routing:tcp", "43", "", "", "6", "1")
    }
    assert {tuple(r[10:12] + r[16:17]) for r in rows[n1 + n2 :]} == {("raw:ipv6:ipv6.fraghdr:tcp", "44", "6")}
    for (_, frame), r in zip(cap.records, rows, strict=True):
        assert int(r[17]) == len(frame) - 40


@needs_tshark
def test_tshark_sequence_wrap(tmp_path):
    cap = Capture()
    c = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80), client_isn=2**32 - 50, server_isn=2**32 - 2)
    segs = list(c.handshake())
    segs.append(c.send("client", 100))
    segs.append(c.send("server", 10))
    segs.append(c.send("client", 100))
    segs.append(c.ack("server"))
    path = tmp_path / "wrap.pcap"
    cap.write_pcap(path)
    rows = tshark(path, TCP_FIELDS_V4 + ["tcp.nxtseq", "tcp.analysis.flags", "tcp.checksum.status"])
    assert [r[:9] for r in rows] == expected_rows(segs, c)
    assert [r[4] for r in rows] == [
        "4294967246",
        "4294967294",
        "4294967247",
        "4294967247",
        "4294967295",
        "51",
        "9",
    ]
    assert [r[9] for r in rows[3:6]] == ["51", "9", "151"]  # next seq wrapped
    assert [r[10] for r in rows] == [""] * len(rows)  # no spurious lost/rexmit warnings
    assert {r[11] for r in rows} == {GOOD}


@needs_tshark
def test_tshark_gap_rexmit_keepalive_zero_window(tmp_path):
    cap = Capture()
    c = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
    c.handshake()  # frames 1-3
    c.send("client", 100)  # 4
    lost = c.send("client", 100, emit=False)
    c.send("client", 100)  # 5: after a hole
    c.rexmit(lost)  # 6: hole filled late
    dup = c.send("server", 50)  # 7
    c.rexmit(dup)  # 8: plain retransmission
    c.keepalive("client")  # 9
    c.zero_window("server")  # 10
    c.rst("client")  # 11
    path = tmp_path / "gap.pcap"
    cap.write_pcap(path)
    rows = tshark(
        path,
        [
            "frame.number",
            "tcp.seq",
            "tcp.analysis.lost_segment",
            "tcp.analysis.retransmission",
            "tcp.analysis.out_of_order",
            "tcp.analysis.keep_alive",
            "tcp.analysis.zero_window",
            "tcp.flags.reset",
        ],
    )
    flagged = {
        r[0]: [
            name
            for name, v in zip(["lost", "rexmit", "ooo", "keepalive", "zerowin"], r[2:7], strict=True)
            if v
        ]
        for r in rows
    }
    assert rows[4][1] == "1201" and rows[5][1] == "1101"
    assert flagged["5"] == ["lost"]
    assert flagged["6"] in (["rexmit"], ["ooo"])
    assert flagged["8"] == ["rexmit"]
    assert flagged["9"] == ["keepalive"]
    assert flagged["10"] == ["zerowin"]
    assert all(not flagged[str(i)] for i in (1, 2, 3, 4, 7, 11))
    assert rows[10][7] == "1"


@needs_tshark
def test_tshark_snaplen_truncates(tmp_path):
    cap = Capture(snaplen=60)
    c = cap.conversation(("10.0.0.1", 40000), ("10.0.0.2", 80))
    c.handshake()
    c.send("client", 500)
    for name, write in (("a.pcap", cap.write_pcap), ("b.pcapng", cap.write_pcapng)):
        write(tmp_path / name)
        rows = tshark(tmp_path / name, ["frame.len", "frame.cap_len", "tcp.seq"])
        assert [r[0] for r in rows] == [str(len(f)) for _, f in cap.records]
        assert [r[1] for r in rows] == [str(min(60, len(f))) for _, f in cap.records]
        assert rows[-1][:2] == ["554", "60"] and rows[-1][2] == "1001"


@needs_tshark
def test_tshark_sees_a_bad_checksum(tmp_path):
    """The checksum oracle is not vacuous: one flipped checksum is reported bad."""
    good = P.tcp_packet("10.0.0.1", 1, "10.0.0.2", 2, 5, 6, "PA", b"data", linktype=None)
    bad = P.corrupt_l4_checksum(good)
    bad_ip = good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]
    v6 = P.tcp_packet("::1", 1, "::2", 2, 5, 6, "PA", b"data", linktype=None)
    path = tmp_path / "bad.pcap"
    P.write_pcap(
        path,
        [(1.0, good), (2.0, bad), (3.0, bad_ip), (4.0, v6), (5.0, P.corrupt_l4_checksum(v6))],
        linktype="raw",
    )
    rows = tshark(path, ["tcp.checksum.status", "ip.checksum.status"])
    assert [r[0] for r in rows] == ["1", "0", "1", "1", "0"]
    assert [r[1] for r in rows] == ["1", "1", "0", "", ""]


@needs_tshark
def test_tshark_udp_icmp(tmp_path):
    cap = Capture(linktype="ether")
    cap.udp(("10.0.0.1", 5353), ("10.0.0.2", 53), b"\x12\x34" + b"\0" * 10, vlan=9)
    cap.udp(("fd00::1", 5353), ("fd00::2", 9999), b"payload")
    cap.icmp("10.0.0.1", "10.0.0.2", payload=b"ping")
    cap.icmp("fd00::1", "fd00::2", payload=b"ping")
    path = tmp_path / "udp.pcapng"
    cap.write_pcapng(path)
    rows = tshark(
        path,
        [
            "udp.srcport",
            "udp.dstport",
            "udp.length",
            "udp.checksum.status",
            "icmp.type",
            "icmp.checksum.status",
            "icmpv6.type",
            "icmpv6.checksum.status",
            "vlan.id",
        ],
    )
    assert rows[0][:4] == ["5353", "53", "20", GOOD] and rows[0][8] == "9"
    assert rows[1][:4] == ["5353", "9999", "15", GOOD]
    assert rows[2][4:6] == ["8", GOOD]
    assert rows[3][6:8] == ["128", GOOD]


@needs_tshark
def test_tshark_many_interleaved_conversations(tmp_path):
    cap = Capture(linktype="raw")
    convs = cap.conversations(50, handshake=True)
    cap.interleave(convs, lambda c: c.send("client", 10), lambda c: c.fin("client"))
    path = tmp_path / "many.pcap"
    cap.write_pcap(path)
    rows = tshark(
        path, ["tcp.stream", "tcp.srcport", "tcp.flags.str", "tcp.checksum.status", "tcp.analysis.flags"]
    )
    assert len(rows) == 5 * 50
    assert {r[0] for r in rows} == {str(i) for i in range(50)}
    assert [r[1] for r in rows[:50]] == [str(40000 + i) for i in range(50)]  # all SYNs first
    assert all(r[2].strip("·") == "S" for r in rows[:50])
    assert {r[3] for r in rows} == {GOOD} and {r[4] for r in rows} == {""}
