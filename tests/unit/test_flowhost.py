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
