"""The midstat launcher reads mOS's default configuration file.

mOS's samples/midstat opens ``config/mos.conf`` (a path relative to the
current directory; its samples ship one next to the binary and are run
from there) unless ``-f`` names another. The launcher does the same, and
also looks in its own directory, so ``./midstat -c 1`` in the app's
directory and ``samples/midstat/midstat`` from elsewhere both find it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP_DIR = REPO / "samples" / "midstat"
HTTP_LOSS = REPO / "tests" / "data" / "http-loss.pcap"


def conf(path: Path, mark: str) -> Path:
    """A mos.conf whose stat_print names ``mark``: midstat says on stderr
    that it ignores it while reading a file, which shows it was read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "mos {\n\tforward = 0\n\tnetdev {\n\t\teth0 0x0001\n\t}\n"
        f"\tstat_print = {mark}\n\ttcp_timeout = 30\n}}\n"
    )
    return path


def launch(launcher: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "MOSFW_PYTHON": sys.executable}
    return subprocess.run(
        [str(launcher), *args], capture_output=True, text=True, timeout=60, cwd=cwd, env=env
    )


def note(mark: str) -> str:
    return f"midstat: note: stat_print ({mark}) is for live capture"


def test_reads_config_mos_conf_of_the_current_directory(tmp_path):
    c = conf(tmp_path / "config" / "mos.conf", "cwdmark0")
    r = launch(APP_DIR / "midstat", "-q", "-r", str(HTTP_LOSS), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"midstat: reading {c} (mOS's default config/mos.conf; -f FILE for another)" in r.stderr
    assert note("cwdmark0") in r.stderr
    assert r.stdout.startswith("midstat: 4 connections")


def test_reads_config_mos_conf_of_the_app_directory(tmp_path):
    """From another directory: the launcher's own config/mos.conf (the
    launcher and the app copied, as a user's app directory would be)."""
    app = tmp_path / "app"
    shutil.copytree(APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__", "config"))
    c = conf(app / "config" / "mos.conf", "appmark0")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = launch(app / "midstat", "-q", "-r", str(HTTP_LOSS), cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert f"midstat: reading {c} (" in r.stderr and note("appmark0") in r.stderr
    # the current directory's comes first, as in mOS
    conf(elsewhere / "config" / "mos.conf", "cwdmark1")
    r = launch(app / "midstat", "-q", "-r", str(HTTP_LOSS), cwd=elsewhere)
    assert note("cwdmark1") in r.stderr and "appmark0" not in r.stderr


def test_f_wins_and_no_config_means_no_message(tmp_path):
    conf(tmp_path / "config" / "mos.conf", "cwdmark2")
    other = conf(tmp_path / "other.conf", "othermark0")
    for flag in (["-f", str(other)], [f"-f{other}"], ["--conf", str(other)], [f"--conf={other}"]):
        r = launch(APP_DIR / "midstat", "-q", *flag, "-r", str(HTTP_LOSS), cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert (
            note("othermark0") in r.stderr
            and "cwdmark2" not in r.stderr
            and "midstat: reading" not in r.stderr
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    r = launch(APP_DIR / "midstat", "-q", "-r", str(HTTP_LOSS), cwd=empty)
    assert r.returncode == 0 and r.stderr == ""


def test_a_bad_config_mos_conf_is_an_error_naming_it(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "mos.conf").write_text("mos {\n\tforward = 1\n}\n")
    r = launch(APP_DIR / "midstat", "-q", "-r", str(HTTP_LOSS), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "config/mos.conf" in r.stderr and "forward" in r.stderr
