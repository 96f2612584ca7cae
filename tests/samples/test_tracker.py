"""samples/tracker on hand-built captures: every conn_state code, the
history letters and their repetition rules, Zeek's originator/responder
rules (flips), sizes from sequence numbers, duration, the output formats
and the launcher.

Expected values follow Zeek's definitions (base/protocols/conn/main.zeek,
TCPSessionAdapter.cc, TCP_Endpoint.cc); each test says why. Written with
the app-writer fixtures (``mosfw_capture``, ``mosfw_run``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")
LAUNCHER = ROOT / "samples" / "tracker" / "tracker"

CLI, SRV = ("10.0.0.1", 40000), ("10.0.0.2", 80)

FIELDS = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "ip_proto",
    "orig_rexmit_pkts",
    "resp_rexmit_pkts",
    "cli_state",
    "svr_state",
    "close_reason",
    "core",
    # encapsulation (docs/encapsulation.md): unset ("-") for plain flows
    "vlan",
    "inner_vlan",
    "tunnels",
]


@pytest.fixture
def conv(mosfw_capture):
    """A capture with one conversation: returns (capture, conversation)."""

    def make(client=CLI, server=SRV, **kw):
        cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
        return cap, cap.conversation(client=client, server=server, **kw)

    return make


def one(records):
    assert len(records) == 1, records
    return records[0]


# ---------------------------------------------------------------------------
# conn_state: one capture per code


def test_sf_complete_connection(conv, track):
    cap, c = conv()
    c.handshake()  # S h A
    c.send("client", 100)  # D
    c.ack("server")  # a
    c.send("server", 1000)  # d
    c.close("client")  # F f (the last ACK adds nothing: A was seen)
    r = one(track(cap))
    assert r["conn_state"] == "SF"
    assert r["history"] == "ShADadFf"
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"]) == (
        "10.0.0.1",
        40000,
        "10.0.0.2",
        80,
    )
    assert (r["orig_bytes"], r["resp_bytes"]) == (100, 1000)
    # SYN, ACK, data, FIN, ACK / SYN-ACK, ACK, data, FIN: 40-byte IP+TCP headers
    assert (r["orig_pkts"], r["orig_ip_bytes"]) == (5, 5 * 40 + 100)
    assert (r["resp_pkts"], r["resp_ip_bytes"]) == (4, 4 * 40 + 1000)
    # 9 packets 1 ms apart; Zeek's duration stops at the second FIN (the
    # last ACK comes after both sides closed)
    assert r["duration"] == pytest.approx(0.007, abs=1e-9)
    assert r["ts"] == pytest.approx(1000.0)
    assert (r["close_reason"], r["cli_state"], r["svr_state"]) == ("fin", "TIME_WAIT", "CLOSED")
    assert (r["orig_rexmit_pkts"], r["resp_rexmit_pkts"], r["core"], r["proto"]) == (0, 0, 0, "tcp")
    # local_orig/local_resp are unset without --local-nets, the layer
    # fields on a plain flow: both left out of JSON
    assert list(r) == [f for f in FIELDS[:-3] if f not in ("local_orig", "local_resp")]


def test_s0_unanswered_syn(conv, track):
    cap, c = conv()
    c.syn()
    r = one(track(cap))
    assert (r["conn_state"], r["history"], r["close_reason"]) == ("S0", "S", "eof")
    assert (r["orig_pkts"], r["orig_ip_bytes"], r["resp_pkts"], r["resp_ip_bytes"]) == (1, 40, 0, 0)
    # one packet: duration 0, so Zeek leaves duration and the sizes unset
    assert "duration" not in r and "orig_bytes" not in r and "resp_bytes" not in r


def test_s0_syn_retransmissions_repeat_no_letter(conv, track):
    cap, c = conv()
    c.half_open(retries=2)  # the same SYN at 0, 1 and 3 s
    r = one(track(cap))
    # a SYN at the same sequence number is not logged again
    assert (r["conn_state"], r["history"], r["orig_pkts"]) == ("S0", "S", 3)
    assert r["duration"] == pytest.approx(3.0, abs=1e-6)
    assert (r["orig_bytes"], r["resp_bytes"]) == (0, 0)
    assert r["orig_rexmit_pkts"] == 2  # mosfw's REXMIT counts repeated SYNs


def test_s1_established_not_closed(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.send("server", 20)
    r = one(track(cap))
    assert (r["conn_state"], r["history"], r["close_reason"]) == ("S1", "ShADd", "eof")
    assert (r["orig_bytes"], r["resp_bytes"]) == (10, 20)


def test_rej_syn_answered_by_rst(conv, track):
    cap, c = conv()
    c.syn()
    c.rst("server")
    r = one(track(cap))
    assert (r["conn_state"], r["history"], r["close_reason"]) == ("REJ", "Sr", "rst")
    assert (r["orig_pkts"], r["resp_pkts"]) == (1, 1)


def test_s2_originator_closed_no_reply(conv, track):
    cap, c = conv()
    c.handshake()
    c.fin("client")
    c.ack("server")
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("S2", "ShAFa")


def test_s3_responder_closed_no_reply(conv, track):
    cap, c = conv()
    c.handshake()
    c.fin("server")
    c.ack("client")
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("S3", "ShAf")


def test_rsto_originator_aborts(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.rst("client")
    r = one(track(cap))
    assert (r["conn_state"], r["history"], r["close_reason"]) == ("RSTO", "ShADR", "rst")


def test_rstr_responder_aborts(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.rst("server")
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("RSTR", "ShADr")


def test_rstos0_syn_then_rst_from_originator(conv, track):
    cap, c = conv()
    c.syn()
    c.rst("client", with_ack=False)
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("RSTOS0", "SR")


def test_rstrh_synack_then_rst_from_responder(conv, track):
    cap, c = conv()
    c.synack()  # the SYN was never seen; it comes from port 80:
    c.rst("server")  # Zeek flips at once ("^"), the client is the originator
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("RSTRH", "^hr")
    assert (r["id.orig_h"], r["id.orig_p"]) == ("10.0.0.1", 40000)
    assert (r["orig_pkts"], r["resp_pkts"]) == (0, 2)


def test_sh_syn_then_fin_no_synack(conv, track):
    cap, c = conv()
    c.syn()
    c.fin("client")
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("SH", "SF")


def test_shr_synack_then_fin_no_syn(conv, track):
    cap, c = conv()
    c.synack()
    c.fin("server")
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("SHR", "^hf")


def test_oth_midstream(conv, track):
    cap, c = conv()
    c.midstream()  # the handshake happened before the capture
    c.send("client", 100)
    c.send("server", 200)
    r = one(track(cap))
    assert (r["conn_state"], r["history"]) == ("OTH", "Dd")
    # a partial connection is numbered as if its SYN had been seen
    assert (r["orig_bytes"], r["resp_bytes"]) == (100, 200)
    assert (r["cli_state"], r["svr_state"]) == ("ESTABLISHED", "ESTABLISHED")


# ---------------------------------------------------------------------------
# history letters and their repetition rules


@pytest.mark.parametrize("copies, letters", [(1, "T"), (9, "T"), (10, "TT"), (99, "TT"), (100, "TTT")])
def test_retransmitted_payload_is_logarithmic(conv, track, copies, letters):
    cap, c = conv()
    c.handshake()
    seg = c.send("client", 100)
    for _ in range(copies):
        c.rexmit(seg)
    r = one(track(cap))
    # 'T' at the 1st, 10th, 100th ... retransmission
    assert r["history"] == "ShAD" + letters
    assert r["orig_rexmit_pkts"] == copies
    assert r["orig_bytes"] == 100  # sequence numbers: counted once


def test_zero_window_is_logarithmic(conv, track):
    cap, c = conv()
    c.handshake()
    for _ in range(10):
        c.zero_window("server")
    r = one(track(cap))
    assert r["history"] == "ShAaww"  # the first pure ACK, then w at 1 and 10


def test_one_byte_keepalive_counts_as_retransmission_in_zeek(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.keepalive("client", one_byte=True)
    r = one(track(cap))
    # Zeek: payload that does not advance the sequence is 'T'; mosfw's
    # REXMIT event leaves keep-alives out
    assert r["history"] == "ShADT"
    assert r["orig_rexmit_pkts"] == 0


def test_content_gap_and_size_from_sequence_numbers(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    c.send("client", 100, emit=False)  # lost before the tap
    c.send("client", 100)
    c.ack("server")  # acknowledges all 300 bytes
    r = one(track(cap))
    # the ACK reveals a hole the tap never saw: 'G' (from the originator's
    # data); the size counts the missed bytes, payload counts do not
    assert r["history"] == "ShADaG"
    assert r["orig_bytes"] == 300
    assert r["orig_ip_bytes"] == 4 * 40 + 200


def test_gap_filled_before_ack_is_no_gap(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    late = c.send("client", 100, emit=False)
    c.send("client", 100)
    c.rexmit(late)  # the hole is filled (out of order)
    c.ack("server")
    r = one(track(cap))
    assert r["history"] == "ShADTa"  # the late segment does not advance: 'T'
    assert r["orig_bytes"] == 300


def test_fin_rst_packet_is_I(conv, track):
    cap, c = conv()
    c.handshake()
    c.segment("client", "FRA")
    r = one(track(cap))
    assert (r["history"], r["conn_state"]) == ("ShAI", "RSTO")


def test_syn_fin_packet_is_Q(conv, track):
    cap, c = conv()
    c.segment("client", "SF")
    r = one(track(cap))
    assert (r["history"], r["conn_state"]) == ("Q", "SH")


def test_retransmitted_fin_same_sequence_is_one_F(conv, track):
    cap, c = conv()
    c.handshake()
    fin = c.fin("client")
    c.rexmit(fin)
    r = one(track(cap))
    assert r["history"] == "ShAF"
    assert r["orig_rexmit_pkts"] == 1  # mosfw's REXMIT: a repeated FIN


def test_fin_at_a_new_sequence_is_logged_again(conv, track):
    cap, c = conv()
    c.handshake()
    c.segment("client", "FA")  # FIN at seq 1001
    c.segment("client", "FPA", payload=b"late")  # FIN after 4 more bytes
    r = one(track(cap))
    assert r["history"] == "ShAFF"


# ---------------------------------------------------------------------------
# originator and responder: Zeek's rules


def test_synack_first_flips_when_productive(conv, track):
    cap, c = conv(server=("10.0.0.2", 5555))  # not a likely server port
    c.synack()  # orig = its sender for now: "H"
    c.ack("client")  # productive traffic: flip, "^h", then A
    c.send("client", 10)
    r = one(track(cap))
    assert r["history"] == "^hAD"
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_p"]) == ("10.0.0.1", 40000, 5555)


def test_synack_alone_from_unlikely_port_is_not_flipped(conv, track):
    cap, c = conv(server=("10.0.0.2", 5555))
    c.synack()
    r = one(track(cap))
    assert r["history"] == "H"
    assert (r["id.orig_h"], r["id.orig_p"]) == ("10.0.0.2", 5555)
    assert (r["orig_pkts"], r["resp_pkts"]) == (1, 0)


def test_midstream_from_likely_server_port_is_flipped(conv, track):
    cap, c = conv()
    c.midstream()
    c.send("server", 100)  # first packet: from port 80
    c.ack("client")
    r = one(track(cap))
    assert r["history"] == "^dA"
    assert (r["id.orig_h"], r["id.orig_p"], r["id.resp_p"]) == ("10.0.0.1", 40000, 80)
    assert (r["orig_pkts"], r["resp_pkts"], r["resp_bytes"]) == (1, 1, 100)


@pytest.mark.parametrize("first, flipped", [("server", True), ("client", False)])
def test_both_ports_likely_flip_toward_higher_port(conv, track, first, flipped):
    # 1080 and 8080 are both likely server ports: flip only a non-SYN first
    # packet whose source port is the lower one
    cap, c = conv(client=("10.0.0.1", 8080), server=("10.0.0.2", 1080))
    c.midstream()
    c.send(first, 10)
    r = one(track(cap))
    assert r["history"] == ("^d" if flipped else "D")
    assert r["id.orig_p"] == 8080


def test_synack_before_syn_reversal(conv, track):
    # capture reordering: SYN/ACK, then the SYN it answers (Zeek's
    # "SYN/SYN-ACK reversal": flip and establish)
    cap, c = conv(server=("10.0.0.2", 5555))
    syn = c.syn(emit=False)
    c.synack()
    c.emit(syn)
    c.ack("client")
    c.send("client", 10)
    c.send("server", 20)
    c.close("client")
    r = one(track(cap))
    assert r["history"] == "Hs^ADdFf"
    assert r["conn_state"] == "SF"
    assert (r["id.orig_h"], r["id.orig_p"]) == ("10.0.0.1", 40000)


# ---------------------------------------------------------------------------
# close reasons, several connections, uid


def test_close_reasons_timeout_reuse_eof(track, mosfw_capture):
    cap = mosfw_capture(start=1000.0, step=0.001)
    a = cap.conversation(client=("10.0.0.1", 40001), server=SRV)
    a.handshake()
    a.send("client", 10)
    cap.advance(20)  # idle past tcp_timeout=5
    b = cap.conversation(client=("10.0.0.1", 40002), server=SRV)
    b.handshake()
    b.fin("client")  # closing ...
    b2 = cap.conversation(client=("10.0.0.1", 40002), server=SRV, client_isn=900000)
    b2.syn()  # ... when a new SYN reuses the ports
    recs = track(cap, tcp_timeout=5)
    got = sorted((r["id.orig_p"], r["close_reason"], r["conn_state"], r["history"]) for r in recs)
    assert got == [
        (40001, "timeout", "S1", "ShAD"),
        (40002, "eof", "S0", "S"),
        (40002, "reused", "S2", "ShAF"),
    ]
    assert len({r["uid"] for r in recs}) == 3


def test_uid_is_zeek_like_and_stable(conv, track):
    cap, c = conv()
    c.handshake()
    one_run = one(track(cap))["uid"]
    again = one(track(cap))["uid"]
    assert re.fullmatch(r"C[0-9A-Za-z]{17}", one_run)
    assert one_run == again


def test_ipv6_and_vlan(conv, track):
    cap, c = conv(client=("fd00::1", 40000), server=("fd00::2", 443), vlan=100)
    c.handshake()
    c.send("client", 50)
    c.close("client")
    r = one(track(cap))
    assert (r["id.orig_h"], r["id.resp_h"], r["id.resp_p"]) == ("fd00::1", "fd00::2", 443)
    assert r["orig_ip_bytes"] == 5 * 60 + 50  # 40 IPv6 + 20 TCP per packet
    assert (r["conn_state"], r["history"]) == ("SF", "ShADFf")


# ---------------------------------------------------------------------------
# the Flow accessors the tracker's fields come from


def _tracker_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("tracker_app_for_tests", TRACKER + "/app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_conn_view_matches_the_record(conv, mosfw_run):
    """tracker.ConnView: the view the tracker's fields come from, read from
    another plugin (keep_views attaches the observer without a log)."""
    import mosfw

    tracker = _tracker_module()
    seen = {}

    class Peek:
        @mosfw.hookimpl
        def mosfw_core_start(self, core):
            tracker.keep_views(core)

        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            v = tracker.ConnView(flow)
            seen.update(
                history=v.history,
                conn_state=v.conn_state,
                uid=v.uid,
                orig_bytes=v.orig_bytes,
                resp_bytes=v.resp_bytes,
                orig=v.orig_side,
                record=v.record("json"),
            )

    cap, c = conv()
    c.handshake()
    c.send("client", 33)
    c.send("server", 44)
    c.close("server")
    mosfw_run(cap, plugins=[Peek()], events=None)
    rec = json.loads(seen["record"])
    assert seen["history"] == rec["history"] == "ShADdfFa"
    assert seen["conn_state"] == rec["conn_state"] == "SF"
    assert (seen["orig_bytes"], seen["resp_bytes"]) == (rec["orig_bytes"], rec["resp_bytes"]) == (33, 44)
    assert seen["uid"] == rec["uid"]
    assert seen["orig"] == mosfw.Side.CLIENT


def test_the_engine_keeps_no_zeek_view(conv, mosfw_run):
    """Zeek's view left the engine: a Flow has no conn.log accessors, and a
    view read without the tracker's observer is empty."""
    import mosfw

    tracker = _tracker_module()
    seen = {}

    class Peek:
        @mosfw.hookimpl
        def mosfw_conn_end(self, flow):
            seen.update(has=hasattr(flow, "history"), history=tracker.ConnView(flow).history)

    cap, c = conv()
    c.handshake()
    c.close("server")
    mosfw_run(cap, plugins=[Peek()], events=None)
    assert seen == {"has": False, "history": ""}


