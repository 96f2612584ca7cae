"""Fixtures of the sink tests (tests/sinks/)."""

from __future__ import annotations

import pytest
from sink_helpers import real_capture


@pytest.fixture(scope="session")
def capture(tmp_path_factory):
    """One real capture of curl traffic (sink_helpers.real_capture: 30
    connections, IPv4 and IPv6) for every sink test module: they only
    read it."""
    return real_capture(tmp_path_factory.mktemp("sinks") / "curl.pcap")
