#!/usr/bin/env python3
"""mosfw against its peers: one command, one table, one plot.

    .venv/bin/python bench/run_bench.py            # synthetic capture + memory test
    .venv/bin/python bench/run_bench.py --real     # a real capture made in netns with loss
    .venv/bin/python bench/run_bench.py --list     # the tools and their command lines

Compiles bench/gen_capture.c into OUT, generates a synthetic capture once
(cached in OUT, keyed by its parameters and the generator's source), cuts a
slice of its first --slice packets for the slow tools (editcap), then runs
every tool in TOOLS R times, interleaved (tool A, tool B, ..., then again),
and keeps each tool's best wall time. Each tool also runs once per round on
an empty capture: its start-up cost. Peak RSS comes from
``/usr/bin/time -v`` when installed, else from ``os.wait4``'s ru_maxrss.
Ratios are taken against the read floor (``tcpdump -r F -w /dev/null``) of
the same input measured in the same run. A tool that is missing, fails or
times out is reported as such; the benchmark goes on.

With the default capture it then measures mosfw's peak memory per tracked
connection with --memory (1M) concurrent established connections.

Writes OUT/results[-real].md and .json, the plot bench/results[-real].png,
and the Results section of bench/README.md (between its markers) unless
--only/--pcap/--no-readme.

To add a tool, append a ``(name, argv, options)`` entry to TOOLS. argv items
may use the placeholders ``{pcap}`` (the input), ``{python}`` (the mosfw
venv's interpreter), ``{peers_python}`` (the peers venv's, see
--peers-venv), ``{root}``, ``{bench}``, ``{out}``. Options:

  ``needs``     executables, ``"py:module"`` (importable by {python}) or
                ``"peers:module"`` (by {peers_python}) that must exist,
                else the row says "missing: ..."
  ``requires``  a path (relative to the repository root) that must exist
  ``prepare``   callable(ctx) -> str | None, run once before measuring
                (build a helper, ...); a returned string is a failure
  ``slice``     True: the tool runs on the slice (a slow tool)
  ``parse``     callable(stdout, stderr) -> dict with ``connections`` and
                ``rexmits`` (None where the tool has no such figure): shown
                in the table as evidence of the work done; stdout is then
                kept in OUT/logs/
  ``stdout``    "file" (kept for ``parse``) or "null" (the default without
                ``parse``)
  ``env``       dict of extra environment variables
  ``floor``     True for the read-floor rows (one per input)
  ``group``     floor | c | mosfw | python: the plot's colour
  ``note``      a short remark printed in the table
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
GEN_SRC = BENCH / "gen_capture.c"
PEERS = BENCH / "peers"
README = BENCH / "README.md"

MARKERS = {
    "synthetic": ("<!-- results:start -->", "<!-- results:end -->"),
    "real": ("<!-- results-real:start -->", "<!-- results-real:end -->"),
}


def _venv_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# --------------------------------------------------------------------------
# parsers of the tools' own reports (evidence that each did the work)


def _int(pat: str, text: str) -> int | None:
    m = re.search(pat, text)
    return int(m.group(1)) if m else None


def parse_mosfw(out: str, err: str) -> dict:
    return {
        "connections": _int(r"mosfw: (\d+) flows", err),
        "rexmits": _int(r"mosfw: (\d+) retransmissions", err),
    }


def parse_kv(conn_key: str, rex_key: str | None = None):
    def parse(out: str, err: str) -> dict:
        return {
            "connections": _int(rf"\b{conn_key}=(\d+)", out),
            "rexmits": _int(rf"\b{rex_key}=(\d+)", out) if rex_key else None,
        }

    return parse


def parse_tcptrace(out: str, err: str) -> dict:
    # one block per connection; "rexmt data pkts: A  B" per direction
    conns = len(re.findall(r"^TCP connection \d+:", out, re.M))
    rex = 0
    found = False
    for m in re.finditer(r"rexmt data pkts:\s+(\d+)\s+rexmt data pkts:\s+(\d+)", out):
        rex += int(m.group(1)) + int(m.group(2))
        found = True
    return {"connections": conns, "rexmits": rex if found else None}


def parse_tshark(out: str, err: str) -> dict:
    conns = sum(1 for line in out.splitlines() if "<->" in line)
    # io,stat with one interval: "| 0.000 <> 12.000 | 60000 |"
    m = re.search(r"\|\s*[\d.]+\s*<>\s*(?:[\d.]+|Dur)\s*\|\s*(\d+)\s*\|", out)
    return {"connections": conns, "rexmits": int(m.group(1)) if m else None}


# --------------------------------------------------------------------------
# helpers built or installed by the bench

NIDS_LIBS = ["nids", "pcap", "net", "gthread-2.0", "glib-2.0"]


def _link_args(libs: list[str]) -> list[str]:
    """-lfoo, or the versioned .so when the unversioned dev link is absent
    (Debian's libnids-dev is a static library whose dependencies' -dev
    packages need not be installed)."""
    args = []
    dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/lib/x86_64-linux-gnu",
    ]
    for lib in libs:
        if any(Path(d, f"lib{lib}.so").exists() or Path(d, f"lib{lib}.a").exists() for d in dirs):
            args.append(f"-l{lib}")
            continue
        cands = [p for d in dirs for p in sorted(Path(d).glob(f"lib{lib}.so.*")) if Path(d).is_dir()]
        args.append(str(cands[0]) if cands else f"-l{lib}")
    return args


def prepare_nids(ctx: dict) -> str | None:
    if not Path("/usr/include/nids.h").exists():
        return "missing: libnids-dev (/usr/include/nids.h) not installed"
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return "missing: no C compiler"
    src = PEERS / "nids_count.c"
    exe = ctx["out"] / "nids_count"
    if exe.exists() and exe.stat().st_mtime >= src.stat().st_mtime:
        return None
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", str(exe), str(src)] + _link_args(NIDS_LIBS)
    print("+ " + shlex.join(cmd), flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        return "build failed: " + _last_line(res.stderr)
    return None


def ensure_peers_venv(venv: Path, install: bool) -> tuple[str | None, str]:
    """(python of the peers venv or None, a note). Creates the venv and pip
    installs nfstream, dpkt and matplotlib into it once; failures are
    reported, not raised."""
    py = venv / "bin" / "python"
    stamp = venv / ".bench-peers-ok"
    if py.exists() and stamp.exists():
        return str(py), stamp.read_text().strip()
    if not install:
        return (str(py) if py.exists() else None), "peers venv not installed (--no-install)"
    log = venv.parent / "venv-peers-install.log"
    try:
        if not py.exists():
            print(f"+ python3 -m venv {venv}", flush=True)
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
            )
        notes = []
        for pkgs in (["dpkt"], ["nfstream"], ["matplotlib"]):
            cmd = [str(py), "-m", "pip", "install", "-q", *pkgs]
            print("+ " + shlex.join(cmd), flush=True)
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            with open(log, "a") as fh:
                fh.write(f"$ {shlex.join(cmd)}\n{res.stdout}{res.stderr}rc={res.returncode}\n")
            if res.returncode != 0:
                notes.append(f"pip install {' '.join(pkgs)} failed: {_last_line(res.stderr)}")
        vers = subprocess.run(
            [str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True
        ).stdout
        want = [
            ln for ln in vers.splitlines() if ln.split("==")[0].lower() in ("nfstream", "dpkt", "matplotlib")
        ]
        note = ", ".join(want) + (("; " + "; ".join(notes)) if notes else "")
        if not notes:
            stamp.write_text(note + "\n")
        return str(py), note
    except (OSError, subprocess.SubprocessError) as exc:
        return (str(py) if py.exists() else None), f"peers venv setup failed: {exc}"


# --------------------------------------------------------------------------
# the tools

MOSFW = ["{python}", "-m", "mosfw", "run", "-r", "{pcap}"]
# mosfw's counters come from its stderr summary; its apps' output goes to /dev/null
_MOSFW = {"needs": ["py:mosfw"], "parse": parse_mosfw, "stdout": "null", "group": "mosfw"}

# (name, argv, options) -- the order is the table's order.
TOOLS: list[tuple] = [
    (
        "tcpdump -r F -w /dev/null (read floor)",
        ["tcpdump", "-r", "{pcap}", "-w", "/dev/null"],
        {"floor": True, "needs": ["tcpdump"], "group": "floor"},
    ),
    (
        "tcpdump -r F -w /dev/null (read floor, slice)",
        ["tcpdump", "-r", "{pcap}", "-w", "/dev/null"],
        {"floor": True, "slice": True, "needs": ["tcpdump"], "group": "floor"},
    ),
    (
        "libnids (C): connections, bytes",
        ["{out}/nids_count", "{pcap}"],
        {
            "prepare": prepare_nids,
            "parse": parse_kv("established"),
            "group": "c",
            "note": "IPv4 only; reassembles both directions; no rexmit count",
        },
    ),
    (
        "tcptrace -n -l",
        ["tcptrace", "-n", "-l", "{pcap}"],
        {"needs": ["tcptrace"], "parse": parse_tcptrace, "group": "c"},
    ),
    (
        "tshark -z conv,tcp + tcp.analysis rexmit count",
        [
            "tshark",
            "-n",
            "-r",
            "{pcap}",
            "-q",
            "-z",
            "conv,tcp",
            "-z",
            "io,stat,0,COUNT(tcp.analysis.retransmission)tcp.analysis.retransmission",
        ],
        {"needs": ["tshark"], "slice": True, "parse": parse_tshark, "group": "c"},
    ),
    (
        "NFStream, 1 meter",
        ["{peers_python}", "{bench}/peers/nfstream_count.py", "{pcap}"],
        {
            "needs": ["peers:nfstream"],
            "slice": True,
            "parse": parse_kv("tcp_flows"),
            "group": "python",
            "note": "nDPI off; no rexmit count",
        },
    ),
    (
        "NFStream, 1 meter + trivial NFPlugin",
        ["{peers_python}", "{bench}/peers/nfstream_count.py", "--plugin", "{pcap}"],
        {
            "needs": ["peers:nfstream"],
            "slice": True,
            "parse": parse_kv("tcp_flows"),
            "group": "python",
            "note": "per-packet on_update counter",
        },
    ),
    (
        "dpkt loop (Python)",
        ["{peers_python}", "{bench}/peers/dpkt_track.py", "{pcap}"],
        {
            "needs": ["peers:dpkt"],
            "slice": True,
            "parse": parse_kv("connections", "rexmits"),
            "group": "python",
        },
    ),
    ("mosfw (no plugin)", MOSFW, dict(_MOSFW)),
    (
        "mosfw -p samples/tracker",
        MOSFW + ["-p", "{root}/samples/tracker"],
        dict(_MOSFW, requires="samples/tracker/app.py"),
    ),
    (
        "mosfw -p samples/midstat",
        MOSFW + ["-p", "{root}/samples/midstat"],
        dict(_MOSFW, requires="samples/midstat/app.py"),
    ),
    (
        "mosfw -p eventlog",
        MOSFW + ["-p", "eventlog"],
        dict(_MOSFW, note="every event but pkt_in as a JSON line"),
    ),
    (
        "mosfw -p trivial_pkt_hook.py",
        MOSFW + ["-p", "{bench}/trivial_pkt_hook.py"],
        dict(_MOSFW, note="PKT_IN to a Python counter"),
    ),
]


# --------------------------------------------------------------------------
# inputs


def byte_compile(tree: Path) -> None:
    """Compile a checkout's Python once, before it is timed: where
    PYTHONDONTWRITEBYTECODE is set (it is on the development machines) a
    checkout without __pycache__ compiles every module at each run (a
    --baseline checkout's rows in scaling.py looked 0.08 s a run slower
    than this one's)."""
    import compileall

    for sub in ("mosfw", "samples", "plugins"):
        if (tree / sub).is_dir():
            compileall.compile_dir(str(tree / sub), quiet=1)


def build_generator(out: Path, cc: str | None = None) -> Path:
    cc = cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise SystemExit("run_bench: no C compiler (cc/gcc) found; cannot build gen_capture")
    exe = out / "gen_capture"
    if exe.exists() and exe.stat().st_mtime >= GEN_SRC.stat().st_mtime:
        return exe
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-o", str(exe), str(GEN_SRC)]
    print("+ " + shlex.join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return exe


def parse_summary(text: str) -> dict:
    """Parse gen_capture's `key=value ...` stderr summary line."""
    meta: dict = {}
    for line in text.splitlines():
        if line.startswith("gen_capture:") and "packets=" in line:
            for k, v in re.findall(r"(\w+)=(\S+)", line):
                meta[k] = int(v) if v.isdigit() else v
    return meta


def _src_hash() -> str:
    return hashlib.sha256(GEN_SRC.read_bytes()).hexdigest()[:12]


def _run_gen(exe: Path, pcap: Path, gen_args: list[str]) -> dict:
    cmd = [str(exe), "-o", str(pcap), *gen_args]
    print("+ " + shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(res.stderr)
    if res.returncode != 0:
        pcap.unlink(missing_ok=True)
        raise SystemExit(f"run_bench: gen_capture failed (rc={res.returncode})")
    meta = parse_summary(res.stderr)
    meta["generate_seconds"] = round(time.perf_counter() - t0, 3)
    return meta


def generate_capture(exe: Path, out: Path, args) -> tuple[Path, dict]:
    params = {
        "connections": args.connections,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "segments": args.segments,
        "rexmit_fraction": args.rexmit_fraction,
        "v6_every": args.v6_every,
    }
    stem = (
        "capture-n{connections}-c{concurrency}-d{segments}-r{rexmit_fraction}-6e{v6_every}-s{seed}"
    ).format(**params) + f"-{_src_hash()}"
    pcap = out / (stem + ".pcap")
    meta_path = out / (stem + ".json")
    if pcap.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("bytes") == pcap.stat().st_size:
            print(f"capture: reusing {pcap}", flush=True)
            return pcap, meta
    # drop stale captures of other parameter sets/generator versions: they are big
    for old in out.glob("capture-*.pcap"):
        if old != pcap:
            old.unlink()
            old.with_suffix(".json").unlink(missing_ok=True)
            for sl in out.glob(old.stem + "-first*.pcap"):
                sl.unlink()
    meta = _run_gen(
        exe,
        pcap,
        [
            "-n",
            str(args.connections),
            "-c",
            str(args.concurrency),
            "-s",
            str(args.seed),
            "-d",
            str(args.segments),
            "-r",
            str(args.rexmit_fraction),
            "-6",
            str(args.v6_every),
        ],
    )
    meta.update(params=params, generator_sha256=_src_hash(), file=str(pcap), kind="synthetic")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return pcap, meta


def make_slice(pcap: Path, packets: int, n: int) -> tuple[Path, int] | None:
    """The first n packets of pcap (editcap -r), cached next to it; None when
    no slice is needed (n <= 0 or the capture is not larger)."""
    if n <= 0 or not packets or packets <= n:
        return None
    if not shutil.which("editcap"):
        raise SystemExit(
            "run_bench: editcap (Wireshark CLI tools) is needed to cut the slice "
            "for the slow tools; install tshark or pass --slice 0"
        )
    sl = pcap.with_name(f"{pcap.stem}-first{n}.pcap")
    if not sl.exists() or sl.stat().st_mtime < pcap.stat().st_mtime:
        cmd = ["editcap", "-F", "pcap", "-r", str(pcap), str(sl), f"1-{n}"]
        print("+ " + shlex.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return sl, n


def count_pcap_packets(path: Path) -> int | None:
    """Packet count of an existing capture (capinfos, else a classic-pcap walk)."""
    if shutil.which("capinfos"):
        res = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip():
            try:
                return int(res.stdout.split()[-1])
            except ValueError:
                pass
    with open(path, "rb") as f:
        hdr = f.read(24)
        if len(hdr) < 24:
            return None
        magic = hdr[:4]
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            fmt = "<I"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            fmt = ">I"
        else:
            return None
        n = 0
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return n
            (caplen,) = struct.unpack(fmt, rec[8:12])
            f.seek(caplen, os.SEEK_CUR)
            n += 1


# the real capture: HTTP fetches between two network namespaces, with loss
REAL_SIZES = (4_000, 16_000, 64_000, 256_000, 1_000_000)
REAL_VERSION = 1  # bump when the recipe changes


def real_capture(out: Path, args) -> tuple[Path, dict]:
    stem = f"real-n{args.real_connections}-loss{args.real_loss:g}-v{REAL_VERSION}"
    pcap = out / (stem + ".pcap")
    meta_path = out / (stem + ".json")
    if pcap.exists() and meta_path.exists() and not args.remake_real:
        print(f"capture: reusing {pcap}", flush=True)
        return pcap, json.loads(meta_path.read_text())
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import realnet  # tests/realnet.py
    except ImportError as exc:
        raise SystemExit(f"run_bench: --real needs tests/realnet.py: {exc}") from None
    ok, why = realnet.can_use_netns()
    if not ok:
        raise SystemExit(f"run_bench: --real cannot make a capture here: {why}")
    plan = [(REAL_SIZES[i % len(REAL_SIZES)], 6 if i % 4 == 3 else 4) for i in range(args.real_connections)]
    tmp = pcap.with_suffix(".tmp.pcap")
    print(
        f"making a real capture: {len(plan)} HTTP fetches (sizes {REAL_SIZES}, 1 in 4 over "
        f"IPv6), {args.real_loss:g}% random loss each way, 8 at a time ...",
        flush=True,
    )
    t0 = time.monotonic()
    sc = realnet.run_http_scenario(
        tmp, plan, drop_percent=args.real_loss, drop_side="both", parallel=8, fetch_timeout=120
    )
    failed = [f for f in sc.fetches if not f.ok]
    print(
        f"  {len(sc.fetches) - len(failed)}/{len(sc.fetches)} fetches ok, "
        f"{sc.capture.captured} packets captured, {sc.capture.dropped_by_kernel} dropped by "
        f"the kernel, {time.monotonic() - t0:.1f} s; counting with tshark ...",
        flush=True,
    )
    meta = {
        "kind": "real",
        "file": str(pcap),
        "recipe": (
            f"tests/realnet.py run_http_scenario: {len(plan)} curl fetches from an nginx "
            f"(or http.server) in another netns over a veth, files of {REAL_SIZES} bytes, "
            f"1 in 4 over IPv6, 8 in parallel, {args.real_loss:g}% random TCP loss on both "
            "veths' ingress (nftables, after the tap), offloads off, tcpdump on the server "
            "veth"
        ),
        "server": sc.server_kind,
        "fetches_ok": len(sc.fetches) - len(failed),
        "fetches_failed": len(failed),
        "capture_dropped_by_kernel": sc.capture.dropped_by_kernel,
        "packets": realnet.capinfos_count(tmp),
        "connections": realnet.tshark_syn_count(tmp),
        "rexmits": realnet.tshark_rexmit_count(tmp),
        "rexmits_note": "tshark retransmission || out_of_order",
        "bytes": tmp.stat().st_size,
        "made_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    tmp.replace(pcap)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return pcap, meta


# --------------------------------------------------------------------------
# measuring

# a valid classic pcap with no packet (Ethernet, microseconds)
EMPTY_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)

TIME_BIN = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


@dataclass
class Run:
    rc: int | None
    seconds: float
    rss_kb: int | None
    user_s: float | None
    sys_s: float | None
    timed_out: bool = False
    stderr_tail: str = ""
    stderr: str = ""


def _parse_time_v(text: str) -> dict:
    out = {}
    for key, pat in (
        ("rss_kb", r"Maximum resident set size \(kbytes\):\s*(\d+)"),
        ("user_s", r"User time \(seconds\):\s*([\d.]+)"),
        ("sys_s", r"System time \(seconds\):\s*([\d.]+)"),
    ):
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    return out


def run_once(argv: list[str], stdout_path: str, env: dict | None, timeout: float, cwd: Path = ROOT) -> Run:
    with tempfile.TemporaryDirectory(prefix="mosfw-bench-") as td:
        time_file = os.path.join(td, "time.txt")
        err_file = os.path.join(td, "stderr.txt")
        cmd = ([TIME_BIN, "-v", "-o", time_file, "--"] + argv) if TIME_BIN else argv
        full_env = dict(os.environ, **(env or {}))
        # as a user's shell has it: this environment sets PYTHONUNBUFFERED,
        # which makes every line a Python tool prints a write() of its own
        # (eventlog: 3.2 -> 3.9 s)
        if "PYTHONUNBUFFERED" not in (env or {}):
            full_env.pop("PYTHONUNBUFFERED", None)
        with open(stdout_path, "wb") as so, open(err_file, "wb") as se:
            t0 = time.perf_counter()
            proc = subprocess.Popen(
                cmd,
                stdout=so,
                stderr=se,
                stdin=subprocess.DEVNULL,
                cwd=cwd,
                env=full_env,
                start_new_session=True,
            )
            timed_out = threading.Event()

            def _kill():
                timed_out.set()
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

            timer = threading.Timer(timeout, _kill)
            timer.start()
            try:
                _, status, ru = os.wait4(proc.pid, 0)
            finally:
                timer.cancel()
            seconds = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        proc.returncode = rc  # reaped by wait4; keep Popen from waiting again
        rss_kb, user_s, sys_s = ru.ru_maxrss, ru.ru_utime, ru.ru_stime
        if TIME_BIN:
            try:
                tv_text = Path(time_file).read_text(errors="replace")
            except OSError:
                tv_text = ""
            tv = _parse_time_v(tv_text)
            m = re.search(r"Command terminated by signal (\d+)", tv_text)
            if m:
                rc = -int(m.group(1))
            rss_kb = tv.get("rss_kb", rss_kb)
            user_s = tv.get("user_s", user_s)
            sys_s = tv.get("sys_s", sys_s)
        err = Path(err_file).read_text(errors="replace")
        tail = "\n".join(line for line in err.strip().splitlines()[-5:])
        return Run(
            rc=rc,
            seconds=seconds,
            rss_kb=rss_kb,
            user_s=user_s,
            sys_s=sys_s,
            timed_out=timed_out.is_set(),
            stderr_tail=tail,
            stderr=err[-20000:],
        )


@dataclass
class Row:
    name: str
    argv: list[str]
    startup_argv: list[str]
    input: str = "full"  # full | slice
    floor: bool = False
    group: str = "c"
    note: str = ""
    status: str = "pending"  # ok | missing | failed | timeout
    error: str = ""
    runs: list[Run] = field(default_factory=list)
    startup_runs: list[Run] = field(default_factory=list)
    work: dict = field(default_factory=dict)

    @property
    def best(self) -> Run | None:
        ok = [r for r in self.runs if r.rc == 0 and not r.timed_out]
        return min(ok, key=lambda r: r.seconds) if ok else None

    @property
    def startup(self) -> Run | None:
        ok = [r for r in self.startup_runs if r.rc == 0 and not r.timed_out]
        return min(ok, key=lambda r: r.seconds) if ok else None


def _missing(needs: list[str], python: str, peers_python: str | None) -> str | None:
    for need in needs:
        if need.startswith(("py:", "peers:")):
            kind, mod = need.split(":", 1)
            py = python if kind == "py" else peers_python
            if not py:
                return f"peers venv not available (python module {mod})"
            res = subprocess.run([py, "-c", f"import {mod}"], cwd=ROOT, capture_output=True, text=True)
            if res.returncode != 0:
                return f"python module {mod} not importable ({_last_line(res.stderr)})"
        elif not shutil.which(need):
            return f"{need} not found"
    return None


def _last_line(text: str, limit: int = 160) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    msg = lines[-1] if lines else ""
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:60]


FAST_LIMIT = 2.0


def measure(
    tools: list[tuple],
    inputs: dict,
    out: Path,
    repeat: int,
    timeout: float,
    peers_python: str | None,
    peers_note: str,
    fast_repeat: int = 0,
) -> list[Row]:
    python = _venv_python()
    empty = out / "empty.pcap"
    empty.write_bytes(EMPTY_PCAP)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    work = out / "work"  # the tools' cwd: stray files land here
    work.mkdir(exist_ok=True)
    rows: list[Row] = []
    opts_of: dict[int, dict] = {}
    for name, argv, opts in tools:
        which = "slice" if opts.get("slice") and "slice" in inputs else "full"
        if opts.get("slice") and opts.get("floor") and "slice" not in inputs:
            continue  # no slice: one floor row is enough
        subst = {
            "python": python,
            "peers_python": peers_python or "peers-python",
            "root": str(ROOT),
            "bench": str(BENCH),
            "out": str(out),
        }
        row = Row(
            name=name,
            argv=[a.format(pcap=str(inputs[which][0]), **subst) for a in argv],
            startup_argv=[a.format(pcap=str(empty), **subst) for a in argv],
            input=which,
            floor=bool(opts.get("floor")),
            group=opts.get("group", "c"),
            note=opts.get("note", ""),
        )
        why = _missing(opts.get("needs", []), python, peers_python)
        if why and "peers venv" in why and peers_note:
            why += f"; {peers_note}"
        req = opts.get("requires")
        if not why and req and not (ROOT / req).exists():
            why = f"{req} does not exist (yet)"
        if why:
            row.status, row.error = "missing", why
        elif opts.get("prepare"):
            try:
                msg = opts["prepare"]({"out": out, "root": ROOT, "bench": BENCH, "python": python})
            except Exception as exc:  # noqa: BLE001 - a broken prepare step is a failed row, not a crash
                msg = f"prepare failed: {exc!r}"
            if msg:
                row.status, row.error = (
                    ("missing" if msg.startswith("missing") else "failed"),
                    msg.removeprefix("missing: "),
                )
        rows.append(row)
        opts_of[id(row)] = opts

    # mosfw's start-up reads compiled modules: write them now (with
    # PYTHONDONTWRITEBYTECODE set nothing else would, and every run would
    # compile its imports again)
    subprocess.run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            str(ROOT / "mosfw"),
            str(ROOT / "samples"),
            str(ROOT / "plugins"),
            str(BENCH),
        ],
        capture_output=True,
        timeout=120,
    )
    # warm the page cache so that no tool pays for the first read
    for path, _n in inputs.values():
        with open(path, "rb") as f:
            while f.read(8 << 20):
                pass

    # A failed run does not end a row: the tree may be mid-edit, or the machine
    # busy; the row is ok when any run succeeded (failures are noted). A
    # timeout does end it (it would cost as much again).
    failures: dict[int, list[str]] = {}
    # the main rounds, then extra rounds for the quick rows (best under
    # FAST_LIMIT s): their best-of converges on the figure without the
    # machine's other load at little cost
    fast_rounds = max(0, fast_repeat - repeat)
    rounds = [(i, repeat, False) for i in range(repeat)] + [
        (repeat + i, repeat + fast_rounds, True) for i in range(fast_rounds)
    ]
    for i, total, fast_only in rounds:
        for row in rows:
            if row.status not in ("pending", "ok", "failed") or (
                row.status == "failed" and id(row) not in failures
            ):
                continue
            if fast_only and not (row.best and row.best.seconds < FAST_LIMIT):
                continue
            opts = opts_of[id(row)]
            keep = opts.get("stdout", "file" if opts.get("parse") else "null") == "file"
            stdout_path = str(logs / f"{_slug(row.name)}.stdout") if keep else os.devnull
            print(f"[{i + 1}/{total}] {row.name} ({row.input}) ...", end=" ", flush=True)
            try:
                if not row.floor:
                    row.startup_runs.append(
                        run_once(row.startup_argv, os.devnull, opts.get("env"), 60, cwd=work)
                    )
                r = run_once(row.argv, stdout_path, opts.get("env"), timeout, cwd=work)
            except OSError as exc:
                row.status, row.error = "failed", f"cannot run: {exc}"
                print(row.error, flush=True)
                continue
            row.runs.append(r)
            if r.timed_out:
                row.status, row.error = "timeout", f"killed after {timeout:g} s"
                print(row.error, flush=True)
            elif r.rc != 0:
                how = f"killed by signal {-r.rc}" if r.rc < 0 else f"exit {r.rc}"
                msg = f"{how}: {_last_line(r.stderr_tail)}".rstrip(": ")
                failures.setdefault(id(row), []).append(msg)
                if row.best is None:
                    row.status, row.error = "failed", msg
                print(msg, flush=True)
            else:
                row.status, row.error = "ok", ""
                su = row.startup_runs[-1].seconds if row.startup_runs else None
                print(f"{r.seconds:.3f} s" + (f" (start-up {su:.3f} s)" if su else ""), flush=True)
                if opts.get("parse") and not row.work:
                    text = Path(stdout_path).read_text(errors="replace") if keep else ""
                    try:
                        row.work = opts["parse"](text, r.stderr)
                    except Exception as exc:  # noqa: BLE001 - a parser bug is not fatal
                        row.work = {"error": repr(exc)}
                    if keep and Path(stdout_path).stat().st_size > (4 << 20):
                        Path(stdout_path).unlink()  # big (tcptrace): parsed, not kept
    for row in rows:
        fails = failures.get(id(row))
        if fails and row.status == "ok":
            row.note = (
                row.note + "; " if row.note else ""
            ) + f"{len(fails)} of {len(row.runs)} runs failed ({_clip(fails[-1], 70)})"
    return rows


# --------------------------------------------------------------------------
# memory per tracked connection


def measure_memory(exe: Path, out: Path, n: int, timeout: float) -> dict:
    """Peak RSS of `mosfw run` (no plugin) over n concurrent established
    connections minus its peak RSS on an empty capture, per connection."""
    python = _venv_python()
    pcap = out / f"mem-est-n{n}-{_src_hash()}.pcap"
    meta_path = pcap.with_suffix(".json")
    if not (pcap.exists() and meta_path.exists()):
        for old in out.glob("mem-est-*.pcap"):
            old.unlink()
            old.with_suffix(".json").unlink(missing_ok=True)
        meta = _run_gen(exe, pcap, ["-n", str(n), "-m", "est", "-t", "1"])
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    meta = json.loads(meta_path.read_text())
    empty = out / "empty.pcap"
    empty.write_bytes(EMPTY_PCAP)
    res: dict = {
        "connections": n,
        "capture": str(pcap),
        "packets": meta.get("packets"),
        "capture_bytes": meta.get("bytes"),
        "argv": [python, "-m", "mosfw", "run", "-r", str(pcap)],
    }
    with open(pcap, "rb") as f:
        while f.read(8 << 20):
            pass
    base = run_once([python, "-m", "mosfw", "run", "-r", str(empty)], os.devnull, None, 60)
    print(f"memory: {n:,} established connections ...", end=" ", flush=True)
    full = run_once(res["argv"], os.devnull, None, timeout)
    if full.rc != 0 or base.rc != 0 or full.rss_kb is None or base.rss_kb is None:
        res["error"] = _last_line(full.stderr_tail or base.stderr_tail) or "failed"
        print(res["error"], flush=True)
        return res
    stats = parse_mosfw("", full.stderr)
    refused = _int(r"(\d+) refused", full.stderr)
    evicted = _int(r"(\d+) evicted", full.stderr)
    res.update(
        rss_empty_mb=round(base.rss_kb / 1024, 1),
        rss_mb=round(full.rss_kb / 1024, 1),
        seconds=round(full.seconds, 3),
        flows=stats["connections"],
        refused=refused,
        evicted=evicted,
        bytes_per_connection=round((full.rss_kb - base.rss_kb) * 1024 / n, 1),
    )
    print(
        f"{res['bytes_per_connection']:.0f} bytes per connection "
        f"(peak RSS {res['rss_mb']} MB, empty {res['rss_empty_mb']} MB; {res['flows']} flows, "
        f"{refused} refused)",
        flush=True,
    )
    return res


# --------------------------------------------------------------------------
# reporting


def _environment() -> dict:
    env = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "peak_rss_source": "/usr/bin/time -v" if TIME_BIN else "os.wait4 ru_maxrss",
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                env["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    for tool, args in (("tcpdump", ["--version"]), ("tshark", ["--version"]), ("tcptrace", ["-v"])):
        if shutil.which(tool):
            res = subprocess.run([tool, *args], capture_output=True, text=True)
            text = (res.stdout + res.stderr).strip().splitlines()
            env[tool] = text[0] if text else "?"
    try:
        ver = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "libnids-dev"], capture_output=True, text=True
        )
        if ver.returncode == 0:
            env["libnids"] = ver.stdout.strip()
    except OSError:
        pass
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if res.returncode == 0:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "native", "mosfw", "samples"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        env["git"] = res.stdout.strip() + (" + uncommitted changes" if dirty else "")
    return env