# ---------------------------------------------------------------------------
# formats, files, launcher


def zeek_cut(text: str, *columns: str) -> list[list[str]]:
    """What zeek-cut does: the #separator and #fields header lines name
    the columns; data lines are split on the separator."""
    sep = None
    fields = None
    out = []
    for line in text.splitlines():
        if line.startswith("#separator "):
            sep = line.split(" ", 1)[1].encode().decode("unicode_escape")
        elif line.startswith("#fields"):
            assert sep is not None, "#fields before #separator"
            fields = line.split(sep)[1:]
        elif not line.startswith("#"):
            assert fields is not None, "data before #fields"
            row = line.split(sep)
            assert len(row) == len(fields), line
            out.append([row[fields.index(c)] for c in columns])
    return out


def test_zeek_tsv_format(conv, track):
    cap, c = conv()
    c.syn()  # S0: unset duration/sizes
    d = cap.conversation(client=("10.0.0.1", 40001), server=SRV)
    d.handshake()
    d.send("client", 7)
    d.close("client")
    text = track(cap, fmt="zeek")
    lines = text.splitlines()
    assert lines[0] == "#separator \\x09"
    assert lines[1:5] == ["#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-", "#path\tconn"]
    assert lines[5].startswith("#open\t")
    assert lines[6] == "#fields\t" + "\t".join(FIELDS)
    assert lines[7].startswith("#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tinterval\tcount\tcount")
    assert lines[-1].startswith("#close\t")
    rows = zeek_cut(text, "id.orig_p", "conn_state", "history", "duration", "orig_bytes")
    assert sorted(rows) == [["40000", "S0", "S", "-", "-"], ["40001", "SF", "ShADFf", "0.005000", "7"]]


