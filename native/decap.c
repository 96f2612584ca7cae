/* SPDX-License-Identifier: MIT */
/*
 * decap.c -- one layer loop from the first ethertype to the innermost
 * IP packet. Each step reads one header, records it (tun[]), and says
 * what comes next: an ethertype, an Ethernet header, or an IP packet.
 * Every read is checked against `end`: the captured bytes of the layer
 * being read (never past caplen, never past the outer length fields).
 *
 * Header facts follow the RFCs and the peers' dissectors (Zeek's
 * src/packet_analysis/protocol, Wireshark's epan/dissectors): RFC 2784/2890
 * (GRE), 7348 (VXLAN), 8926 (Geneve), 3GPP TS 29.281 (GTP-U), RFC 4380
 * (Teredo), draft-massar-v6ops-ayiya (AYIYA), RFC 3032 (MPLS), 4385
 * (pseudowire control word), 2516 (PPPoE), 802.1ah (PBB), the ERSPAN
 * draft (types I, II, III).
 */
#include "decap.h"

#include <string.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define ETH_P_QINQ1 0x9100
#define ETH_P_QINQ2 0x9200
#define ETH_P_MPLS_UC 0x8847
#define ETH_P_MPLS_MC 0x8848
#define ETH_P_PPPOE_SES 0x8864
#define ETH_P_PBB 0x88e7
#define ETH_P_FABRICPATH 0x8903
#define ETH_P_VNTAG 0x8926
#define ETH_P_TEB 0x6558 /* transparent Ethernet bridging */
#define ETH_P_ERSPAN2 0x88be
#define ETH_P_ERSPAN3 0x22eb
#define ETH_P_PPP 0x880b

#define MAX_TAGS 16    /* VLAN tags in one packet */
#define MAX_LABELS 16  /* MPLS labels in one stack */
#define MAX_GTP_EXT 16 /* GTP-U extension headers */
#define MAX_STEPS 128  /* headers in one packet, all kinds */

