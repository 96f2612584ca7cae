"""Running this checkout's mosfw as the user ``nobody`` (tests of
``--user`` and of "permission denied" messages).

A process that starts as nobody must be able to read the interpreter,
mosfw and its dependencies. A checkout under /root (mode 0700), or any
checkout below a directory nobody cannot enter, is not readable: there
:func:`python_as_nobody` runs from a copy of mosfw and its dependencies
in a readable temporary directory, with the real (not the venv's)
interpreter. If nobody cannot run even that (an interpreter under
/root, say), the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AS_NOBODY = ("--reuid=nobody", "--regid=nogroup", "--clear-groups")
# what ``import mosfw`` and ``python -m mosfw run`` load from outside the stdlib
DEPENDENCIES = ("mosfw", "attr", "attrs", "pluggy", "click", "_cffi_backend")
PROBE = "import mosfw.privileges, mosfw.cli, mosfw.engine"


def _probe(setpriv: str, python: list[str], env: dict | None, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [setpriv, *AS_NOBODY, *python, "-c", PROBE],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def _copy_readable(dest: Path) -> None:
    """Copy mosfw and its dependencies into ``dest``, readable by all."""
    for name in DEPENDENCIES:
        origin = Path(importlib.util.find_spec(name).origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(origin, dest / origin.name)
    for d, _dirs, files in os.walk(dest):
        os.chmod(d, 0o755)
        for f in files:
            os.chmod(os.path.join(d, f), 0o755 if f.endswith(".so") else 0o644)


@contextlib.contextmanager
def python_as_nobody():
    """Yields ``(argv, env, cwd)``: ``argv`` (setpriv ... python) runs a
    Python as nobody that imports this checkout's mosfw, with ``env`` and
    ``cwd`` to pass to subprocess. Skips (root only, setpriv needed, or
    nobody cannot read any usable interpreter)."""
    if os.geteuid() != 0:
        pytest.skip("switching users needs root")
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) not installed")
    if _probe(setpriv, [sys.executable], None, ROOT).returncode == 0:
        yield [setpriv, *AS_NOBODY, sys.executable], None, ROOT
        return
    # the checkout (or its venv) is not readable by nobody
    tmp = Path(tempfile.mkdtemp(prefix="mosfw-as-nobody-"))
    try:
        os.chmod(tmp, 0o755)
        _copy_readable(tmp)
        python = [os.path.realpath(sys.executable), "-s"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(PYTHONPATH=str(tmp), PYTHONDONTWRITEBYTECODE="1")
        r = _probe(setpriv, python, env, tmp)
        if r.returncode != 0:
            pytest.skip(
                f"user nobody cannot read this checkout ({ROOT}) nor run {python[0]} "
                f"with a readable copy of mosfw: {r.stderr.strip().splitlines()[-1:]}"
            )
        yield [setpriv, *AS_NOBODY, *python], env, tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
