"""The engine: drives one core's C event loop and dispatches its events.

Modules:

- :mod:`~mosfw.engine.core`: :class:`Core`, the driver (set-up, input, the loop);
- :mod:`~mosfw.engine.dispatch`: the dispatch table and plugin error reports;
- :mod:`~mosfw.engine.callbacks`: callbacks and user-defined events;
- :mod:`~mosfw.engine.timers`: timers;
- :mod:`~mosfw.engine.bytestream`: bytestream and packet access;
- :mod:`~mosfw.engine.filters`: BPF monitor filters;
- :mod:`~mosfw.engine.errors`: the engine's errors.
"""

from mosfw.engine.core import Core, RunResult, buffer_settings
from mosfw.engine.errors import EngineError, InputError, PluginError, raised_at

__all__ = ["Core", "EngineError", "InputError", "PluginError", "RunResult", "buffer_settings", "raised_at"]
