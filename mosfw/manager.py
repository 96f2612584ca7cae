"""The plugin manager: pluggy is the registry; hot events bypass pm.hook.

``-p SPEC`` accepts, in this order: a name from the ``mosfw.plugins``
entry-point group (``eventlog``), a path to a ``.py`` file, a path to a
folder holding an app (``samples/midstat``: its ``app.py`` or
``__init__.py``), or an importable module name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType
from typing import Any, Callable

import pluggy

from mosfw import hookspecs
from mosfw.engine.adapt import adapt
from mosfw.events import EventType

__all__ = ["MosfwPluginManager", "PluginLoadError", "get_plugin_manager", "EVENT_HOOKS"]

ENTRY_POINT_GROUP = "mosfw.plugins"

#: plugins shipped inside the package (also registered as entry points)
BUILTIN_PLUGINS = {"eventlog": "mosfw.plugins.eventlog"}

#: event hook name -> the event bit it subscribes to
EVENT_HOOKS: dict[str, EventType] = {
    "mosfw_pkt_in": EventType.PKT_IN,
    "mosfw_conn_start": EventType.CONN_START,
    "mosfw_tcp_state_change": EventType.TCP_STATE_CHANGE,
    "mosfw_conn_new_data": EventType.CONN_NEW_DATA,
    "mosfw_rexmit": EventType.REXMIT,
    "mosfw_conn_end": EventType.CONN_END,
    "mosfw_orphan": EventType.ORPHAN,
    "mosfw_error": EventType.ERROR,
    "mosfw_tick": EventType.TICK,
    "mosfw_tick_result": EventType.TICK,
}

#: events that name a flow: subscribing to any needs CONN_END internally
FLOW_EVENTS = (
    EventType.PKT_IN
    | EventType.CONN_START
    | EventType.TCP_STATE_CHANGE
    | EventType.CONN_NEW_DATA
    | EventType.REXMIT
    | EventType.CONN_END
    | EventType.ERROR
)


class PluginLoadError(Exception):
    """A ``-p`` spec could not be loaded; the message says why."""


class MosfwPluginManager(pluggy.PluginManager):
    """pluggy's manager plus mosfw's loading rules and fast dispatch tables."""

    def __init__(self) -> None:
        super().__init__("mosfw")
        self.add_hookspecs(hookspecs)
        if os.environ.get("MOSFW_TRACE_HOOKS"):
            self.trace.root.setwriter(sys.stderr.write)
            self.enable_tracing()

    # -- loading ------------------------------------------------------------

    def load(self, spec: str) -> object:
        """Load and register the plugin named by ``spec``; return it."""
        plugin = resolve_plugin(spec)
        name = getattr(plugin, "__name__", spec)
        if self.is_registered(plugin):
            return plugin
        if self.get_plugin(name) is not None:
            name = f"{name}@{spec}"
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(f"plugin {spec!r}: {e}") from None
        return plugin

    def check(self) -> None:
        """Fail on hook implementations that match no hook (typos)."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(
                f"{e} (a misspelt hook name? mosfw hooks are listed in `mosfw hooks`)"
            ) from None

    # -- dispatch tables ----------------------------------------------------

    def event_mask(self) -> int:
        """Event bits at least one registered plugin implements."""
        mask = 0
        for name, bit in EVENT_HOOKS.items():
            if getattr(self.hook, name).get_hookimpls():
                mask |= int(bit)
        if mask & int(FLOW_EVENTS):
            mask |= int(EventType.CONN_END)  # the engine drops per-flow state there
        return mask

    def direct_callers(self, hook_name: str) -> list[tuple[str, Callable[..., Any]]]:
        """The hook's implementations as plain callables taking the spec's
        arguments positionally, in pluggy's call order (last registered
        first, tryfirst/trylast honoured). Each adapts to the subset of
        arguments the implementation declared."""
        caller = getattr(self.hook, hook_name)
        spec_args = list(caller.spec.argnames) if caller.spec else []
        return [(name, adapt(fn, spec_args, argnames)) for name, fn, argnames in self.direct_impls(hook_name)]

    def direct_impls(self, hook_name: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        """``(plugin name, function, the argument names it declared)`` of
        each implementation, in :meth:`direct_callers`' order: for a caller
        that builds its own call to one implementation."""
        caller = getattr(self.hook, hook_name)
        return [(impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(caller.get_hookimpls())]


def _load_path(spec: str, path: str) -> ModuleType:
    """A plugin given as a .py file or an app folder (os.path, not
    pathlib: with urllib.parse and ipaddress that is 5 ms of start-up)."""
    path = os.path.normpath(path)
    if os.path.isdir(path):
        for cand in ("app.py", "__init__.py", f"{os.path.basename(path)}.py"):
            if os.path.isfile(os.path.join(path, cand)):
                return _load_file(os.path.join(path, cand))
        raise PluginLoadError(f"plugin folder {spec} has no app.py or __init__.py")
    if os.path.isfile(path):
        return _load_file(path)
    raise PluginLoadError(f"plugin {spec!r}: no such file or folder")


def _load_file(path: str) -> ModuleType:
    modname = "mosfw_app_" + "".join(c if c.isalnum() else "_" for c in os.path.realpath(path))
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"cannot load plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[modname]
        raise PluginLoadError(f"plugin {path} failed to import: {type(e).__name__}: {e}") from e
    return module


def resolve_plugin(spec: str | object) -> object:
    """Turn a ``-p`` spec (or an already-loaded object) into a plugin."""
    if not isinstance(spec, (str, os.PathLike)):
        return spec
    spec = os.fspath(spec)
    if spec in BUILTIN_PLUGINS:
        return importlib.import_module(BUILTIN_PLUGINS[spec])
    if spec.endswith(".py") or os.sep in spec:  # a path: no entry-point name looks like one
        return _load_path(spec, spec)
    from importlib import metadata  # slow to import (email.*): only when a name is looked up

    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == spec:
            try:
                return ep.load()
            except Exception as e:
                raise PluginLoadError(f"plugin {spec!r} ({ep.value}) failed to load: {e}") from e
    if os.path.exists(spec):
        return _load_path(spec, spec)
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as e:
        if e.name and spec.startswith(e.name):
            names = sorted(
                set(BUILTIN_PLUGINS)
                | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
            )
            raise PluginLoadError(
                f"unknown plugin {spec!r}: not a registered plugin ({', '.join(names) or 'none'}), "
                "a .py file, an app folder or an importable module"
            ) from None
        raise PluginLoadError(f"plugin {spec!r} failed to import: {e}") from e
    except Exception as e:
        raise PluginLoadError(f"plugin {spec!r} failed to import: {type(e).__name__}: {e}") from e


def get_plugin_manager(plugins: list | tuple = ()) -> MosfwPluginManager:
    """A manager with the hook specs and the given plugins registered
    (specs, objects or modules), checked for misspelt hooks."""
    pm = MosfwPluginManager()
    for p in plugins:
        pm.load(p) if isinstance(p, (str, os.PathLike)) else pm.register(p)
    pm.check()
    return pm

