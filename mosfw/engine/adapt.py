"""The one argument adapter: how a function that declares some of the
arguments of a call by name is called with all of them.

Hook implementations, :func:`mosfw.api.on` callbacks, user-event filters
and timer callbacks all take their arguments opt-in, by name: a function
declares any subset of what its call offers, so arguments can be added
later without breaking apps. The engine calls each with every argument
positionally; :func:`adapt` turns the function into one that takes them
all and passes on only those it declared (one extra call, no list or
dict built per event). :func:`call_text` is the same call as source text,
for a handler that inlines it (the engine's one-subscriber handlers).

Names come from hookspecs or :data:`CALLBACK_ARGS` (identifiers checked
by pluggy or here), never from event data.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["CALLBACK_ARGS", "adapt", "adapt_callback", "call_text"]

#: the names a callback, filter or timer callback may declare
CALLBACK_ARGS = ("flow", "side", "event", "uevent", "data", "core", "timer")


def call_text(
    declared: Sequence[str], exprs: Mapping[str, str] | None = None, *, by_name: bool = False
) -> str:
    """The argument list of a call passing ``declared``: each name, or
    the expression ``exprs[name]`` for it; ``by_name`` passes them as
    keywords (``flow=flow``) instead of positionally."""
    vals = [exprs[n] if exprs is not None else n for n in declared]
    if by_name:
        return ", ".join(f"{n}={v}" for n, v in zip(declared, vals, strict=True))
    return ", ".join(vals)


def adapt(
    fn: Callable,
    offered: Sequence[str],
    declared: Sequence[str] | None = None,
    *,
    by_name: bool = False,
    what: str = "callback",
) -> Callable[..., Any]:
    """``fn`` as a function of all of ``offered``, positionally.

    :param declared: the names ``fn`` takes, a subset of ``offered``
        (pluggy's ``HookImpl.argnames`` for a hook); None reads them from
        its signature: any of ``offered`` it names (a parameter that is
        not offered must have a default, else :class:`TypeError`), all of
        them for ``**kwargs`` or a callable without a signature.
    :param by_name: pass them as keywords (callbacks; hooks are called
        positionally, as pluggy calls them).

    It runs for every ``settimer``/``register`` with a callback (often one
    per flow), so its two costly steps are done once: reading the
    signature (once per code object: a lambda made per flow has one) and
    compiling the adapter (once per set of names).
    """
    offered = tuple(offered)
    if declared is None:
        key = _signature_key(fn)
        found = _DECLARED.get((key, offered)) if key is not None else None
        if found is None:
            found = _declared(fn, offered, what)
            if key is not None:
                _DECLARED[(key, offered)] = found
        declared, by_name = found
    declared = tuple(declared)
    if declared == offered and not by_name:
        return fn
    make = _MAKERS.get((offered, declared, by_name))
    if make is None:
        make = eval(  # noqa: S307 - identifiers from a hookspec or CALLBACK_ARGS only
            f"lambda fn: lambda {', '.join(offered)}: fn({call_text(declared, by_name=by_name)})", {}
        )
        _MAKERS[(offered, declared, by_name)] = make
    return make(fn)


def adapt_callback(fn: Callable) -> Callable[..., Any]:
    """``fn`` as a function of all :data:`CALLBACK_ARGS`, positionally
    (it may declare any subset by name, or ``**kwargs``)."""
    return adapt(fn, CALLBACK_ARGS, by_name=True)


# (signature key, offered) -> (declared, by_name); (offered, declared,
# by_name) -> a function making the adapter of a given fn
_DECLARED: dict[Any, tuple[tuple[str, ...], bool]] = {}
_MAKERS: dict[tuple[Any, ...], Callable[[Callable], Callable[..., Any]]] = {}


def _signature_key(fn: Callable) -> Any:
    """What a callable's parameters depend on, for plain and bound Python
    functions (None: not cached)."""
    bound = inspect.ismethod(fn)
    f = fn.__func__ if inspect.ismethod(fn) else fn
    if not inspect.isfunction(f) or hasattr(f, "__wrapped__") or hasattr(f, "__signature__"):
        return None
    return (f.__code__, bound, len(f.__defaults__ or ()), tuple(f.__kwdefaults__ or ()))


def _declared(fn: Callable, offered: tuple, what: str) -> tuple[tuple, bool]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins: pass everything by name
        return offered, True
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return offered, True
    names = []
    for n, p in params.items():
        if n in offered:
            names.append(n)
        elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL,):
            raise TypeError(
                f"{what} {getattr(fn, '__qualname__', fn)!r} takes an argument {n!r}; "
                f"{what}s take any of {', '.join(offered)} by name"
            )
    return tuple(names), True
