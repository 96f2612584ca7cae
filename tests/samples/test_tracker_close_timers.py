"""Zeek's close timers in the tracker: what happens when one endpoint
closes while the other is inactive, tcp_partial_close_delay and
tcp_session_timer (docs/zeek-rules.md).

Facts from Zeek's source (zeek/zeek): TCPSessionAdapter::ConnectionClosed
(src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc) calls a close
*complete* when the closing endpoint reset, or its peer closed too, or
its peer is TCP_ENDPOINT_INACTIVE (never sent a packet): the connection
is then removed at LastTime() + tcp_close_delay (ConnDeleteTimer; the
other timers, the AttemptTimer among them, are cancelled). Otherwise a
closing endpoint that had never sent before gets the PartialCloseTimer
(tcp_partial_close_delay = 3 secs) only when a ``connection_partial_close``
handler exists (none in Zeek's base scripts), and any other gets the
ExpireTimer every tcp_session_timer (6 secs), which removes the
connection only once it is idle for tcp_connection_linger (5 secs) and
one side closed while the other reset or is inactive: a half-closed
connection whose peer is still open lives until the inactivity timeout.
A RST from an endpoint that closed before is no new close, but its
ResetTimer removes the connection tcp_reset_delay (5 secs) after it
(TCPSessionAdapter::UpdateClosedState; scheduled whatever the loaded
scripts since zeek/zeek#5860).
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")


@pytest.fixture
def conv(mosfw_capture):
    def make():
        cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
        return cap, cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 80))

    return make


def _short(recs):
    return [(r["conn_state"], r["history"], r["orig_pkts"], r["resp_pkts"]) for r in recs]


# ---------------------------------------------------------------------------
# a FIN whose peer is inactive: a complete close, removed tcp_close_delay
# (5 s) after it


def _one_sided_fin(conv, gap):
    cap, c = conv()
    c.midstream()
    c.send("client", 10)
    c.fin("client")  # the server never sent anything: Zeek's close is complete
    cap.advance(gap)
    c.send("client", 10)
    return cap


def test_one_sided_fin_close_counts_packets_within_the_close_delay(conv, track):
    recs = track(_one_sided_fin(conv, 4.0))
    assert _short(recs) == [("SH", "DF", 3, 0)]
    assert (recs[0]["orig_bytes"], recs[0]["close_reason"]) == (20, "fin")


def test_one_sided_fin_close_ends_after_the_close_delay(conv, track):
    # mOS's model (and the tracker before) kept it until the idle timeout:
    # one SH record of 3 packets
    recs = track(_one_sided_fin(conv, 6.0))
    assert _short(recs) == [("SH", "DF", 2, 0), ("OTH", "D", 1, 0)]
    assert recs[0]["duration"] == pytest.approx(0.001, abs=1e-6)


def test_fin_after_an_unanswered_syn_outlives_the_attempt_delay(conv, track):
    # SYN at 0, FIN at 3 s (a complete close: the AttemptTimer due at 5 s
    # is cancelled), RST at 7 s: within tcp_close_delay of the FIN, so
    # one connection; main.zeek conn_state(): the originator reset, the
    # responder inactive, history not /^?S[^HAFGIQ]*R/ -> OTH
    cap, c = conv()
    c.syn()
    cap.advance(3.0)
    c.fin("client")
    cap.advance(4.0)
    c.rst("client")
    recs = track(cap)
    assert _short(recs) == [("OTH", "SFR", 3, 0)]


@pytest.mark.parametrize("one_sided, want", [(False, ["eof"]), (True, ["fin", "eof"])])
def test_engine_ends_a_one_sided_fin_only_when_asked(conv, mosfw_run, one_sided, want):
    # the engine's default (mOS, midstat) keeps the flow until the idle
    # timeout; tcp_one_sided_close (the tracker sets it) ends it at the FIN
    cap = _one_sided_fin(conv, 6.0)
    rec = mosfw_run(cap, tcp_one_sided_close=one_sided)
    assert [e.reason for e in rec.of("conn_end")] == want


# ---------------------------------------------------------------------------
# tcp_partial_close_delay (3 s): no timer without a connection_partial_close
# handler (Zeek's base scripts have none): the connection stays


def test_first_packet_fin_with_an_active_peer_is_no_partial_close(conv, track):
    cap, c = conv()
    c.midstream()
    c.send("client", 10)
    c.fin("server")  # the server's first packet: PartialCloseTimer territory
    cap.advance(4.0)  # past tcp_partial_close_delay
    c.send("client", 10)
    cap.advance(20.0)  # past tcp_session_timer and tcp_connection_linger too
    c.send("client", 10)
    recs = track(cap)
    assert [(r["orig_pkts"], r["resp_pkts"], r["orig_bytes"]) for r in recs] == [(3, 1, 30)]


# ---------------------------------------------------------------------------
# tcp_session_timer (6 s): the ExpireTimer's periodic check after a close


def test_half_closed_connection_outlives_the_session_timer(conv, track):
    # the originator's FIN, the responder open: every check finds neither
    # a reset nor an inactive side, so the connection lives on (60 s =
    # ten ticks) until tcp_inactivity_timeout
    cap, c = conv()
    c.handshake()
    c.fin("client")
    c.ack("server")
    cap.advance(60.0)
    c.send("server", 10)
    c.ack("client")
    recs = track(cap)
    assert _short(recs) == [("S2", "ShAFad", 4, 3)]
    assert recs[0]["duration"] > 60


@pytest.mark.parametrize(
    "gap, want",
    [
        (4.0, [("RSTO", "ShAFaRd", 4, 3)]),
        (5.5, [("RSTO", "ShAFaR", 4, 2), ("OTH", "^d", 0, 1)]),
        (6.5, [("RSTO", "ShAFaR", 4, 2), ("OTH", "^d", 0, 1)]),
    ],
)
def test_rst_after_own_fin_is_removed_at_the_reset_delay(conv, track, gap, want):
    # FIN then RST from the originator, the responder open: no new close
    # (did_close already, UpdateClosedState), but the RST schedules the
    # ResetTimer at its time + tcp_reset_delay (5 s), which removes the
    # connection: always since zeek/zeek#5860 (before, only when a
    # connection_reset handler was loaded). A packet 4 s after the RST
    # counts (and moves the last time: the responder has not closed); one
    # 5.5 s after is a new connection, although the ExpireTimer (6 s after
    # the FIN) would not have removed it yet
    cap, c = conv()
    c.handshake()
    c.fin("client")
    c.ack("server")
    c.rst("client")
    cap.advance(gap)
    c.send("server", 10)
    recs = track(cap)
    assert _short(recs) == want
    if gap < 5:
        assert recs[0]["duration"] == pytest.approx(gap + 0.006, abs=1e-6)  # first packet to the last
