"""samples/httplog on hand-built HTTP conversations: keep-alive,
pipelining, chunked, HEAD/304, close-delimited bodies, POST, loss,
reordering, retransmission, mid-stream pickup; plus the parser alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "samples" / "httplog")


def req(method="GET", uri="/", host="example.org", body=b"", extra=""):
    head = f"{method} {uri} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def resp(status=200, body=b"", chunked=None, cl=True, extra=""):
    head = f"HTTP/1.1 {status} X\r\n{extra}"
    if chunked is not None:
        head += "Transfer-Encoding: chunked\r\n\r\n"
        out = head.encode()
        for part in chunked:
            out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
        return out + b"0\r\n\r\n"
    if cl:
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def lines(rec):
    return [json.loads(x) for x in rec.stdout.splitlines()]


def short(rec):
    return [
        (
            x["method"],
            x["uri"],
            x["status"],
            x["request_body_len"],
            x["response_body_len"],
            x["lost"],
            x["complete"],
        )
        for x in lines(rec)
    ]


def send_chunks(c, side, data, size=1000):
    for i in range(0, len(data), size):
        c.send(side, data[i : i + size])


def test_keepalive_pipelining_and_framings(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    body = bytes(range(256)) * 40  # 10240 bytes, several segments
    c.send("client", req(uri="/a") + req(uri="/b", method="HEAD"))  # pipelined
    send_chunks(c, "server", resp(body=body) + resp(body=b"", extra="Content-Length: 999\r\n", cl=False))
    c.send("client", req(method="POST", uri="/form", body=b"x=1&y=2"))
    c.send("server", resp(status=201, chunked=[b"hello ", b"world", b"!" * 3000]))
    c.send("client", req(uri="/cached"))
    c.send("server", resp(status=304, cl=False))
    c.send("client", req(uri="/last", extra="Connection: close\r\n"))
    c.send("server", b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\n" + b"z" * 5000)  # until close
    c.close(first="server")
    rec = mosfw_run(cap, plugins=[APP], events=None)
    assert short(rec) == [
        ("GET", "/a", 200, 0, 10240, 0, True),
        ("HEAD", "/b", 200, 0, 0, 0, True),
        ("POST", "/form", 201, 7, 3011, 0, True),
        ("GET", "/cached", 304, 0, 0, 0, True),
        ("GET", "/last", 200, 0, 5000, 0, True),
    ]
    first = lines(rec)[0]
    assert first["host"] == "example.org" and first["client"] == "10.0.0.1:40000"
    assert first["response_content_length"] == 10240 and lines(rec)[1]["response_content_length"] == 999


def test_loss_reordering_and_retransmissions(mosfw_capture, mosfw_run):
    """A body segment the tap never saw (the receiver acks past it): the
    body length stays right, the loss is counted; reordered and
    retransmitted segments change nothing."""
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", req(uri="/big"))
    body = b"B" * 8000
    data = resp(body=body)
    segs = c.send_many("server", [data[i : i + 1000] for i in range(0, len(data), 1000)], emit=False)
    c.deliver(segs, order=[0, 2, 1, 3, 3, 5, 6, 7, 8])  # 4 lost, 1/2 swapped, 3 twice
    c.ack("client")  # the client got everything: gives segment 4 up
    c.send("client", req(uri="/next"))
    c.send("server", resp(body=b"n" * 10))
    rec = mosfw_run(cap, plugins=[APP], events=None)
    assert short(rec) == [
        ("GET", "/big", 200, 0, 8000, 1000, True),
        ("GET", "/next", 200, 0, 10, 0, True),
    ]


def test_loss_in_headers_resynchronises(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", req(uri="/one"))
    c.send("server", resp(body=b"1" * 100)[:20], emit=False)  # the response head: lost
    c.send("server", resp(body=b"1" * 100)[20:])
    c.ack("client")
    c.send("client", req(uri="/two"))
    c.send("server", resp(body=b"2" * 50))
    c.close()
    rec = mosfw_run(cap, plugins=[APP], events=None)
    # /one's response head was lost: /one is reported without a response
    # (with the lost bytes), /two is intact
    assert short(rec) == [("GET", "/one", None, 0, None, 20, False), ("GET", "/two", 200, 0, 50, 0, True)]


def test_midstream_response_without_request(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.midstream()
    c.send("server", resp(body=b"r" * 30))
    rec = mosfw_run(cap, plugins=[APP], events=None)
    assert short(rec) == [(None, None, 200, None, 30, 0, False)]


def test_request_without_response_at_the_end(mosfw_capture, mosfw_run):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", req(uri="/slow"))
    c.send("server", resp(body=b"s" * 100)[:60])  # cut: the capture ends
    rec = mosfw_run(cap, plugins=[APP], events=None)
    head = len(resp(body=b"s" * 100)) - 100
    assert short(rec) == [("GET", "/slow", 200, 0, 60 - head, 0, False)]


def test_log_file_and_summary_options(mosfw_capture, mosfw_run, tmp_path):
    cap = mosfw_capture()
    c = cap.conversation()
    c.handshake()
    c.send("client", req())
    c.send("server", resp(body=b"ok"))
    log = tmp_path / "http.log"
    rec = mosfw_run(cap, plugins=[APP], events=None, options={"http_log": str(log), "http_summary": True})
    assert rec.stdout == ""
    assert json.loads(log.read_text())["status"] == 200


@pytest.mark.parametrize("cut", [1, 7, 19, 33])
def test_parser_independent_of_segmentation(cut):
    """The same bytes in any segmentation parse the same."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("httplog_app", ROOT / "samples/httplog/app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    data = resp(chunked=[b"ab", b"c" * 40]) + resp(body=b"q" * 9) + resp(status=204, cl=False)
    p = mod.HttpParser(False)
    out = []
    for i in range(0, len(data), cut):
        out += p.feed(data[i : i + cut], 0, 0.0)
    assert [(m.status, m.body_len, m.complete) for m in out] == [
        (200, 42, True),
        (200, 9, True),
        (204, 0, True),
    ]


def test_bundled_capture_with_loss(mosfw_run):
    """tests/data/http-loss.pcap (curl vs nginx, 5% loss after the tap, v4
    and v6): the four downloads, each once, with their sizes (tshark's
    http fields on this file give the same, see test_httplog_real.py for
    the comparison on a fresh capture)."""
    rec = mosfw_run(ROOT / "tests" / "data" / "http-loss.pcap", plugins=[APP], events=None)
    got = sorted(
        (
            x["uri"],
            x["status"],
            x["response_body_len"],
            x["response_content_length"],
            x["lost"],
            x["complete"],
        )
        for x in lines(rec)
    )
    assert got == [(f"/f{n}.bin", 200, n, n, 0, True) for n in (20000, 30000, 50000, 80000)]
    assert rec.stats.rexmits > 0
