/* SPDX-License-Identifier: MIT */
/*
 * zeek_dgram.c -- Zeek's conn.log view of a UDP or ICMP flow (the flows
 * the tracker asks the engine for): the originator and the history as
 * Zeek's UDP and ICMP analyzers decide them (facts from Zeek's source:
 * packet_analysis/protocol/udp/UDP.cc, icmp/ICMP.cc, Conn.cc FlipRoles,
 * base/protocols/conn/main.zeek conn_state), and what the record shows.
 *
 * - Originator: a UDP flow's first packet's sender, unless its source
 *   port is a likely server port and its destination port is not
 *   (UDPAnalyzer::WantConnection): the roles are then flipped at once,
 *   and the history starts with '^' (Connection::FlipRoles). An ICMP
 *   flow's first message's sender.
 * - History: UDP: 'D' at the originator's first packet, 'd' at the
 *   responder's (CheckHistory, once each). ICMP: no letters.
 * - conn_state: UDP: SF (both sides sent), S0 (the originator only), SHR
 *   (the responder only); ICMP and other protocols: OTH.
 * - Other IP protocols (--conn-protocols other): proto unknown_transport,
 *   ports 0, the first packet's sender the originator, sizes all the
 *   bytes after the IP header(s) (mosfw's choice).
 * - Sizes (orig_bytes/resp_bytes): the UDP payload by the UDP length
 *   field, the ICMP message after its 8-byte header (the engine's
 *   payload_bytes, which count them so).
 * - A UDP datagram with a bad checksum (the engine checks them for the
 *   tracker: MOSFW_SEG_BAD_CSUM): 'C' (the responder's 'c') at the 1st,
 *   10th, 100th ... (UDPSessionAdapter::HandleBadChecksum,
 *   ScaledHistoryEntry); counted in the packets and IP bytes (ConnSize
 *   sees it first) but not in the sizes, the history's 'D', the last
 *   time or conn_state (UDPAnalyzer::DeliverPacket returns there).
 */
#include <string.h>

#include "zeek.h"
#include "zeek_view.h"

#define HIST_DATA 0x1u /* Zeek's HIST_ORIG_DATA_PKT (<< 16: the responder's) */

/* Zeek's likely_server_ports for UDP with the default (base) scripts: the
 * UDP ports its protocol and tunnel scripts add (DNS, DHCP, NTP, SNMP,
 * syslog, Kerberos, RADIUS, SIP, NetBIOS name, mDNS, LLMNR, CLDAP, QUIC,
 * and the tunnels: L2TP, Teredo, AYIYA, GTP, VXLAN, Geneve). */
int zeek_udp_likely_server_port(uint16_t port)
{
	switch (port) {
	case 53:
	case 67:
	case 68:
	case 88:
	case 123:
	case 137:
	case 161:
	case 162:
	case 389:
	case 443:
	case 514:
	case 750:
	case 1701:
	case 1812:
	case 2123:
	case 2152:
	case 3544:
	case 4789:
	case 5060:
	case 5072:
	case 5353:
	case 5355:
	case 6081: return 1;
	default: return 0;
	}
}

void zeek_conn_dgram(struct zeek_conn *k, const struct mosfw_flow *f, const struct mosfw_seg *s)
{
	unsigned dir = s->dir & 1u;

	if (k->flow_id != f->id || !(k->flags & CF_INIT)) {
		/* the flow's first packet: NewConn */
		uint16_t sport = dir == MOSFW_SIDE_CLIENT ? f->tuple.cli_port : f->tuple.srv_port;
		uint16_t dport = dir == MOSFW_SIDE_CLIENT ? f->tuple.srv_port : f->tuple.cli_port;
		memset(k, 0, sizeof(*k));
		k->flow_id = f->id;
		k->flags = CF_INIT;
		k->orig_side = (uint8_t)dir;
		k->last_ts = s->ts; /* Zeek's start and last time */
		k->udp.chk_thresh[0] = k->udp.chk_thresh[1] = 1;
		if (s->proto == 17 && zeek_udp_likely_server_port(sport) &&
		    !zeek_udp_likely_server_port(dport))
			zeek_flip_roles(k);
	}
	if (s->flags & MOSFW_SEG_BAD_CSUM) {
		k->udp.bad_pkts[dir]++;
		k->udp.bad_bytes[dir] += s->payload_len;
		zeek_scaled_history(k, dir, 'C', &k->udp.chk_cnt[dir], &k->udp.chk_thresh[dir]);
		return;
	}
	if (s->ts > k->last_ts)
		k->last_ts = s->ts;
	if (s->proto == 17 &&
	    !(k->hist_seen & (dir == k->orig_side ? HIST_DATA : HIST_DATA << 16))) {
		k->hist_seen |= dir == k->orig_side ? HIST_DATA : HIST_DATA << 16;
		zeek_side_history(k, dir, 'D');
	}
}

const char *zeek_dgram_state(const struct mosfw_flow *f, const struct zeek_conn *k)
{
	unsigned orig = k->orig_side & 1u;
	int o, r; /* sent a datagram with a good checksum (UDP_ACTIVE) */

	if (f->tuple.proto != 17)
		return "OTH";
	o = f->side[orig].pkts > k->udp.bad_pkts[orig];
	r = f->side[orig ^ 1].pkts > k->udp.bad_pkts[orig ^ 1];
	if (o)
		return r ? "SF" : "S0";
	return r ? "SHR" : "OTH";
}

uint64_t zeek_dgram_bytes(const struct mosfw_flow *f, const struct zeek_conn *k, unsigned side)
{
	return f->side[side].payload_bytes - (f->tuple.proto == 17 ? k->udp.bad_bytes[side] : 0);
}
