"""Flow and its core talk through mosfw.flowhost.FlowHost only."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import mosfw.flow
from mosfw.engine import Core
from mosfw.flowhost import FlowHost


def _methods(cls) -> dict:
    return {n: f for n, f in vars(cls).items() if not n.startswith("_") and callable(f)}


def test_core_implements_every_method_of_the_protocol_with_its_signature():
    wanted = _methods(FlowHost)
    assert wanted, "FlowHost lists no method"
    for name, proto in wanted.items():
        impl = getattr(Core, name, None)
        assert impl is not None, f"Core lacks FlowHost.{name}"
        assert list(inspect.signature(impl).parameters) == list(inspect.signature(proto).parameters), name


def test_flow_uses_no_private_member_of_its_core_and_only_the_protocol():
    src = Path(mosfw.flow.__file__).read_text()
    assert not re.search(r"_eng\._", src), "Flow reaches into its core's private members"
    used = set(re.findall(r"_eng\.(\w+)", src)) | set(re.findall(r"\beng\.(\w+)", src))
    assert used and used <= set(_methods(FlowHost)), used - set(_methods(FlowHost))


#: what the runner alone uses of the driver: never on the plugins' CoreView
DRIVER_ONLY = {"open", "run", "add_plugin_errors", "own_window", "input_files"}


def test_the_plugins_facade_has_every_public_method_of_core_but_the_drivers():
    """A method added to Core for plugins must be added to CoreView too
    (and one for the runner to DRIVER_ONLY): this fails until it is."""
    from mosfw.engine import CoreView

    core = {n for n in dir(Core) if not n.startswith(("_", "flow_"))} - DRIVER_ONLY
    view = {n for n in dir(CoreView) if not n.startswith("_")} - {"id", "config", "event_mask"}
    assert core == view, f"only on Core: {sorted(core - view)}; only on CoreView: {sorted(view - core)}"
    for name in view:
        doc = getattr(CoreView, name).__doc__
        assert doc and doc.strip(), f"CoreView.{name} has no docstring"


def test_the_engine_uses_no_private_member_of_a_flow_only_the_hosted_protocol():
    """The engine's modules reach a Flow through its public accessors and
    the host side that mosfw.flowhost.HostedFlow declares; this fails when
    they use one of its private members again, or a host_* name the
    protocol does not declare."""
    from mosfw.flow import Flow
    from mosfw.flowhost import HostedFlow

    private = {n for n in Flow.__slots__ if n.startswith("_") and not n.startswith("__")}
    private |= {n for n in vars(Flow) if n.startswith("_") and not n.startswith("__")}
    declared = set(HostedFlow.__annotations__) | {n for n in vars(HostedFlow) if not n.startswith("_")}
    engine = Path(mosfw.flow.__file__).parent / "engine"
    for path in sorted(engine.glob("*.py")):
        src = path.read_text()
        for m in re.finditer(r"\b(?:flow|f|t\.flow)\.(\w+)", src):
            name = m.group(1)
            assert name not in private, f"{path.name} uses Flow.{name}"
            if name.startswith("host_"):
                assert name in declared, f"{path.name} uses Flow.{name}, not in HostedFlow"
    flow_members = set(Flow.__slots__) | set(vars(Flow))
    assert declared <= flow_members, declared - flow_members
