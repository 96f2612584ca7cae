"""mosfw.privileges: switching to an unprivileged user for good (the
function behind ``mosfw run --user``). Each switch runs in a child
process: it cannot be undone. The live case (a capture opened before the
switch keeps delivering packets) is in test_live.py."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mosfw.engine import EngineError
from mosfw.privileges import PrivilegeError, drop_privileges, resolve_user

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from as_nobody import python_as_nobody  # noqa: E402  (tests/as_nobody.py)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


def child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_unknown_user_and_group():
    with pytest.raises(PrivilegeError, match="--user no-such-user-x: no such user"):
        drop_privileges("no-such-user-x")
    with pytest.raises(PrivilegeError, match="--group no-such-group-x: no such group"):
        resolve_user("nobody", "no-such-group-x")
    assert issubclass(PrivilegeError, EngineError)  # mosfw run: one line, exit 1


def test_resolve_by_name_and_number():
    nobody = pwd.getpwnam("nobody")
    assert resolve_user("nobody") == ("nobody", nobody.pw_uid, nobody.pw_gid)
    assert resolve_user(str(nobody.pw_uid)) == ("nobody", nobody.pw_uid, nobody.pw_gid)
    assert resolve_user("nobody", "0")[2] == 0


@root_only
def test_drop_to_nobody_for_good():
    r = child("""
        import json, os, socket
        from mosfw.privileges import drop_privileges
        uid, gid = drop_privileges("nobody")
        out = dict(ids=os.getresuid() + os.getresgid(), groups=os.getgroups(), uid=uid)
        for what, fn in (("setuid", lambda: os.setuid(0)), ("seteuid", lambda: os.seteuid(0)),
                         ("raw", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),
                         ("read_shadow", lambda: open("/etc/shadow").read())):
            try:
                fn()
                out[what] = "allowed"
            except PermissionError:
                out[what] = "denied"
        caps = [l for l in open("/proc/self/status") if l.startswith(("CapEff", "CapPrm"))]
        out["caps"] = [l.split()[1] for l in caps]
        print(json.dumps(out))
        """)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    nobody = pwd.getpwnam("nobody")
    assert res["ids"] == [nobody.pw_uid] * 3 + [nobody.pw_gid] * 3
    assert 0 not in res["groups"] and res["uid"] == nobody.pw_uid
    assert {res[k] for k in ("setuid", "seteuid", "raw", "read_shadow")} == {"denied"}
    assert res["caps"] == ["0000000000000000", "0000000000000000"]


def test_not_root_cannot_switch_but_may_stay():
    # starts as nobody: from a readable copy when the checkout is not
    # readable by nobody (a clone under /root), tests/as_nobody.py
    with python_as_nobody() as (argv, env, cwd):
        r = subprocess.run(
            [
                *argv,
                "-c",
                textwrap.dedent("""
            from mosfw.privileges import PrivilegeError, drop_privileges
            print(drop_privileges("nobody")[0])
            try:
                drop_privileges("root")
            except PrivilegeError as e:
                print(e)
            """),
            ],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=60,
        )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == str(pwd.getpwnam("nobody").pw_uid)
    assert lines[1].startswith("--user root: switching users needs root (running as uid")