def summarize(rows: list[Row], inputs: dict) -> list[dict]:
    floors = {r.input: r.best for r in rows if r.floor and r.best}
    table = []
    for row in rows:
        b, su = row.best, row.startup
        packets = inputs[row.input][1]
        floor = floors.get(row.input)
        d = {
            "tool": row.name,
            "argv": row.argv,
            "input": row.input,
            "packets": packets,
            "group": row.group,
            "floor": row.floor,
            "status": row.status,
            "error": row.error,
            "note": row.note,
            "seconds": None,
            "startup_s": None,
            "mpkt_per_s": None,
            "mpkt_per_s_after_startup": None,
            "ratio_to_floor": None,
            "peak_rss_mb": None,
            "cpu_s": None,
            "cpu_ratio_to_floor": None,
            "user_s": None,
            "sys_s": None,
            "connections": row.work.get("connections"),
            "rexmits": row.work.get("rexmits"),
            "all_seconds": [round(r.seconds, 4) for r in row.runs if r.rc == 0 and not r.timed_out],
            "all_startup_s": [round(r.seconds, 4) for r in row.startup_runs if r.rc == 0],
        }
        if su:
            d["startup_s"] = round(su.seconds, 4)
        if b:
            d.update(
                seconds=round(b.seconds, 4),
                mpkt_per_s=round(packets / b.seconds / 1e6, 4) if packets else None,
                ratio_to_floor=round(b.seconds / floor.seconds, 2) if floor else None,
                peak_rss_mb=round(b.rss_kb / 1024, 1) if b.rss_kb is not None else None,
                user_s=b.user_s,
                sys_s=b.sys_s,
                cpu_s=round((b.user_s or 0) + (b.sys_s or 0), 3),
            )
            if floor and floor.user_s is not None and b.user_s is not None:
                fcpu = (floor.user_s or 0) + (floor.sys_s or 0)
                if fcpu > 0:
                    d["cpu_ratio_to_floor"] = round(d["cpu_s"] / fcpu, 2)
            if su and packets and b.seconds > su.seconds:
                d["mpkt_per_s_after_startup"] = round(packets / (b.seconds - su.seconds) / 1e6, 4)
        table.append(d)
    return table


