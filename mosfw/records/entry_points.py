"""Entry points of one group found by reading the ``entry_points.txt``
files of the distributions on ``sys.path``, without importing
:mod:`importlib.metadata` (its import, the email parser included, and
its scan of every distribution's metadata cost 30-60 ms of a run's
start-up: more than the Redis sink's records of a 60000-connection
capture, bench/README.md). Anything it does not find (a distribution in
a zip file, one a custom finder provides) is looked up with
:mod:`importlib.metadata` by the caller."""

from __future__ import annotations

import os
import sys

__all__ = ["entry_point_value", "load"]


def entry_point_value(group: str, name: str) -> str | None:
    """The value (``module:attr``) of the entry point ``name`` of
    ``group`` in the first ``*.dist-info`` or ``*.egg-info`` folder on
    ``sys.path`` (in path order, a distribution's first copy only, as
    :func:`importlib.metadata.entry_points` takes it) that declares it;
    None when no folder there does."""
    seen: set[str] = set()
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # not a folder (a zip file), or gone
            continue
        for folder in names:
            if not folder.endswith((".dist-info", ".egg-info")):
                continue
            dist = folder.rpartition(".")[0].partition("-")[0].lower().replace("-", "_").replace(".", "_")
            if dist in seen:
                continue
            seen.add(dist)
            value = _value_in(os.path.join(entry or ".", folder, "entry_points.txt"), group, name)
            if value is not None:
                return value
    return None


def _value_in(path: str, group: str, name: str) -> str | None:
    """``name``'s value in ``[group]`` of one entry_points.txt (INI)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    section = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
        elif section == group:
            key, eq, value = line.partition("=")
            if eq and key.strip() == name:
                return value.strip()
    return None


def load(value: str) -> object:
    """The object an entry point's value names: ``module:attr.attr``
    (extras in brackets ignored)."""
    import importlib

    module, _, attrs = value.partition("[")[0].strip().partition(":")
    obj: object = importlib.import_module(module.strip())
    for attr in attrs.strip().split(".") if attrs.strip() else ():
        obj = getattr(obj, attr)
    return obj
