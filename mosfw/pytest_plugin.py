"""pytest fixtures for mosfw app writers (``pytest11`` entry point).

``mosfw_capture``
    a factory: ``cap = mosfw_capture(linktype="ether", start=1000.0,
    step=0.001)`` returns a :class:`mosfw.testing.flows.Capture` to
    describe TCP conversations in a few lines.
``mosfw_run``
    ``rec = mosfw_run(cap_or_pcap, plugins=[myapp], tcp_timeout=5)`` runs
    plugins over it in-process and returns a
    :class:`mosfw.testing.harness.RunRecord` (``rec.events``,
    ``rec.short()``, ``rec.stats``, ``rec.stdout``).
"""

from __future__ import annotations

import pytest


@pytest.fixture
def mosfw_capture():
    """Factory for synthetic captures (see mosfw.testing.flows.Capture)."""
    from mosfw.testing.flows import Capture

    def make(**kw):
        return Capture(**kw)

    return make


@pytest.fixture
def mosfw_run():
    """Run plugins over a Capture or a pcap path and record the events."""
    from mosfw.testing.harness import run_capture

    return run_capture