@pytest.mark.skipif(shutil.which("awk") is None, reason="awk not installed")
def test_zeek_tsv_with_an_awk_zeek_cut(conv, track, tmp_path):
    # the classic bro-cut/zeek-cut approach: map #fields names to columns
    cap, c = conv()
    c.handshake()
    c.close("client")
    log = tmp_path / "conn.log"
    log.write_text(track(cap, fmt="zeek"))
    prog = (
        "/^#fields/ {for (i = 2; i <= NF; i++) col[$i] = i - 1; next} "
        '/^#/ {next} {print $col["uid"] "\\t" $col["conn_state"] "\\t" $col["history"]}'
    )
    out = subprocess.run(["awk", "-F", "\t", prog, str(log)], capture_output=True, text=True, check=True)
    uid, state, hist = out.stdout.strip().split("\t")
    assert re.fullmatch(r"C[0-9A-Za-z]{17}", uid) and (state, hist) == ("SF", "ShAFf")


def test_conn_log_option_writes_a_file(conv, mosfw_run, tmp_path):
    cap, c = conv()
    c.handshake()
    path = tmp_path / "conn.json"
    rec = mosfw_run(cap, plugins=[TRACKER], events=None, options={"conn_log": str(path)})
    assert rec.stdout == ""
    r = json.loads(path.read_text())
    assert (r["conn_state"], r["history"]) == ("S1", "ShA")


