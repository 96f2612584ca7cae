/* SPDX-License-Identifier: MIT */
/* dgram.c -- the flow key and payload of a UDP datagram or an ICMP/ICMPv6
 * message (packet.h: mosfw_parse_dgram), after Zeek's UDP and ICMP
 * analyzers (src/packet_analysis/protocol/{udp,icmp}: BuildConnTuple,
 * ICMP4_counterpart, ICMP6_counterpart). */
#include "packet.h"

static inline uint16_t rd16(const uint8_t *b) { return (uint16_t)((b[0] << 8) | b[1]); }

/* The type of the reply (or request) Zeek pairs an ICMPv4 type with; -1
 * for a one-way message. */
static int icmp4_counterpart(uint8_t type)
{
	switch (type) {
	case 8: return 0; /* echo request / reply */
	case 0: return 8;
	case 13: return 14; /* timestamp */
	case 14: return 13;
	case 15: return 16; /* information */
	case 16: return 15;
	case 10: return 9; /* router solicitation / advertisement */
	case 9: return 10;
	case 17: return 18; /* address mask */
	case 18: return 17;
	default: return -1;
	}
}

static int icmp6_counterpart(uint8_t type)
{
	switch (type) {
	case 128: return 129; /* echo request / reply */
	case 129: return 128;
	case 133: return 134; /* router solicitation / advertisement */
	case 134: return 133;
	case 135: return 136; /* neighbor solicitation / advertisement */
	case 136: return 135;
	case 130: return 131; /* MLD query / report */
	case 131: return 130;
	case 139: return 140; /* node information query / response */
	case 140: return 139;
	case 144: return 145; /* home agent address discovery */
	case 145: return 144;
	default: return -1;
	}
}

int mosfw_parse_dgram(struct mosfw_pkt *p, uint32_t caplen)
{
	const uint8_t *end = p->frame + caplen;
	uint32_t avail;
	int kind, peer;

	if (!p->l4_ip || p->l4 > end)
		return 0;
	avail = (uint32_t)(end - p->l4);
	if (avail > p->l4_len)
		avail = p->l4_len; /* Ethernet padding, a trailer */
	if (p->ip_proto == 17)
		kind = MOSFW_PROTO_UDP;
	else if ((p->ip_proto == 1 && p->family == 4) || (p->ip_proto == 58 && p->family == 6))
		kind = MOSFW_PROTO_ICMP;
	else
		kind = MOSFW_PROTO_OTHER;
	p->seq = p->ack = 0;
	p->window = 0;
	p->tcp_flags = 0;
	p->tcp_hlen = 0;
	if (kind == MOSFW_PROTO_OTHER) { /* by addresses and protocol: no ports */
		p->sport = p->dport = 0;
		p->payload = p->l4;
		p->payload_len = p->l4_len;
		p->payload_caplen = avail;
		return kind;
	}
	if (p->l4_len < 8 || avail < 8)
		return 0; /* the header is cut short, or was not captured */
	if (kind == MOSFW_PROTO_UDP) {
		uint32_t ulen = rd16(p->l4 + 4);
		p->sport = rd16(p->l4);
		p->dport = rd16(p->l4 + 2);
		p->payload_len = ulen >= 8 ? ulen - 8 : p->l4_len - 8; /* (Zeek's count) */
		p->payload = p->l4 + 8;
		p->payload_caplen = avail - 8 < p->payload_len ? avail - 8 : p->payload_len;
		return kind;
	}
	peer = p->ip_proto == 1 ? icmp4_counterpart(p->l4[0]) : icmp6_counterpart(p->l4[0]);
	p->sport = p->l4[0];
	p->dport = peer >= 0 ? (uint16_t)peer : (uint16_t)(MOSFW_ICMP_ONE_WAY | p->l4[1]);
	p->payload = p->l4 + 8; /* after the type, code, checksum and 4 more bytes */
	p->payload_len = p->l4_len - 8;
	p->payload_caplen = avail - 8;
	return kind;
}
