"""Helpers for testing mosfw and mosfw apps without real traffic.

``mosfw.testing.packets``
    Pure-Python (standard library only) encoders for Ethernet/802.1Q/QinQ,
    Linux cooked (SLL, SLL2), BSD loopback (NULL, LOOP), raw IP, IPv4, IPv6
    (with extension headers), TCP, UDP and ICMP, plus classic pcap
    (microsecond and nanosecond) and pcapng writers.

``mosfw.testing.flows``
    A small TCP conversation builder (:class:`~mosfw.testing.flows.Capture`,
    :class:`~mosfw.testing.flows.Conversation`) that tracks both sides'
    sequence numbers so a test can script handshakes, data, losses,
    retransmissions, keep-alives, FIN/RST teardown and write the result to a
    capture file.

Neither module is imported here, so importing :mod:`mosfw.testing` costs
nothing.
"""