def test_bad_format_is_a_usage_error(conv, mosfw_pcap, tracker_cli):
    cap, c = conv()
    c.syn()
    r = tracker_cli(mosfw_pcap(cap, "syn.pcap"), "--conn-format", "xml")
    assert r.returncode == 2 and "--conn-format" in r.stderr and r.stdout == ""


def _launcher_env():
    env = dict(os.environ)
    env.setdefault("MOSFW_PYTHON", sys.executable)
    return env


def test_launcher_runs_the_tracker(conv, mosfw_pcap, tmp_path):
    assert os.access(LAUNCHER, os.X_OK), "samples/tracker/tracker must be executable"
    cap, c = conv()
    c.handshake()
    c.send("client", 5)
    c.close("client")
    pcap = mosfw_pcap(cap, "one.pcap")
    out = tmp_path / "conn.log"
    r = subprocess.run(
        [str(LAUNCHER), "-r", str(pcap), "--conn-format", "zeek", "--conn-log", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=_launcher_env(),
    )
    assert r.returncode == 0, r.stderr
    assert zeek_cut(out.read_text(), "conn_state", "history") == [["SF", "ShADFf"]]
    r = subprocess.run(
        [str(LAUNCHER), "--help"], capture_output=True, text=True, timeout=60, env=_launcher_env()
    )
    assert r.returncode == 0 and "--conn-format" in r.stdout and "--conn-log" in r.stdout


def test_multicore_run_gives_the_same_records(mosfw_capture, mosfw_pcap, tmp_path):
    cap = mosfw_capture(start=1000.0, step=0.001)
    for i in range(12):
        c = cap.conversation(client=("10.0.0.1", 41000 + i), server=SRV, client_isn=1000 + i * 7919)
        c.handshake()
        c.send("client", 10 + i)
        c.close("client")
    pcap = mosfw_pcap(cap, "many.pcap")

    def run(cores, fmt):
        out = tmp_path / f"c{cores}.{fmt}"
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "mosfw",
                "run",
                "-q",
                "-r",
                str(pcap),
                "-p",
                TRACKER,
                "-c",
                str(cores),
                "--conn-format",
                fmt,
                "--conn-log",
                str(out),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if cores > 1 and r.returncode == 2 and "multi-core" in r.stderr:
            pytest.skip("this mosfw has no multi-core runs")
        assert r.returncode == 0, r.stderr
        return out.read_text()

    one_core = sorted(json.dumps(json.loads(line), sort_keys=True) for line in run(1, "json").splitlines())
    two = [json.loads(line) for line in run(2, "json").splitlines()]
    assert {r["core"] for r in two} == {0, 1}
    for r in two:
        r["core"] = 0
    assert sorted(json.dumps(r, sort_keys=True) for r in two) == one_core
    text = run(2, "zeek")
    assert text.count("#fields") == 1 and text.count("#close") == 1
    assert len(zeek_cut(text, "uid")) == 12
    assert not list(tmp_path.glob(".tracker-core*")), "temporary per-core files left behind"


def test_live_writer_flushes_every_second(mosfw_capture, mosfw_run, monkeypatch):
    """Capturing live, records held are written at the next tick (a second
    of wall time), not only in batches: drive the writer with ticks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tracker_app_for_test", Path(TRACKER) / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(app, "FLUSH_SECONDS", 0.0)

    class Sink:
        def __init__(self):
            self.writes = []

        def write(self, data):
            self.writes.append(data)

        def flush(self):
            pass

    cap = mosfw_capture(start=1000.0, step=0.001)
    for i in range(3):
        c = cap.conversation(client=("10.0.0.1", 42000 + i), server=SRV)
        c.handshake()
        c.close("client")
        cap.advance(2.0)  # a tick between connections
    live, batch = Sink(), Sink()
    mosfw_run(cap, plugins=[app.ConnLog(live, "json", live=True)], events=None)
    mosfw_run(cap, plugins=[app.ConnLog(batch, "json", live=False)], events=None)
    # the engine hands records over once per batch (a file is one batch
    # here); live, the writer also flushes at each tick, so records come
    # out within about a second of the batch that ended them
    assert sum(len(w.splitlines()) for w in live.writes) == 3
    assert [len(w.splitlines()) for w in batch.writes] == [3]
    lw, bw = app.ConnLog(Sink(), "json", live=True), app.ConnLog(Sink(), "json", live=False)
    assert hasattr(lw, "mosfw_tick") and not hasattr(bw, "mosfw_tick")
    held = app.ConnLog(live, "json", live=True)
    live.writes.clear()
    held.take(b"x\n")  # what a batch's records are handed to
    assert live.writes == []  # held...
    held.mosfw_tick(None, 1.0)
    assert live.writes == [b"x\n"]  # ...until the tick
