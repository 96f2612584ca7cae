"""The plugin manager: pluggy is the registry; hot events bypass pm.hook
unless a hook has a wrapper or hook calls are traced.

``-p SPEC`` accepts, in this order: a name from the ``mosfw.plugins``
entry-point group (``eventlog``, and those of the installed plugin
packages: ``pip install ./samples/midstat`` gives ``midstat``), a path
to a ``.py`` file, a path to a folder holding an app (``samples/midstat``:
its ``app.py`` or ``__init__.py``), or an importable module name.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pluggy

from mosfw import hookspecs
from mosfw.engine.adapt import adapt
from mosfw.events import EventType

__all__ = [
    "MosfwPluginManager",
    "PluginLoadError",
    "PluginNotFound",
    "get_plugin_manager",
    "plugin_names",
    "EVENT_HOOKS",
    "PER_PLUGIN_HOOKS",
    "raised_by",
]

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
    """A plugin could not be loaded or set up (import error, a misspelt
    hook or argument, ``mosfw_addoption`` raising); the message, one
    line, names it and says why (``mosfw run`` exits 1)."""


class PluginNotFound(PluginLoadError):
    """A ``-p`` spec names nothing: no such file, folder or registered
    plugin (``mosfw run``: a bad command line, exit 2)."""


class MosfwPluginManager(pluggy.PluginManager):
    """pluggy's manager plus mosfw's loading rules and fast dispatch tables."""

    def __init__(self) -> None:
        super().__init__("mosfw")
        self._monitors = 0  # add_hookcall_monitoring() in force
        self.add_hookspecs(hookspecs)
        if os.environ.get("MOSFW_TRACE_HOOKS"):
            self.trace.root.setwriter(sys.stderr.write)
            self.enable_tracing()

    # -- loading ------------------------------------------------------------

    def load(self, spec: str | os.PathLike[str]) -> object:
        """Load and register the plugin named by ``spec``; return it."""
        plugin = resolve_plugin(spec)
        name = getattr(plugin, "__name__", os.fspath(spec))
        if self.is_registered(plugin):
            return plugin
        if self.get_plugin(name) is not None:
            name = f"{name}@{spec}"
        try:
            self.register(plugin, name=name)
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(f"plugin {spec!r}: {_one_line(e)}") from None
        return plugin

    def register(self, plugin, name=None):
        try:
            return super().register(plugin, name)
        except pluggy.PluginValidationError as e:  # pluggy's message spans lines
            raise pluggy.PluginValidationError(e.plugin, _one_line(e)) from None

    def add_options(self, parser) -> None:
        """Call every ``mosfw_addoption``; one that raises (``SystemExit``
        too) is a :class:`PluginLoadError` naming the plugin and where."""
        from mosfw.plugin_faults import check_interrupt, describe, raised_at, raised_in

        callers = self.direct_callers("mosfw_addoption")
        # the functions themselves, to name the plugin's line (through
        # pluggy, one caller runs them all: the innermost frame then)
        impls = [] if self.through_pluggy("mosfw_addoption") else self.direct_impls("mosfw_addoption")
        for i, (name, fn) in enumerate(callers):
            try:
                fn(parser)
            except BaseException as e:  # noqa: BLE001 - a plugin that cannot be set up
                check_interrupt(e)
                name = raised_by(e, name)
                at = raised_in(e, impls[i][1]) if impls else raised_at(e)
                raise PluginLoadError(
                    f"plugin {name!r} raised in mosfw_addoption: {describe(e)}{at}"
                ) from None

    def check(self) -> None:
        """Fail on hook implementations that match no hook, and on
        :func:`mosfw.api.on` callbacks that take an argument no callback
        gets (typos)."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as e:
            raise PluginLoadError(
                f"{_one_line(e)} (a misspelt hook name? mosfw hooks are listed in `mosfw hooks`)"
            ) from None
        from mosfw.api import adapt_callback, plugin_callbacks
        from mosfw.plugin_faults import where

        for plugin in self.get_plugins():
            for _ev, fn in plugin_callbacks(plugin):
                try:
                    adapt_callback(fn)
                except TypeError as e:
                    raise PluginLoadError(f"plugin {self.get_name(plugin)!r}: {e}{where(fn)}") from None

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

    def direct_callers(
        self, hook_name: str, only: set[str] | None = None
    ) -> list[tuple[str, Callable[..., Any]]]:
        """The hook's implementations as plain callables taking the spec's
        arguments positionally, in pluggy's call order (last registered
        first, tryfirst/trylast honoured). Each adapts to the subset of
        arguments the implementation declared.

        When the hook goes through pluggy (:meth:`through_pluggy`: it has
        a wrapper, or hook calls are monitored) the list holds one
        callable that makes the hook call through pluggy instead, named
        after the hook's plugins; an exception it lets through carries the
        name of the plugin that raised it (:func:`raised_by`). Hooks whose
        values are kept per plugin (:data:`PER_PLUGIN_HOOKS`) then get one
        such callable per plain implementation, each a hook call of its
        own that the wrappers wrap and tracing sees. ``only``: the
        implementations of these plugins only (through pluggy, each then a
        hook call of its own: the events of a protocol only they asked
        for, mosfw.engine.protocols)."""
        caller = getattr(self.hook, hook_name)
        spec_args = list(caller.spec.argnames) if caller.spec else []
        if not self.through_pluggy(hook_name):
            impls = self.direct_impls(hook_name)
            return [
                (name, adapt(fn, spec_args, argnames))
                for name, fn, argnames in impls
                if only is None or name in only
            ]
        impls = caller.get_hookimpls()
        wrappers = [i for i in impls if i.hookwrapper or i.wrapper]
        if only is not None:
            return [
                (i.plugin_name, self._pluggy_call(hook_name, spec_args, impls, wrappers + [i]))
                for i in reversed(impls)
                if not (i.hookwrapper or i.wrapper) and i.plugin_name in only
            ]
        if hook_name in PER_PLUGIN_HOOKS:
            return [
                (i.plugin_name, self._pluggy_call(hook_name, spec_args, impls, wrappers + [i]))
                for i in reversed(impls)
                if not (i.hookwrapper or i.wrapper)
            ]
        names = ", ".join(dict.fromkeys(i.plugin_name for i in reversed(impls)))
        return [(names, self._pluggy_call(hook_name, spec_args, impls, None))]

    def direct_impls(self, hook_name: str) -> list[tuple[str, Callable[..., Any], tuple[str, ...]]]:
        """``(plugin name, function, the argument names it declared)`` of
        each plain (not wrapper) implementation, in :meth:`direct_callers`'
        order: for a caller that builds its own call to one implementation
        of a hook that does not go :meth:`through_pluggy`."""
        caller = getattr(self.hook, hook_name)
        return [
            (impl.plugin_name, impl.function, tuple(impl.argnames))
            for impl in reversed(caller.get_hookimpls())
            if not (impl.hookwrapper or impl.wrapper)
        ]

    # -- pluggy semantics ---------------------------------------------------

    def through_pluggy(self, hook_name: str) -> bool:
        """True when calls of this hook must go through pluggy's own call
        loop rather than straight to the implementations: the hook has a
        wrapper (``wrapper=True`` or ``hookwrapper=True``), or hook calls
        are monitored (``MOSFW_TRACE_HOOKS``, :meth:`add_hookcall_monitoring`).
        Plain implementations are otherwise called directly: the same
        order and arguments as pluggy, without its per-call cost."""
        if self._monitors:
            return True
        return any(i.hookwrapper or i.wrapper for i in getattr(self.hook, hook_name).get_hookimpls())

    def add_hookcall_monitoring(self, before: Any, after: Any) -> Callable[[], None]:
        """pluggy's, counted: while any monitor is on, every hook goes
        :meth:`through_pluggy` (the engine resolves its dispatch table when
        a core is made: add monitors before)."""
        undo = super().add_hookcall_monitoring(before, after)
        self._monitors += 1
        done: list[bool] = []

        def undo_counted() -> None:
            undo()
            if not done:
                done.append(True)
                self._monitors -= 1

        return undo_counted

    def _pluggy_call(self, hook_name: str, spec_args: list[str], impls: list, only: list | None) -> Callable:
        """A callable of the spec's arguments, positionally, that calls the
        hook through pluggy (``only``: just these implementations, one
        value back instead of the list)."""
        hookexec = self._hookexec
        codes = {getattr(i.function, "__code__", None): i.plugin_name for i in impls}
        firstresult = bool(getattr(self.hook, hook_name).spec.opts.get("firstresult"))

        def call(**kwargs: Any) -> Any:
            try:
                if only is None:
                    return hookexec(hook_name, impls, kwargs, firstresult)
                out: Any = hookexec(hook_name, only, kwargs, False)
                return out[0] if out else None
            except Exception as e:
                _blame(e, codes)
                raise

        return adapt(call, spec_args, spec_args, by_name=True)


