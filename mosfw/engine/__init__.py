"""The engine: drives one core's C event loop and dispatches its events.

Modules:

- :mod:`~mosfw.engine.core`: :class:`Core`, the driver (set-up, input,
  the loop);
- :mod:`~mosfw.engine.dispatch`: the dispatch table and plugin error
  reports;
- :mod:`~mosfw.engine.adapt`: the one argument adapter (hooks, callbacks,
  filters, timers);
- :mod:`~mosfw.engine.callbacks`: callbacks and user-defined events;
- :mod:`~mosfw.engine.timers`: timers;
- :mod:`~mosfw.engine.bytestream`: bytestream and packet access;
- :mod:`~mosfw.engine.filters`: BPF monitor filters;
- :mod:`~mosfw.engine.view`: :class:`CoreView`, what plugins get of a core;
- :mod:`~mosfw.engine.errors`: the engine's errors.

The names below are imported on first use, so that
:mod:`mosfw.engine.adapt` (which :mod:`mosfw.api` and the plugin manager
use) loads without the compiled engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mosfw.engine.core import Core, RunResult, buffer_settings
    from mosfw.engine.errors import EngineError, InputError, PluginError, raised_at
    from mosfw.engine.view import CoreView

__all__ = [
    "Core",
    "CoreView",
    "EngineError",
    "InputError",
    "PluginError",
    "RunResult",
    "buffer_settings",
    "raised_at",
]

_LAZY = {
    "Core": "mosfw.engine.core",
    "RunResult": "mosfw.engine.core",
    "buffer_settings": "mosfw.engine.core",
    "EVENT_CAPACITY": "mosfw.engine.core",
    "CoreView": "mosfw.engine.view",
    "EngineError": "mosfw.engine.errors",
    "InputError": "mosfw.engine.errors",
    "PluginError": "mosfw.engine.errors",
    "raised_at": "mosfw.engine.errors",
    "output_closed": "mosfw.engine.errors",
    "lib": "mosfw._native",
    "ffi": "mosfw._native",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mosfw.engine' has no attribute {name!r}")