enum next {
	AT_ETHERTYPE,
	AT_ETHERNET,
	AT_IP4,
	AT_IP6
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

void mosfw_decap_defaults(struct mosfw_decap_config *dc)
{
	memset(dc, 0, sizeof(*dc));
	dc->vxlan_ports[0] = 4789;
	dc->geneve_ports[0] = 6081;
	dc->gtpu_ports[0] = 2152;
	dc->teredo_ports[0] = 3544;
	dc->ayiya_ports[0] = 5072;
	dc->max_depth = 4;
}

static int port_in(const uint16_t *ports, uint16_t port)
{
	return port &&
	       (ports[0] == port || ports[1] == port || ports[2] == port || ports[3] == port);
}

/* kinds whose id names the overlay a flow lives in (decap.key_by_tunnel):
 * not MPLS labels nor GTP-U TEIDs, which differ by direction */
static int names_zone(uint8_t kind)
{
	return kind == MOSFW_TUN_VLAN || kind == MOSFW_TUN_VXLAN || kind == MOSFW_TUN_GENEVE ||
	       kind == MOSFW_TUN_GRE || kind == MOSFW_TUN_PBB || kind == MOSFW_TUN_PPPOE ||
	       kind == MOSFW_TUN_VNTAG || kind == MOSFW_TUN_ERSPAN;
}

static void push(struct mosfw_pkt *p, const struct mosfw_decap_config *dc, uint8_t kind,
                 uint32_t ip_off, uint32_t l4_off, uint32_t id)
{
	p->l4_ip = 0; /* until an inner IP header is parsed */
	if (p->n_tun < MOSFW_MAX_TUNNELS) {
		struct mosfw_tun_layer *t = &p->tun[p->n_tun++];
		t->kind = kind;
		t->pad = kind >= MOSFW_TUN_IPIP; /* ip_off names an outer IP header */
		t->ip_off = (uint16_t)(ip_off > 0xffff ? 0 : ip_off);
		t->l4_off = (uint16_t)(l4_off > 0xffff ? 0 : l4_off);
		t->pad2 = 0;
		t->id = id;
	}
	if (dc && dc->key_by_tunnel && names_zone(kind)) {
		uint32_t z = (p->zone ^ ((uint32_t)kind << 24) ^ id) * 0x9e3779b1U;
		z ^= z >> 15;
		p->zone = z ? z : 1;
	}
}

/* one more tunnel layer of this kind: 0, or TOO_DEEP past max_depth */
static int deeper(struct mosfw_pkt *p, const struct mosfw_decap_config *dc, uint8_t kind)
{
	if (!dc || p->depth >= dc->max_depth) {
		p->tun_err = (uint8_t)(kind + 1);
		return MOSFW_PARSE_TOO_DEEP;
	}
	p->depth++;
	return 0;
}

/* the header of a layer (or the one it carries) is cut or inconsistent */
static int broken(struct mosfw_pkt *p, int r)
{
	if (p->n_tun || p->depth)
		p->tun_err = (uint8_t)((p->n_tun ? p->tun[p->n_tun - 1].kind : MOSFW_TUN_VLAN) + 1);
	return r;
}

/* The PPP protocol at *o (address/control and protocol field
 * compression allowed): the ethertype it carries, 0 for none. */
static uint16_t ppp_proto(const uint8_t *f, uint32_t end, uint32_t *o)
{
	uint32_t x = *o;
	uint16_t proto;

	if (x + 2 <= end && f[x] == 0xff && f[x + 1] == 0x03)
		x += 2;
	if (x + 1 > end)
		return 0;
	if (f[x] & 1) { /* compressed one-byte protocol */
		proto = f[x];
		x += 1;
	} else {
		if (x + 2 > end)
			return 0;
		proto = rd16(f + x);
		x += 2;
	}
	*o = x;
	switch (proto) {
	case 0x21: return ETH_P_IP;
	case 0x57: return ETH_P_IPV6;
	case 0x281: return ETH_P_MPLS_UC; /* RFC 3032 section 4.3 */
	case 0x283: return ETH_P_MPLS_MC;
	default: return 0;
	}
}

/* GRE (RFC 2784/2890, version 1 as PPTP uses it) at g, ending at end. */
static int gre(const uint8_t *f, uint32_t end, uint32_t ip_off, uint32_t g,
               const struct mosfw_decap_config *dc, struct mosfw_pkt *p, uint32_t *off,
               uint16_t *type, int *next)
{
	uint16_t fl, proto;
	uint32_t hl = 4, key = 0;
	int r;

	if (g + 4 > end)
		return MOSFW_PARSE_NON_TCP; /* too short for GRE: not followed */
	fl = rd16(f + g);
	proto = rd16(f + g + 2);
	if ((fl & 7) == 0) {
		if (fl & 0x4000) /* RFC 1701 routing: not decoded */
			return MOSFW_PARSE_NON_TCP;
		if (fl & 0x8000)
			hl += 4;
		if (fl & 0x2000) {
			if (g + hl + 4 > end)
				return MOSFW_PARSE_TRUNCATED;
			key = rd32(f + g + hl);
			hl += 4;
		}
		if (fl & 0x1000)
			hl += 4;
	} else if ((fl & 7) == 1 && proto == ETH_P_PPP && (fl & 0x2000)) {
		if (g + 8 > end)
			return MOSFW_PARSE_TRUNCATED;
		key = rd16(f + g + 6); /* call id */
		hl = 8 + ((fl & 0x1000) ? 4 : 0) + ((fl & 0x0080) ? 4 : 0);
	} else
		return MOSFW_PARSE_NON_TCP;
	if (g + hl > end)
		return MOSFW_PARSE_TRUNCATED;
	g += hl;
	if (proto == ETH_P_ERSPAN2 || proto == ETH_P_ERSPAN3) {
		uint32_t session = 0;
		if ((r = deeper(p, dc, MOSFW_TUN_ERSPAN)) != 0)
			return r;
		if (proto == ETH_P_ERSPAN3) {
			/* 12 bytes, + 8 of platform-specific subheader with O */
			if (g + 12 > end)
				return MOSFW_PARSE_TRUNCATED;
			if (((f[g + 10] >> 2) & 0x1f) != 0) /* frame type: not Ethernet */
				return MOSFW_PARSE_NON_TCP;
			session = rd16(f + g + 2) & 0x3ff;
			hl = 12 + ((f[g + 11] & 1) ? 8 : 0);
		} else if (fl & 0x1000) { /* type II: 8 bytes; type I has none and no S bit */
			if (g + 8 > end)
				return MOSFW_PARSE_TRUNCATED;
			session = rd16(f + g + 2) & 0x3ff;
			hl = 8;
		} else
			hl = 0;
		if (g + hl > end)
			return MOSFW_PARSE_TRUNCATED;
		push(p, dc, MOSFW_TUN_ERSPAN, ip_off, 0, session);
		*off = g + hl;
		*next = AT_ETHERNET;
		return 0;
	}
	if ((r = deeper(p, dc, MOSFW_TUN_GRE)) != 0)
		return r;
	push(p, dc, MOSFW_TUN_GRE, ip_off, 0, key);
	if (proto == ETH_P_PPP) {
		*type = ppp_proto(f, end, &g);
		if (!*type)
			return MOSFW_PARSE_NON_TCP;
	} else
		*type = proto;
	*off = g;
	*next = AT_ETHERTYPE;
	return 0;
}

/* the IP version at o as the next step (GTP-U, MPLS, ...) */
static int ip_by_nibble(const uint8_t *f, uint32_t end, uint32_t o, int *next)
{
	if (o + 1 > end)
		return MOSFW_PARSE_TRUNCATED;
	if ((f[o] >> 4) == 4)
		*next = AT_IP4;
	else if ((f[o] >> 4) == 6)
		*next = AT_IP6;
	else
		return MOSFW_PARSE_NON_TCP;
	return 0;
}

/* A UDP datagram at u (its payload ending at end): a tunnel on one of
 * the configured ports, or plain UDP (NON_TCP). */
static int udp(const uint8_t *f, uint32_t end, uint32_t ip_off, uint32_t u,
               const struct mosfw_decap_config *dc, struct mosfw_pkt *p, uint32_t *off,
               uint16_t *type, int *next)
{
	uint16_t sport, dport;
	uint32_t h = u + 8, hl;
	int r;

	if (u + 8 > end)
		return MOSFW_PARSE_NON_TCP;
	sport = rd16(f + u);
	dport = rd16(f + u + 2);
	if (port_in(dc->vxlan_ports, dport)) {
		if (h + 8 > end)
			return MOSFW_PARSE_TRUNCATED;
		if (!(f[h] & 0x08)) /* the I flag: a valid VNI */
			return MOSFW_PARSE_NON_TCP;
		if ((r = deeper(p, dc, MOSFW_TUN_VXLAN)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_VXLAN, ip_off, u, rd32(f + h + 4) >> 8);
		*off = h + 8;
		*next = AT_ETHERNET;
		return 0;
	}
	if (port_in(dc->geneve_ports, dport)) {
		if (h + 8 > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((f[h] >> 6) != 0) /* version 0 only */
			return MOSFW_PARSE_NON_TCP;
		hl = 8 + (uint32_t)(f[h] & 0x3f) * 4; /* options, by their length */
		if (h + hl > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((r = deeper(p, dc, MOSFW_TUN_GENEVE)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_GENEVE, ip_off, u, rd32(f + h + 4) >> 8);
		*type = rd16(f + h + 2);
		*off = h + hl;
		*next = AT_ETHERTYPE;
		return 0;
	}
	if (port_in(dc->gtpu_ports, dport) || port_in(dc->gtpu_ports, sport)) {
		uint8_t fl;
		int n;
		if (h + 8 > end)
			return MOSFW_PARSE_TRUNCATED;
		fl = f[h];
		/* version 1, protocol type GTP, a G-PDU (user data) */
		if ((fl >> 5) != 1 || !(fl & 0x10) || f[h + 1] != 0xff)
			return MOSFW_PARSE_NON_TCP;
		hl = 8;
		if (fl & 0x07) { /* E, S or PN: sequence, N-PDU, next extension */
			uint8_t ext;
			if (h + 12 > end)
				return MOSFW_PARSE_TRUNCATED;
			ext = f[h + 11];
			hl = 12;
			for (n = 0; ext && (fl & 0x04); n++) {
				uint32_t elen;
				if (n == MAX_GTP_EXT || h + hl + 1 > end)
					return MOSFW_PARSE_MALFORMED;
				elen = (uint32_t)f[h + hl] * 4;
				if (!elen)
					return MOSFW_PARSE_MALFORMED;
				if (h + hl + elen > end)
					return MOSFW_PARSE_TRUNCATED;
				ext = f[h + hl + elen - 1];
				hl += elen;
			}
		}
		if ((r = deeper(p, dc, MOSFW_TUN_GTPU)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_GTPU, ip_off, u, rd32(f + h + 4));
		*off = h + hl;
		return ip_by_nibble(f, end, *off, next);
	}
	if (port_in(dc->teredo_ports, dport) || port_in(dc->teredo_ports, sport)) {
		int n;
		/* authentication indicator, then origin indicator, both optional */
		for (n = 0; n < 2 && h + 2 <= end; n++) {
			if (rd16(f + h) == 0x0001) {
				if (h + 4 > end)
					return MOSFW_PARSE_NON_TCP;
				h += 4 + (uint32_t)f[h + 2] + f[h + 3] + 8 + 1;
			} else if (rd16(f + h) == 0x0000 && h + 8 <= end)
				h += 8;
			else
				break;
		}
		/* an IPv6 header must follow (bubbles and others are not) */
		if (h + 40 > end || (f[h] >> 4) != 6)
			return MOSFW_PARSE_NON_TCP;
		if ((r = deeper(p, dc, MOSFW_TUN_TEREDO)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_TEREDO, ip_off, u, 0);
		*off = h;
		*next = AT_IP6;
		return 0;
	}
	if (port_in(dc->ayiya_ports, dport) || port_in(dc->ayiya_ports, sport)) {
		uint8_t nh;
		if (h + 8 > end)
			return MOSFW_PARSE_NON_TCP;
		if ((f[h + 2] & 0x0f) != 1) /* opcode: forward */
			return MOSFW_PARSE_NON_TCP;
		nh = f[h + 3];
		if (nh != 4 && nh != 41)
			return MOSFW_PARSE_NON_TCP;
		hl = 8 + (1u << (f[h] >> 4)) + (uint32_t)(f[h + 1] >> 4) * 4;
		if (h + hl > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((r = deeper(p, dc, MOSFW_TUN_AYIYA)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_AYIYA, ip_off, u, 0);
		*off = h + hl;
		*next = nh == 4 ? AT_IP4 : AT_IP6;
		return 0;
	}
	return MOSFW_PARSE_NON_TCP;
}

/* An ethertype at off: the next step. */
static int ethertype(const uint8_t *f, uint32_t end, const struct mosfw_decap_config *dc,
                     struct mosfw_pkt *p, uint32_t *off, uint16_t *type, int *next, int *tags)
{
	uint32_t o = *off;
	int r, n;

	switch (*type) {
	case ETH_P_IP: *next = AT_IP4; return 0;
	case ETH_P_IPV6: *next = AT_IP6; return 0;
	case ETH_P_8021Q:
	case ETH_P_8021AD:
	case ETH_P_QINQ1:
	case ETH_P_QINQ2:
		if (++*tags > MAX_TAGS)
			return MOSFW_PARSE_MALFORMED;
		if (o + 4 > end)
			return MOSFW_PARSE_TRUNCATED;
		push(p, dc, MOSFW_TUN_VLAN, 0, 0, rd16(f + o) & 0x0fff);
		*type = rd16(f + o + 2);
		*off = o + 4;
		return 0;
	case ETH_P_TEB: *next = AT_ETHERNET; return 0;
	default: break;
	}
	if (!dc || !dc->max_depth)
		return MOSFW_PARSE_NON_TCP; /* decapsulation off */
	switch (*type) {
	case ETH_P_MPLS_UC:
	case ETH_P_MPLS_MC:
		if ((r = deeper(p, dc, MOSFW_TUN_MPLS)) != 0)
			return r;
		for (n = 0;; n++) {
			if (n == MAX_LABELS)
				return MOSFW_PARSE_MALFORMED;
			if (o + 4 > end)
				return MOSFW_PARSE_TRUNCATED;
			push(p, dc, MOSFW_TUN_MPLS, 0, 0, rd32(f + o) >> 12);
			o += 4;
			if (f[o - 2] & 1) /* bottom of stack */
				break;
		}
		*off = o;
		r = ip_by_nibble(f, end, o, next);
		if (r != MOSFW_PARSE_NON_TCP)
			return r;
		if (dc->mpls_pw == 1)
			*next = AT_ETHERNET;
		else if (dc->mpls_pw == 2 && (f[o] >> 4) == 0) {
			*off = o + 4; /* the control word */
			*next = AT_ETHERNET;
		} else
			return MOSFW_PARSE_NON_TCP;
		return 0;
	case ETH_P_PPPOE_SES:
		if (o + 8 > end)
			return MOSFW_PARSE_TRUNCATED;
		if (f[o] != 0x11 || f[o + 1] != 0) /* version 1, type 1, session data */
			return MOSFW_PARSE_MALFORMED;
		if ((r = deeper(p, dc, MOSFW_TUN_PPPOE)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_PPPOE, 0, 0, rd16(f + o + 2));
		o += 6;
		*type = ppp_proto(f, end, &o);
		if (!*type)
			return MOSFW_PARSE_NON_TCP;
		*off = o;
		return 0;
	case ETH_P_PBB: /* I-TAG (4 bytes: flags, I-SID), then the customer frame */
		if (o + 4 > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((r = deeper(p, dc, MOSFW_TUN_PBB)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_PBB, 0, 0, rd32(f + o) & 0xffffff);
		*off = o + 4;
		*next = AT_ETHERNET;
		return 0;
	case ETH_P_FABRICPATH: /* FTag (10 bits) + TTL (6), then the original frame */
		if (o + 2 > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((r = deeper(p, dc, MOSFW_TUN_FABRICPATH)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_FABRICPATH, 0, 0, rd16(f + o) >> 6);
		*off = o + 2;
		*next = AT_ETHERNET;
		return 0;
	case ETH_P_VNTAG: /* d, p, dst VIF (14 bits), l, r, version, src VIF; then a type */
		if (o + 6 > end)
			return MOSFW_PARSE_TRUNCATED;
		if ((r = deeper(p, dc, MOSFW_TUN_VNTAG)) != 0)
			return r;
		push(p, dc, MOSFW_TUN_VNTAG, 0, 0, rd16(f + o) & 0x3fff);
		*type = rd16(f + o + 4);
		*off = o + 6;
		return 0;
	default: return MOSFW_PARSE_NON_TCP;
	}
}

/* at_payload: the IP header at off was parsed already (a NON_TCP result
 * in p): start from what it carries */
static int decap_loop(const uint8_t *f, uint32_t caplen, uint32_t off, uint16_t type, int verify,
                      const struct mosfw_decap_config *dc, struct mosfw_pkt *p, int at_payload)
{
	uint32_t end = caplen, ip_off, l4, prev_end;
	int next = AT_ETHERTYPE, tags = 0, step, r;

	if (at_payload)
		next = type == 0x86dd ? AT_IP6 : AT_IP4;

	for (step = 0; step < MAX_STEPS; step++) {
		switch (next) {
		case AT_ETHERNET:
			if (off + 14 > end)
				return broken(p, MOSFW_PARSE_TRUNCATED);
			type = rd16(f + off + 12);
			off += 14;
			next = AT_ETHERTYPE;
			continue;
		case AT_ETHERTYPE:
			r = ethertype(f, end, dc, p, &off, &type, &next, &tags);
			if (r == MOSFW_PARSE_MALFORMED || r == MOSFW_PARSE_TRUNCATED)
				return broken(p, r);
			if (r)
				return r;
			continue;
		default: break;
		}
		/* an IP packet at off, within end */
		ip_off = off;
		if (at_payload) { /* mosfw_parse() did it */
			at_payload = 0;
			r = MOSFW_PARSE_NON_TCP;
		} else {
			prev_end = p->ip_end;
			p->ip_end = 0;
			r = next == AT_IP4 ? mosfw_parse_ipv4(f + off, end - off, verify, p)
			                   : mosfw_parse_ipv6(f + off, end - off, verify, p);
			p->ip_end = p->ip_end ? p->ip_end + off : prev_end;
		}
		if (r == MOSFW_PARSE_MALFORMED || r == MOSFW_PARSE_TRUNCATED)
			return broken(p, r);
		if (r != MOSFW_PARSE_NON_TCP || !dc || !dc->max_depth)
			return r;
		l4 = (uint32_t)(p->l4 - f);
		if (l4 + p->l4_len < end)
			end = l4 + p->l4_len; /* the rest is padding or a trailer */
		switch (p->ip_proto) {
		case 4:
		case 41:
			if ((r = deeper(p, dc, MOSFW_TUN_IPIP)) != 0)
				return r;
			push(p, dc, MOSFW_TUN_IPIP, ip_off, 0, 0);
			off = l4;
			next = p->ip_proto == 4 ? AT_IP4 : AT_IP6;
			continue;
		case 47: r = gre(f, end, ip_off, l4, dc, p, &off, &type, &next); break;
		case 17: r = udp(f, end, ip_off, l4, dc, p, &off, &type, &next); break;
		default: return MOSFW_PARSE_NON_TCP;
		}
		if (r == MOSFW_PARSE_MALFORMED || r == MOSFW_PARSE_TRUNCATED)
			return broken(p, r);
		if (r)
			return r;
	}
	return broken(p, MOSFW_PARSE_MALFORMED);
}

/* The entry point (packet.h): the link layer, then the loop. */
int mosfw_parse(int linktype, const uint8_t *frame, uint32_t caplen, int verify_csum,
                const struct mosfw_decap_config *dc, struct mosfw_pkt *out)
{
	uint32_t off;
	uint16_t proto;
	int r;

	out->ip_end = 0;
	out->n_tun = 0;
	out->depth = 0;
	out->tun_err = 0;
	out->zone = 0;
	out->l4_ip = 0;
	out->frame = frame;
	r = mosfw_parse_link(linktype, frame, caplen, &off, &proto);
	if (r != MOSFW_PARSE_TCP)
		return r;
	if (proto == ETH_P_IP)
		r = mosfw_parse_ipv4(frame + off, caplen - off, verify_csum, out);
	else if (proto == ETH_P_IPV6)
		r = mosfw_parse_ipv6(frame + off, caplen - off, verify_csum, out);
	else /* tags, labels, PPPoE...: the layer loop */
		return decap_loop(frame, caplen, off, proto, verify_csum, dc, out, 0);
	if (out->ip_end)
		out->ip_end += off;
	if (r == MOSFW_PARSE_NON_TCP && dc && dc->max_depth &&
	    mosfw_decap_may_tunnel(out->ip_proto))
		return decap_loop(frame, caplen, off, proto, verify_csum, dc, out, 1);
	return r;
}
