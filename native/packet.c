/* SPDX-License-Identifier: MIT */
/* packet.c -- L2-L4 parsing. Every read is bounds-checked against caplen. */
#include "packet.h"

#include <stdio.h>
#include <string.h>

#include "csum.h"
#include "mosfw_api.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define IPPROTO_TCP_ 6
#define MAX_V6_EXT 16

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

int mosfw_linktype_supported(int linktype)
{
	switch (linktype) {
	case MOSFW_LINK_PPP:
	case MOSFW_LINK_C_HDLC:
	case MOSFW_LINK_IEEE802_11:
	case MOSFW_LINK_RADIOTAP:
	case MOSFW_LINK_NFLOG:
	case MOSFW_LINK_NULL:
	case MOSFW_LINK_EN10MB:
	case MOSFW_LINK_RAW:
	case MOSFW_LINK_RAW_OLD:
	case MOSFW_LINK_RAW_OLD2:
	case MOSFW_LINK_LOOP:
	case MOSFW_LINK_LINUX_SLL:
	case MOSFW_LINK_IPV4:
	case MOSFW_LINK_IPV6:
	case MOSFW_LINK_LINUX_SLL2: return 1;
	default: return 0;
	}
}

int mosfw_linktype_refused(int linktype, const char *name, const char *path, char *errbuf)
{
	if (mosfw_linktype_supported(linktype))
		return 0;
	snprintf(errbuf, MOSFW_ERRBUF_SIZE,
	         "%s%.200s%sunsupported link type %d (%s): mosfw reads Ethernet, Linux SLL/SLL2, "
	         "raw IP, NULL/loopback, PPP, Cisco HDLC, NFLOG, 802.11 and radiotap captures",
	         path ? "capture '" : "", path ? path : "", path ? "': " : "", linktype, name);
	return 1;
}


/* Find the L3 start and its ethertype-like protocol (ETH_P_IP/IPV6, or
 * another ethertype -- VLAN tags, MPLS, PPPoE... -- for decap.c). */
int mosfw_parse_link(int linktype, const uint8_t *f, uint32_t caplen, uint32_t *off,
                     uint16_t *proto)
{
	uint32_t o = 0;
	uint16_t type;

	switch (linktype) {
	case MOSFW_LINK_EN10MB:
		if (caplen < 14)
			return MOSFW_PARSE_TRUNCATED;
		type = rd16(f + 12);
		o = 14;
		break;
	case MOSFW_LINK_LINUX_SLL:
		if (caplen < 16)
			return MOSFW_PARSE_TRUNCATED;
		type = rd16(f + 14);
		o = 16;
		break;
	case MOSFW_LINK_LINUX_SLL2:
		/* protocol (2), reserved (2), ifindex (4), ARPHRD (2), packet
		 * type (1), address length (1), address (8) */
		if (caplen < 20)
			return MOSFW_PARSE_TRUNCATED;
		type = rd16(f);
		o = 20;
		break;
	case MOSFW_LINK_NULL:
	case MOSFW_LINK_LOOP: {
		uint32_t fam;
		if (caplen < 4)
			return MOSFW_PARSE_TRUNCATED;
		if (linktype == MOSFW_LINK_LOOP)
			fam = rd32(f);
		else {
			/* host byte order of the capturing machine: accept both */
			fam = (uint32_t)f[0] | ((uint32_t)f[1] << 8) | ((uint32_t)f[2] << 16) |
			      ((uint32_t)f[3] << 24);
			if (fam > 0xffff)
				fam = rd32(f);
		}
		o = 4;
		if (fam == 2)
			type = ETH_P_IP;
		else if (fam == 10 || fam == 24 || fam == 28 || fam == 30 || fam == 23)
			type = ETH_P_IPV6;
		else
			return MOSFW_PARSE_NON_TCP;
		break;
	}
	case MOSFW_LINK_RAW:
	case MOSFW_LINK_RAW_OLD:
	case MOSFW_LINK_RAW_OLD2:
	case MOSFW_LINK_IPV4:
	case MOSFW_LINK_IPV6:
		if (caplen < 1)
			return MOSFW_PARSE_TRUNCATED;
		type = (f[0] >> 4) == 6 ? ETH_P_IPV6 : (f[0] >> 4) == 4 ? ETH_P_IP : 0;
		if (!type)
			return MOSFW_PARSE_MALFORMED;
		break;
	default: return mosfw_link_extra(linktype, f, caplen, off, proto);
	}
	*off = o;
	*proto = type;
	return MOSFW_PARSE_TCP;
}

