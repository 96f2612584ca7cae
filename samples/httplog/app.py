"""httplog: one line per HTTP/1.x request/response, read from the bytestream.

A passive HTTP logger in the style of mOS's bytestream apps: it
implements ``mosfw_conn_new_data`` (which turns reassembly buffers on),
reads each side's in-order bytes with ``flow.peek(side)`` and parses
them incrementally. Requests (client side) and responses (server side)
are matched in order on each connection (keep-alive and pipelining
included); a transaction is written when its response is complete, or at
the connection's end.

Each JSON line has ``ts`` (request time, or response time when the request
was not seen), ``uid``, ``client``, ``server``, ``method``, ``host``,
``uri``, ``version``, ``status``, ``reason``, ``request_body_len``,
``response_body_len`` (body bytes on the wire, after de-chunking:
``Content-Length`` bodies, chunked bodies, bodies up to the close),
``response_content_length`` (the header, or null), ``lost`` (stream bytes
of this transaction the tap never delivered) and ``complete`` (false for a
request without a response or a response cut by the end of the
connection). Fields not seen are null.

Loss: bytes given up by the engine (a segment the tap never saw, a
buffer overrun) are skipped in bodies with the count kept; inside headers
the parser resynchronises on the next start line.

    mosfw run -r capture.pcap -p samples/httplog [--http-log FILE]

Options: ``--http-log PATH`` (default: stdout), ``--http-summary`` (a
summary line on stderr at the end).
"""

from __future__ import annotations

import collections
import json
import re
import sys

import mosfw
from mosfw import Side

__all__ = ["HttpParser", "Message", "HttpLog"]

C, S = Side.CLIENT, Side.SERVER

_METHODS = (b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"TRACE", b"CONNECT")
_REQ_LINE = re.compile(rb"([A-Z]{3,10}) (\S+) (HTTP/1\.[01])\r?\n")
_RESP_LINE = re.compile(rb"(HTTP/1\.[01]) (\d{3})(?: ([^\r\n]*))?\r?\n")
# where a message may start after a loss (anywhere: a message follows the
# previous body without a line break)
_RESYNC_REQ = re.compile(rb"(?:" + b"|".join(_METHODS) + rb") \S+ HTTP/1\.[01]\r?\n")
_RESYNC_RESP = re.compile(rb"HTTP/1\.[01] \d{3} ")
MAX_HEADER = 65536


class Message:
    """One request or response as parsed."""

    __slots__ = (
        "start",
        "method",
        "uri",
        "version",
        "status",
        "reason",
        "headers",
        "body_len",
        "content_length",
        "lost",
        "complete",
        "ts",
        "framing",
        "request",
    )

    def __init__(self, ts: float) -> None:
        self.ts = ts
        self.method = self.uri = self.version = self.reason = None
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body_len = 0
        self.content_length: int | None = None
        self.lost = 0
        self.complete = False
        self.framing = "none"  # none, length, chunked, close
        self.request: Message | None = None  # for a response: the request it answers


