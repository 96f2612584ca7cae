"""mosfw: passive network monitors in Python at native speed.

A C engine reads packets, emulates both endpoints' TCP stacks for every
connection and raises mOS-style events; apps are pluggy plugins::

    import mosfw

    @mosfw.hookimpl
    def mosfw_conn_end(flow, reason):
        print(flow.client_str, flow.server_str, reason.label)

Run with ``mosfw run -r capture.pcap -p myapp.py``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pluggy

from mosfw.runconfig import Config, OptionParser, UsageError

if TYPE_CHECKING:  # the lazy names (_LAZY), for type checkers
    from mosfw.engine import Core, CoreView
    from mosfw.events import EndReason, ErrorCode, Event, EventType, Side, TcpState
    from mosfw.flow import Flow
    from mosfw.manager import get_plugin_manager
    from mosfw.stats import CoreCounters, RunStats

__version__ = "0.1.0"

#: marker for hook implementations: ``@mosfw.hookimpl``
hookimpl = pluggy.HookimplMarker("mosfw")

__all__ = [
    "hookimpl",
    "Config",
    "OptionParser",
    "UsageError",
    "EventType",
    "Side",
    "TcpState",
    "EndReason",
    "ErrorCode",
    "Event",
    "Flow",
    "Core",
    "CoreView",
    "RunStats",
    "CoreCounters",
    "get_plugin_manager",
    "get_include",
]

_LAZY = {
    # these need the compiled engine; imported on first use so that
    # mosfw.testing and the hook marker work without it
    "EventType": "mosfw.events",
    "Side": "mosfw.events",
    "TcpState": "mosfw.events",
    "EndReason": "mosfw.events",
    "ErrorCode": "mosfw.events",
    "Event": "mosfw.events",
    "Flow": "mosfw.flow",
    "Core": "mosfw.engine",
    "CoreView": "mosfw.engine",
    "RunStats": "mosfw.stats",
    "CoreCounters": "mosfw.stats",
    "get_plugin_manager": "mosfw.manager",
}


def get_include() -> str:
    """The folder holding ``mosfw_api.h``, the engine's public C header, for
    C extensions that work with the engine's types (as
    ``numpy.get_include()``): ``include_dirs=[mosfw.get_include()]``.

    An installed mosfw ships the header in the package (``mosfw/include/``);
    an editable install from a checkout uses the checkout's ``native/``."""
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "include"), os.path.join(os.path.dirname(here), "native")):
        if os.path.isfile(os.path.join(folder, "mosfw_api.h")):
            return folder
    raise FileNotFoundError(f"mosfw_api.h is neither in {here}/include nor in a checkout's native/")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mosfw' has no attribute {name!r}")
