#!/usr/bin/env python3
"""The NFStream peer of bench/run_bench.py.

    python nfstream_count.py [--plugin] FILE

Runs NFStream (PyPI) over the capture with one metering process
(``n_meters=1``), nDPI dissection and statistical features off (flow
tracking only: the work comparable to the other rows), and counts the TCP
flows it exports. ``--plugin`` adds one trivial NFPlugin that counts each
flow's packets in ``on_init``/``on_update``: the NFStream counterpart of
mosfw's per-packet Python hook. NFStream does not detect retransmissions.
Prints one ``key=value`` line.
"""

from __future__ import annotations

import sys

from nfstream import NFPlugin, NFStreamer


class CountPackets(NFPlugin):
    """The cheapest per-packet plugin: one counter per flow."""

    def on_init(self, packet, flow):
        flow.udps.pkts = 1

    def on_update(self, packet, flow):
        flow.udps.pkts += 1


def main(argv: list[str]) -> int:
    plugin = "--plugin" in argv
    args = [a for a in argv if a != "--plugin"]
    if len(args) != 1:
        sys.exit("usage: nfstream_count.py [--plugin] FILE")
    streamer = NFStreamer(
        source=args[0],
        n_meters=1,
        n_dissections=0,
        statistical_analysis=False,
        splt_analysis=0,
        udps=CountPackets() if plugin else None,
    )
    flows = tcp_flows = packets = plugin_packets = 0
    for flow in streamer:
        flows += 1
        if flow.protocol == 6:
            tcp_flows += 1
            packets += flow.bidirectional_packets
        if plugin:
            plugin_packets += flow.udps.pkts
    extra = f" plugin_packets={plugin_packets}" if plugin else ""
    print(f"flows={flows} tcp_flows={tcp_flows} tcp_packets={packets}{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