class HttpParser:
    """Incremental parser of one direction of an HTTP/1.x connection.

    ``feed(data, lost, ts)`` takes the next stream bytes (``lost`` bytes
    were skipped just before them) and returns the messages completed.
    ``body_rule(msg)`` (responses) says how the body is delimited, given
    the request it answers.
    """

    def __init__(self, is_request: bool, body_rule=None, on_resync=None) -> None:
        self.is_request = is_request
        self.body_rule = body_rule
        self.on_resync = on_resync
        self.buf = bytearray()
        self.state = "start"
        self.msg: Message | None = None
        self.remaining = 0  # body bytes (or chunk bytes) still to come
        self.resyncs = 0

    # -- bytes in ------------------------------------------------------------

    def feed(self, data: bytes, lost: int, ts: float) -> list[Message]:
        done: list[Message] = []
        if lost:
            self._lose(lost, done)
        if data:
            self.buf += data
            self._run(ts, done)
        return done

    def finish(self) -> list[Message]:
        """The connection ended: a body delimited by the close is complete;
        a message in progress is reported incomplete."""
        done = []
        m = self.msg
        if m is not None:
            m.complete = self.state == "close"
            done.append(m)
        self.msg = None
        self.state = "start"
        self.buf.clear()
        return done

    def _lose(self, n: int, done: list) -> None:
        m = self.msg
        if m is not None and self.state in ("length", "close"):
            m.lost += n
            if self.state == "close":
                m.body_len += n
                return
            take = min(n, self.remaining)
            m.body_len += take
            self.remaining -= take
            if self.remaining == 0:
                m.complete = True
                done.append(m)
                self.msg = None
                self.state = "start"
                if n > take:  # the loss runs into what follows: a head lost
                    self.state = "resync"
                    if self.on_resync is not None:
                        self.on_resync(n - take)
            return
        if m is not None and self.state == "chunk_data" and n <= self.remaining:
            m.lost += n
            m.body_len += n
            self.remaining -= n
            return
        # headers or framing lost: this message cannot be trusted any more
        if m is not None:
            m.lost += n
            done.append(m)
            self.msg = None
        elif self.on_resync is not None:
            self.on_resync(n)  # a message head was lost
        self.buf.clear()
        self.state = "resync"
        self.resyncs += 1

    # -- the state machine -------------------------------------------------------

    def _run(self, ts: float, done: list) -> None:
        buf = self.buf
        while buf:
            st = self.state
            if st == "resync":
                pat = _RESYNC_REQ if self.is_request else _RESYNC_RESP
                mt = pat.search(buf)
                if not mt:
                    del buf[: max(0, len(buf) - 64)]  # keep a tail: a start line may straddle
                    return
                del buf[: mt.start()]
                self.state = "start"
                continue
            if st == "start":
                # skip the empty lines some clients send between requests
                while buf[:2] == b"\r\n":
                    del buf[:2]
                while buf[:1] == b"\n":
                    del buf[:1]
                end = buf.find(b"\r\n\r\n")
                sep = 4
                if end < 0:
                    end = buf.find(b"\n\n")
                    sep = 2
                if end < 0:
                    if len(buf) > MAX_HEADER:
                        self.buf.clear()
                        self.state = "resync"
                    return
                head = bytes(buf[: end + sep])
                del buf[: end + sep]
                m = self._parse_head(head, ts)
                if m is None:
                    self.state = "resync"
                    self.resyncs += 1
                    continue
                self.msg = m
                self._start_body(m, done)
                continue
            m = self.msg
            if st == "length":
                take = min(len(buf), self.remaining)
                m.body_len += take
                self.remaining -= take
                del buf[:take]
                if self.remaining == 0:
                    self._complete(done)
                continue
            if st == "close":
                m.body_len += len(buf)
                buf.clear()
                return
            if st == "chunk_size":
                nl = buf.find(b"\n")
                if nl < 0:
                    if len(buf) > 1024:
                        self._broken(done)
                    return
                line = bytes(buf[:nl]).split(b";", 1)[0].strip()
                del buf[: nl + 1]
                try:
                    size = int(line, 16)
                except ValueError:
                    self._broken(done)
                    continue
                if size == 0:
                    self.state = "trailers"
                else:
                    self.remaining = size
                    self.state = "chunk_data"
                continue
            if st == "chunk_data":
                take = min(len(buf), self.remaining)
                m.body_len += take
                self.remaining -= take
                del buf[:take]
                if self.remaining == 0:
                    self.state = "chunk_end"
                continue
            if st == "chunk_end":
                if len(buf) < 2 and buf[:1] != b"\n":
                    return
                if buf[:2] == b"\r\n":
                    del buf[:2]
                elif buf[:1] == b"\n":
                    del buf[:1]
                else:
                    self._broken(done)
                    continue
                self.state = "chunk_size"
                continue
            if st == "trailers":
                nl = buf.find(b"\n")
                if nl < 0:
                    return
                line = bytes(buf[:nl]).strip()
                del buf[: nl + 1]
                if not line:
                    self._complete(done)
                continue
            raise AssertionError(st)  # pragma: no cover

    def _broken(self, done: list) -> None:
        if self.msg is not None:
            done.append(self.msg)
            self.msg = None
        self.state = "resync"
        self.resyncs += 1

    def _complete(self, done: list) -> None:
        self.msg.complete = True
        done.append(self.msg)
        self.msg = None
        self.state = "start"

    def _parse_head(self, head: bytes, ts: float) -> Message | None:
        pat = _REQ_LINE if self.is_request else _RESP_LINE
        mt = pat.match(head)
        if not mt:
            return None
        m = Message(ts)
        if self.is_request:
            m.method, m.uri, m.version = (x.decode("latin-1") for x in mt.groups())
        else:
            m.version = mt.group(1).decode()
            m.status = int(mt.group(2))
            m.reason = (mt.group(3) or b"").decode("latin-1")
        for line in head[mt.end() :].split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            k, sep, v = line.partition(b":")
            if sep:
                m.headers[k.strip().decode("latin-1").lower()] = v.strip().decode("latin-1")
        cl = m.headers.get("content-length")
        if cl is not None:
            try:
                m.content_length = int(cl)
            except ValueError:
                m.content_length = None
        return m

    def _start_body(self, m: Message, done: list) -> None:
        te = m.headers.get("transfer-encoding", "").lower()
        if self.body_rule is not None:
            rule = self.body_rule(m)
        elif "chunked" in te:
            rule = "chunked"
        elif m.content_length:
            rule = "length"
        else:
            rule = "none"
        m.framing = rule
        if rule == "none" or (rule == "length" and not m.content_length):
            self._complete(done)
        elif rule == "length":
            self.remaining = m.content_length
            self.state = "length"
        elif rule == "chunked":
            self.state = "chunk_size"
        else:
            self.state = "close"


