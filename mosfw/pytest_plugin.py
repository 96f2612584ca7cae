"""pytest fixtures for mosfw app writers (``pytest11`` entry point).

Installed with the package: any test session where mosfw is installed has
these fixtures (``-p no:mosfw`` turns them off; with
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, load them with
``-p mosfw.pytest_plugin`` or ``pytest_plugins = ["mosfw.pytest_plugin"]``).

``mosfw_capture``
    factory: ``cap = mosfw_capture(linktype="ether", start=1000.0,
    step=0.001)`` returns an empty :class:`mosfw.testing.flows.Capture`;
    ``cap.conversation(client, server, ...)`` scripts a TCP connection.
``mosfw_flows``
    convenience: one :class:`~mosfw.testing.flows.Conversation`
    (10.0.0.1:40000 -> 10.0.0.2:80, Ethernet) on a fresh capture
    (``mosfw_flows.capture``). ``@pytest.mark.mosfw_flow(...)`` changes it:
    ``linktype``, ``start``, ``step`` go to the capture, everything else
    (``client``, ``server``, ``vlan``, ``client_isn`` ...) to the
    conversation.
``mosfw_pcap``
    ``path = mosfw_pcap(cap, "name.pcap")`` writes a capture (or the
    capture of a conversation) into the test's ``tmp_path`` (pcapng when
    the name ends in ``.pcapng``) and returns the path.
``mosfw_run``
    a :class:`mosfw.testing.harness.Runner`: ``rec = mosfw_run(source,
    plugins=[app], tcp_timeout=5, options={...})`` runs plugins over a
    capture, a conversation, records or a pcap path in-process and returns
    a :class:`~mosfw.testing.harness.RunRecord` (``rec.events`` /
    ``rec.short()`` / ``rec.flows()``: the engine's events with the states
    at event time; ``rec.plugins`` / ``rec.plugin(App)``, ``rec.stdout``,
    ``rec.stats``: what the plugins and the engine produced). A plugin
    that raises fails the test (``fail_fast=False`` to count instead).

Nothing here imports the compiled engine until a fixture is used.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_CAPTURE_KEYS = ("linktype", "start", "step", "snaplen")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "mosfw_flow(**kw): settings of the mosfw_flows fixture's conversation "
        "(client, server, vlan, client_isn, ...; linktype/start/step/snaplen go to the capture)",
    )


@pytest.fixture
def mosfw_capture():
    """Factory for empty synthetic captures: ``mosfw_capture(linktype="ether",
    start=1000.0, step=0.001)`` -> :class:`mosfw.testing.flows.Capture`."""
    from mosfw.testing.flows import Capture

    def make(**kw) -> Capture:
        return Capture(**kw)

    return make


@pytest.fixture
def mosfw_flows(request, mosfw_capture):
    """One conversation on a fresh capture (``mosfw_flows.capture``); the
    ``mosfw_flow`` marker sets its endpoints, VLAN, ISNs, link type."""
    kw: dict = {}
    for mark in reversed(list(request.node.iter_markers("mosfw_flow"))):
        if mark.args:
            raise pytest.UsageError("@pytest.mark.mosfw_flow takes keyword arguments only")
        kw.update(mark.kwargs)
    cap = mosfw_capture(**{k: kw.pop(k) for k in _CAPTURE_KEYS if k in kw})
    return cap.conversation(**kw)


@pytest.fixture
def mosfw_pcap(tmp_path):
    """Writer: ``mosfw_pcap(capture_or_conversation, name="capture.pcap")``
    -> the path of the file written under ``tmp_path``."""

    def write(source, name: str = "capture.pcap", **kw) -> Path:
        cap = getattr(source, "capture", source)
        path = tmp_path / name
        cap.write(path, **kw)
        return path

    return write


@pytest.fixture
def mosfw_run(tmp_path):
    """A :class:`mosfw.testing.harness.Runner` writing its captures under
    ``tmp_path``: ``mosfw_run(source, plugins=[...], **options)`` ->
    :class:`mosfw.testing.harness.RunRecord`."""
    from mosfw.testing.harness import Runner

    return Runner(tmp_path)