#: hooks whose values are kept, or whose arguments are given, per plugin
#: name (each plugin merges its own values): through pluggy, each
#: plugin's implementation is a hook call of its own
PER_PLUGIN_HOOKS = frozenset({"mosfw_tick_result", "mosfw_core_result", "mosfw_tick_merge", "mosfw_merge"})


def raised_by(exc: BaseException, default: str) -> str:
    """The plugin an exception from a hook call made through pluggy came
    from (the innermost implementation in its traceback), else
    ``default``."""
    return getattr(exc, "_mosfw_plugin", None) or default


def _blame(exc: BaseException, codes: dict) -> None:
    tb, name = exc.__traceback__, None
    while tb is not None:
        name = codes.get(tb.tb_frame.f_code, name)
        tb = tb.tb_next
    if name is not None:
        try:
            exc._mosfw_plugin = name  # type: ignore[attr-defined]
        except AttributeError:  # an exception type without a __dict__
            pass


def _one_line(e: BaseException) -> str:
    return "; ".join(x.strip() for x in str(e).splitlines() if x.strip())


def _load_path(spec: str, path: str) -> ModuleType:
    """A plugin given as a .py file or an app folder (os.path, not
    pathlib: with urllib.parse and ipaddress that is 5 ms of start-up)."""
    path = os.path.normpath(path)
    if os.path.isdir(path):
        for cand in ("app.py", "__init__.py", f"{os.path.basename(path)}.py"):
            if os.path.isfile(os.path.join(path, cand)):
                return _load_file(os.path.join(path, cand), package_dir=path)
        raise PluginNotFound(f"plugin folder {spec} has no app.py or __init__.py")
    if os.path.isfile(path):
        return _load_file(path)
    raise PluginNotFound(f"plugin {spec!r}: no such file or folder")


