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

``mosfw.testing.harness``
    :func:`~mosfw.testing.harness.run_capture` and the ``Runner`` behind the
    ``mosfw_run`` fixture: run plugins over a capture in-process and get
    the recorded events (:class:`~mosfw.testing.harness.RunRecord`).
    (``flows.perturb`` drops, duplicates and reorders held segments.)

``mosfw.testing.expected``
    The event sequences of a plain handshake and close, for exact
    assertions.

The pytest fixtures (``mosfw_capture``, ``mosfw_flows``, ``mosfw_pcap``,
``mosfw_run``) are in :mod:`mosfw.pytest_plugin`, registered through the
``pytest11`` entry point: see docs/testing-apps.md.

None of these modules is imported here, so importing :mod:`mosfw.testing` costs
nothing.
"""
