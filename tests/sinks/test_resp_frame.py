"""The Redis sink's C framer (plugins/redis_sink/native/resp_frame.c)
against its Python packer, and the unsplit chunks BufferedSink hands a
raw sink (no server needed: what goes on the wire, byte for byte)."""

from __future__ import annotations

import random

import pytest

from mosfw.records import SinkURL
from mosfw.records.base import _chunks, _raw_chunks

redis_pkg = pytest.importorskip("mosfw_redis", reason="the Redis sink package is not installed (make build)")
if redis_pkg._lib is None:
    pytest.skip("the Redis sink's C part is not built (make build)", allow_module_level=True)


class Wire:
    """A socket that keeps what is sent and answers every XADD."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.pending = 0
        self.writes = 0

    def sendall(self, data) -> None:
        self.writes += 1
        self.sent += bytes(data)
        self.pending += bytes(data).count(b"\r\nXADD\r\n")

    def recv(self, _n: int) -> bytes:
        n, self.pending = self.pending, 0
        return b"$15\r\n1700000000000-0\r\n" * n


def _lines(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    sizes = [0, 1, 9, 10, 99, 100, 999, 5000]
    return [b'{"uid":"C%d","x":"%s"}' % (i, b"y" * rnd.choice(sizes)) for i in range(n)]


@pytest.mark.parametrize("query", ["", "&maxlen=1000", "&piece=7"])
def test_c_framing_is_the_python_packing(query):
    lines = _lines(1234, 1)
    data = b"".join(x + b"\n" for x in lines)
    c_sink = redis_pkg.RedisSink(SinkURL("redis://127.0.0.1:1/0?stream=s-{stream}" + query))
    py_sink = redis_pkg.RedisSink(SinkURL("redis://127.0.0.1:1/0?stream=s-{stream}&c=0" + query))
    assert c_sink.raw and not py_sink.raw
    c_sink._sock, py_sink._sock = Wire(), Wire()
    for chunk, _n in _raw_chunks([("conn", data, len(lines))], 1000, c_sink.lines_end):
        c_sink.send_raw(chunk)
    for chunk, _n in _chunks([("conn", data, -1)], 1000):
        py_sink.send_batch(chunk)
    assert bytes(c_sink._sock.sent) == bytes(py_sink._sock.sent)
    assert c_sink._sock.sent.count(b"\r\nXADD\r\n") == len(lines)


def test_raw_chunks_cut_at_line_ends_without_copying():
    lines = _lines(2500, 2)
    a = b"".join(x + b"\n" for x in lines[:1500])
    b = b"".join(x + b"\n" for x in lines[1500:])
    sink = redis_pkg.RedisSink(SinkURL("redis://127.0.0.1:1/0"))
    got = list(_raw_chunks([("conn", a, 1500), ("http", b, 1000)], 1000, sink.lines_end))
    assert [n for _, n in got] == [1000, 1000, 500]
    pieces = [(s, k) for c, _ in got for s, _, k in c]
    assert pieces == [("conn", 1000), ("conn", 500), ("http", 500), ("http", 500)]
    joined = b"".join(bytes(d) for c, _ in got for _, d, _ in c)
    assert joined == a + b
    assert all(isinstance(d, memoryview) for c, _ in got for _, d, _ in c)
    assert sink.lines_end(a, 5000) == (len(a), 1500)


def test_pieces_span_the_small_batches_a_tracker_hands_over():
    """A tracker hands over a few records a burst: the C path still writes
    pieces of ``piece`` records across them (one write and one wait for
    replies a piece), as the Python packer does, not one a batch."""
    lines = _lines(600, 3)
    batch = [("conn", b"".join(x + b"\n" for x in lines[i : i + 3]), 3) for i in range(0, 600, 3)]
    c_sink = redis_pkg.RedisSink(SinkURL("redis://127.0.0.1:1/0"))
    py_sink = redis_pkg.RedisSink(SinkURL("redis://127.0.0.1:1/0?c=0"))
    c_sink._sock, py_sink._sock = Wire(), Wire()
    for chunk, _n in _raw_chunks(batch, 1000, c_sink.lines_end):
        c_sink.send_raw(chunk)
    for chunk, _n in _chunks(batch, 1000):
        py_sink.send_batch(chunk)
    assert bytes(c_sink._sock.sent) == bytes(py_sink._sock.sent)
    assert c_sink._sock.writes == py_sink._sock.writes == 3  # 250 + 250 + 100
