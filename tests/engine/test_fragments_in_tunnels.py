"""IP fragments inside tunnels: decapsulation (decap.c) and fragment
reassembly (ipfrag.c) together. http-loss.pcap (real traffic with loss)
is cut into 512-byte IPv4 fragments (tests/fragtool.py), then every frame
is wrapped in a tunnel (mosfw.testing.encap): the engine reassembles the
inner datagrams and gives exactly the plain capture's events, with the
tunnel's layers on conn_start; tshark (the oracle) sees the same TCP
conversations in the wrapped file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mosfw.testing.encap import wrap_capture

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fragtool
from test_decap_wrapped import (
    EXPECT,
    PLAIN,
    eventlog,
    stats,
    tracker,
    tshark_conversations,
    without_layers,
    without_tunnels,
)

KINDS = ("vxlan", "gre", "qinq", "mpls", "gtpu")


@pytest.fixture(scope="module")
def fragmented(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("frag") / "frag.pcap"
    fragtool.fragment_capture(PLAIN, p, size=512)
    return p


@pytest.mark.parametrize("kind", KINDS)
def test_fragments_inside_a_tunnel_give_the_plain_events(kind, fragmented, tmp_path):
    wrapped = tmp_path / f"frag-{kind}.pcap"
    wrap_capture(fragmented, wrapped, kind)
    assert tshark_conversations(wrapped) == tshark_conversations(PLAIN)
    events = eventlog(wrapped)
    assert without_tunnels(events) == eventlog(PLAIN)
    starts = [e for e in events if e.get("event") == "conn_start"]
    assert starts and all([(t["kind"], t["id"]) for t in e["tunnels"]] == EXPECT[kind] for e in starts), (
        starts[0]
    )
    assert without_layers(tracker(wrapped)) == tracker(PLAIN)
    st = stats(wrapped)
    assert st["frag_reassembled"] > 100 and st["frag_pending"] == 0 and st["frag_malformed"] == 0, st
    assert st["rexmits"] == stats(PLAIN)["rexmits"]
