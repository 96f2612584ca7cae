#!/usr/bin/env python3
"""mosfw throughput benchmark: one command, one table.

    .venv/bin/python bench/run_bench.py [--connections N] [--repeat R] [--out bench/out]

Compiles bench/gen_capture.c into OUT, generates a synthetic capture once
(cached in OUT, keyed by its parameters and the generator's source), then runs
every tool in TOOLS on it R times, interleaved (tool A, tool B, ..., then
again), and keeps each tool's best wall time.  Peak RSS comes from
``/usr/bin/time -v`` when installed, else from ``os.wait4``'s ru_maxrss.
Ratios are taken against the read floor (``tcpdump -r F -w /dev/null``)
measured in the same run.  A tool that is missing, fails or times out is
reported as such; the benchmark goes on.

Writes OUT/results.md (markdown table) and OUT/results.json.

To add a tool, append a ``(name, argv)`` or ``(name, argv, options)`` entry
to TOOLS.  argv items may use the placeholders ``{pcap}`` (the capture),
``{python}`` (the venv interpreter), ``{root}`` (the repository root),
``{bench}`` (this directory), ``{out}`` (the output directory) and
``{empty_pcap}`` (a valid capture with no packet).  Options:

  ``needs``    list of executables, or ``"py:module"`` importable by {python},
               that must exist (else the row says "missing: ...")
  ``prepare``  callable(ctx) -> str | None, run once before measuring (build
               a helper, ...); a returned string is a failure message
  ``stdout``   path the tool's stdout goes to (default /dev/null)
  ``env``      dict of extra environment variables
  ``floor``    True for the read-floor row (exactly one)
  ``fixed_cost`` True for a row that does not process the capture (start-up
               cost): no Mpkt/s and no ratio
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


def _venv_python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


MOSFW = ["{python}", "-m", "mosfw", "run", "-r", "{pcap}"]

# (name, argv[, options]) -- the order is the table's order.
TOOLS: list[tuple] = [
    ("tcpdump -r F -w /dev/null (read floor)",
     ["tcpdump", "-r", "{pcap}", "-w", "/dev/null"],
     {"floor": True, "needs": ["tcpdump"]}),
    ("mosfw run, empty capture (start-up cost)",
     ["{python}", "-m", "mosfw", "run", "-r", "{empty_pcap}"],
     {"needs": ["py:mosfw"], "fixed_cost": True}),
    ("mosfw run (no plugin)", MOSFW, {"needs": ["py:mosfw"]}),
    ("mosfw run -p eventlog > /dev/null", MOSFW + ["-p", "eventlog"],
     {"needs": ["py:mosfw"]}),
    ("mosfw run -p trivial_pkt_hook.py", MOSFW + ["-p", "{bench}/trivial_pkt_hook.py"],
     {"needs": ["py:mosfw"]}),
]


# --------------------------------------------------------------------------
# generator and capture

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


def generate_capture(exe: Path, out: Path, args) -> tuple[Path, dict]:
    params = {
        "connections": args.connections,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "segments": args.segments,
        "rexmit_fraction": args.rexmit_fraction,
        "v6_every": args.v6_every,
    }
    src_hash = hashlib.sha256(GEN_SRC.read_bytes()).hexdigest()[:12]
    stem = ("capture-n{connections}-c{concurrency}-d{segments}-r{rexmit_fraction}"
            "-6e{v6_every}-s{seed}").format(**params) + f"-{src_hash}"
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
    cmd = [str(exe), "-o", str(pcap), "-n", str(args.connections), "-c", str(args.concurrency),
           "-s", str(args.seed), "-d", str(args.segments), "-r", str(args.rexmit_fraction),
           "-6", str(args.v6_every)]
    print("+ " + shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(res.stderr)
    if res.returncode != 0:
        pcap.unlink(missing_ok=True)
        raise SystemExit(f"run_bench: gen_capture failed (rc={res.returncode})")
    meta = parse_summary(res.stderr)
    meta.update(params=params, generator_sha256=src_hash,
                generate_seconds=round(time.perf_counter() - t0, 3), file=str(pcap))
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return pcap, meta


def count_pcap_packets(path: Path) -> int | None:
    """Packet count of an existing capture (capinfos, else a classic-pcap walk)."""
    if shutil.which("capinfos"):
        res = subprocess.run(["capinfos", "-c", "-M", "-T", "-r", str(path)],
                             capture_output=True, text=True)
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


def _parse_time_v(text: str) -> dict:
    out = {}
    for key, pat in (("rss_kb", r"Maximum resident set size \(kbytes\):\s*(\d+)"),
                     ("user_s", r"User time \(seconds\):\s*([\d.]+)"),
                     ("sys_s", r"System time \(seconds\):\s*([\d.]+)")):
        m = re.search(pat, text)
        if m:
            out[key] = float(m.group(1)) if "." in m.group(1) else int(m.group(1))
    return out


def run_once(argv: list[str], stdout_path: str, env: dict | None, timeout: float) -> Run:
    with tempfile.TemporaryDirectory(prefix="mosfw-bench-") as td:
        time_file = os.path.join(td, "time.txt")
        err_file = os.path.join(td, "stderr.txt")
        cmd = ([TIME_BIN, "-v", "-o", time_file, "--"] + argv) if TIME_BIN else argv
        full_env = dict(os.environ, **(env or {}))
        with open(stdout_path, "wb") as so, open(err_file, "wb") as se:
            t0 = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=so, stderr=se, stdin=subprocess.DEVNULL,
                                    cwd=ROOT, env=full_env, start_new_session=True)
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
        return Run(rc=rc, seconds=seconds, rss_kb=rss_kb, user_s=user_s, sys_s=sys_s,
                   timed_out=timed_out.is_set(), stderr_tail=tail)


@dataclass
class Row:
    name: str
    argv: list[str]
    floor: bool = False
    fixed_cost: bool = False       # does not read the capture: no rate, no ratio
    status: str = "pending"        # ok | missing | failed | timeout | skipped
    error: str = ""
    runs: list[Run] = field(default_factory=list)

    @property
    def best(self) -> Run | None:
        ok = [r for r in self.runs if r.rc == 0 and not r.timed_out]
        return min(ok, key=lambda r: r.seconds) if ok else None


def _missing(needs: list[str], python: str) -> str | None:
    for need in needs:
        if need.startswith("py:"):
            mod = need[3:]
            res = subprocess.run([python, "-c", f"import {mod}"], cwd=ROOT,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                last = (res.stderr.strip().splitlines() or [""])[-1]
                return f"python module {mod} not importable ({last})"
        elif not shutil.which(need):
            return f"{need} not found"
    return None


def _first_line(text: str, limit: int = 160) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    msg = lines[-1] if lines else ""
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def measure(tools: list[tuple], pcap: Path, out: Path, repeat: int, timeout: float) -> list[Row]:
    python = _venv_python()
    empty = out / "empty.pcap"
    empty.write_bytes(EMPTY_PCAP)
    subst = {"pcap": str(pcap), "empty_pcap": str(empty), "python": python,
             "root": str(ROOT), "bench": str(BENCH), "out": str(out)}
    rows: list[Row] = []
    opts_of: dict[int, dict] = {}
    for entry in tools:
        name, argv = entry[0], entry[1]
        opts = entry[2] if len(entry) > 2 else {}
        row = Row(name=name, argv=[a.format(**subst) for a in argv], floor=bool(opts.get("floor")),
                  fixed_cost=bool(opts.get("fixed_cost")))
        why = _missing(opts.get("needs", [argv[0]] if not argv[0].startswith("{") else []), python)
        if why:
            row.status, row.error = "missing", why
        elif opts.get("prepare"):
            try:
                msg = opts["prepare"]({"pcap": pcap, "out": out, "root": ROOT, "bench": BENCH,
                                       "python": python})
            except Exception as exc:  # a broken prepare step is a failed row, not a crash
                msg = f"prepare failed: {exc!r}"
            if msg:
                row.status, row.error = "failed", msg
        rows.append(row)
        opts_of[id(row)] = opts

    # warm the page cache so that no tool pays for the first read
    with open(pcap, "rb") as f:
        while f.read(8 << 20):
            pass

    for i in range(repeat):
        for row in rows:
            if row.status not in ("pending", "ok"):
                continue
            opts = opts_of[id(row)]
            stdout_path = opts.get("stdout", os.devnull)
            print(f"[{i + 1}/{repeat}] {row.name} ...", end=" ", flush=True)
            try:
                r = run_once(row.argv, stdout_path, opts.get("env"), timeout)
            except OSError as exc:
                row.status, row.error = "failed", f"cannot run: {exc}"
                print(row.error, flush=True)
                continue
            row.runs.append(r)
            if r.timed_out:
                row.status, row.error = "timeout", f"killed after {timeout:g} s"
                print(row.error, flush=True)
            elif r.rc != 0:
                row.status = "failed"
                how = f"killed by signal {-r.rc}" if r.rc < 0 else f"exit {r.rc}"
                row.error = f"{how}: {_first_line(r.stderr_tail)}".rstrip(": ")
                print(row.error, flush=True)
            else:
                row.status = "ok"
                print(f"{r.seconds:.3f} s", flush=True)
    return rows


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
    if shutil.which("tcpdump"):
        res = subprocess.run(["tcpdump", "--version"], capture_output=True, text=True)
        env["tcpdump"] = " / ".join((res.stdout + res.stderr).strip().splitlines()[:2])
    res = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                         capture_output=True, text=True)
    if res.returncode == 0:
        env["git"] = res.stdout.strip()
    return env


def summarize(rows: list[Row], packets: int) -> list[dict]:
    floor = next((r.best for r in rows if r.floor and r.best), None)
    table = []
    for row in rows:
        b = row.best
        d = {"tool": row.name, "argv": row.argv, "status": row.status, "error": row.error,
             "floor": row.floor, "fixed_cost": row.fixed_cost,
             "seconds": None, "mpkt_per_s": None, "ratio_to_floor": None,
             "peak_rss_mb": None, "user_s": None, "sys_s": None,
             "all_seconds": [round(r.seconds, 4) for r in row.runs if r.rc == 0 and not r.timed_out]}
        if b and row.fixed_cost:
            d.update(seconds=round(b.seconds, 4), user_s=b.user_s, sys_s=b.sys_s,
                     peak_rss_mb=round(b.rss_kb / 1024, 1) if b.rss_kb is not None else None)
        elif b:
            d.update(seconds=round(b.seconds, 4),
                     mpkt_per_s=round(packets / b.seconds / 1e6, 3) if packets else None,
                     ratio_to_floor=round(b.seconds / floor.seconds, 2) if floor else None,
                     peak_rss_mb=round(b.rss_kb / 1024, 1) if b.rss_kb is not None else None,
                     user_s=b.user_s, sys_s=b.sys_s)
        table.append(d)
    return table


def _fmt(v, spec: str, missing: str = "-") -> str:
    return missing if v is None else format(v, spec)


def render_table(table: list[dict], markdown: bool) -> str:
    head = ["tool", "seconds", "Mpkt/s", "x read floor", "peak RSS MB", "status"]
    body = []
    for d in table:
        status = d["status"] if not d["error"] else f"{d['status']}: {d['error']}"
        body.append([d["tool"], _fmt(d["seconds"], ".3f"), _fmt(d["mpkt_per_s"], ".2f"),
                     _fmt(d["ratio_to_floor"], ".2f"), _fmt(d["peak_rss_mb"], ".1f"), status])
    if markdown:
        esc = lambda s: s.replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "|".join(["---", "---:", "---:", "---:", "---:", "---"]) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(head[:-1])]
    fmt_row = lambda r: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))) + "  " + r[-1]
    return "\n".join([fmt_row(head), fmt_row(["-" * w for w in widths] + ["------"])]
                     + [fmt_row(r) for r in body])


def write_results(out: Path, table: list[dict], meta: dict, args, env: dict) -> None:
    capture = {k: meta.get(k) for k in ("file", "packets", "connections", "ipv4", "ipv6",
                                        "rexmits", "bytes", "segments", "concurrency", "seed")}
    doc = {"capture": capture, "repeat": args.repeat, "environment": env,
           "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": table}
    (out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    pk, cn = capture.get("packets"), capture.get("connections")
    desc = (f"Capture: {pk:,} packets, {cn:,} TCP connections"
            if isinstance(pk, int) and isinstance(cn, int) else f"Capture: {capture.get('file')}")
    if isinstance(capture.get("rexmits"), int):
        desc += (f", {capture['rexmits']:,} retransmissions, {capture.get('ipv6', 0):,} "
                 f"connections over IPv6, {capture.get('bytes', 0) / 1e6:.0f} MB")
    md = [
        "# mosfw benchmark results",
        "",
        desc + ".",
        f"Best of {args.repeat} runs per tool (interleaved); ratios against the read floor "
        "measured in the same run.",
        f"Machine: {env.get('cpu', '?')}, {env.get('cpus')} CPUs, {env.get('platform')}, "
        f"Python {env.get('python')}; peak RSS from {env['peak_rss_source']}.",
        "",
        render_table(table, markdown=True),
        "",
    ]
    (out / "results.md").write_text("\n".join(md))


# --------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", "-n", type=int, default=60000,
                    help="TCP connections in the capture (default 60000: 1.2M packets)")
    ap.add_argument("--concurrency", "-c", type=int, default=1000,
                    help="connections interleaved at a time (default 1000)")
    ap.add_argument("--segments", "-d", type=int, default=8,
                    help="server data segments per connection (default 8)")
    ap.add_argument("--rexmit-fraction", type=float, default=1.0,
                    help="fraction of connections with one retransmission (default 1)")
    ap.add_argument("--v6-every", type=int, default=8,
                    help="every Nth connection over IPv6, 0 = none (default 8)")
    ap.add_argument("--seed", "-s", type=int, default=1)
    ap.add_argument("--repeat", "-R", type=int, default=3, help="runs per tool; the best counts")
    ap.add_argument("--out", "-o", type=Path, default=BENCH / "out")
    ap.add_argument("--pcap", type=Path, help="benchmark this capture instead of generating one")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTR",
                    help="run only tools whose name contains SUBSTR (repeatable; "
                         "the read floor always runs)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run before a kill")
    ap.add_argument("--list", action="store_true", help="list the tools and exit")
    args = ap.parse_args(argv)

    if args.list:
        for entry in TOOLS:
            print(f"{entry[0]}: {shlex.join(entry[1])}")
        return 0
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    out = args.out if args.out.is_absolute() else (Path.cwd() / args.out)
    out.mkdir(parents=True, exist_ok=True)

    if args.pcap:
        pcap = args.pcap.resolve()
        if not pcap.exists():
            ap.error(f"{pcap}: no such file")
        meta = {"file": str(pcap), "packets": count_pcap_packets(pcap),
                "bytes": pcap.stat().st_size}
    else:
        exe = build_generator(out)
        pcap, meta = generate_capture(exe, out, args)
    packets = meta.get("packets") or 0

    tools = TOOLS
    if args.only:
        tools = [t for t in TOOLS if (len(t) > 2 and t[2].get("floor"))
                 or any(s in t[0] for s in args.only)]

    rows = measure(tools, pcap, out, args.repeat, args.timeout)
    table = summarize(rows, packets)
    env = _environment()
    print()
    print(f"capture: {pcap} ({packets:,} packets, {meta.get('connections', '?')} connections)")
    print(render_table(table, markdown=False))
    write_results(out, table, meta, args, env)
    print(f"\nwrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
