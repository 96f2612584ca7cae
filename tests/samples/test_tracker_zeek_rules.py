"""Zeek's rules in the tracker, one constructed capture per rule (the
rules of docs/zeek-rules.md that tests/samples/test_tracker.py does not
cover already: timeouts, the close delay, missed_bytes, local_orig and
local_resp, the TSV types, rotation).

The expected record comes from Zeek's documented rule, cited in each
test: scripts/base/init-bare.zeek (the timeouts),
src/packet_analysis/protocol/tcp/TCPSessionAdapter.cc (when a closed
connection is removed), scripts/base/protocols/conn/main.zeek (the
conn.log fields and their meaning).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRACKER = str(ROOT / "samples" / "tracker")

CLI, SRV = ("10.0.0.1", 40000), ("10.0.0.2", 80)


@pytest.fixture
def conv(mosfw_capture):
    def make(client=CLI, server=SRV, **kw):
        cap = mosfw_capture(linktype="ether", start=1000.0, step=0.001)
        return cap, cap.conversation(client=client, server=server, **kw)

    return make


# ---------------------------------------------------------------------------
# timeouts: init-bare.zeek `const tcp_inactivity_timeout = 5 min &redef;`


def _idle_connection(conv, idle: float):
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.ack("server")
    cap.advance(idle)
    c.send("client", 20)
    c.ack("server")
    c.close("client")
    return cap


def test_two_idle_minutes_are_one_connection(conv, track):
    # 120 s idle: past mOS's 30 s, within Zeek's 5 min -> one SF record
    recs = track(_idle_connection(conv, 120))
    assert [(r["conn_state"], r["history"], r["close_reason"]) for r in recs] == [("SF", "ShADaFf", "fin")]
    assert recs[0]["orig_bytes"] == 30 and recs[0]["duration"] > 120


def test_past_five_idle_minutes_the_connection_times_out(conv, track):
    # 301 s idle: Zeek's inactivity timer ends the connection (S1); what
    # follows is a new, partial connection
    recs = track(_idle_connection(conv, 301))
    assert len(recs) == 2
    first = min(recs, key=lambda r: r["ts"])
    assert (first["conn_state"], first["history"], first["close_reason"]) == ("S1", "ShADa", "timeout")


def test_tcp_timeout_option_overrides_zeeks(conv, track):
    # the user's --tcp-timeout wins (here mOS's 30 s): the idle minute splits it
    recs = track(_idle_connection(conv, 120), tcp_timeout=30)
    assert sorted(r["close_reason"] for r in recs) == ["fin", "timeout"]


def test_help_names_both_timeouts():
    out = subprocess.run(
        [sys.executable, "-m", "mosfw", "run", "-p", TRACKER, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    ).stdout
    flat = " ".join(out.split())
    assert "default 30, mOS's" in flat and "Zeek's 300" in flat
    assert "Zeek's TCP inactivity timeout, 300 s" in flat


# ---------------------------------------------------------------------------
# the attempt delay: init-bare.zeek `tcp_attempt_delay = 5 secs`;
# TCPSessionAdapter::AttemptTimer removes a connection whose originator
# sent a SYN and whose responder sent nothing, 5 s after it began


def test_syn_retried_past_the_attempt_delay_is_a_new_attempt(conv, track):
    cap, c = conv()
    c.half_open(retries=3)  # the same SYN at 0, 1, 3 and 7 s
    recs = sorted(track(cap), key=lambda r: r["ts"])
    assert [(r["conn_state"], r["history"], r["orig_pkts"]) for r in recs] == [("S0", "S", 3), ("S0", "S", 1)]
    assert recs[1]["ts"] == pytest.approx(1007.0, abs=1e-3)
    assert recs[0]["close_reason"] == "timeout"


@pytest.mark.parametrize("wait, records", [(4.0, [("S1", "ShA")]), (6.0, [("S0", "S"), ("S1", "^hA")])])
def test_answer_within_the_attempt_delay(conv, track, wait, records):
    # a slow server: its SYN/ACK 4 s after the SYN is the same connection;
    # 6 s after, the attempt was removed at 5 s and the SYN/ACK begins a
    # new connection (which Zeek flips once the ACK follows)
    cap, c = conv()
    c.syn()
    cap.advance(wait)
    c.synack()
    c.ack("client")
    recs = sorted(track(cap), key=lambda r: r["ts"])
    assert [(r["conn_state"], r["history"]) for r in recs] == records


def test_attempt_delay_option_overrides_zeeks(conv, track):
    cap, c = conv()
    c.half_open(retries=3)
    (r,) = track(cap, tcp_attempt_delay=0)  # mOS's model: no attempt timer
    assert (r["conn_state"], r["orig_pkts"]) == ("S0", 4)


# ---------------------------------------------------------------------------
# the close delay: TCPSessionAdapter::ConnectionClosed removes a closed
# connection at LastTime() + tcp_close_delay (init-bare.zeek: 5 secs);
# packets until then are the connection's


def test_late_rst_within_close_delay_is_counted(conv, track):
    cap, c = conv()
    c.handshake()
    c.close("client")
    cap.advance(1.0)
    c.rst("client")  # one second after the close
    (r,) = track(cap)
    # SYN, ACK, FIN, last ACK, RST from the originator; 'R' recorded; the
    # RST after both FINs changes no state (SF), nor the duration
    assert (r["orig_pkts"], r["orig_ip_bytes"], r["resp_pkts"]) == (5, 200, 2)
    assert (r["conn_state"], r["history"]) == ("SF", "ShAFfR")
    assert r["duration"] == pytest.approx(0.004, abs=1e-6)


def test_packet_after_close_delay_is_not_counted(conv, track):
    cap, c = conv()
    c.handshake()
    c.close("client")
    cap.advance(6.0)  # past tcp_close_delay: the connection is gone
    c.rst("client")
    r, late = track(cap)
    assert (r["orig_pkts"], r["resp_pkts"], r["history"]) == (4, 2, "ShAFf")
    # the RST starts a connection of its own (partial_connection_ok; the
    # originator RESET, the responder INACTIVE, no S: OTH)
    assert (late["conn_state"], late["history"], late["orig_pkts"]) == ("OTH", "R", 1)


def test_second_rst_within_reset_delay_is_counted(conv, track):
    # tcp_reset_delay is 5 secs too: the responder's RST after the
    # originator's counts, and adds 'r'; both sides reset -> Zeek's
    # conn_state() checks the responder's RST first: RSTR
    cap, c = conv()
    c.handshake()
    c.send("client", 10)
    c.rst("client")
    cap.advance(0.5)
    c.rst("server")
    (r,) = track(cap)
    assert (r["history"], r["conn_state"], r["close_reason"]) == ("ShADRr", "RSTR", "rst")
    assert (r["orig_pkts"], r["resp_pkts"]) == (4, 2)


# ---------------------------------------------------------------------------
# missed_bytes: conn/main.zeek's content_gap handler adds each gap's
# length; TCP_Reassembler::Gap reports one only while both endpoints are
# established (or closing from there)


def test_missed_bytes_is_the_gap_the_peer_acknowledged(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    c.send("client", 150, emit=False)  # never seen by the tap
    c.send("client", 100)
    c.ack("server")
    (r,) = track(cap)
    assert (r["missed_bytes"], r["history"], r["orig_bytes"]) == (150, "ShADaG", 350)


def test_gap_of_a_partial_connection_is_not_missed_bytes(conv, track):
    cap, c = conv()
    c.midstream()
    c.send("client", 100)
    c.send("client", 150, emit=False)
    c.send("client", 100)
    c.ack("server")
    (r,) = track(cap)
    assert r["missed_bytes"] == 0 and "G" not in r["history"]


def test_no_gap_no_missed_bytes(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 100)
    c.ack("server")
    (r,) = track(cap)
    assert r["missed_bytes"] == 0


# ---------------------------------------------------------------------------
# local_orig / local_resp: conn/main.zeek: T when the address is in
# Site::local_nets, F when not, unset when local_nets is empty


@pytest.mark.parametrize(
    "nets, want",
    [
        ("10.0.0.0/24", (True, True)),
        ("10.0.0.1/32", (True, False)),
        ("10.0.0.2", (False, True)),
        ("192.168.0.0/16, fd00::/8", (False, False)),
    ],
)
def test_local_orig_and_resp(conv, track, nets, want):
    cap, c = conv()
    c.handshake()
    (r,) = track(cap, options={"local_nets": nets})
    assert (r["local_orig"], r["local_resp"]) == want


def test_local_nets_from_mos_conf(conv, mosfw_run):
    cap, c = conv()
    c.handshake()
    conf = "mos {\n\tlocal_nets = 192.168.0.0/16 10.0.0.2/32\n}\n"
    rec = mosfw_run(cap, plugins=[TRACKER], events=None, conf=conf)
    (r,) = [json.loads(line) for line in rec.stdout.splitlines()]
    assert (r["local_orig"], r["local_resp"]) == (False, True)
    # --local-nets wins over mos.conf
    rec = mosfw_run(cap, plugins=[TRACKER], events=None, conf=conf, options={"local_nets": "10.0.0.1"})
    (r,) = [json.loads(line) for line in rec.stdout.splitlines()]
    assert (r["local_orig"], r["local_resp"]) == (True, False)


def test_local_nets_ipv6_and_tsv(conv, track):
    cap, c = conv(client=("fd00::1", 40000), server=("2001:db8::2", 443))
    c.handshake()
    text = track(cap, fmt="zeek", options={"local_nets": "fd00::/8"})
    fields = next(line for line in text.splitlines() if line.startswith("#fields")).split("\t")[1:]
    row = next(line for line in text.splitlines() if not line.startswith("#")).split("\t")
    got = dict(zip(fields, row, strict=True))
    assert (got["local_orig"], got["local_resp"]) == ("T", "F")


def test_local_fields_unset_without_local_nets(conv, track):
    cap, c = conv()
    c.handshake()
    (r,) = track(cap)
    assert "local_orig" not in r and "local_resp" not in r
    text = track(cap, fmt="zeek")
    fields = next(line for line in text.splitlines() if line.startswith("#fields")).split("\t")[1:]
    row = next(line for line in text.splitlines() if not line.startswith("#")).split("\t")
    got = dict(zip(fields, row, strict=True))
    assert (got["local_orig"], got["local_resp"]) == ("-", "-")


def test_bad_local_net_is_a_usage_error(conv, mosfw_pcap, tracker_cli):
    cap, c = conv()
    c.syn()
    r = tracker_cli(mosfw_pcap(cap, "syn.pcap"), "--local-nets", "10.0.0.0/33")
    assert r.returncode == 2 and "--local-nets: '10.0.0.0/33' is not a network" in r.stderr


# ---------------------------------------------------------------------------
# the TSV header as zeek-cut reads it: #separator, then #fields and #types
# with one entry per column, Zeek's type names


#: Zeek's log types the tracker writes (conn.log: vlan and inner_vlan are int,
#: tunnel sets such as tunnel_parents are set[string])
ZEEK_TYPES = {"time", "string", "addr", "port", "enum", "interval", "count", "bool", "int", "set[string]"}


def test_tsv_fields_and_types_as_zeek_cut_reads_them(conv, track):
    cap, c = conv()
    c.handshake()
    c.send("client", 5)
    c.close("client")
    text = track(cap, fmt="zeek", options={"local_nets": "10.0.0.0/8"})
    head = [line for line in text.splitlines() if line.startswith("#")]
    sep = head[0].split(" ", 1)[1].encode().decode("unicode_escape")
    assert sep == "\t"
    fields = next(h for h in head if h.startswith("#fields")).split(sep)[1:]
    types = next(h for h in head if h.startswith("#types")).split(sep)[1:]
    assert len(fields) == len(types) and set(types) <= ZEEK_TYPES
    typed = dict(zip(fields, types, strict=True))
    assert (typed["local_orig"], typed["missed_bytes"], typed["duration"]) == ("bool", "count", "interval")
    # Zeek's order: conn_state local_orig local_resp missed_bytes history
    i = fields.index("conn_state")
    assert fields[i : i + 5] == ["conn_state", "local_orig", "local_resp", "missed_bytes", "history"]
    # ... resp_ip_bytes ip_proto (Zeek's tunnel_parents between them is not written)
    i = fields.index("resp_ip_bytes")
    assert (fields[i + 1], typed["ip_proto"]) == ("ip_proto", "count")
    (row,) = [line.split(sep) for line in text.splitlines() if not line.startswith("#")]
    assert len(row) == len(fields)


# ---------------------------------------------------------------------------
# rotation (Zeek's Log::rotation_interval; names with
# Log::default_rotation_date_format, %Y-%m-%d-%H-%M-%S)

ROTATED = re.compile(r"conn\.\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d(-\d+)?\.log")


def _many(mosfw_capture, n: int, gap: float = 0.0):
    cap = mosfw_capture(start=1000.0, step=0.001)
    for i in range(n):
        c = cap.conversation(client=("10.0.0.1", 41000 + i), server=SRV)
        c.handshake()
        c.send("client", 10)
        c.close("client")
        if gap:
            cap.advance(gap)
    return cap


def _read_logs(tmp_path: Path) -> tuple[list[Path], list[str]]:
    files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("conn."))
    rows = []
    for p in files:
        lines = p.read_text().splitlines()
        assert lines[0] == "#separator \\x09" and lines[-1].startswith("#close\t"), p.name
        rows += [line for line in lines if not line.startswith("#")]
    return files, rows


def test_rotation_by_size(mosfw_capture, mosfw_run, tmp_path):
    cap = _many(mosfw_capture, 40)
    log = tmp_path / "conn.log"
    opts = {"conn_format": "zeek", "conn_log": str(log), "conn_rotate_size": 3000}
    rec = mosfw_run(cap, plugins=[TRACKER], events=None, options=opts)
    assert rec.stats.plugin_errors == 0, rec.stderr
    files, rows = _read_logs(tmp_path)
    rotated = [p for p in files if p.name != "conn.log"]
    assert len(rotated) >= 2 and all(ROTATED.fullmatch(p.name) for p in rotated)
    assert sorted(int(r.split("\t")[3]) for r in rows) == [41000 + i for i in range(40)]
    # a file is rotated once it reaches the size, at the end of a record:
    # past it by less than one record (plus its #close line)
    longest = max(len(r) + 1 for r in rows)
    assert all(3000 <= p.stat().st_size < 3000 + longest + 40 for p in rotated)


def test_rotation_by_input_time(mosfw_capture, mosfw_run, tmp_path):
    # one connection every 70 s of packet time, rotation every 60 s: at
    # the 1020, 1080, 1140 ... boundaries
    cap = _many(mosfw_capture, 4, gap=70.0)
    log = tmp_path / "conn.log"
    opts = {"conn_format": "json", "conn_log": str(log), "conn_rotate_interval": 60}
    rec = mosfw_run(cap, plugins=[TRACKER], events=None, options=opts)
    assert rec.stats.plugin_errors == 0, rec.stderr
    files = sorted(p for p in tmp_path.iterdir() if p.name.startswith("conn."))
    rotated = [p for p in files if p.name != "conn.log"]
    assert len(rotated) == 3 and all(ROTATED.fullmatch(p.name) for p in rotated)
    ports = sorted(json.loads(line)["id.orig_p"] for p in files for line in p.read_text().splitlines())
    assert ports == [41000, 41001, 41002, 41003]


def test_rotation_needs_a_file(conv, mosfw_pcap, tracker_cli):
    cap, c = conv()
    c.syn()
    r = tracker_cli(mosfw_pcap(cap, "syn.pcap"), "--conn-rotate-size", "100")
    assert r.returncode == 2 and "need --conn-log PATH" in r.stderr


# ---------------------------------------------------------------------------
# the docs' rule table names existing tests


def test_rules_doc_names_existing_tests():
    doc = (ROOT / "docs" / "zeek-rules.md").read_text()
    named = set(re.findall(r"`(test_\w+)`", doc))
    assert len(named) >= 40
    here = Path(__file__).parent
    defined = set()
    for f in (
        "test_tracker.py",
        "test_tracker_zeek_rules.py",
        "test_tracker_idle_real.py",
        "test_tracker_udp_icmp_rules.py",
        "test_tracker_close_timers.py",
        "test_tracker_partial_connections.py",
        "test_tracker_udp_checksums.py",
        "../engine/test_partial_open.py",
    ):
        defined |= set(re.findall(r"^def (test_\w+)\(", (here / f).read_text(), re.M))
    assert named <= defined, sorted(named - defined)
    assert "zeek-rules" in (ROOT / "docs" / "index.md").read_text()


def _cut_tool() -> str | None:
    """zeek-cut, or bro-cut (Debian's bro-aux: the same C program under
    Zeek's former name; scripts/ensure-sysdeps.sh installs it)."""
    import shutil

    return shutil.which("zeek-cut") or shutil.which("bro-cut")


@pytest.mark.skipif(_cut_tool() is None, reason="neither zeek-cut nor bro-cut is installed")
def test_zeek_cut_reads_the_tsv(conv, track, tmp_path):
    cap, c = conv()
    c.handshake()
    c.send("client", 5)
    c.close("client")
    d = cap.conversation(client=("fd00::1", 40001), server=("fd00::2", 443))
    d.syn()
    text = track(cap, fmt="zeek", options={"local_nets": "10.0.0.0/8"})
    cut = _cut_tool()

    def run(*args):
        return subprocess.run([cut, *args], input=text, capture_output=True, text=True, check=True).stdout

    rows = sorted(
        line.split("\t") for line in run("id.orig_p", "conn_state", "local_orig", "history").splitlines()
    )
    assert rows == [["40000", "SF", "T", "ShADFf"], ["40001", "S0", "F", "S"]]
    # -U converts the columns #types calls `time` (ts), not the `interval` (duration)
    conv_ts = run("-U", "%Y", "ts", "duration").splitlines()
    assert sorted(conv_ts) == ["1970\t-", "1970\t0.005000"]
