"""Real-traffic test helpers: two network namespaces, a web server, curl
clients, a tcpdump capture, and independent oracles (tshark, capinfos).

Nothing here needs mosfw; the last section runs ``python -m mosfw run -p
eventlog`` on a capture and summarises its JSON lines for comparison with
the oracles.

Typical use::

    ok, why = can_use_netns()
    if not ok:
        pytest.skip(why)
    with netpair() as net:
        net.serve_files({"a.bin": 100_000})            # nginx, or python http.server
        net.add_random_drop(5, side="both")            # nftables, after the tap
        with net.capture(pcap):                        # tcpdump on the server veth
            results = net.fetch(net.urls(["a.bin"] * 4, family=6), parallel=2)
    print(tshark_syn_count(pcap), tshark_rexmit_count(pcap))

Every namespace, interface, process and file belongs to one ``NetPair``;
its teardown kills its processes by PID and deletes its namespaces, also
when the body raised. Names are unique per process and per pair
(``mf<pid>x<n>s`` / ``...c``) so parallel runs do not clash. Every
subprocess runs with a bounded timeout.

Facts this relies on are in /work/shared/TESTING.md (offloads off, capture
with --immediate-mode and a large buffer, nft ingress drops happen after
the tap so the capture holds originals and retransmissions, tbf drops on
the server's egress happen before the tap so the capture has holes).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# --------------------------------------------------------------------------
# small process helpers

DEFAULT_TIMEOUT = 20.0

_counter = itertools.count()


def _run(
    argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, check: bool = True, **kw
) -> subprocess.CompletedProcess:
    """subprocess.run with captured text output and a timeout, always."""
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("text", True)
    try:
        cp = subprocess.run(list(argv), timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"timed out after {timeout}s: {' '.join(map(str, argv))}") from e
    if check and cp.returncode != 0:
        raise RuntimeError(
            f"command failed (rc={cp.returncode}): {' '.join(map(str, argv))}\n"
            f"stdout: {(cp.stdout or '')[-2000:]}\nstderr: {(cp.stderr or '')[-2000:]}"
        )
    return cp


def _stop_pid(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Stop one process we started, by its PID: sig, wait, then SIGKILL."""
    if proc.poll() is not None:
        return
    try:
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.kill(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# --------------------------------------------------------------------------
# can we do this here?

REQUIRED_TOOLS = ("ip", "ss", "tcpdump", "curl", "tshark", "capinfos")


def can_use_netns(tools: Iterable[str] = REQUIRED_TOOLS) -> tuple[bool, str]:
    """(True, "") when namespaces can be made and the tools exist, else
    (False, reason). Tries to make (and delete) a throwaway namespace,
    which is the only reliable test for the needed privileges."""
    if not sys.platform.startswith("linux"):
        return False, f"network namespaces need Linux (platform is {sys.platform})"
    if os.geteuid() != 0:
        return False, f"network namespaces need root (euid is {os.geteuid()})"
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        return False, "missing tools: " + ", ".join(missing)
    name = f"mf{os.getpid()}probe{next(_counter)}"
    try:
        cp = _run(["ip", "netns", "add", name], timeout=10, check=False)
        if cp.returncode != 0:
            return False, f"`ip netns add` failed: {cp.stderr.strip()}"
        cp = _run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], timeout=10, check=False)
        if cp.returncode != 0:
            return False, f"`ip netns exec` failed: {cp.stderr.strip()}"
    except (OSError, RuntimeError) as e:
        return False, f"cannot use ip netns: {e}"
    finally:
        _run(["ip", "netns", "del", name], timeout=10, check=False)
    return True, ""


def have_server() -> tuple[bool, str]:
    """Which HTTP server serve_files() will use: nginx if present, else
    python's http.server (always available)."""
    if shutil.which("nginx"):
        return True, "nginx"
    return True, "python-http.server"


