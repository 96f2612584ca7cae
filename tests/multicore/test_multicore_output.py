"""The workers' output streams (mosfw.workers.line_stream): several
processes writing through them into one pipe or one file never split a
line; what follows the last newline waits for the end of its line or for
close; a reader that goes away is reported once, not raised. About 2 s.
"""

from __future__ import annotations

import os
import random
import select

from mosfw.workers import line_stream

WRITERS = 4
LINES = 2000


def _lines(k: int, max_len: int) -> list[str]:
    rnd = random.Random(k)
    return [f"w{k} {i} " + "x" * rnd.randrange(0, max_len) for i in range(LINES)]


def _fork_writers(fd: int, max_len: int) -> list[int]:
    pids = []
    for k in range(WRITERS):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                s = line_stream(fd)
                for line in _lines(k, max_len):
                    s.write(line)  # the newline in a separate write, on purpose
                    s.write("\n")
                s.close()
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    return pids


def _check(text: str, max_len: int) -> None:
    got = text.split("\n")
    assert got[-1] == ""
    expected = sorted(line for k in range(WRITERS) for line in _lines(k, max_len))
    assert sorted(got[:-1]) == expected  # every line whole, none lost or doubled


def _wait_all(pids) -> None:
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(st) == 0


def test_pipe_lines_up_to_pipe_buf_never_interleave():
    r, w = os.pipe()
    max_len = select.PIPE_BUF - 40  # the line, its prefix and newline fit in PIPE_BUF
    pids = _fork_writers(w, max_len)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 1 << 16)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _wait_all(pids)
    _check(b"".join(chunks).decode(), max_len)


def test_file_lines_of_any_length_never_interleave(tmp_path):
    path = tmp_path / "out.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)  # one shared offset, like `> file`
    pids = _fork_writers(fd, 20_000)
    _wait_all(pids)
    os.close(fd)
    _check(path.read_text(), 20_000)


def test_partial_line_waits_for_its_end_or_close(tmp_path):
    path = tmp_path / "p.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    s = line_stream(fd)
    s.write("abc\ndef")
    s.flush()
    assert path.read_text() == "abc\n"  # the partial line is held back
    s.write("ghi")
    s.flush()
    assert path.read_text() == "abc\n"
    s.write("\nend")
    s.close()
    assert path.read_text() == "abc\ndefghi\nend"  # close writes the rest
    os.close(fd)


def test_closed_reader_is_reported_once():
    r, w = os.pipe()
    os.close(r)
    calls = []
    s = line_stream(w, on_broken=lambda: calls.append(1))
    for _ in range(3):
        s.write("x" * 70_000 + "\n")
        s.flush()
    s.close()
    os.close(w)
    assert calls == [1] and s.buffer.raw.broken
