"""The apps as pip-installed packages, loaded by name: a fresh virtual
environment (no system site-packages) gets mosfw and every package under
samples/ and plugins/ installed from their folders with pip, then
``mosfw run -p NAME`` must print exactly what ``-p samples/NAME`` prints
from the checkout, ``-p prometheus`` loads by name, and ``--sink redis://``
and ``--sink kafka://`` find their sinks (mosfw-redis, mosfw-kafka) by
their entry points.

The sources are copied out of the checkout first (pyproject.toml,
setup.py, README.md, mosfw/, native/, samples/; no build output), so the
install builds everything from scratch and leaves the checkout alone. The
build requirements (setuptools, wheel, cffi) and mosfw's dependencies are
installed at the versions of the running environment, from pip's
configured index or wheel cache; the packages themselves install with
``--no-index --no-build-isolation``: nothing else is fetched, and a
dependency a package declares but the environment lacks is an error.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
APPS = ("midstat", "tracker", "httplog", "alerts")
SOURCES = ("pyproject.toml", "setup.py", "README.md", "mosfw", "native", "samples", "plugins")
#: the packages under plugins/ (folder, distribution)
PLUGINS = {"prometheus": "mosfw-prometheus", "redis_sink": "mosfw-redis", "kafka_sink": "mosfw-kafka"}
BUILD_OUTPUT = shutil.ignore_patterns(
    "__pycache__", "*.pyc", "*.so", "*.o", "build", "build-*", "dist", "*.egg-info", "_native.c", "_zeek.c"
)
TOOLS = ("setuptools", "wheel", "cffi", "attrs", "pluggy", "click")
#: the client libraries of the plugins/ packages (their only dependencies besides mosfw)
PLUGIN_DEPS = ("prometheus_client", "redis", "confluent-kafka")

# a capture on which each app has something to say (alerts: the default
# rules.txt, shipped as package data, fires on telnet and SMB SYNs)
CAPTURES = {
    "midstat": "tests/multicore/data/http_ipv6.pcap",
    "tracker": "tests/data/http-loss.pcap",
    "httplog": "tests/data/http-loss.pcap",
    "alerts": "tests/multicore/data/synscan.pcap",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _pip(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env=_env(),
    )


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Path:
    """A virtual environment with mosfw and the four apps pip-installed
    from a copy of the checkout; returns its bin/ folder."""
    base = tmp_path_factory.mktemp("installed")
    src = base / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=BUILD_OUTPUT)
        else:
            shutil.copy2(ROOT / name, src / name)
    env_dir = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=120, env=_env())
    python = env_dir / "bin" / "python"
    pins = [f"{t}=={metadata.version(t)}" for t in TOOLS + PLUGIN_DEPS]
    r = _pip(python, *pins, cwd=base)
    if r.returncode != 0:
        pytest.skip(f"cannot install {' '.join(pins)} (no index or wheel cache?): {r.stderr[-800:]}")
    # mosfw first: the tracker's C part is built against its installed header
    r = _pip(python, "--no-index", "--no-build-isolation", str(src), cwd=base)
    assert r.returncode == 0, f"pip install mosfw: {r.stdout[-2000:]}{r.stderr[-4000:]}"
    # and only that header: the engine's sources are gone from the copy
    shutil.rmtree(src / "native")
    apps = [str(src / "samples" / a) for a in APPS]
    r = _pip(python, "--no-index", "--no-build-isolation", *apps, cwd=base)
    assert r.returncode == 0, f"pip install the apps: {r.stdout[-2000:]}{r.stderr[-4000:]}"
    plugins = [str(src / "plugins" / p) for p in PLUGINS]
    r = _pip(python, "--no-index", "--no-build-isolation", *plugins, cwd=base)
    assert r.returncode == 0, f"pip install the plugins: {r.stdout[-2000:]}{r.stderr[-4000:]}"
    shutil.rmtree(src)  # nothing may load from the sources after the install
    return env_dir / "bin"


def _installed(bindir: Path, *args: str) -> subprocess.CompletedProcess:
    """``mosfw ARGS`` of the virtual environment, run outside the checkout."""
    return subprocess.run(
        [str(bindir / "mosfw"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=bindir.parent,
        env=_env(),
    )


def _checkout(*args: str) -> subprocess.CompletedProcess:
    """``python -m mosfw ARGS`` of the checkout's environment."""
    return subprocess.run(
        [sys.executable, "-m", "mosfw", *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def _py(bindir: Path, code: str) -> str:
    r = subprocess.run(
        [str(bindir / "python"), "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=bindir.parent,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def _site_packages(bindir: Path) -> Path:
    return Path(_py(bindir, "import sysconfig; print(sysconfig.get_paths()['purelib'])"))


@pytest.mark.parametrize("app", APPS)
def test_app_by_name_prints_what_the_checkout_prints(venv, app):
    pcap = str(ROOT / CAPTURES[app])
    by_name = _installed(venv, "run", "-q", "--no-progress", "-r", pcap, "-p", app)
    assert by_name.returncode == 0, by_name.stderr
    by_path = _checkout("run", "-q", "--no-progress", "-r", pcap, "-p", f"samples/{app}")
    assert by_path.returncode == 0, by_path.stderr
    assert by_name.stdout == by_path.stdout
    assert by_name.stderr == by_path.stderr
    lines = by_name.stdout.splitlines()
    if app == "midstat":
        assert sum(ln.startswith("Proto CPU Client Address") for ln in lines) >= 10
        assert sum(ln.startswith("tcp ") for ln in lines) >= 50
    elif app == "tracker":
        records = [json.loads(ln) for ln in lines]
        tcp = [r for r in records if r["proto"] == "tcp"]
        assert len(tcp) == 4 and all(r["conn_state"] == "SF" and r["uid"] for r in tcp)
        # the capture's neighbour discovery: ICMP records, as Zeek writes them
        assert {r["proto"] for r in records} - {"tcp"} <= {"icmp"}
    elif app == "httplog":
        records = [json.loads(ln) for ln in lines]
        assert records and all(r["method"] == "GET" and r["status"] == 200 for r in records)
    else:
        rules = [json.loads(ln)["rule"] for ln in lines]
        assert sorted(set(rules)) == ["smb", "telnet"]


def test_tracker_by_name_on_two_cores(venv):
    pcap = str(ROOT / CAPTURES["tracker"])
    two = _installed(venv, "run", "-q", "--no-progress", "-c", "2", "-r", pcap, "-p", "tracker")
    assert two.returncode == 0, two.stderr
    one = _checkout("run", "-q", "--no-progress", "-r", pcap, "-p", "samples/tracker")
    strip = [{k: v for k, v in json.loads(ln).items() if k != "core"} for ln in two.stdout.splitlines()]
    assert sorted(strip, key=lambda r: r["uid"]) == sorted(
        ({k: v for k, v in json.loads(ln).items() if k != "core"} for ln in one.stdout.splitlines()),
        key=lambda r: r["uid"],
    )
    assert {json.loads(ln)["core"] for ln in two.stdout.splitlines()} <= {0, 1}


def test_installed_tree(venv):
    """Each app is its own top-level package, the tracker's C module is in
    it (built against the header mosfw ships) and nothing else leaked out."""
    site = _site_packages(venv)
    top = {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth", "__pycache__"))}
    assert {"mosfw", "mosfw_midstat", "mosfw_tracker", "mosfw_httplog", "mosfw_alerts"} <= top
    assert "samples" not in top  # mosfw's wheel once carried samples/tracker/_zeek
    assert list((site / "mosfw_tracker").glob("_zeek*.so"))
    assert (
        not list((site / "mosfw_tracker").glob("*build*")) and not (site / "mosfw_tracker/setup.py").exists()
    )
    assert (site / "mosfw_alerts" / "rules.txt").is_file()
    include = Path(_py(venv, "import mosfw; print(mosfw.get_include())"))
    assert include == site / "mosfw" / "include"
    assert (include / "mosfw_api.h").read_bytes() == (ROOT / "native" / "mosfw_api.h").read_bytes()
    zeek = _py(venv, "import mosfw_tracker.app as a; print(a._zeek.__file__)")
    assert Path(zeek).parent == site / "mosfw_tracker"


def test_unknown_name_lists_the_installed_plugins(venv):
    r = _installed(venv, "run", "-r", str(ROOT / CAPTURES["tracker"]), "-p", "trakcer")
    assert r.returncode == 2, r.stderr
    assert "unknown plugin 'trakcer'" in r.stderr
    assert "installed: alerts, eventlog, httplog, midstat, prometheus, tracker" in r.stderr
    assert r.stdout == ""


def test_plugin_packages_are_installed_and_load_by_name(venv):
    dists = _py(
        venv,
        "from importlib import metadata; print(sorted(d.metadata['Name'] for d in metadata.distributions()))",
    )
    for dist in PLUGINS.values():
        assert f"'{dist}'" in dists
    sinks = _py(
        venv,
        "from importlib import metadata as m; "
        "print(sorted(e.name for e in m.entry_points(group='mosfw.sinks')))",
    )
    assert sinks == "['kafka', 'redis']"
    pcap = str(ROOT / CAPTURES["tracker"])
    # prometheus by name: serves, and the run goes on (port 0: any free one)
    r = _installed(
        venv, "run", "-q", "--no-progress", "-r", pcap, "-p", "tracker", "-p", "prometheus",
        "--metrics-addr", "127.0.0.1:0", "--metrics-linger", "0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "mosfw: prometheus: serving http://127.0.0.1:" in r.stderr
    assert sum('"proto":"tcp"' in line for line in r.stdout.splitlines()) == 4
    # each sink is found by its scheme: nothing listens on the port, so the
    # sink itself (not "no sink for the URL scheme") says it cannot connect
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (f"redis://127.0.0.1:{port}/0?stream=x", f"kafka://127.0.0.1:{port}?topic=x&timeout=1"):
        r = _installed(venv, "run", "-q", "--no-progress", "-r", pcap, "-p", "tracker", "--sink", url)
        assert r.returncode == 1, (url, r.stderr)
        assert f"127.0.0.1:{port}" in r.stderr and "no sink for" not in r.stderr
