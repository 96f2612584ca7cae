"""Dropping root once the capture is open (``mosfw run -i IFACE --user NAME``).

Opening a live capture needs root (or CAP_NET_RAW); reading packets from
an open capture does not. A monitor that parses traffic written by
strangers should run the parsing without privileges, like tcpdump's
``-Z``: open every capture handle as root, then switch the whole process
to an unprivileged user for good.

:func:`drop_privileges` does the switch: supplementary groups, then the
group, then the user (real, effective and saved ids, so there is no way
back), and checks that root cannot be regained. The kernel clears the
capabilities of a process that leaves uid 0 this way. Call it after
``Core.open()`` (every core: in each worker with ``-c N``) and before the
first packet is read; capture handles opened before keep working.

Errors raise :class:`PrivilegeError` (an :class:`~mosfw.engine.EngineError`,
so ``mosfw run`` reports it in one line and exits 1).
"""

from __future__ import annotations

import grp
import os
import pwd

from mosfw.engine import EngineError

__all__ = ["PrivilegeError", "drop_privileges", "resolve_user"]


class PrivilegeError(EngineError):
    """The process could not switch to the requested user."""


def resolve_user(user: str, group: str | None = None) -> tuple[str, int, int]:
    """(name, uid, gid) for a user name or numeric uid, and optionally a
    group name or numeric gid (default: the user's primary group)."""
    try:
        pw = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise PrivilegeError(f"--user {user}: no such user") from None
    gid = pw.pw_gid
    if group is not None:
        try:
            gid = grp.getgrgid(int(group)).gr_gid if group.isdigit() else grp.getgrnam(group).gr_gid
        except (KeyError, ValueError):
            raise PrivilegeError(f"--group {group}: no such group") from None
    return pw.pw_name, pw.pw_uid, gid


def drop_privileges(user: str, group: str | None = None) -> tuple[int, int]:
    """Switch this process to ``user`` (name or uid) for good; returns the
    (uid, gid) now in effect.

    Running as that user already: nothing to do. Running as another
    non-root user: :class:`PrivilegeError` (switching needs root).
    """
    name, uid, gid = resolve_user(user, group)
    # modules imported only when needed (kept off start-up) must be
    # imported now: the user may not be able to read the interpreter's
    # library (a python under /root)
    import json  # noqa: F401 - imported for the side effect above
    import pickle  # noqa: F401 - likewise
    import traceback  # noqa: F401 - likewise

    if os.geteuid() != 0:
        if os.getuid() == os.geteuid() == uid:
            return uid, os.getgid()
        raise PrivilegeError(f"--user {user}: switching users needs root (running as uid {os.geteuid()})")
    try:
        os.setgroups([])
        try:
            os.initgroups(name, gid)
        except OSError:
            os.setgroups([gid])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as e:
        raise PrivilegeError(f"--user {user}: cannot switch to uid {uid} gid {gid}: {e.strerror}") from None
    if uid != 0:
        try:
            os.setuid(0)
        except PermissionError:
            pass
        else:  # pragma: no cover - the kernel would have to be broken
            raise PrivilegeError(f"--user {user}: root could be regained after switching; refusing to go on")
    return os.getuid(), os.getgid()
