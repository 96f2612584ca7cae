"""Garbage collection around the command's start-up.

mosfw's own start-up (click, pluggy, attrs, the engine's modules) makes
tens of thousands of objects that live as long as the process. Collecting
while they are made is wasted work, and walking them all again when the
interpreter exits cost about 10 ms of a 90 ms start-up on the development
machine. So the console entry point (:func:`mosfw.cli.main`) turns
collection off (:func:`hold`); when the command is about to load plugins
(:func:`release`), everything made so far is frozen (``gc.freeze``: never
walked again) and collection is turned back on, so plugin code runs with
the garbage collector as usual. Imported as a library (tests, click's
CliRunner), nothing here happens.
"""

from __future__ import annotations

import gc

_held = False


def hold() -> None:
    """Turn collection off until :func:`release` (the entry point only)."""
    global _held
    if gc.isenabled():
        gc.disable()
        _held = True


def release() -> None:
    """Freeze what start-up made and turn collection back on; a no-op
    unless :func:`hold` turned it off."""
    global _held
    if _held:
        _held = False
        gc.freeze()
        gc.enable()
