"""samples/httplog on a real capture of curl against nginx with random
loss, compared with tshark's ``http`` fields: every request and every
response exactly once, with the right status and sizes.

Two network namespaces (tests/realnet.py): nginx in one, curl in the
other, 3% of TCP packets dropped on both veths' ingress (after the tap:
the capture holds originals and retransmissions, so the bytestream is
complete and every retransmission must be absorbed), IPv4 and IPv6, one
connection per fetch plus keep-alive connections carrying several
requests (GET, HEAD, a 404). Skips with the reason where namespaces
cannot be used.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import functools
import operator

import realnet

pytestmark = [pytest.mark.realnet, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SIZES = [0, 1, 1448, 20_000, 300_000, 1_500_000]


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    ok, why = realnet.can_use_netns(realnet.REQUIRED_TOOLS + ("nft", "nginx"))
    if not ok:
        pytest.skip(f"needs network namespaces: {why}")
    pcap = tmp_path_factory.mktemp("httplog-real") / "http-loss.pcap"
    fetched = []
    with realnet.netpair() as net:
        net.serve_files(SIZES, kind="nginx")
        net.add_random_drop(3, side="both")
        with net.capture(pcap):
            # one connection per fetch, v4 and v6
            plan = [net.url(f"f{s}.bin", fam) for s in SIZES for fam in (4, 6)]
            fetched += net.fetch(plan, parallel=4)
            # keep-alive: several requests on one connection each
            for fam in (4, 6):
                urls = [net.url(f"f{s}.bin", fam) for s in (20_000, 1, 300_000)] + [net.url("missing", fam)]
                argv = ["curl", "-sS", "-g", "--max-time", "30"]
                for u in urls:
                    argv += ["-o", "/dev/null", u]
                net.run_in("client", argv, timeout=40, check=False)
                net.run_in(
                    "client",
                    [
                        "curl",
                        "-sS",
                        "-g",
                        "-I",
                        "-o",
                        "/dev/null",
                        "--max-time",
                        "30",
                        net.url("f20000.bin", fam),
                    ],
                    timeout=40,
                    check=False,
                )
    assert all(f.ok for f in fetched), [f for f in fetched if not f.ok]
    return pcap


def tshark_http(pcap):
    """(client port, method, host, uri) per request and (client port,
    status, content length) per response, from tshark's HTTP dissector
    (which reassembles bodies over TCP)."""

    def rows(flt, fields):
        cp = subprocess.run(
            [
                "tshark",
                "-n",
                "-r",
                str(pcap),
                "-Y",
                flt,
                "-T",
                "fields",
                "-E",
                "occurrence=f",
                *functools.reduce(operator.iadd, (["-e", f] for f in fields), []),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return [line.split("\t") for line in cp.stdout.splitlines() if line.strip()]

    reqs = [
        (int(p), m, h, u)
        for p, m, h, u in rows(
            "http.request", ["tcp.srcport", "http.request.method", "http.host", "http.request.uri"]
        )
    ]
    resps = [
        (int(p), int(code), int(cl) if cl else None)
        for p, code, cl in rows(
            "http.response", ["tcp.dstport", "http.response.code", "http.content_length_header"]
        )
    ]
    return reqs, resps


def test_every_request_and_response_once_with_sizes(capture, tmp_path):
    log = tmp_path / "http.jsonl"
    cp = subprocess.run(
        [
            sys.executable,
            "-m",
            "mosfw",
            "run",
            "-q",
            "-r",
            str(capture),
            "-p",
            str(ROOT / "samples" / "httplog"),
            "--http-log",
            str(log),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    ours = [json.loads(x) for x in log.read_text().splitlines()]
    t_reqs, t_resps = tshark_http(capture)
    n_fetch = len(SIZES) * 2 + 2 * 5
    assert len(t_reqs) == len(t_resps) == n_fetch  # the oracle saw everything

    def port(ep):
        return int(ep.rsplit(":", 1)[1])

    our_reqs = [(port(x["client"]), x["method"], x["host"], x["uri"]) for x in ours]
    our_resps = [(port(x["client"]), x["status"], x["response_content_length"]) for x in ours]
    assert collections.Counter(our_reqs) == collections.Counter(t_reqs)
    assert collections.Counter(our_resps) == collections.Counter(t_resps)
    # sizes: the body as delivered is what the headers announced
    for x in ours:
        assert x["complete"] and x["lost"] == 0, x
        if x["method"] == "HEAD":
            assert x["response_body_len"] == 0
        else:
            assert x["response_body_len"] == x["response_content_length"], x
        if x["status"] == 200 and x["method"] == "GET":
            assert x["response_body_len"] == int(x["uri"].split("/f")[-1].split(".")[0])
    # the loss was real: retransmissions in the capture
    assert realnet.tshark_rexmit_count(capture) > 0
