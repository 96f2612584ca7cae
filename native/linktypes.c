/* SPDX-License-Identifier: MIT */
/*
 * linktypes.c -- the link layers beyond Ethernet, SLL and raw IP: PPP (9),
 * Cisco HDLC (104), IEEE 802.11 data frames (105) and with a radiotap
 * header (127), NFLOG (239). Each finds where the network layer starts
 * and its ethertype; the rest is packet.c's and decap.c's.
 */
#include <stdint.h>

#include "packet.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_MPLS_UC 0x8847
#define ETH_P_MPLS_MC 0x8848

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint16_t rd16le(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* PPP in HDLC-like framing (RFC 1662): address 0xff, control 0x03 (may
 * be omitted), protocol (one byte when compressed). IPv4, IPv6, and MPLS
 * (0x0281/0x0283, RFC 3032): the label stack is decap.c's. */
static int ppp(const uint8_t *f, uint32_t caplen, uint32_t *off, uint16_t *proto)
{
	uint32_t o = 0;
	uint16_t pr;

	if (caplen >= 2 && f[0] == 0xff && f[1] == 0x03)
		o = 2;
	if (caplen < o + 1)
		return MOSFW_PARSE_TRUNCATED;
	if (f[o] & 1) {
		pr = f[o];
		o += 1;
	} else {
		if (caplen < o + 2)
			return MOSFW_PARSE_TRUNCATED;
		pr = rd16(f + o);
		o += 2;
	}
	if (pr == 0x21)
		*proto = ETH_P_IP;
	else if (pr == 0x57)
		*proto = ETH_P_IPV6;
	else if (pr == 0x281) /* MPLS unicast, RFC 3032 section 4.3 */
		*proto = ETH_P_MPLS_UC;
	else if (pr == 0x283) /* MPLS multicast */
		*proto = ETH_P_MPLS_MC;
	else
		return MOSFW_PARSE_NON_TCP; /* LCP, IPCP, ... */
	*off = o;
	return MOSFW_PARSE_TCP;
}

/* NFLOG: family, version, resource id, then TLVs (length and type in
 * the capturing host's byte order, each padded to 4 bytes); the packet
 * is the NFULA_PAYLOAD (9) TLV. */
static int nflog(const uint8_t *f, uint32_t caplen, uint32_t *off, uint16_t *proto)
{
	uint32_t o = 4;
	int n, big;

	if (caplen < 4)
		return MOSFW_PARSE_TRUNCATED;
	if (f[0] == 2)
		*proto = ETH_P_IP;
	else if (f[0] == 10)
		*proto = ETH_P_IPV6;
	else
		return MOSFW_PARSE_NON_TCP;
	/* the byte order: a first TLV length read little-endian that does not
	 * fit the frame is big-endian */
	big = caplen >= 8 && (rd16le(f + 4) < 4 || rd16le(f + 4) > caplen - 4);
	for (n = 0; n < 64; n++) {
		uint32_t len, type;
		if (caplen < o + 4)
			return MOSFW_PARSE_TRUNCATED;
		len = big ? rd16(f + o) : rd16le(f + o);
		type = (big ? rd16(f + o + 2) : rd16le(f + o + 2)) & 0x7fff;
		if (len < 4)
			return MOSFW_PARSE_MALFORMED;
		if (type == 9) {
			*off = o + 4;
			return MOSFW_PARSE_TCP;
		}
		o += (len + 3) & ~3u;
	}
	return MOSFW_PARSE_MALFORMED;
}

/* An 802.11 frame at o: data frames only, unprotected, with an LLC/SNAP
 * header (RFC 1042 or 802.1H bridge tunnel) before the ethertype. */
static int wlan(const uint8_t *f, uint32_t caplen, uint32_t o, uint32_t *off, uint16_t *proto)
{
	uint8_t fc0, fc1;
	uint32_t hl = 24;

	if (caplen < o + 2)
		return MOSFW_PARSE_TRUNCATED;
	fc0 = f[o];
	fc1 = f[o + 1];
	if (((fc0 >> 2) & 3) != 2 || (fc0 & 0x40)) /* not data, or no body (null) */
		return MOSFW_PARSE_NON_TCP;
	if (fc1 & 0x40) /* protected: encrypted payload */
		return MOSFW_PARSE_NON_TCP;
	if ((fc1 & 3) == 3) /* to and from DS: a fourth address */
		hl += 6;
	if (fc0 & 0x80) { /* QoS data: QoS control, and HT control with the order bit */
		hl += 2;
		if (fc1 & 0x80)
			hl += 4;
	}
	o += hl;
	if (caplen < o + 8)
		return MOSFW_PARSE_TRUNCATED;
	if (f[o] != 0xaa || f[o + 1] != 0xaa || f[o + 2] != 0x03 || f[o + 3] != 0 ||
	    f[o + 4] != 0 || (f[o + 5] != 0 && f[o + 5] != 0xf8))
		return MOSFW_PARSE_NON_TCP; /* not SNAP-encapsulated Ethernet */
	*proto = rd16(f + o + 6);
	*off = o + 8;
	return MOSFW_PARSE_TCP;
}

int mosfw_link_extra(int linktype, const uint8_t *f, uint32_t caplen, uint32_t *off,
                     uint16_t *proto)
{
	switch (linktype) {
	case MOSFW_LINK_PPP: return ppp(f, caplen, off, proto);
	case MOSFW_LINK_C_HDLC: /* address, control, ethertype */
		if (caplen < 4)
			return MOSFW_PARSE_TRUNCATED;
		*proto = rd16(f + 2);
		*off = 4;
		return MOSFW_PARSE_TCP;
	case MOSFW_LINK_NFLOG: return nflog(f, caplen, off, proto);
	case MOSFW_LINK_IEEE802_11: return wlan(f, caplen, 0, off, proto);
	case MOSFW_LINK_RADIOTAP: {
		/* version 0, pad, length (little-endian, the whole header) */
		uint32_t len;
		if (caplen < 4)
			return MOSFW_PARSE_TRUNCATED;
		if (f[0] != 0)
			return MOSFW_PARSE_MALFORMED;
		len = rd16le(f + 2);
		if (len < 8)
			return MOSFW_PARSE_MALFORMED;
		return wlan(f, caplen, len, off, proto);
	}
	default: return MOSFW_PARSE_BAD_LINK;
	}
}
