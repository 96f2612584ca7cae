"""BufferedSink's bookkeeping (mosfw.records.base) with a fake server in
the test process: records counted only near the buffer bound, exactly
when they are dropped; and the sink classes found from entry_points.txt
(mosfw.records.entry_points) without importlib.metadata."""

from __future__ import annotations

import sys
import threading

from mosfw.records import BufferedSink, SinkURL
from mosfw.records.entry_points import entry_point_value, load


class _Fake(BufferedSink):
    scheme = "fake"

    def __init__(self, url: SinkURL) -> None:
        super().__init__(url)
        self.got: list[bytes] = []
        self.up = threading.Event()
        self.up.set()

    def connect(self) -> None:
        pass

    def send_batch(self, batch) -> None:
        if not self.up.is_set():
            raise ConnectionError("down")
        for _, lines in batch:
            self.got += lines


def _lines(a: int, b: int) -> bytes:
    return b"".join(b'{"n":%d}\n' % i for i in range(a, b))


def test_every_record_sent_in_order_and_counted():
    sink = _Fake(SinkURL("fake://x?batch=7&linger=0.01"))
    sink.open()
    for i in range(0, 1000, 13):
        sink.write("s", _lines(i, min(i + 13, 1000)))
    sink.write("s", b"")  # nothing
    sink.close(5.0)
    assert sink.got == _lines(0, 1000).splitlines()
    assert sink.lost == 0
    assert sink._held == sink._sending == sink._unsized == 0


def test_records_dropped_while_the_server_is_away_are_counted_exactly():
    """buffer=50 records: writes of 20 records each; the server away
    (retry=0): the first chunk fails and is lost, and every write that
    finds no room is dropped whole; lost + sent is every record."""
    sink = _Fake(SinkURL("fake://x?buffer=50&retry=0&linger=0.01"))
    sink.up.clear()
    sink.open()
    for i in range(0, 400, 20):
        sink.write("s", _lines(i, i + 20))
    sink.close(1.0)
    assert sink.lost + len(sink.got) == 400
    assert sink.lost >= 400 - 50


def test_a_write_past_the_bound_waits_for_room_while_the_server_is_up():
    """buffer=30: 300 records in writes of 25 while the server is up:
    nothing is dropped (the writer waits for the sender)."""
    sink = _Fake(SinkURL("fake://x?buffer=30&linger=0.01"))
    sink.open()
    for i in range(0, 300, 25):
        sink.write("s", _lines(i, i + 25))
    sink.close(5.0)
    assert sink.got == _lines(0, 300).splitlines() and sink.lost == 0


def test_entry_points_from_the_dist_info_folders(tmp_path, monkeypatch):
    first = tmp_path / "a"
    second = tmp_path / "b"
    for d, value in ((first, "json:dumps"), (second, "json:loads")):
        info = d / "mosfw_fakesink-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "entry_points.txt").write_text(
            f"[other]\nfake = x:y\n\n[mosfw.sinks]\n# comment\nfake = {value}\n"
        )
    (second / "other_dist-2.0.dist-info").mkdir()
    (second / "other_dist-2.0.dist-info" / "entry_points.txt").write_text(
        "[mosfw.sinks]\nmore = os.path:join\n"
    )
    monkeypatch.setattr(sys, "path", [str(tmp_path / "missing"), str(first), str(second)])
    # the first copy of a distribution on the path wins, as with importlib.metadata
    assert entry_point_value("mosfw.sinks", "fake") == "json:dumps"
    assert entry_point_value("mosfw.sinks", "more") == "os.path:join"
    assert entry_point_value("mosfw.sinks", "none") is None
    assert entry_point_value("other", "fake") == "x:y"
    import json
    import os

    assert load("json:dumps") is json.dumps
    assert load("os:path.join") is os.path.join


def test_the_installed_redis_sink_is_found_as_importlib_metadata_finds_it():
    from importlib import metadata

    eps = {ep.name: ep.value for ep in metadata.entry_points(group="mosfw.sinks")}
    for name, value in eps.items():
        assert entry_point_value("mosfw.sinks", name) == value
