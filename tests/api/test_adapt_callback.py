"""mosfw.api.adapt_callback: a callback taking any subset of the callback
arguments by name, called with all of them. Its signature is read once per
code object and the adapter compiled once per set of names (settimer and
flow.register call it per flow): the cache must never mix up callables."""

from __future__ import annotations

import functools

import pytest

from mosfw.api import adapt_callback

ALL = {"flow": "F", "side": "S", "event": "E", "uevent": "U", "data": "D", "core": "C", "timer": "T"}


def call(fn):
    return adapt_callback(fn)(*ALL.values())


def test_each_callable_gets_its_own_arguments():
    class App:
        def __init__(self, tag):
            self.tag = tag

        def on(self, data, flow):
            return (self.tag, flow, data)

    a, b = App("a"), App("b")
    assert call(a.on) == ("a", "F", "D") and call(b.on) == ("b", "F", "D")
    # lambdas made per flow share one code object: each keeps its closure
    made = [lambda timer, i=i: (i, timer) for i in range(3)]
    assert [call(f) for f in made] == [(0, "T"), (1, "T"), (2, "T")]
    assert call(lambda **kw: sorted(kw)) == sorted(ALL)
    assert call(functools.partial(lambda x, core: (x, core), 1)) == (1, "C")


def test_same_code_other_defaults_is_checked_again():
    def make(defaults):
        def cb(flow, extra):
            return (flow, extra)

        cb.__defaults__ = defaults
        return cb

    assert call(make((7,))) == ("F", 7)
    with pytest.raises(TypeError, match="takes an argument 'extra'"):
        adapt_callback(make(None))
    with pytest.raises(TypeError, match="takes an argument 'extra'"):
        adapt_callback(make(None))  # the error is not cached away


def test_wrapped_callables_use_the_wrapped_signature():
    def inner(event, side):
        return (event, side)

    @functools.wraps(inner)
    def outer(*a, **kw):
        return inner(*a, **kw)

    assert call(outer) == ("E", "S")
    assert call(lambda core: core) == "C"
