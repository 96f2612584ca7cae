"""The per-flow layer store (native/tunnels.c) keeps each flow's own layers.

Its blocks are sized to the layers a slot's flows had (grown when a later
flow in the slot has more), not to MOSFW_MAX_TUNNELS: a real capture whose
connections come through 1, 2 or 3 nested VXLAN layers (by their ports)
must show every flow, at every packet, exactly its own layers, the same as
the packet's. Only the engine's own view is checked here; the wrapped
captures' oracle (tshark) is in test_decap_wrapped.py.
"""

from __future__ import annotations

import json
import struct

from test_decap_wrapped import PLAIN, PLUGIN, mosfw, stats

from mosfw.testing.encap import read_pcap, wrap_frame
from mosfw.testing.pcap_files import write_pcap


def _layers(frame: bytes) -> int:
    """1-3, the same for both directions of a TCP/IPv4 connection, else 1."""
    if len(frame) < 38 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return 1
    ihl = (frame[14] & 0x0F) * 4
    sport, dport = struct.unpack("!HH", frame[14 + ihl : 18 + ihl])
    return 1 + (sport + dport) % 3


def test_each_flow_keeps_its_own_layer_count(tmp_path):
    linktype, recs = read_pcap(PLAIN)
    assert linktype == 1
    out = []
    for ts, frame in recs:
        for _ in range(_layers(frame)):
            frame = wrap_frame("vxlan", frame)
        out.append((ts, frame))
    wrapped = tmp_path / "nested.pcap"
    write_pcap(wrapped, out)
    plugin = tmp_path / "tunnels_plugin.py"
    plugin.write_text(PLUGIN)
    cp = mosfw("-r", str(wrapped), "-p", str(plugin), "-q")
    assert cp.returncode == 0, cp.stderr
    seen = json.loads(cp.stdout)
    assert len(seen) == stats(PLAIN)["tcp_packets"] - stats(PLAIN)["orphans"]
    counts = set()
    for _, flow_t, pkt_t in seen:
        assert flow_t == pkt_t
        assert [t["kind"] for t in flow_t] == ["vxlan"] * len(flow_t)
        counts.add(len(flow_t))
    assert len(counts) >= 2, counts  # the capture's flows differ in depth