/* Parse the TCP header at l4 (avail = captured bytes from l4, seglen = TCP
 * header + payload bytes according to the IP header). */
static int parse_tcp(const uint8_t *l4, uint32_t avail, uint32_t seglen, struct mosfw_pkt *p)
{
	uint32_t hlen;

	if (seglen < 20)
		return MOSFW_PARSE_MALFORMED;
	if (avail < 20)
		return MOSFW_PARSE_TRUNCATED;
	hlen = (uint32_t)(l4[12] >> 4) * 4;
	if (hlen < 20 || hlen > seglen)
		return MOSFW_PARSE_MALFORMED;
	p->l4 = l4;
	p->sport = rd16(l4);
	p->dport = rd16(l4 + 2);
	p->ip_proto = 6; /* (the flow key's protocol) */
	p->seq = rd32(l4 + 4);
	p->ack = rd32(l4 + 8);
	p->tcp_flags = l4[13] & 0x3f;
	p->window = rd16(l4 + 14);
	p->tcp_hlen = (uint8_t)hlen;
	p->payload_len = seglen - hlen;
	p->wscale = 0xff;
	if (avail >= hlen) {
		p->payload = l4 + hlen;
		p->payload_caplen = avail - hlen < p->payload_len ? avail - hlen : p->payload_len;
		if ((p->tcp_flags & MOSFW_TH_SYN) && hlen > 20) {
			/* walk options for the window scale */
			uint32_t o = 20;
			while (o < hlen) {
				uint8_t kind = l4[o];
				if (kind == 0)
					break;
				if (kind == 1) {
					o++;
					continue;
				}
				if (o + 1 >= hlen || l4[o + 1] < 2 || o + l4[o + 1] > hlen)
					break;
				if (kind == 3 && l4[o + 1] == 3)
					p->wscale = l4[o + 2] > 14 ? 14 : l4[o + 2];
				o += l4[o + 1];
			}
		}
	} else {
		/* options cut by the snaplen: fields above are still valid */
		p->payload = l4 + avail;
		p->payload_caplen = 0;
	}
	return MOSFW_PARSE_TCP;
}

int mosfw_parse_ipv4(const uint8_t *ip, uint32_t avail, int verify, struct mosfw_pkt *p)
{
	uint32_t ihl, total;
	uint16_t frag;

	if (avail >= 1 && (ip[0] >> 4) != 4)
		return MOSFW_PARSE_MALFORMED;
	if (avail < 20)
		return MOSFW_PARSE_TRUNCATED;
	ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	total = rd16(ip + 2);
	if (ihl < 20)
		return MOSFW_PARSE_MALFORMED;
	if (avail < ihl)
		return MOSFW_PARSE_TRUNCATED;
	if (total == 0 && avail > ihl)
		total = avail; /* TSO frames captured with total length 0 */
	if (total < ihl)
		return MOSFW_PARSE_MALFORMED;
	p->ip_end = total;
	p->family = 4;
	memset(p->src, 0, 32);
	memcpy(p->src, ip + 12, 4);
	memcpy(p->dst, ip + 16, 4);
	p->ip_len = total;
	p->l3 = ip;
	frag = rd16(ip + 6);
	if (frag & 0x3fff) /* MF set or offset != 0: reassembled first (ipfrag.h) */
		return MOSFW_PARSE_FRAGMENT;
	if (ip[9] != IPPROTO_TCP_) {
		p->ip_proto = ip[9]; /* for decap.c: a tunnel protocol or UDP */
		p->l4 = ip + ihl;
		p->l4_len = total - ihl;
		p->l4_ip = 1;
		return MOSFW_PARSE_NON_TCP;
	}
	if (verify && mosfw_csum_fold(mosfw_csum_add(0, ip, ihl)) != 0)
		return MOSFW_PARSE_BAD_CSUM;
	{
		uint32_t l4avail = avail - ihl;
		int r;
		if (l4avail > total - ihl)
			l4avail = total - ihl; /* ignore Ethernet padding */
		r = parse_tcp(ip + ihl, l4avail, total - ihl, p);
		if (r != MOSFW_PARSE_TCP)
			return r;
		if (verify && l4avail == total - ihl) {
			uint64_t s = mosfw_csum_add(0, ip + 12, 8);
			s += IPPROTO_TCP_ + (total - ihl);
			s = mosfw_csum_add(s, ip + ihl, total - ihl);
			if (mosfw_csum_fold(s) != 0)
				return MOSFW_PARSE_BAD_CSUM;
		}
	}
	return MOSFW_PARSE_TCP;
}