def _module_name(path: str) -> str:
    return "mosfw_app_" + "".join(c if c.isalnum() else "_" for c in os.path.realpath(path))


def _folder_package(folder: str) -> str:
    """An app folder as a package of its own (``mosfw_app_<path>``) so that
    the app's modules import each other relatively (``from .table import
    ...``) without the folder on sys.path."""
    name = _module_name(folder)
    if name not in sys.modules:
        package = ModuleType(name)
        package.__path__ = [folder]
        package.__package__ = name
        sys.modules[name] = package
    return name


def _load_file(path: str, package_dir: str | None = None) -> ModuleType:
    """Import a plugin file; inside an app folder, as a module of the
    folder's package (the folder's ``__init__.py`` is that package itself)."""
    locations = None
    if package_dir is None:
        modname = _module_name(path)
    elif os.path.basename(path) == "__init__.py":
        modname, locations = _module_name(package_dir), [package_dir]
    else:
        modname = _folder_package(package_dir) + "." + os.path.basename(path)[:-3]
    if modname in sys.modules:
        return sys.modules[modname]
    spec = importlib.util.spec_from_file_location(modname, path, submodule_search_locations=locations)
    if spec is None or spec.loader is None:
        raise PluginLoadError(f"cannot load plugin file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as e:  # noqa: BLE001 - sys.exit() at import too: the plugin does not load
        del sys.modules[modname]
        from mosfw.plugin_faults import check_interrupt, describe

        check_interrupt(e)
        raise PluginLoadError(f"plugin {path} failed to import: {describe(e)}{_line_in(e, path)}") from None
    return module


def _line_in(e: BaseException, path: str) -> str:
    """`` at PATH:LINE``: the last line of the plugin's file the exception
    went through ("" for a SyntaxError, whose message says where)."""
    if isinstance(e, SyntaxError):
        return ""
    import traceback

    path = os.path.realpath(path)
    for fr in reversed(traceback.extract_tb(e.__traceback__)):
        if os.path.realpath(fr.filename) == path:
            return f" at {fr.filename}:{fr.lineno}"
    return ""


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
            raise PluginNotFound(
                f"unknown plugin {spec!r}: not an installed plugin (installed: {', '.join(plugin_names())}), "
                "a .py file, an app folder or an importable module (a plugin package is found by name "
                "once pip-installed, e.g. `pip install ./samples/midstat`)"
            ) from None
        raise PluginLoadError(f"plugin {spec!r} failed to import: {e}") from e
    except Exception as e:
        raise PluginLoadError(f"plugin {spec!r} failed to import: {type(e).__name__}: {e}") from e


def plugin_names() -> list[str]:
    """The names ``-p NAME`` finds: the built-in plugins and every
    ``mosfw.plugins`` entry point of the installed distributions, sorted."""
    from importlib import metadata

    return sorted(set(BUILTIN_PLUGINS) | {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)})


def get_plugin_manager(plugins: list | tuple = ()) -> MosfwPluginManager:
    """A manager with the hook specs and the given plugins registered
    (specs, objects or modules), checked for misspelt hooks."""
    pm = MosfwPluginManager()
    for p in plugins:
        pm.load(p) if isinstance(p, (str, os.PathLike)) else pm.register(p)
    pm.check()
    return pm
