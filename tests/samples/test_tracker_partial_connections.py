"""Partial connections in the tracker: a first packet without SYN or ACK
(a lone RST, RST+ACK, a FIN, a packet without flags) starts a connection,
as in Zeek (docs/zeek-rules.md).

Facts from Zeek's source (zeek/zeek):

- src/packet_analysis/protocol/tcp/TCP.cc ``TCPAnalyzer::WantConnection``:
  with ``partial_connection_ok`` (T by default) any first TCP packet
  starts a connection. One without a SYN, or with a SYN and an ACK, is
  partial: the roles are flipped when its source port is a likely server
  port and its destination port is not, or when both are and it carries
  no SYN and its source port is the lower.
- TCPSessionAdapter.cc ``update_history``: one flag of SYN/FIN/RST gives
  ``S``/``H``, ``F``, ``R``; more than one ``I`` (FIN+RST) or ``Q``; no
  flag: ``D`` with payload, ``A`` with an ACK, nothing otherwise.
  ``update_inactive``-state machine (``UpdateStateMachine``): a FIN makes
  the endpoint CLOSED, a RST RESET, anything else from an INACTIVE one
  PARTIAL (ESTABLISHED only for an ACK whose peer is ESTABLISHED).
- ``ConnectionClosed``: a close by a RESET endpoint, or one whose peer is
  INACTIVE, is complete: the connection is removed ``tcp_close_delay``
  (5 s) after its last packet (packets until then count).
- TCP_Endpoint.cc ``SetState``: leaving the handshake states (INACTIVE,
  SYN_SENT, SYN_ACK_SENT) sets ``tcp_inactivity_timeout`` (5 min): a
  PARTIAL connection lives until 5 idle minutes (its ``ExpireTimer``
  removes a connection only once a side closed, or when both sides are
  still INACTIVE).
- scripts/base/protocols/conn/main.zeek ``conn_state()``: the responder
  RESET: ``REJ`` when the originator reset too with both sizes 0,
  ``RSTRH`` when the originator is INACTIVE or PARTIAL; the originator
  RESET with an INACTIVE or PARTIAL responder: ``RSTOS0`` only for a
  history matching ``^?S[^HAFGIQ]*R``, else ``OTH``; the originator
  CLOSED, the responder INACTIVE or PARTIAL: ``SH``; else ``OTH``.
  ``set_conn``: duration and sizes only when the duration is > 0, the
  history only when not empty.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import forkrun  # tests/forkrun.py: python -m mosfw in a fork

CLI, SRV = ("10.0.0.1", 40000), ("10.0.0.2", 80)


@pytest.fixture
def conv(mosfw_capture):
    def make(client=CLI, server=SRV):
        cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
        c = cap.conversation(client=client, server=server)
        c.midstream()  # the tap starts with the packets below
        return cap, c

    return make


def _short(recs):
    return [(r["conn_state"], r.get("history"), r["orig_pkts"], r["resp_pkts"]) for r in recs]


def _orig(rec):
    return (rec["id.orig_h"], rec["id.orig_p"], rec["id.resp_h"], rec["id.resp_p"])


# ---------------------------------------------------------------------------
# a lone RST


def test_lone_rst_is_oth(conv, track):
    # the originator RESET, the responder INACTIVE, history "R" (no S):
    # OTH, not RSTOS0; a complete close, removed 5 s later
    cap, c = conv()
    c.rst("client", with_ack=False)
    recs = track(cap)
    assert _short(recs) == [("OTH", "R", 1, 0)]
    assert _orig(recs[0]) == ("10.0.0.1", 40000, "10.0.0.2", 80)
    assert "duration" not in recs[0] and recs[0]["close_reason"] == "rst"


def test_lone_rst_from_a_likely_server_port_is_flipped_rstrh(conv, track):
    # from port 80 to 40000: WantConnection flips, the sender is the
    # responder (RESET), the originator INACTIVE: RSTRH, history "^r"
    cap, c = conv()
    c.rst("server", with_ack=False)
    recs = track(cap)
    assert _short(recs) == [("RSTRH", "^r", 0, 1)]
    assert _orig(recs[0]) == ("10.0.0.1", 40000, "10.0.0.2", 80)


def test_lone_rst_answered_by_rst_is_rej(conv, track):
    # both RESET, both sizes 0: REJ
    cap, c = conv()
    c.rst("client", with_ack=False)
    c.rst("server", with_ack=False)
    assert _short(track(cap)) == [("REJ", "Rr", 1, 1)]


def test_lone_rst_then_a_reply_within_the_close_delay(conv, track):
    # the responder's data 4 s later: within tcp_close_delay, counted; the
    # responder PARTIAL (an ACK whose peer is not ESTABLISHED): OTH
    cap, c = conv()
    c.rst("client", with_ack=False)
    cap.advance(4.0)
    c.send("server", 10)
    recs = track(cap)
    assert _short(recs) == [("OTH", "Rd", 1, 1)]
    assert recs[0]["resp_bytes"] == 10


def test_lone_rst_then_a_reply_after_the_close_delay_is_a_new_connection(conv, track):
    # 6 s later: the first connection was removed at 5 s; the reply from
    # port 80 starts a flipped one
    cap, c = conv()
    c.rst("client", with_ack=False)
    cap.advance(6.0)
    c.send("server", 10)
    recs = track(cap)
    assert _short(recs) == [("OTH", "R", 1, 0), ("OTH", "^d", 0, 1)]
    assert [r["close_reason"] for r in recs] == ["rst", "eof"]


# ---------------------------------------------------------------------------
# RST+ACK first


def test_rst_ack_first_is_oth(conv, track):
    cap, c = conv()
    c.rst("client")
    assert _short(track(cap)) == [("OTH", "R", 1, 0)]


def test_rst_ack_first_answered_is_rej(conv, track):
    # the server's RST+ACK first (flipped), then the client's: both RESET,
    # sizes 0 (the client's start is the server's ACK - 1): REJ
    cap, c = conv()
    c.rst("server")
    c.rst("client")
    recs = track(cap)
    assert _short(recs) == [("REJ", "^rR", 1, 1)]
    assert (recs[0]["orig_bytes"], recs[0]["resp_bytes"]) == (0, 0)


# ---------------------------------------------------------------------------
# a FIN without ACK first


def test_fin_first_is_sh(conv, track):
    # the originator CLOSED, the responder INACTIVE: SH; a complete close
    cap, c = conv()
    c.segment("client", "F")
    recs = track(cap)
    assert _short(recs) == [("SH", "F", 1, 0)]
    assert recs[0]["close_reason"] == "fin"


def test_fin_first_answered_by_an_ack_is_sh(conv, track):
    # the responder's ACK: PARTIAL (its peer is CLOSED, not ESTABLISHED),
    # inactive for conn_state: still SH
    cap, c = conv()
    c.segment("client", "F")
    cap.advance(1.0)
    c.ack("server")
    recs = track(cap)
    assert _short(recs) == [("SH", "Fa", 1, 1)]
    assert recs[0]["duration"] == pytest.approx(1.001, abs=1e-6)  # (1 ms step)


# ---------------------------------------------------------------------------
# a packet without flags


def test_null_flags_first_is_oth_without_history(conv, track):
    # no letter for a packet with no flag and no payload; PARTIAL: OTH
    cap, c = conv()
    c.segment("client", 0)
    recs = track(cap)
    assert _short(recs) == [("OTH", None, 1, 0)]
    assert "history" not in recs[0]


def test_null_flags_first_answered_by_rst_is_rstrh(conv, track):
    cap, c = conv()
    c.segment("client", 0)
    c.rst("server")
    assert _short(track(cap)) == [("RSTRH", "r", 1, 1)]


@pytest.mark.parametrize(
    "idle, want",
    [
        (200.0, [("OTH", "a", 1, 1)]),  # within tcp_inactivity_timeout
        (301.0, [("OTH", None, 1, 0), ("OTH", "^a", 0, 1)]),  # past it
    ],
)
def test_null_flags_connection_lives_until_the_inactivity_timeout(conv, track, idle, want):
    # PARTIAL left the handshake states: tcp_inactivity_timeout (5 min);
    # the ExpireTimer does not remove it (no side closed)
    cap, c = conv()
    c.segment("client", 0)
    cap.advance(idle)
    c.ack("server")
    recs = track(cap)
    assert _short(recs) == want
    assert recs[0]["close_reason"] == ("eof" if len(want) == 1 else "timeout")


# ---------------------------------------------------------------------------
# SYN+RST first: no partial connection (it has a SYN and no ACK), not flipped


def test_syn_rst_first_is_q_and_oth(conv, track):
    cap, c = conv(client=("10.0.0.1", 80), server=("10.0.0.2", 40000))
    c.segment("client", "SR")
    recs = track(cap)
    assert _short(recs) == [("OTH", "Q", 1, 0)]
    assert _orig(recs[0]) == ("10.0.0.1", 80, "10.0.0.2", 40000)


# ---------------------------------------------------------------------------
# -c 2: the same records


def test_partial_connections_are_the_same_on_two_cores(mosfw_capture, tracker_cli, tmp_path):
    cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
    firsts = [
        lambda c: c.rst("client", with_ack=False),
        lambda c: c.rst("server"),
        lambda c: c.segment("client", "F"),
        lambda c: c.segment("client", 0),
    ]
    for i in range(40):
        c = cap.conversation(client=("10.0.0.1", 40000 + i), server=("10.0.0.2", 80 + i % 3))
        c.midstream()
        firsts[i % 4](c)
        if i % 2:
            c.ack("server")
    pcap = tmp_path / "partial.pcap"
    cap.write(pcap)
    got = []
    for cores in ("1", "2"):
        out = tracker_cli(pcap, "-c", cores, "-q")
        assert out.returncode == 0, out.stderr
        recs = [json.loads(line) for line in out.stdout.splitlines()]
        got.append(sorted((_orig(r), _short([r])[0]) for r in recs))
    assert len(got[0]) == 40 and got[0] == got[1]


# ---------------------------------------------------------------------------
# a setting of the whole run: --no-tcp-partial-open / --tcp-partial-open


def test_partial_open_is_a_run_setting_the_command_line_overrides(conv, tracker_cli, tmp_path):
    # the tracker turns it on unless the user said; off, the lone RST is an
    # orphan (mOS) and no record is written; an app without the tracker gets
    # the flow when the user asks for it
    cap, c = conv()
    c.rst("client", with_ack=False)
    pcap = tmp_path / "rst.pcap"
    cap.write(pcap)
    on, off = tracker_cli(pcap, "-q"), tracker_cli(pcap, "-q", "--no-tcp-partial-open")
    assert on.returncode == 0 and off.returncode == 0, (on.stderr, off.stderr)
    assert [json.loads(line)["conn_state"] for line in on.stdout.splitlines()] == ["OTH"]
    assert off.stdout == ""
    app = tmp_path / "starts.py"
    app.write_text(
        "import mosfw\n"
        "@mosfw.hookimpl\n"
        "def mosfw_conn_start(flow):\n"
        "    print('start')\n"
        "@mosfw.hookimpl\n"
        "def mosfw_orphan(src):\n"
        "    print('orphan')\n"
    )

    def events(*args):
        r = forkrun.mosfw("run", "-r", pcap, "-q", "-p", app, *args)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert events() == ["orphan"]
    assert events("--tcp-partial-open") == ["start", "start"]  # one per side