# --------------------------------------------------------------------------
# the namespace pair


@dataclass
class FetchResult:
    url: str
    ok: bool
    http_code: int
    size: int
    seconds: float
    error: str = ""


@dataclass
class CaptureStats:
    pcap: Path
    captured: int | None = None
    received_by_filter: int | None = None
    dropped_by_kernel: int | None = None
    stderr: str = ""


@dataclass
class NetPair:
    """Two namespaces joined by one veth pair.

    srv_ns/cli_ns: namespace names; srv_if/cli_if: the veth end in each;
    srv4/cli4/srv6/cli6: addresses; workdir: a 0755 temp dir (docroot,
    server config, logs) removed on teardown.
    """

    tag: str
    octet: int
    srv_ns: str
    cli_ns: str
    srv_if: str
    cli_if: str
    srv4: str
    cli4: str
    srv6: str
    cli6: str
    workdir: Path
    port: int = 8080
    server_kind: str = ""
    _procs: list = field(default_factory=list)
    _ns_made: list = field(default_factory=list)

    # -- running things inside ------------------------------------------------
    def ns(self, side: str) -> str:
        return {"server": self.srv_ns, "client": self.cli_ns}[side]

    def ifname(self, side: str) -> str:
        return {"server": self.srv_if, "client": self.cli_if}[side]

    def run_in(
        self, side: str, argv: Sequence[str], timeout: float = DEFAULT_TIMEOUT, check: bool = True, **kw
    ) -> subprocess.CompletedProcess:
        return _run(["ip", "netns", "exec", self.ns(side), *argv], timeout=timeout, check=check, **kw)

    def popen_in(self, side: str, argv: Sequence[str], **kw) -> subprocess.Popen:
        """Start a long-running process in a namespace; it is tracked and
        stopped by PID on teardown. (`ip netns exec` execs the command, so
        the PID is the command's own.)"""
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(side), *argv], **kw)
        self._procs.append(p)
        return p

    # -- network conditions ---------------------------------------------------
    def add_random_drop(self, percent: float, side: str = "server") -> None:
        """Drop `percent` % of TCP packets at the ingress hook of the
        server's veth (side="server"), the client's ("client"), or both.
        The tap sees each packet before the drop, so the capture holds
        both the lost original and its retransmission. Dropping at the
        client's ingress loses server data (data retransmissions); at the
        server's ingress, client ACKs/requests/SYNs/FINs."""
        permille = round(percent * 10)
        if not 0 <= permille <= 1000:
            raise ValueError(f"percent out of range: {percent}")
        sides = ["server", "client"] if side == "both" else [side]
        for s in sides:
            rules = (
                "table netdev mfloss {\n"
                f'  chain in {{ type filter hook ingress device "{self.ifname(s)}" priority 0; '
                "policy accept;\n"
                f"    meta l4proto tcp numgen random mod 1000 < {permille} drop\n"
                "  }\n}\n"
            )
            self.run_in(s, ["nft", "-f", "-"], input=rules, timeout=10)

    def add_tbf(
        self, rate: str = "40mbit", burst: str = "12kb", limit: str = "24kb", side: str = "server"
    ) -> None:
        """A token bucket on `side`'s veth egress: congestion drops
        happen before the tap on that interface."""
        self.run_in(
            side,
            [
                "tc",
                "qdisc",
                "add",
                "dev",
                self.ifname(side),
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                burst,
                "limit",
                limit,
            ],
            timeout=10,
        )

    # -- server ---------------------------------------------------------------
    def make_files(self, files: dict[str, int] | Iterable[int]) -> dict[str, int]:
        """Write random files into the docroot. A dict maps name -> size;
        an iterable of sizes is named f<size>.bin. Returns name -> size."""
        if not isinstance(files, dict):
            files = {f"f{n}.bin": n for n in files}
        docroot = self.workdir / "www"
        docroot.mkdir(mode=0o755, exist_ok=True)
        os.chmod(docroot, 0o755)
        for name, size in files.items():
            p = docroot / name
            if not p.exists() or p.stat().st_size != size:
                p.write_bytes(os.urandom(size))
            os.chmod(p, 0o644)
        return dict(files)

    def serve_files(
        self, files: dict[str, int] | Iterable[int], kind: str | None = None, timeout: float = 10.0
    ) -> dict[str, int]:
        """Make the files and start a server on srv4 and srv6, port
        self.port: nginx (worker user nobody) when installed, else
        `python -m http.server` (kind="python" forces it). Waits until
        it listens. Returns name -> size."""
        made = self.make_files(files)
        if kind is None:
            kind = "nginx" if shutil.which("nginx") else "python"
        if kind == "nginx":
            self._start_nginx()
        else:
            self._start_python_server()
        self.server_kind = kind
        self._wait_listening(timeout)
        return made

    def _start_nginx(self) -> None:
        w = self.workdir
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (w / "tmp" / d).mkdir(parents=True, exist_ok=True)
        conf = f"""
daemon off;
master_process on;
worker_processes 1;
user nobody nogroup;
pid {w}/nginx.pid;
error_log {w}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {w}/tmp/body;
    proxy_temp_path {w}/tmp/proxy;
    fastcgi_temp_path {w}/tmp/fastcgi;
    uwsgi_temp_path {w}/tmp/uwsgi;
    scgi_temp_path {w}/tmp/scgi;
    default_type application/octet-stream;
    keepalive_timeout 10;
    server {{
        listen {self.srv4}:{self.port};
        listen [{self.srv6}]:{self.port};
        root {w}/www;
    }}
}}
"""
        (w / "nginx.conf").write_text(conf)
        self.run_in(
            "server",
            [
                "nginx",
                "-t",
                "-q",
                "-p",
                str(w),
                "-c",
                str(w / "nginx.conf"),
                "-e",
                str(w / "nginx-error.log"),
            ],
            timeout=10,
        )
        with open(w / "nginx-stderr.log", "wb") as log:
            self.popen_in(
                "server",
                ["nginx", "-p", str(w), "-c", str(w / "nginx.conf"), "-e", str(w / "nginx-error.log")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _start_python_server(self) -> None:
        # "::" with IPV6_V6ONLY=0 (http.server's dual-stack default) serves both.
        with open(self.workdir / "httpserver.log", "wb") as log:
            self.popen_in(
                "server",
                [
                    sys.executable,
                    "-m",
                    "http.server",
                    "--bind",
                    "::",
                    "--directory",
                    str(self.workdir / "www"),
                    str(self.port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in self._procs:
                if p.poll() is not None:
                    raise RuntimeError(f"server exited early (rc={p.returncode}); see {self.workdir}")
            cp = self.run_in("server", ["ss", "-Hltn", f"sport = :{self.port}"], timeout=5, check=False)
            if cp.stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"server not listening on port {self.port} after {timeout}s")

    def url(self, name: str, family: int = 4) -> str:
        host = self.srv4 if family == 4 else f"[{self.srv6}]"
        return f"http://{host}:{self.port}/{name}"

    def urls(self, names: Iterable[str], family: int = 4) -> list[str]:
        return [self.url(n, family) for n in names]

    # -- clients --------------------------------------------------------------
    def fetch(
        self, urls: Sequence[str], parallel: int = 1, timeout: float = 30.0, connection_close: bool = False
    ) -> list[FetchResult]:
        """One curl process (so one TCP connection) per URL, run in the
        client namespace, `parallel` at a time. Returns results in URL
        order; a failed fetch is ok=False, not an exception."""

        def one(u: str) -> FetchResult:
            argv = [
                "curl",
                "-sS",
                "-g",
                "-o",
                "/dev/null",
                "--max-time",
                str(timeout),
                "-w",
                "%{http_code} %{size_download} %{time_total}",
            ]
            if connection_close:
                argv += ["-H", "Connection: close"]
            argv.append(u)
            try:
                cp = self.run_in("client", argv, timeout=timeout + 5, check=False)
            except RuntimeError as e:
                return FetchResult(u, False, 0, 0, timeout, str(e))
            try:
                code, size, secs = cp.stdout.split()
                code, size, secs = int(code), int(size), float(secs)
            except ValueError:
                code, size, secs = 0, 0, 0.0
            return FetchResult(u, cp.returncode == 0 and code == 200, code, size, secs, cp.stderr.strip())

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as ex:
            return list(ex.map(one, urls))

    # -- capture --------------------------------------------------------------
    @contextlib.contextmanager
    def capture(
        self, pcap: str | os.PathLike, side: str = "server", linger: float = 1.0, bpf: str | None = None
    ) -> Iterator[CaptureStats]:
        """tcpdump on `side`'s veth, started (and listening) before the
        body and stopped with SIGINT `linger` seconds after it. The yielded
        CaptureStats is filled in from tcpdump's summary on exit."""
        pcap = Path(pcap)
        errlog = self.workdir / f"tcpdump-{next(_counter)}.err"
        argv = [
            "tcpdump",
            "-i",
            self.ifname(side),
            "--immediate-mode",
            "-B",
            "65536",
            "-n",
            "-Z",
            "root",
            "-w",
            str(pcap),
        ]
        if bpf:
            argv.append(bpf)
        with open(errlog, "wb") as errf:
            proc = self.popen_in(side, argv, stdout=subprocess.DEVNULL, stderr=errf, stdin=subprocess.DEVNULL)
        stats = CaptureStats(pcap)
        deadline = time.monotonic() + 10
        while b"listening on" not in errlog.read_bytes():
            if proc.poll() is not None:
                raise RuntimeError(f"tcpdump exited: {errlog.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError("tcpdump did not start listening within 10s")
            time.sleep(0.02)
        try:
            yield stats
        finally:
            time.sleep(linger)
            _stop_pid(proc, signal.SIGINT, timeout=10)
            text = errlog.read_text(errors="replace")
            stats.stderr = text
            for attr, pat in (
                ("captured", r"(\d+) packets? captured"),
                ("received_by_filter", r"(\d+) packets? received by filter"),
                ("dropped_by_kernel", r"(\d+) packets? dropped by kernel"),
            ):
                m = re.search(pat, text)
                if m:
                    setattr(stats, attr, int(m.group(1)))

    # -- teardown -------------------------------------------------------------
    def close(self) -> None:
        for p in reversed(self._procs):
            _stop_pid(p)
        self._procs.clear()
        for ns in self._ns_made:
            # Anything still running inside a namespace we made is ours
            # (a server's worker, a stray curl): stop those by PID.
            cp = _run(["ip", "netns", "pids", ns], timeout=10, check=False)
            for tok in (cp.stdout or "").split():
                try:
                    os.kill(int(tok), signal.SIGKILL)
                except (ValueError, ProcessLookupError, PermissionError):
                    pass
            _run(["ip", "netns", "del", ns], timeout=10, check=False)
        self._ns_made.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def offloads_off_command(dev: str) -> list[str]:
    """ethtool turning off segmentation/receive offloads and checksum
    offload on dev: the capture then holds the packets as they crossed
    the link (no 64 KB TSO/GRO super-frames, real checksums)."""
    return ["ethtool", "-K", dev, "tso", "off", "gso", "off", "gro", "off", "tx", "off", "rx", "off"]


@contextlib.contextmanager
def netpair(offloads_off: bool = True) -> Iterator[NetPair]:
    """Make a NetPair (namespaces, veth, addresses, lo up, offloads off)
    and tear it all down afterwards, also on failure."""
    n = next(_counter)
    pid = os.getpid()
    tag = f"mf{pid}x{n}"
    octet = (pid * 7 + n) % 250 + 1
    workdir = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
    os.chmod(workdir, 0o755)
    net = NetPair(
        tag=tag,
        octet=octet,
        srv_ns=f"{tag}s",
        cli_ns=f"{tag}c",
        srv_if=f"{tag}s"[-15:],
        cli_if=f"{tag}c"[-15:],
        srv4=f"10.77.{octet}.1",
        cli4=f"10.77.{octet}.2",
        srv6=f"fd77:0:0:{octet}::1",
        cli6=f"fd77:0:0:{octet}::2",
        workdir=workdir,
    )
    try:
        for ns in (net.srv_ns, net.cli_ns):
            _run(["ip", "netns", "add", ns], timeout=10)
            net._ns_made.append(ns)
        # Made directly inside the namespaces: no name ever lives in the root ns.
        _run(
            [
                "ip",
                "link",
                "add",
                net.srv_if,
                "netns",
                net.srv_ns,
                "type",
                "veth",
                "peer",
                "name",
                net.cli_if,
                "netns",
                net.cli_ns,
            ],
            timeout=10,
        )
        for side, a4, a6 in (("server", net.srv4, net.srv6), ("client", net.cli4, net.cli6)):
            ifc = net.ifname(side)
            net.run_in(side, ["ip", "link", "set", "lo", "up"], timeout=10)
            net.run_in(side, ["ip", "addr", "add", f"{a4}/24", "dev", ifc], timeout=10)
            net.run_in(side, ["ip", "addr", "add", f"{a6}/64", "dev", ifc, "nodad"], timeout=10)
            if offloads_off:
                net.run_in(side, offloads_off_command(ifc), timeout=10, check=False)
            net.run_in(side, ["ip", "link", "set", ifc, "up"], timeout=10)
        # Wait for the link (and IPv6 neighbour machinery) to come up.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            cp = (
                net.run_in("client", ["ping", "-c", "1", "-W", "1", net.srv4], timeout=5, check=False)
                if shutil.which("ping")
                else None
            )
            if cp is None or cp.returncode == 0:
                break
            time.sleep(0.05)
        yield net
    finally:
        net.close()


# --------------------------------------------------------------------------
# a whole scenario


@dataclass
class Scenario:
    pcap: Path
    fetches: list[FetchResult]
    capture: CaptureStats
    wall_s: float
    server_kind: str


def run_http_scenario(
    pcap: str | os.PathLike,
    plan: Sequence[tuple[int, int]],
    drop_percent: float = 0.0,
    drop_side: str = "both",
    tbf: dict | None = None,
    parallel: int = 4,
    server: str | None = None,
    fetch_timeout: float = 30.0,
) -> Scenario:
    """One capture of HTTP fetches: `plan` is a list of (size, family)
    pairs, one TCP connection each, run `parallel` at a time in that
    order. drop_percent>0 adds the nftables random drop on drop_side
    ("server", "client" or "both"); tbf (kwargs of NetPair.add_tbf) adds
    a token bucket. Returns the fetch results and capture stats."""
    t0 = time.monotonic()
    sizes = sorted({s for s, _ in plan})
    with netpair() as net:
        net.serve_files(sizes, kind=server)
        if drop_percent:
            net.add_random_drop(drop_percent, side=drop_side)
        if tbf is not None:
            net.add_tbf(**tbf)
        urls = [net.url(f"f{s}.bin", fam) for s, fam in plan]
        with net.capture(pcap) as cap:
            results = net.fetch(urls, parallel=parallel, timeout=fetch_timeout)
        kind = net.server_kind
    return Scenario(Path(pcap), results, cap, time.monotonic() - t0, kind)


# --------------------------------------------------------------------------
# oracles on a capture file (independent of mosfw)


def _tshark_fields(
    pcap, display_filter: str, fields: Sequence[str], timeout: float = 60.0
) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    cp = _run(argv, timeout=timeout)
    return [line.split("\t") for line in cp.stdout.splitlines() if line.strip()]


def tshark_syn_count(pcap) -> int:
    """Connections a client opened: distinct tcp.stream values holding a
    client SYN (SYN without ACK), so retransmitted SYNs count once."""
    rows = _tshark_fields(pcap, "tcp.flags.syn==1 && tcp.flags.ack==0", ["tcp.stream"])
    return len({r[0] for r in rows})


def tshark_rexmit_frames(pcap) -> list[int]:
    """Frame numbers tshark flags `retransmission || out_of_order`."""
    rows = _tshark_fields(pcap, "tcp.analysis.retransmission || tcp.analysis.out_of_order", ["frame.number"])
    return [int(r[0]) for r in rows]


def tshark_rexmit_count(pcap) -> int:
    """Packets tshark flags tcp.analysis.retransmission or out_of_order
    (on a veth, tshark calls many real retransmissions out-of-order;
    see TESTING.md)."""
    return len(tshark_rexmit_frames(pcap))


def tshark_rexmit_packets(pcap) -> list[tuple[float, str, int]]:
    """(time_epoch, sender "IP:PORT", tcp.len) of every packet tshark flags
    `retransmission || out_of_order`: for per-direction figures and for
    matching against another tool's list by timestamp."""
    rows = _tshark_fields(
        pcap,
        "tcp.analysis.retransmission || tcp.analysis.out_of_order",
        ["frame.time_epoch", "ip.src", "ipv6.src", "tcp.srcport", "tcp.len"],
    )
    out = []
    for r in rows:
        r += [""] * (5 - len(r))
        ts, v4, v6, port, ln = r[:5]
        host = v4 if v4 else f"[{v6}]"
        out.append((float(ts), f"{host}:{port}", int(ln or 0)))
    return out


def tshark_rexmit_breakdown(pcap) -> dict[str, int]:
    """Counts per tshark analysis flag, for diagnostics."""
    out = {}
    for name in (
        "retransmission",
        "fast_retransmission",
        "spurious_retransmission",
        "out_of_order",
        "lost_segment",
        "keep_alive",
    ):
        out[name] = len(_tshark_fields(pcap, f"tcp.analysis.{name}", ["frame.number"]))
    return out


@dataclass
class Conversation:
    a: str  # "IP:PORT" as tshark prints it (the side it lists first)
    b: str
    frames_b_to_a: int
    frames_a_to_b: int
    frames: int
    start: float
    duration: float


def _split_endpoint(ep: str) -> str:
    """tshark prints 'fd77::1:8080' for IPv6; normalise to '[fd77::1]:8080'."""
    host, _, port = ep.rpartition(":")
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return ep


def tshark_conversations(pcap, timeout: float = 60.0) -> list[Conversation]:
    """Parse `tshark -q -z conv,tcp`. Endpoints normalised to "IP:PORT"
    ("[v6]:PORT" for IPv6)."""
    cp = _run(["tshark", "-n", "-r", str(pcap), "-q", "-z", "conv,tcp"], timeout=timeout)
    convs = []
    num = r"(\d+)\s+(\d+(?:\.\d+)?\s*(?:bytes|[kKMGT]B)?)"
    line_re = re.compile(
        r"^(\S+)\s+<->\s+(\S+)\s+" + num + r"\s+" + num + r"\s+" + num + r"\s+([\d.]+)\s+([\d.]+)\s*$"
    )
    for line in cp.stdout.splitlines():
        m = line_re.match(line.strip())
        if not m:
            continue
        convs.append(
            Conversation(
                a=_split_endpoint(m.group(1)),
                b=_split_endpoint(m.group(2)),
                frames_b_to_a=int(m.group(3)),
                frames_a_to_b=int(m.group(5)),
                frames=int(m.group(7)),
                start=float(m.group(9)),
                duration=float(m.group(10)),
            )
        )
    return convs


def capinfos_count(pcap, timeout: float = 30.0) -> int:
    """Packet count from `capinfos -M -c`."""
    cp = _run(["capinfos", "-M", "-c", str(pcap)], timeout=timeout)
    m = re.search(r"Number of packets:\s*(\d+)", cp.stdout)
    if not m:
        raise RuntimeError(f"unexpected capinfos output: {cp.stdout!r}")
    return int(m.group(1))


def oracle_summary(pcap) -> dict:
    return {
        "packets": capinfos_count(pcap),
        "client_syn_connections": tshark_syn_count(pcap),
        "rexmit": tshark_rexmit_count(pcap),
        "conversations": len(tshark_conversations(pcap)),
        "breakdown": tshark_rexmit_breakdown(pcap),
    }


# --------------------------------------------------------------------------
# mosfw's eventlog on a capture

REPO_ROOT = Path(__file__).resolve().parent.parent


def mosfw_available(timeout: float = 30.0) -> tuple[bool, str]:
    """(True, "") when `python -m mosfw run --help` works here."""
    try:
        cp = _run(
            [sys.executable, "-m", "mosfw", "run", "--help"], timeout=timeout, check=False, cwd=REPO_ROOT
        )
    except RuntimeError as e:
        return False, str(e)
    if cp.returncode != 0:
        return False, ("`python -m mosfw run --help` failed: " + (cp.stderr or cp.stdout).strip()[-500:])
    return True, ""


def mosfw_eventlog(pcap, extra_args: Sequence[str] = (), timeout: float = 120.0) -> list[dict]:
    """Run `python -m mosfw run -r PCAP -p eventlog` and return its JSON
    lines as dicts (raises with stderr on failure or a bad line)."""
    argv = [sys.executable, "-m", "mosfw", "run", "-r", str(pcap), "-p", "eventlog", *extra_args]
    cp = _run(argv, timeout=timeout, check=True, cwd=REPO_ROOT)
    events = []
    for i, line in enumerate(cp.stdout.splitlines(), 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"eventlog line {i} is not JSON: {line[:200]!r} ({e})") from None
    return events


@dataclass
class EventSummary:
    counts: collections.Counter  # event name -> count
    client_starts: collections.Counter  # (client, server) -> conn_start side=client count
    midstream_client_starts: int
    ends: collections.Counter  # (client, server) -> conn_end count
    end_reasons: collections.Counter
    rexmit: int
    rexmit_by_side: collections.Counter
    any_starts: set  # flows with a CONN_START on either side

    @property
    def connections(self) -> int:
        """Distinct flows with a client-side CONN_START."""
        return len(self.client_starts)

    def bad_ends(self) -> dict:
        """Flows that started (either side) but have != 1 CONN_END:
        flow -> number of CONN_END events."""
        return {k: self.ends.get(k, 0) for k in self.any_starts if self.ends.get(k, 0) != 1}


def summarize_events(events: Iterable[dict]) -> EventSummary:
    counts: collections.Counter = collections.Counter()
    client_starts: collections.Counter = collections.Counter()
    any_starts: set = set()
    ends: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    rex_side: collections.Counter = collections.Counter()
    midstream = 0
    for ev in events:
        name = ev.get("event")
        counts[name] += 1
        key = (ev.get("client"), ev.get("server"))
        if name == "conn_start":
            any_starts.add(key)
            if ev.get("side") == "client":
                client_starts[key] += 1
                if ev.get("midstream"):
                    midstream += 1
        elif name == "conn_end":
            ends[key] += 1
            reasons[ev.get("reason")] += 1
        elif name == "rexmit":
            rex_side[ev.get("side")] += 1
    return EventSummary(
        counts, client_starts, midstream, ends, reasons, counts["rexmit"], rex_side, any_starts
    )
