"""samples/alerts: rules as user-defined events over PKT_IN with BPF
filters (evaluated in C), payload matches chained on top, 'once' per
flow, and 'ignore' rules that stop monitoring flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "samples" / "alerts")

RULES = """
# a comment
alert  telnet   "tcp dst port 23"  once msg "telnet session"
alert  admin    "tcp dst port 80"  contains "GET /admin" msg "request for /admin"
alert  synacks  "tcp[13] & 0x12 == 0x12"
ignore tls      "tcp port 443"
alert  anytls   "tcp port 443"  msg "never: the flow is ignored after its first packet"
"""


def scenario(mosfw_capture):
    cap = mosfw_capture()
    tel = cap.conversation(client=("10.0.0.1", 40000), server=("10.0.0.2", 23))
    web = cap.conversation(client=("10.0.0.3", 40001), server=("10.0.0.2", 80))
    tls = cap.conversation(client=("10.0.0.4", 40002), server=("10.0.0.2", 443))
    for c in (tel, web, tls):
        c.handshake()
    tel.send("client", b"root\r\n")
    tel.send("client", b"password\r\n")
    web.send("client", b"GET /index.html HTTP/1.1\r\n\r\n")
    web.send("client", b"GET /admin/users HTTP/1.1\r\n\r\n")
    tls.send("client", 100)
    tls.send("server", 100)
    return cap


def alerts(rec):
    return [json.loads(x) for x in rec.stdout.splitlines()]


def test_rules(mosfw_capture, mosfw_run, tmp_path):
    rules = tmp_path / "rules.txt"
    rules.write_text(RULES)
    rec = mosfw_run(scenario(mosfw_capture), plugins=[APP], events=None, options={"alert_rules": str(rules)})
    got = [(a["rule"], a["src"], a["dst"], a["flags"]) for a in alerts(rec)]
    assert got == [
        ("telnet", "10.0.0.1:40000", "10.0.0.2:23", "S"),  # once per flow
        ("synacks", "10.0.0.2:23", "10.0.0.1:40000", "SA"),
        ("synacks", "10.0.0.2:80", "10.0.0.3:40001", "SA"),
        # the TLS flow's SYN hit 'ignore': no SYN/ACK alert for it, nothing more
        ("admin", "10.0.0.3:40001", "10.0.0.2:80", "PA"),
    ]
    admin = alerts(rec)[-1]
    assert admin["msg"] == "request for /admin" and admin["len"] == 29 and admin["side"] == "client"
    # the engine delivered only the packets some BPF filter matched
    assert rec.stats.events < 20


def test_default_rules_load(mosfw_capture, mosfw_run):
    rec = mosfw_run(scenario(mosfw_capture), plugins=[APP], events=None)
    assert [a["rule"] for a in alerts(rec)] == ["telnet", "http-admin"]


@pytest.mark.parametrize(
    "text, msg",
    [
        ("alert x", "expected"),
        ('block x "tcp"', "expected"),
        ('alert x "tcp" bogus', "unexpected 'bogus'"),
        ('alert x "tcp"\nalert x "udp"', "defined twice"),
        ('ignore x "tcp" once', "only a name"),
        ('alert x "tcp', "No closing quotation"),
    ],
)
def test_bad_rules(text, msg):
    import importlib.util

    spec = importlib.util.spec_from_file_location("alerts_app", ROOT / "samples/alerts/app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(mod.RuleError, match=msg):
        mod.parse_rules(text, "r.txt")


def test_bad_rules_file_is_a_usage_error(mosfw_capture, tmp_path):
    from click.testing import CliRunner

    from mosfw.cli import cli

    rules = tmp_path / "bad.txt"
    rules.write_text('alert x "tcp" bogus\n')
    pcap = tmp_path / "c.pcap"
    scenario(mosfw_capture).write_pcap(pcap)
    r = CliRunner().invoke(cli, ["run", "-q", "-r", str(pcap), "-p", APP, "--alert-rules", str(rules)])
    assert r.exit_code == 2 and "bad.txt:1: unexpected 'bogus'" in r.output