def _fmt(v, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def _rate(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"


HEAD = [
    "tool",
    "input",
    "seconds",
    "start-up s",
    "Mpkt/s",
    "Mpkt/s net",
    "x read floor",
    "CPU s (x floor)",
    "peak RSS MB",
    "connections",
    "rexmits",
    "notes",
]


def _cells(d: dict, slice_label: str) -> list[str]:
    status = _clip(d["note"], 140)
    if d["status"] != "ok":
        status = f"**{d['status']}**: {d['error']}" if d["error"] else d["status"]
    cpu = _fmt(d["cpu_s"], ".2f")
    if d.get("cpu_ratio_to_floor") is not None and not d["floor"]:
        cpu += f" ({d['cpu_ratio_to_floor']:.1f}x)"
    return [
        d["tool"],
        "full" if d["input"] == "full" else slice_label,
        _fmt(d["seconds"], ".3f"),
        _fmt(d["startup_s"], ".2f"),
        _rate(d["mpkt_per_s"]),
        _rate(d.get("mpkt_per_s_after_startup")),
        _fmt(d["ratio_to_floor"], ".2f"),
        cpu,
        _fmt(d["peak_rss_mb"], ".1f"),
        _fmt(d["connections"], ","),
        _fmt(d["rexmits"], ","),
        status,
    ]


def render_table(table: list[dict], markdown: bool, slice_label: str = "slice") -> str:
    body = [_cells(d, slice_label) for d in table]
    if markdown:

        def esc(s: str) -> str:
            return s.replace("|", "\\|")

        lines = [
            "| " + " | ".join(HEAD) + " |",
            "|" + "|".join(["---", "---"] + ["---:"] * 9 + ["---"]) + "|",
        ]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
        return "\n".join(lines)
    body = [[c.replace("**", "") for c in r] for r in body]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(HEAD[:-1])]

    def fmt_row(r: list[str]) -> str:
        # widths covers every column but the last, which is not padded
        cells = zip(r, widths, strict=False)
        return (
            "  ".join((c.ljust(w) if i < 2 else c.rjust(w)) for i, (c, w) in enumerate(cells)) + "  " + r[-1]
        )

    return "\n".join(
        [fmt_row(HEAD), fmt_row(["-" * w for w in widths] + ["-----"])] + [fmt_row(r) for r in body]
    )


def _find(table: list[dict], prefix: str) -> dict | None:
    for d in table:
        if d["tool"].startswith(prefix) and d["status"] == "ok" and d["mpkt_per_s"]:
            return d
    return None


def targets(table: list[dict], memory: dict | None) -> list[tuple[str, str, str, str, str]]:
    """Issue 8's must-show list, evaluated on this run: (target, measured on
    wall time, the same on CPU time, the same net of each tool's start-up,
    verdict). The verdict goes by wall time; the CPU-time figure is less
    inflated by other work on the machine; the net one leaves out the
    fixed cost of starting the program (for mosfw the interpreter and its
    imports), which a long capture or a live run pays once."""
    out = []

    def cpu_rate(d):  # packets per CPU second
        return d["packets"] / d["cpu_s"] if d.get("cpu_s") else None

    def ratios(a, b):
        wall = a["mpkt_per_s"] / b["mpkt_per_s"]
        ca, cb = cpu_rate(a), cpu_rate(b)
        na, nb = a.get("mpkt_per_s_after_startup"), b.get("mpkt_per_s_after_startup")
        return wall, (ca / cb if ca and cb else None), (na / nb if na and nb else None)

    def verdict(ok):
        return "met" if ok else "**not met**"

    def x(v, spec=".2f"):
        return "-" if v is None else f"{v:{spec}}x"

    mos = _find(table, "mosfw (no plugin)")
    nids = _find(table, "libnids")
    nfs = _find(table, "NFStream, 1 meter")
    nfp = _find(table, "NFStream, 1 meter + trivial")
    hook = _find(table, "mosfw -p trivial_pkt_hook")
    if mos and nids:
        w, c, n = ratios(mos, nids)
        out.append(("mosfw, no plugin: >= 2x libnids' packets/s", x(w), x(c), x(n), verdict(w >= 2)))
    if mos and mos["ratio_to_floor"]:
        out.append(
            (
                "mosfw, no plugin: within 1.5x of the read floor",
                x(mos["ratio_to_floor"]),
                x(mos.get("cpu_ratio_to_floor")),
                "",
                verdict(mos["ratio_to_floor"] <= 1.5),
            )
        )
    for app in ("mosfw -p samples/tracker", "mosfw -p samples/midstat"):
        d = _find(table, app)
        label = app.split("/")[-1]
        if d is None:
            out.append(
                (
                    f"mosfw + {label}: >= 1x libnids, >= 20x NFStream",
                    "not measured",
                    "-",
                    "-",
                    "**not measured**",
                )
            )
            continue
        if nids:
            w, c, n = ratios(d, nids)
            out.append((f"mosfw + {label}: >= 1x libnids' packets/s", x(w), x(c), x(n), verdict(w >= 1)))
        if nfs:
            w, c, n = ratios(d, nfs)
            out.append(
                (
                    f"mosfw + {label}: >= 20x NFStream (no plugin)",
                    x(w, ".1f"),
                    x(c, ".1f"),
                    x(n, ".1f"),
                    verdict(w >= 20),
                )
            )
    if hook:
        pps = hook["mpkt_per_s"] * 1e6
        cpps = cpu_rate(hook)
        npps = hook.get("mpkt_per_s_after_startup")
        out.append(
            (
                "mosfw + trivial per-packet hook: >= 1M packets/s",
                f"{pps / 1e6:.2f} M/s",
                f"{cpps / 1e6:.2f} M/s" if cpps else "-",
                f"{npps:.2f} M/s" if npps else "-",
                verdict(pps >= 1e6),
            )
        )
        if nfp:
            w, c, n = ratios(hook, nfp)
            out.append(
                (
                    "mosfw + trivial per-packet hook: >= 10x NFStream + trivial NFPlugin",
                    x(w, ".1f"),
                    x(c, ".1f"),
                    x(n, ".1f"),
                    verdict(w >= 10),
                )
            )
    if memory and memory.get("bytes_per_connection") is not None:
        b = memory["bytes_per_connection"]
        out.append(
            (
                f"peak memory per tracked connection, {memory['connections']:,} concurrent: <= 256 bytes",
                f"{b:.0f} bytes",
                "",
                "",
                verdict(b <= 256),
            )
        )
    return out


def memory_md(memory: dict) -> str:
    if memory.get("error"):
        return f"Memory per connection: measurement failed: {memory['error']}"
    return "\n".join(
        [
            "| connections | packets | mosfw peak RSS | empty-capture RSS | bytes per connection "
            "| flows tracked | refused | seconds |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {memory['connections']:,} | {memory['packets']:,} | {memory['rss_mb']} MB "
            f"| {memory['rss_empty_mb']} MB | **{memory['bytes_per_connection']:.0f}** "
            f"| {_fmt(memory.get('flows'), ',')} | {_fmt(memory.get('refused'), ',')} "
            f"| {memory['seconds']:.2f} |",
        ]
    )


def describe_input(meta: dict, inputs: dict) -> str:
    pk, cn = meta.get("packets"), meta.get("connections")
    if meta.get("kind") == "real":
        desc = (
            f"Real capture: {pk:,} packets, {cn:,} TCP connections, "
            f"{meta.get('rexmits', 0):,} retransmissions ({meta.get('rexmits_note')}), "
            f"{meta.get('bytes', 0) / 1e6:.0f} MB; made by {meta.get('recipe')} "
            f"({meta.get('fetches_failed', 0)} fetches failed)"
        )
    elif meta.get("kind") == "synthetic":
        desc = (
            f"Synthetic capture (bench/gen_capture.c): {pk:,} packets, {cn:,} TCP "
            f"connections, {meta.get('rexmits', 0):,} retransmissions, "
            f"{meta.get('ipv6', 0):,} connections over IPv6, "
            f"{meta.get('bytes', 0) / 1e6:.0f} MB"
        )
    else:
        desc = f"Capture {meta.get('file')}: {pk if pk is not None else '?'} packets"
    if "slice" in inputs:
        desc += (
            f". Rows marked *first {inputs['slice'][1] // 1000}k* ran on the capture's first "
            f"{inputs['slice'][1]:,} packets (editcap -r), to keep the run short; their "
            "ratio is to the read floor of that slice"
        )
    return desc + "."


def write_results(
    out: Path, table: list[dict], meta: dict, inputs: dict, args, env: dict, memory: dict | None, suffix: str
) -> str:
    slice_label = f"first {inputs['slice'][1] // 1000}k" if "slice" in inputs else "slice"
    doc = {
        "capture": meta,
        "inputs": {k: {"file": str(v[0]), "packets": v[1]} for k, v in inputs.items()},
        "repeat": args.repeat,
        "fast_repeat": args.fast_repeat,
        "environment": env,
        "memory": memory,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "results": table,
        "targets": targets(table, memory),
    }
    (out / f"results{suffix}.json").write_text(json.dumps(doc, indent=2) + "\n")
    load = env.get("loadavg") or [float("nan")] * 2
    md = [
        describe_input(meta, inputs),
        "",
        f"Best of {args.repeat} runs per tool, interleaved ({args.fast_repeat} for the tools "
        f"under {FAST_LIMIT:g} s); `seconds` is wall time including start-up (`start-up s`: the "
        "same command on an empty capture); `Mpkt/s net` leaves the start-up out; `x read "
        "floor` is the wall-time ratio to `tcpdump -r F -w /dev/null` on the same input in the "
        "same run; `CPU s` is user+system time of the best run (and its ratio to the floor's); "
        "`connections`/`rexmits` are what each tool itself reported (a check that it did the "
        "work).",
        "",
        f"Machine: {env.get('cpu', '?')}, {env.get('cpus')} CPUs, {env.get('platform')}, "
        f"Python {env.get('python')}; git {env.get('git', '?')}; "
        f"{env.get('generated_at', '')}; 1-min load average before/after the run "
        f"{load[0]:.2f}/{load[1]:.2f} (other work on the machine inflates wall times).",
        "",
        render_table(table, markdown=True, slice_label=slice_label),
        "",
    ]
    tg = doc["targets"]
    if tg:
        md += [
            "Issue 8's targets, evaluated on this run (the verdict goes by wall time; the "
            "CPU-time figure compares user+system time per packet, which other work on the "
            "machine inflates less; the net one compares `Mpkt/s net`, each tool's wall "
            "time less its start-up):",
            "",
            "| target | measured (wall time) | by CPU time | net of start-up | |",
            "|---|---:|---:|---:|---|",
        ]
        md += [f"| {t} | {m} | {c} | {n} | {v} |" for t, m, c, n, v in tg]
        md.append("")
    if memory:
        md += [
            f"Memory: `mosfw run` (no plugin) over {memory['connections']:,} concurrent "
            "established connections (gen_capture -m est: every SYN, then every SYN/ACK, "
            "then every ACK; none closes), peak RSS minus the peak RSS of the same command "
            "on an empty capture, divided by the connection count:",
            "",
            memory_md(memory),
            "",
        ]
    text = "\n".join(md)
    (out / f"results{suffix}.md").write_text(f"# mosfw benchmark results\n\n{text}\n")
    return text


def update_readme(section: str, text: str, png: Path | None) -> bool:
    start, end = MARKERS[section]
    try:
        doc = README.read_text()
    except OSError:
        return False
    if start not in doc or end not in doc:
        print(f"run_bench: {README} has no {start} ... {end} markers; not updated", flush=True)
        return False
    body = text
    if png is not None and png.exists():
        body += f"\n![throughput per tool]({png.name})\n"
    new = doc.split(start)[0] + start + "\n" + body.rstrip() + "\n" + end + doc.split(end, 1)[1]
    README.write_text(new)
    return True


def plot(json_path: Path, png: Path, peers_python: str | None) -> str | None:
    """Render the throughput plot with matplotlib in the peers venv."""
    if not peers_python:
        return "no peers venv (matplotlib)"
    res = subprocess.run(
        [peers_python, str(BENCH / "plot_results.py"), str(json_path), str(png)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if res.returncode != 0:
        return _last_line(res.stderr) or f"exit {res.returncode}"
    return None


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--connections",
        "-n",
        type=int,
        default=60000,
        help="TCP connections in the capture (default 60000: 1.2M packets)",
    )
    ap.add_argument(
        "--concurrency", "-c", type=int, default=1000, help="connections interleaved at a time (default 1000)"
    )
    ap.add_argument(
        "--segments", "-d", type=int, default=8, help="server data segments per connection (default 8)"
    )
    ap.add_argument(
        "--rexmit-fraction",
        type=float,
        default=1.0,
        help="fraction of connections with one retransmission (default 1)",
    )
    ap.add_argument(
        "--v6-every", type=int, default=8, help="every Nth connection over IPv6, 0 = none (default 8)"
    )
    ap.add_argument("--seed", "-s", type=int, default=1)
    ap.add_argument("--repeat", "-R", type=int, default=3, help="runs per tool; the best counts")
    ap.add_argument(
        "--fast-repeat",
        type=int,
        default=7,
        metavar="N",
        help=f"runs of the tools whose best run is under {FAST_LIMIT:g} s (default 7)",
    )
    ap.add_argument(
        "--nice",
        type=int,
        default=0,
        metavar="N",
        help="run the bench (and every tool) at this nice value; negative values "
        "(root) keep other work on the machine from inflating the times",
    )
    ap.add_argument(
        "--slice",
        type=int,
        default=400000,
        metavar="N",
        help="the slow tools (tshark, NFStream, dpkt) read only the first N "
        "packets (default 400000; 0 = the whole capture)",
    )
    ap.add_argument("--out", "-o", type=Path, default=BENCH / "out")
    ap.add_argument("--pcap", type=Path, help="benchmark this capture instead of generating one")
    ap.add_argument(
        "--real",
        action="store_true",
        help="benchmark a real capture made in network namespaces with loss "
        "(made once, cached in OUT; needs root)",
    )
    ap.add_argument(
        "--real-connections", type=int, default=1000, help="HTTP fetches in the real capture (default 1000)"
    )
    ap.add_argument(
        "--real-loss", type=float, default=2.0, help="random TCP loss in percent, each way (default 2)"
    )
    ap.add_argument("--remake-real", action="store_true", help="make the real capture again")
    ap.add_argument(
        "--memory",
        type=int,
        default=1_000_000,
        metavar="N",
        help="memory per connection with N concurrent connections (default 1M; "
        "0 = skip; only with the synthetic capture)",
    )
    ap.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="SUBSTR",
        help="run only tools whose name contains SUBSTR (repeatable; the read floors always run)",
    )
    ap.add_argument(
        "--peers-venv",
        type=Path,
        default=None,
        help="venv for NFStream/dpkt/matplotlib (default OUT/venv-peers)",
    )
    ap.add_argument(
        "--no-install", action="store_true", help="do not create the peers venv / pip install into it"
    )
    ap.add_argument("--no-readme", action="store_true", help="do not update bench/README.md")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run before a kill")
    ap.add_argument("--list", action="store_true", help="list the tools and exit")
    ap.add_argument(
        "--render",
        action="store_true",
        help="only re-write the reports (OUT/results*.md, the plot, README) from "
        "the last run's OUT/results*.json",
    )
    args = ap.parse_args(argv)

    if args.list:
        for name, targv, opts in TOOLS:
            extra = " [slice]" if opts.get("slice") else ""
            print(f"{name}{extra}: {shlex.join(targv)}")
        return 0
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.real and args.pcap:
        ap.error("--real and --pcap are exclusive")

    out = args.out if args.out.is_absolute() else (Path.cwd() / args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.nice:
        try:
            os.nice(args.nice)
        except OSError as exc:
            ap.error(f"--nice {args.nice}: {exc}")
    t_start = time.monotonic()
    load_before = os.getloadavg()[0]

    tools = TOOLS
    if args.only:
        tools = [t for t in TOOLS if t[2].get("floor") or any(s in t[0] for s in args.only)]
    # NFStream, dpkt and matplotlib (the plot) live in their own venv
    peers_py, peers_note = ensure_peers_venv(
        (args.peers_venv or (out / "venv-peers")).resolve(), install=not args.no_install
    )

    suffix = "-real" if args.real else ""
    if args.render:
        # re-render the reports of the last run without measuring again
        try:
            doc = json.loads((out / f"results{suffix}.json").read_text())
        except (OSError, ValueError) as exc:
            ap.error(f"--render: no results to render in {out}: {exc}")
        inputs = {k: (Path(v["file"]), v["packets"]) for k, v in doc["inputs"].items()}
        args.repeat = doc.get("repeat", args.repeat)
        args.fast_repeat = doc.get("fast_repeat", args.repeat)
        return report(
            ap,
            args,
            out,
            doc["results"],
            doc["capture"],
            inputs,
            doc["environment"],
            doc.get("memory"),
            peers_py,
            t_start,
        )

    exe = build_generator(out)
    if args.pcap:
        pcap = args.pcap.resolve()
        if not pcap.exists():
            ap.error(f"{pcap}: no such file")
        meta = {
            "file": str(pcap),
            "packets": count_pcap_packets(pcap),
            "bytes": pcap.stat().st_size,
            "kind": "file",
        }
    elif args.real:
        pcap, meta = real_capture(out, args)
    else:
        pcap, meta = generate_capture(exe, out, args)
    packets = meta.get("packets") or 0
    inputs = {"full": (pcap, packets)}
    sl = make_slice(pcap, packets, args.slice)
    if sl:
        inputs["slice"] = sl

    rows = measure(tools, inputs, out, args.repeat, args.timeout, peers_py, peers_note, args.fast_repeat)
    table = summarize(rows, inputs)

    memory = None
    if args.memory and not args.real and not args.pcap and not args.only:
        memory = measure_memory(exe, out, args.memory, args.timeout)

    env = _environment()
    env["loadavg"] = [load_before, os.getloadavg()[0]]
    env["generated_at"] = time.strftime("%Y-%m-%d %H:%M %Z")
    env["peers"] = peers_note
    env["bench_seconds"] = round(time.monotonic() - t_start, 1)
    return report(ap, args, out, table, meta, inputs, env, memory, peers_py, t_start)


def report(
    ap,
    args,
    out: Path,
    table: list[dict],
    meta: dict,
    inputs: dict,
    env: dict,
    memory: dict | None,
    peers_py: str | None,
    t_start: float,
) -> int:
    suffix = "-real" if args.real else ""
    slice_label = f"first {inputs['slice'][1] // 1000}k" if "slice" in inputs else "slice"
    print()
    print(describe_input(meta, inputs))
    print(render_table(table, markdown=False, slice_label=slice_label))
    text = write_results(out, table, meta, inputs, args, env, memory, suffix)
    for t, m, c, n, v in targets(table, memory):
        print(
            f"  {v.replace('*', ''):>12}  {t}: {m}"
            + (f" (CPU time: {c})" if c else "")
            + (f" (net of start-up: {n})" if n and n != "-" else "")
        )

    # bench/README.md and bench/results*.png show the default inputs only
    defaults = ap.parse_args([])
    default_input = (
        args.real
        if args.real
        else all(
            getattr(args, k) == getattr(defaults, k)
            for k in (
                "connections",
                "concurrency",
                "segments",
                "rexmit_fraction",
                "v6_every",
                "seed",
                "real_connections",
                "real_loss",
            )
        )
    )
    publish = default_input and not (args.only or args.pcap or args.no_readme)
    png = (BENCH if publish else out) / f"results{suffix}.png"
    why = plot(out / f"results{suffix}.json", png, peers_py)
    if why:
        print(f"plot: not made ({why})")
        png = None
    else:
        print(f"plot: {png}")
    if publish and update_readme("real" if args.real else "synthetic", text, png):
        print(f"updated {README}")
    print(
        f"wrote {out / f'results{suffix}.md'} and {out / f'results{suffix}.json'} "
        f"({time.monotonic() - t_start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
