"""The pieces of a synthetic TCP conversation: sides, endpoints, payload
patterns, :class:`Segment`, and :func:`perturb` (loss, duplication,
reordering of held segments). :mod:`mosfw.testing.flows` re-exports them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from . import packets as P

if TYPE_CHECKING:
    from .conversation import Conversation

CLIENT = "client"
SERVER = "server"
_MOD = 1 << 32

Endpoint = tuple[str, int]

#: endpoints used when a conversation is made without naming them
DEFAULT_CLIENT: Endpoint = ("10.0.0.1", 40000)
DEFAULT_SERVER: Endpoint = ("10.0.0.2", 80)
Payload = int | bytes | bytearray | memoryview | str
Vlan = int | Sequence[int] | None


def _side(side) -> str:
    """Accept "client"/"server" (any case, or "c"/"s") or an enum whose name is one of them."""
    name = getattr(side, "name", side)
    if isinstance(name, str):
        n = name.lower()
        if n in ("client", "c", "cli"):
            return CLIENT
        if n in ("server", "s", "srv", "svr"):
            return SERVER
    raise ValueError(f"side must be 'client' or 'server', not {side!r}")


def _peer(side: str) -> str:
    return SERVER if side == CLIENT else CLIENT


def pattern(side, offset: int, n: int) -> bytes:
    """``n`` pattern bytes at stream ``offset``: ``abc..z`` for the client, ``ABC..Z`` for the server."""
    base = ord("a") if _side(side) == CLIENT else ord("A")
    return bytes(base + (offset + i) % 26 for i in range(n))


@dataclass(frozen=True)
class Segment:
    """One TCP segment as sent by ``side``; no timestamp, no addresses.

    Use :func:`dataclasses.replace` (or :meth:`replace`) to derive variants,
    e.g. ``seg.replace(window=0)``.
    """

    side: str
    seq: int
    ack: int
    flags: int
    payload: bytes = b""
    window: int = 65535
    options: bytes = b""

    @property
    def flag_str(self) -> str:
        """Flags as tcpdump-like letters, e.g. ``"SA"``, ``"PA"``, ``"FA"``."""
        return P.flags_str(self.flags)

    @property
    def seq_len(self) -> int:
        """Sequence space consumed: payload length + 1 for SYN + 1 for FIN."""
        return len(self.payload) + bool(self.flags & P.SYN) + bool(self.flags & P.FIN)

    @property
    def end_seq(self) -> int:
        """``seq + seq_len`` modulo 2**32."""
        return (self.seq + self.seq_len) % _MOD

    def replace(self, **changes) -> Segment:
        return dataclasses.replace(self, **changes)


class Pending(NamedTuple):
    """A segment :meth:`Capture.hold` kept back: write it with
    :meth:`Capture.deliver` (``ts`` is the explicit timestamp it was emitted
    with, or None for "the next one")."""

    conv: Conversation
    seg: Segment
    ts: float | None = None


def perturb(
    items: Sequence,
    *,
    drop: Iterable[int] = (),
    duplicate: Iterable[int] | Mapping[int, int] = (),
    delay: Mapping[int, int] | None = None,
) -> list:
    """A deterministic perturbation of a schedule (any sequence, e.g. the
    :class:`Pending` list of :meth:`Capture.hold`); returns a new list.

    :param drop: indexes of items lost before the tap (left out). A dropped
        item that is also duplicated still appears once: lost, then resent.
    :param duplicate: indexes of items that appear twice: the copy right
        after the item, or, with a mapping ``index -> k``, right after the
        item originally at ``index + k``.
    :param delay: ``index -> k``: the item moves ``k`` places later (after
        the item originally at ``index + k``), or earlier for ``k < 0``
        (before that item): reordering.

    ``perturb(s, drop=[1], duplicate={2: 3}, delay={0: 2})`` on
    ``[a, b, c, d, e, f]`` gives ``[c, a, d, e, f, c]``.
    """
    delay = dict(delay or {})
    dups: dict[int, int] = dict(duplicate) if isinstance(duplicate, Mapping) else dict.fromkeys(duplicate, 0)
    dropped = set(drop)
    n = len(items)
    for i in list(dropped) + list(dups) + list(delay):
        if not 0 <= i < n:
            raise IndexError(f"perturb: index {i} out of range for {n} items")
    keyed = []
    for i, item in enumerate(items):
        d = delay.get(i, 0)
        pos = i + d
        if i not in dropped:
            keyed.append(((pos, (d > 0) - (d < 0), i, 0), item))
        if i in dups:
            k = dups[i]
            if k < 0:
                raise ValueError("perturb: a duplicate comes after its original (k >= 0)")
            keyed.append(((pos + k, 2, i, 1), item))
    keyed.sort(key=lambda kv: kv[0])
    return [item for _, item in keyed]
