"""A short libFuzzer run over the parser + TCP state code, and the fuzz
regressions.

``native/fuzz/build.sh`` builds two harnesses with
``clang -fsanitize=fuzzer,address,undefined`` (engine sources compiled in,
warnings are errors):

``fuzz_packets``
    the input is a packet sequence in a tiny framing (link type, engine
    settings, then [time step][length][frame]...), written as a pcap
    image into a memfd and run through the public API;
``fuzz_pcap``
    the input is a whole pcap/pcapng file image.

Both check the engine's contracts on every event record (no stale flow
slot, CONN_END exactly once per flow, nothing after it, counters that add
up, the flow table bound...; see native/fuzz/fuzz_common.h) besides what
ASan/UBSan catch. A violation, a sanitizer report, a leak, a hang (>10 s
for one input) or running out of memory fails the test with libFuzzer's
output and the saved input.

The seed corpus comes from ``native/fuzz/build_corpus.py`` (tcpdump's test
captures in native/fuzz/seeds/, tests/data, scripted scenarios). The
corpus the fuzzer grows is kept in native/build-fuzz/corpus/ so later runs
go on from there. The harnesses (and the self-test build) are rebuilt only
when what they are built from changed: a digest of every source they
compile, build.sh and the compiler's version is kept beside them.

``MOSFW_FUZZ_SECONDS`` (default 30) is the wall time of the fuzz run: both
harnesses run side by side for that long. 0 skips it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "native" / "fuzz"
BUILD = ROOT / "native" / "build-fuzz"
DATA = ROOT / "tests" / "data"
SECONDS = int(os.environ.get("MOSFW_FUZZ_SECONDS", "30"))
ENV = dict(
    os.environ,
    ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:allocator_may_return_null=1",
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
)


TRACKER_NATIVE = ROOT / "samples" / "tracker" / "native"  # the Zeek observer the harnesses check


def _clang() -> str:
    return os.environ.get("CLANG") or shutil.which("clang") or "clang"


def build_digest(compiler: str, *extra: str) -> str:
    """sha256 of what a harness is built from: the engine's, the tracker
    observer's and the harnesses' sources and headers, build.sh, the
    compiler's version and `extra` (a command line)."""
    h = hashlib.sha256()
    files = [
        *(ROOT / "native").glob("*.[ch]"),
        *TRACKER_NATIVE.glob("*.[ch]"),
        *FUZZ.glob("*.[ch]"),
        FUZZ / "build.sh",
    ]
    for p in sorted(files):
        h.update(p.relative_to(ROOT).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except OSError:
        version = "no clang"
    h.update(version.encode())
    for e in extra:
        h.update(e.encode() + b"\0")
    return h.hexdigest()


def up_to_date(binaries: list[Path], stamp: Path, digest: str) -> bool:
    """Every binary is there and was built from the inputs `digest` names."""
    return all(b.exists() for b in binaries) and stamp.exists() and stamp.read_text().strip() == digest


@pytest.fixture(scope="module")
def harnesses() -> Path:
    stamp, digest = BUILD / "harnesses.sha256", build_digest(_clang())
    if up_to_date([BUILD / "fuzz_packets", BUILD / "fuzz_pcap"], stamp, digest):
        return BUILD
    stamp.unlink(missing_ok=True)
    r = subprocess.run([str(FUZZ / "build.sh"), str(BUILD)], capture_output=True, text=True, timeout=600)
    if r.returncode == 3:
        pytest.skip(
            f"no libFuzzer here ({r.stderr.strip()[:200]}); scripts/ensure-sysdeps.sh "
            "installs clang and libclang-rt-14-dev"
        )
    assert r.returncode == 0, f"building the fuzz harnesses failed:\n{r.stderr[-4000:]}"
    stamp.write_text(digest + "\n")
    return BUILD


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz-seeds")
    r = subprocess.run(
        [sys.executable, str(FUZZ / "build_corpus.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((out / "packets").iterdir())) >= 100
    assert len(list((out / "pcap").iterdir())) >= 50
    return out


def _check(name: str, r: subprocess.CompletedProcess | None, out: str, artifacts: Path) -> int:
    found = sorted(p.name for p in artifacts.iterdir()) if artifacts.exists() else []
    how = (
        f"reproduce: {BUILD / name} {artifacts}/<file>  (the input is kept there; copy a "
        "small one to tests/data/fuzz-*.pcap as a regression)"
    )
    assert not found, f"{name} found {found}; {how}\n{out[-6000:]}"
    assert r is not None and r.returncode == 0, f"{name} exited {r and r.returncode}; {how}\n{out[-6000:]}"
    m = re.search(r"stat::number_of_executed_units:\s*(\d+)", out)
    assert m, out[-3000:]
    return int(m.group(1))


@pytest.mark.slow
@pytest.mark.skipif(SECONDS <= 0, reason="MOSFW_FUZZ_SECONDS=0: fuzz run switched off")
def test_fuzz_run(harnesses, seeds, tmp_path):
    """Both harnesses, side by side, for MOSFW_FUZZ_SECONDS of wall time."""
    procs = {}
    for name, sub, max_len in (("fuzz_packets", "packets", 8192), ("fuzz_pcap", "pcap", 65536)):
        corpus = harnesses / "corpus" / sub
        corpus.mkdir(parents=True, exist_ok=True)
        art = tmp_path / f"artifacts-{sub}"
        art.mkdir()
        log = open(tmp_path / f"{name}.log", "w+")  # noqa: SIM115 - the fuzzer writes to it; closed below
        argv = [
            str(harnesses / name),
            f"-max_total_time={SECONDS}",
            f"-max_len={max_len}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            "-reload=0",
            f"-artifact_prefix={art}/",
            str(corpus),
            str(seeds / sub),
        ]
        procs[name] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=ENV), log, art)
    execs = {}
    try:
        for name, (p, log, art) in procs.items():
            try:
                p.wait(timeout=SECONDS + 180)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            log.seek(0)
            out = log.read()
            execs[name] = _check(name, p, out, art)
    finally:
        for p, log, _ in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
            log.close()
    print(f"fuzz run: {SECONDS} s, executions {execs}")
    # it really ran: a few hundred inputs a second per harness at least
    for name, n in execs.items():
        assert n >= 50 * SECONDS, f"{name}: only {n} inputs in {SECONDS} s"


def test_seed_corpus_and_regressions(harnesses, seeds, tmp_path):
    """Every seed (and every tests/data/fuzz-*.pcap, the inputs that once
    broke the engine) runs once through both harnesses without a report."""
    art = tmp_path / "art"
    art.mkdir()
    regress = sorted(DATA.glob("fuzz-*.pcap"))
    assert regress, "no tests/data/fuzz-*.pcap"
    # libFuzzer takes either corpus folders (-runs=0: each input once) or
    # files (each run once), not both
    for name, inputs in (
        ("fuzz_packets", [seeds / "packets"]),
        ("fuzz_pcap", [seeds / "pcap"]),
        ("fuzz_pcap", regress),
    ):
        runs = "-runs=0" if inputs[0].is_dir() else "-runs=1"
        r = subprocess.run(
            [str(harnesses / name), runs, f"-artifact_prefix={art}/", *map(str, inputs)],
            capture_output=True,
            text=True,
            timeout=600,
            env=ENV,
        )
        out = r.stdout + r.stderr
        found = sorted(p.name for p in art.iterdir())
        assert r.returncode == 0 and not found, f"{name}: rc {r.returncode}, {found}\n{out[-6000:]}"
        if runs == "-runs=1":
            assert out.count("Executed ") == len(inputs), out[-3000:]


def test_harness_reports_a_broken_contract(harnesses, tmp_path):
    """The checks can fail: built with -DMOSFW_FUZZ_SELFTEST one contract
    check is inverted (CONN_END count == flows created), so a good capture
    must make the harness abort with "contract violated", while the real
    harness passes the same file."""
    good = DATA / "http-loss.pcap"
    r = subprocess.run(
        [str(harnesses / "fuzz_pcap"), "-runs=1", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Executed" in r.stderr and "http-loss.pcap" in r.stderr
    # kept beside the harnesses, rebuilt when its sources change (build_digest)
    bad = harnesses / "fuzz_pcap_selftest"
    engine = sorted(str(p) for p in [*(ROOT / "native").glob("*.c"), *TRACKER_NATIVE.glob("*.c")])
    argv = [
        shutil.which("clang") or "clang",
        "-std=gnu11",
        "-g",
        "-O1",
        "-DMOSFW_FUZZ_SELFTEST",
        f"-I{ROOT / 'native'}",
        f"-I{TRACKER_NATIVE}",
        "-fsanitize=fuzzer,address,undefined",
        *engine,
        str(FUZZ / "fuzz_pcap.c"),
        "-lpcap",
        "-lm",
    ]
    stamp, digest = harnesses / "fuzz_pcap_selftest.sha256", build_digest(argv[0], *argv)
    if not up_to_date([bad], stamp, digest):
        stamp.unlink(missing_ok=True)
        tmp = harnesses / "fuzz_pcap_selftest.tmp"
        c = subprocess.run([*argv, "-o", str(tmp)], capture_output=True, text=True, timeout=600)
        assert c.returncode == 0, c.stderr[-3000:]
        tmp.replace(bad)
        stamp.write_text(digest + "\n")
    r = subprocess.run(
        [str(bad), "-runs=1", f"-artifact_prefix={tmp_path}/", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
        env=ENV,
    )
    assert r.returncode != 0 and "contract violated" in r.stderr, r.stderr[-3000:]
    assert "deadly signal" in r.stderr


REPLAY = ROOT / "native" / "build-asan" / "mosfw-replay"


@pytest.mark.skipif(not REPLAY.exists(), reason="sanitizer build missing: run `make asan` (make test does)")
def test_asan_replay_over_fuzz_seeds():
    """The ASan+UBSan driver (tests/native/test_sanitizers.py runs it over
    tests/data) over the fuzz seeds too: tcpdump's malformed captures.
    Files in a link type mosfw does not read are refused, nothing else."""
    seeds = sorted((FUZZ / "seeds").glob("*.pcap*"))
    assert len(seeds) >= 70
    r = subprocess.run(
        [str(REPLAY), "-n", "1000", *map(str, seeds)], capture_output=True, text=True, timeout=300, env=ENV
    )
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-3000:]
    refused = [
        line
        for line in r.stderr.splitlines()
        if line.startswith("mosfw-replay:") and "(filters skipped)" not in line
    ]
    assert all("unsupported link type" in line for line in refused), refused
    assert len(refused) == 1 and r.returncode == 1  # unsupported-link-type-160.pcap
    assert r.stdout.count("\n") == len(seeds) - 1
    assert r.stdout.count("malformed=0") <= len(seeds) - 1 - 10  # >= 10 files with malformed packets