class _Conn:
    """Per-flow state (this plugin's ``flow.store``)."""

    __slots__ = ("req", "resp", "pending", "unanswered")

    def __init__(self) -> None:
        self.pending: collections.deque = collections.deque()  # requests awaiting a response
        self.unanswered: list[Message] = []  # requests whose response was lost
        self.req = HttpParser(True)
        self.resp = HttpParser(False, self._response_rule, self._response_lost)

    def _response_lost(self, n: int) -> None:
        # the head of the next response went missing: its request gets none
        if self.pending:
            r = self.pending.popleft()
            r.lost += n
            self.unanswered.append(r)

    def _response_rule(self, m: Message) -> str:
        # the response's head is parsed: it answers the oldest request
        if not (m.status is not None and 100 <= m.status < 200):
            m.request = self.pending.popleft() if self.pending else None
        method = m.request.method if m.request else None
        if method == "HEAD" or (m.status is not None and (100 <= m.status < 200 or m.status in (204, 304))):
            return "none"
        te = m.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            return "chunked"
        if m.content_length is not None:
            return "length"
        return "close"


class HttpLog:
    """The plugin object: parses, pairs and writes transactions."""

    def __init__(self, out, summary: bool = False) -> None:
        self.out = out
        self.summary = summary
        self.counts = collections.Counter()

    def _write(self, flow, req: Message | None, resp: Message | None) -> None:
        rec = {
            "ts": round((req or resp).ts, 6),
            "uid": flow.uid if hasattr(type(flow), "uid") else flow.id,
            "client": flow.client_str,
            "server": flow.server_str,
            "method": req.method if req else None,
            "host": req.headers.get("host") if req else None,
            "uri": req.uri if req else None,
            "version": (req or resp).version,
            "status": resp.status if resp else None,
            "reason": resp.reason if resp else None,
            "request_body_len": req.body_len if req else None,
            "response_body_len": resp.body_len if resp else None,
            "response_content_length": resp.content_length if resp else None,
            "lost": (req.lost if req else 0) + (resp.lost if resp else 0),
            "complete": bool(req and req.complete and resp and resp.complete),
        }
        self.counts["transactions"] += 1
        self.counts["requests"] += req is not None
        self.counts["responses"] += resp is not None
        self.counts["incomplete"] += not rec["complete"]
        self.out.write(json.dumps(rec) + "\n")

    def _responses(self, flow, conn: _Conn, msgs) -> None:
        for req in conn.unanswered:
            self._write(flow, req, None)
        conn.unanswered.clear()
        for resp in msgs:
            if resp.status is not None and 100 <= resp.status < 200:
                continue  # interim: the final response follows
            self._write(flow, resp.request, resp)

    @mosfw.hookimpl
    def mosfw_conn_new_data(self, flow, side, event) -> None:
        conn = flow.store(self, _Conn)  # this plugin's own: made on the flow's first data
        parser = conn.req if side == C else conn.resp
        ts = event.ts
        while True:
            lost, data = flow.peek(side, with_lost=True)
            if not data and not lost:
                break
            msgs = parser.feed(data, lost, ts)
            if side == C:
                conn.pending.extend(msgs)
            else:
                self._responses(flow, conn, msgs)

    @mosfw.hookimpl
    def mosfw_conn_end(self, flow) -> None:
        conn = flow.store(self, None)
        if conn is None:
            return
        # what is still readable (the last segments of this batch)
        for side in (C, S):
            parser = conn.req if side == C else conn.resp
            while True:
                lost, data = flow.peek(side, with_lost=True)
                if not data and not lost:
                    break
                msgs = parser.feed(data, lost, flow.last_ts)
                if side == C:
                    conn.pending.extend(msgs)
                else:
                    self._responses(flow, conn, msgs)
        conn.pending.extend(m for m in conn.req.finish() if m.method)
        self._responses(flow, conn, conn.resp.finish())
        while conn.pending:
            self._write(flow, conn.pending.popleft(), None)

    @mosfw.hookimpl
    def mosfw_core_finish(self, core) -> None:
        self.out.flush()
        if self.summary:
            c = self.counts
            print(
                f"httplog: core {core.id}: {c['transactions']} transactions, {c['requests']} requests, "
                f"{c['responses']} responses, {c['incomplete']} incomplete",
                file=sys.stderr,
            )


_files: list = []


@mosfw.hookimpl
def mosfw_addoption(parser) -> None:
    parser.addoption(
        "--http-log",
        default=None,
        metavar="PATH",
        help="httplog: write the JSON lines to PATH (default: the records stream 'http': stdout or --sink).",
    )
    parser.addoption(
        "--http-summary",
        is_flag=True,
        default=False,
        help="httplog: a summary line per core on stderr at the end.",
    )


@mosfw.hookimpl
def mosfw_configure(config) -> None:
    path = config.getoption("http_log")
    if path:
        # appended to (with --dask: per segment, joined by the run's process)
        opener = getattr(config, "open_output", None)
        out = opener(path) if opener else open(path, "a", buffering=1)  # noqa: SIM115 - closed with the process
        _files.append(out)
    elif getattr(config, "records", None) is not None:
        out = config.records.output("http")  # the run's sinks (--sink; default: stdout)
    else:
        out = config.stdout
    config.pluginmanager.register(
        HttpLog(out, bool(config.getoption("http_summary"))), name=f"httplog-writer-{id(config)}"
    )
