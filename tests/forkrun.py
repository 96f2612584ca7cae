"""Many ``python -m mosfw ARGS`` runs without paying, for each, the
interpreter's start-up and mosfw's imports (about 70 ms of a 90 ms run of
a small capture).

A driver process imports ``mosfw.cli`` (and any modules named) once; for
each run it forks, and the child does what ``python -m mosfw ARGS`` does
in a process of its own: ``mosfw.cli.main()`` with ``sys.argv`` set, the
given environment and working directory, stdin from /dev/null, stdout and
stderr to files, the exit code of its ``SystemExit`` (an uncaught
exception: its traceback and 1; a signal: minus its number, as
:mod:`subprocess` reports it), atexit handlers run at the end. The
parent never runs a command itself, so every run starts from the same
freshly imported state.

Use it for runs that read a capture file and end; live captures, runs
that signal themselves and anything timing-sensitive keep their own
``subprocess`` calls.

    with ForkRunner() as fr:
        cp = fr.run(["run", "-r", "x.pcap", "-p", "eventlog"])   # CompletedProcess
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_DRIVER = r"""
import atexit, json, os, signal, sys, time, traceback

for name in sys.argv[1:]:
    __import__(name)
import mosfw.cli


def child(job):
    code = 1
    try:
        os.chdir(job["cwd"])
        os.environ.clear()
        os.environ.update(job["env"])
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, 0)
        os.close(fd)
        for target, path in ((1, job["out"]), (2, job["err"])):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd, target)
            os.close(fd)
        sys.argv = ["mosfw", *job["argv"]]
        try:
            mosfw.cli.main()
            code = 0
        except SystemExit as e:
            if e.code is None:
                code = 0
            elif isinstance(e.code, int):
                code = e.code
            else:
                print(e.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        atexit._run_exitfuncs()
    finally:
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except BaseException:
                pass
        os._exit(code & 0xFF)


for line in sys.stdin:
    job = json.loads(line)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(job)
    deadline = time.monotonic() + job["timeout"]
    pause = 0.0005
    while True:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            print(json.dumps({"rc": os.waitstatus_to_exitcode(status)}), flush=True)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            print(json.dumps({"timeout": True}), flush=True)
            break
        time.sleep(pause)
        pause = min(pause * 2, 0.01)
"""


#: what a file-reading run imports after ``mosfw.cli``: imported once in the driver
PRELOAD = (
    "json",
    "mosfw.api",
    "mosfw.engine",
    "mosfw.manager",
    "mosfw.runner",
    "mosfw.records.sinks",
    "mosfw.plugin_faults",
    "mosfw.privileges",
    "mosfw.plugins.eventlog",
)


class ForkRunner:
    """A driver process that runs ``mosfw ARGS`` in a fork of itself, one
    run at a time (see the module docstring)."""

    def __init__(self, preload: Sequence[str] = PRELOAD) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mosfw-forkrun-"))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _DRIVER, *preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        cwd: str | os.PathLike = ROOT,
        text: bool = True,
    ) -> subprocess.CompletedProcess:
        """What ``subprocess.run([python, "-m", "mosfw", *argv],
        capture_output=True, ...)`` returns; raises TimeoutExpired (the run
        killed) past `timeout`."""
        argv = [str(a) for a in argv]
        out, err = self.dir / "out", self.dir / "err"
        job = {
            "argv": argv,
            "env": dict(os.environ if env is None else env),
            "cwd": str(cwd),
            "out": str(out),
            "err": str(err),
            "timeout": timeout,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the forkrun driver exited (rc={self.proc.wait()})")
        res = json.loads(line)
        if res.get("timeout"):
            raise subprocess.TimeoutExpired([sys.executable, "-m", "mosfw", *argv], timeout)
        read = Path.read_text if text else Path.read_bytes
        return subprocess.CompletedProcess(
            [sys.executable, "-m", "mosfw", *argv], res["rc"], read(out), read(err)
        )

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> ForkRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: ForkRunner | None = None


def mosfw(
    *args: object,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
    cwd: str | os.PathLike = ROOT,
    text: bool = True,
) -> subprocess.CompletedProcess:
    """``python -m mosfw ARGS``, output captured, through one ForkRunner
    shared by the whole test process (started at the first call, ended
    with the process: its stdin closes)."""
    global _shared
    if _shared is None or _shared.proc.poll() is not None:
        _shared = ForkRunner()
    return _shared.run([str(a) for a in args], env=env, timeout=timeout, cwd=cwd, text=text)
