"""Helpers of the archive tests (tests/archives/): splitting real captures
into archives with Wireshark's editcap/mergecap, compressing some of their
files, running mosfw over them and reading back tracker's records."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import forkrun  # noqa: E402  (tests/forkrun.py)

DATA = ROOT / "tests" / "data"
MC_DATA = ROOT / "tests" / "multicore" / "data"
TRACKER = ROOT / "samples" / "tracker"
GEN_SRC = ROOT / "bench" / "gen_capture.c"

#: compressor command lines (stdin -> stdout) by file suffix
COMPRESSORS = {
    ".gz": ["gzip", "-c"],
    ".zst": ["zstd", "-q", "-c"],
    ".xz": ["xz", "-c"],
    ".lz4": ["lz4", "-q", "-c"],
}


def tools_missing() -> list[str]:
    return [t for t in ("editcap", "mergecap", "gzip", "zstd", "xz", "lz4") if shutil.which(t) is None]


def mosfw(*args, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m mosfw ARGS`` from the repository root, output captured
    (a fork of a pre-imported mosfw, tests/forkrun.py, except --dask runs:
    their own process, as the Dask cluster they start expects)."""
    if "--dask" not in map(str, args):
        return forkrun.mosfw(*args, timeout=timeout, env=env)
    return subprocess.run(
        [sys.executable, "-m", "mosfw", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=env,
    )


def records(stdout: str) -> list[dict]:
    """tracker's conn.log records (JSON lines with a uid), without the
    ``core`` field, sorted."""
    out = []
    for line in stdout.splitlines():
        d = json.loads(line)
        if "uid" in d:
            d.pop("core", None)
            out.append(d)
    return sorted(out, key=lambda d: json.dumps(d, sort_keys=True))


def stats_json(stderr: str) -> dict:
    """The --stats-json - document on stderr."""
    for line in stderr.splitlines():
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no --stats-json line in:\n{stderr}")


def run_records(*inputs, cores: int = 1, extra=()) -> tuple[list[dict], list[dict], dict]:
    """Run tracker + eventlog over inputs (each given with -r): (tracker
    records, eventlog lines in output order, stats)."""
    rs = [a for p in inputs for a in ("-r", p)]
    r = mosfw("run", *rs, "-p", TRACKER, "-p", "eventlog", "-c", cores, "-q", "--stats-json", "-", *extra)
    assert r.returncode == 0, f"rc={r.returncode}\n{r.stderr}"
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    events = [d for d in lines if "uid" not in d]
    return records(r.stdout), events, stats_json(r.stderr)


def split(src: Path, out_dir: Path, how: list[str]) -> list[Path]:
    """editcap's split of src (``-c N`` packets or ``-i SECONDS`` a file)
    into out_dir, as pcap; the files, in name order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["editcap", "-F", "pcap", *how, str(src), str(out_dir / "part.pcap")], check=True)
    return sorted(out_dir.iterdir())


def compress(path: Path, suffix: str) -> Path:
    """Replace path by its compressed copy (path + suffix)."""
    dst = path.with_name(path.name + suffix)
    with open(path, "rb") as fi, open(dst, "wb") as fo:
        subprocess.run(COMPRESSORS[suffix], stdin=fi, stdout=fo, check=True)
    path.unlink()
    return dst


def compress_some(files: list[Path]) -> list[Path]:
    """Compress every second file, cycling through the four formats."""
    out = []
    kinds = list(COMPRESSORS)
    for i, f in enumerate(files):
        out.append(compress(f, kinds[(i // 2) % len(kinds)]) if i % 2 == 1 else f)
    return out


def shifted(src: Path, dst: Path, seconds: float) -> Path:
    """A copy of src with every timestamp moved by seconds (editcap -t)."""
    subprocess.run(["editcap", "-F", "pcap", "-t", str(seconds), str(src), str(dst)], check=True)
    return dst


def merged(dst: Path, *srcs: Path) -> Path:
    """mergecap's time-ordered merge of srcs (pcap)."""
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(dst), *map(str, srcs)], check=True)
    return dst


def total_packets(stats: dict) -> int:
    return int(stats["packets"])


def env_without(*names: str) -> dict:
    return {k: v for k, v in os.environ.items() if k not in names}


#: the start of a plugin for the --dask tests: it keeps the run's Config
#: (``_config``; ``_config.segment`` is None outside a task)
KEEPS_CONFIG = """
import mosfw

_config = None

@mosfw.hookimpl
def mosfw_configure(config):
    global _config
    _config = config
"""


def small_archive(d: Path) -> tuple[Path, list[dict]]:
    """http-loss.pcap three times (as is, 2 s and 50 s later), merged and
    cut into a file a second in ``d / "arch"``; with the tracker's records
    of the whole in one process."""
    src = DATA / "http-loss.pcap"
    whole = merged(
        d / "whole.pcap", src, shifted(src, d / "p2.pcap", 2.0), shifted(src, d / "p50.pcap", 50.0)
    )
    split(whole, d / "arch", ["-i", "1"])
    r = mosfw("run", "-r", whole, "-p", TRACKER, "-q")
    assert r.returncode == 0, r.stderr
    return d / "arch", records(r.stdout)


def gone(pid: int, wait: float = 5.0) -> bool:
    """Has process ``pid`` ended (within ``wait`` seconds)?"""
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