int mosfw_parse_ipv6(const uint8_t *ip, uint32_t avail, int verify, struct mosfw_pkt *p)
{
	uint32_t plen, o = 40, end;
	uint8_t nh;
	int n;

	if (avail >= 1 && (ip[0] >> 4) != 6)
		return MOSFW_PARSE_MALFORMED;
	if (avail < 40)
		return MOSFW_PARSE_TRUNCATED;
	plen = rd16(ip + 4);
	if (plen == 0)
		plen = avail - 40; /* jumbogram or TSO: trust the capture */
	p->ip_end = 40 + plen;
	p->family = 6;
	memcpy(p->src, ip + 8, 16);
	memcpy(p->dst, ip + 24, 16);
	p->ip_len = 40 + plen;
	p->l3 = ip;
	end = 40 + plen;
	nh = ip[6];
	for (n = 0; n < MAX_V6_EXT; n++) {
		switch (nh) {
		case 0:   /* hop-by-hop */
		case 43:  /* routing */
		case 60:  /* destination options */
		case 135: /* mobility */
			if (end < o + 8)
				return MOSFW_PARSE_MALFORMED;
			if (avail < o + 2)
				return MOSFW_PARSE_TRUNCATED;
			nh = ip[o];
			o += ((uint32_t)ip[o + 1] + 1) * 8;
			continue;
		case 51: /* AH: length in 4-byte units minus 2 */
			if (end < o + 8)
				return MOSFW_PARSE_MALFORMED;
			if (avail < o + 2)
				return MOSFW_PARSE_TRUNCATED;
			nh = ip[o];
			o += ((uint32_t)ip[o + 1] + 2) * 4;
			continue;
		case 44: /* fragment */
			if (end < o + 8)
				return MOSFW_PARSE_MALFORMED;
			if (avail < o + 8)
				return MOSFW_PARSE_TRUNCATED;
			if ((rd16(ip + o + 2) & 0xfff9) != 0) {
				p->frag_hdr = (uint16_t)o;
				return MOSFW_PARSE_FRAGMENT; /* offset != 0 or M set */
			}
			nh = ip[o];
			o += 8;
			continue;
		default: break;
		}
		break;
	}
	if (n == MAX_V6_EXT || o > end)
		return MOSFW_PARSE_MALFORMED;
	if (nh != IPPROTO_TCP_) {
		p->ip_proto = nh;
		p->l4 = ip + o;
		p->l4_len = end - o;
		p->l4_ip = 1;
		return MOSFW_PARSE_NON_TCP;
	}
	{
		uint32_t l4avail = avail > o ? avail - o : 0;
		int r;
		if (l4avail > end - o)
			l4avail = end - o;
		r = parse_tcp(ip + o, l4avail, end - o, p);
		if (r != MOSFW_PARSE_TCP)
			return r;
		if (verify && l4avail == end - o) {
			uint64_t s = mosfw_csum_add(0, ip + 8, 32);
			s += IPPROTO_TCP_ + (end - o);
			s = mosfw_csum_add(s, ip + o, end - o);
			if (mosfw_csum_fold(s) != 0)
				return MOSFW_PARSE_BAD_CSUM;
		}
	}
	return MOSFW_PARSE_TCP;
}
