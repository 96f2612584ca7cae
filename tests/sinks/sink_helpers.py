"""Helpers of the sink tests (tests/sinks/): a real capture of curl
traffic, a real redis-server started by the test, ``mosfw run``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import realnet

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")
#: what the fixture fetches: (size, address family), one TCP connection each
PLAN = [(s, fam) for s in (0, 1, 1448, 20_000, 300_000) for fam in (4, 6)] * 3


def real_capture(path: Path) -> Path:
    """curl against nginx (or python's http.server) across two network
    namespaces, captured by tcpdump: 30 connections, IPv4 and IPv6."""
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS)
    if not ok:
        pytest.skip(f"needs network namespaces: {why}")
    sc = realnet.run_http_scenario(path, PLAN, parallel=4)
    assert all(f.ok for f in sc.fetches), [f for f in sc.fetches if not f.ok]
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server this test started: 127.0.0.1, a free port, its own
    temporary directory, no persistence; stopped by its pid."""

    def __init__(self, netns: str | None = None, *extra: str) -> None:
        if not shutil.which("redis-server"):
            pytest.skip("redis-server is not installed (scripts/ensure-sysdeps.sh installs it)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="mosfw-redis-")
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir]
        argv += ["--save", "", "--appendonly", "no", *extra]
        self.extra = extra
        if netns:
            argv = ["ip", "netns", "exec", netns, *argv]
        self.netns = netns
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.cli("PING") == "PONG":
                    break
            except subprocess.CalledProcessError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cli(self, *args: str) -> str:
        auth = ["--no-auth-warning", "-a", self.extra[1]] if self.extra[:1] == ("--requirepass",) else []
        argv = ["redis-cli", "-p", str(self.port), *auth, *args]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

    def entries(self, key: str) -> list[bytes]:
        """The ``json`` field of every entry of the stream, in order (read
        with redis-py, not with mosfw's code)."""
        import redis

        assert self.netns is None
        r = redis.Redis(port=self.port)
        out = []
        for _id, fields in r.xrange(key):
            assert set(fields) == {b"json"}
            out.append(fields[b"json"])
        r.close()
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(netns: str | None = None, *extra: str) -> Iterator[RedisServer]:
    srv = RedisServer(netns, *extra)
    try:
        yield srv
    finally:
        srv.close()


def mosfw(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    """``python -m mosfw ARGS`` of this checkout (bytes output)."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(
        [sys.executable, "-m", "mosfw", *args], capture_output=True, timeout=timeout, cwd=ROOT, env=env, **kw
    )


def tracker(pcap: Path, *args: str, cores: int = 1) -> subprocess.CompletedProcess:
    # TCP records (the tests count them against tshark's TCP conversations)
    tcp = ("--conn-protocols", "tcp")
    return mosfw("run", "-q", "--no-progress", "-r", str(pcap), "-c", str(cores), "-p", TRACKER, *tcp, *args)


def records(stdout: bytes) -> list[dict]:
    return [json.loads(ln) for ln in stdout.splitlines()]


def wait_for(cond, seconds: float) -> bool:
    """Poll ``cond()`` every 0.2 s for up to ``seconds``; its last value."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


def until_capturing(net, records) -> None:
    """Fetch a file until ``records()`` (lines the live run wrote) is not
    0: the run captures (its start-up time varies with the machine's load)."""
    for _ in range(15):
        net.fetch([net.url("f1448.bin")])
        if wait_for(lambda: records() > 0, 2.0):
            return
