/* SPDX-License-Identifier: MIT */
/*
 * packet.h -- L2-L4 parsing: one captured frame in, the TCP fields the
 * engine needs out. Ethernet (802.1Q/QinQ), Linux SLL/SLL2, raw IP,
 * NULL/loopback, and through linktypes.c PPP, Cisco HDLC, NFLOG, 802.11
 * (with or without radiotap); IPv4 and IPv6 (extension headers walked);
 * TCP. Tags and tunnels between them are walked by decap.c's layer loop.
 * Never reads past caplen.
 */
#ifndef MOSFW_PACKET_H
#define MOSFW_PACKET_H

#include <stdint.h>
#include <string.h>

#include "mosfw_api.h"

enum mosfw_parse_result {
	MOSFW_PARSE_TCP = 0,       /* a TCP segment: all fields valid */
	MOSFW_PARSE_NON_TCP = 1,   /* well-formed, not TCP (UDP, ICMP, ARP...) */
	MOSFW_PARSE_MALFORMED = 2, /* truncated or inconsistent headers */
	MOSFW_PARSE_FRAGMENT = 3,  /* IP fragment: not reassembled */
	MOSFW_PARSE_BAD_LINK = 4,  /* link type not supported */
	MOSFW_PARSE_BAD_CSUM = 5,  /* checksum verification failed */
	MOSFW_PARSE_TRUNCATED = 6, /* the headers run past the captured bytes:
	                               cut by a snaplen when caplen < wire length,
	                               else a runt frame (malformed) */
	MOSFW_PARSE_TOO_DEEP = 7,  /* more tunnel layers than decap.max_depth */
};

/* Link types we understand (DLT_/LINKTYPE_ values). */
#define MOSFW_LINK_NULL 0
#define MOSFW_LINK_EN10MB 1
#define MOSFW_LINK_RAW 101
#define MOSFW_LINK_RAW_OLD 12  /* DLT_RAW on most BSD-derived systems */
#define MOSFW_LINK_RAW_OLD2 14 /* DLT_RAW on OpenBSD */
#define MOSFW_LINK_LOOP 108
#define MOSFW_LINK_LINUX_SLL 113
#define MOSFW_LINK_IPV4 228
#define MOSFW_LINK_IPV6 229
#define MOSFW_LINK_LINUX_SLL2 276
#define MOSFW_LINK_PPP 9
#define MOSFW_LINK_C_HDLC 104
#define MOSFW_LINK_IEEE802_11 105
#define MOSFW_LINK_RADIOTAP 127
#define MOSFW_LINK_NFLOG 239

/* one layer of a packet, as the parser records it (tunnels.c expands it
 * into a struct mosfw_tunnel when a flow is created) */
struct mosfw_tun_layer {
	uint8_t kind;    /* enum mosfw_tunnel_kind */
	uint8_t pad;     /* 1: ip_off is valid (IP tunnels) */
	uint16_t ip_off; /* frame offset of the outer IP header (IP tunnels) */
	uint16_t l4_off; /* frame offset of the outer UDP header (UDP tunnels), 0 */
	uint16_t pad2;
	uint32_t id;
};

struct mosfw_pkt {
	uint8_t src[16], dst[16]; /* addresses (IPv4 in the first 4 bytes) */
	uint16_t sport, dport;    /* host order */
	uint32_t seq, ack;        /* host order */
	uint16_t window;          /* raw, host order */
	uint8_t family;           /* 4 or 6 */
	uint8_t tcp_flags;        /* MOSFW_TH_* */
	uint32_t ip_len;          /* IP bytes as the header says (header+payload) */
	uint32_t ip_end;          /* frame offset where the IP packet ends by its
	                               length field; 0 before an IP header is read */
	uint32_t payload_len;     /* TCP payload bytes as the headers say */
	uint32_t payload_caplen;  /* of which present in the capture */
	const uint8_t *payload;   /* first payload byte (may be truncated) */
	const uint8_t *l3;        /* IP header */
	const uint8_t *l4;        /* TCP header */
	uint8_t tcp_hlen;         /* TCP header length, bytes */
	uint8_t wscale;           /* window scale option on SYNs (0xff = none) */
	uint16_t frag_hdr;        /* MOSFW_PARSE_FRAGMENT, IPv6: its Fragment header's
	                             offset from l3 (ipfrag.h) */
	uint8_t ip_proto;         /* IP protocol: 6 for TCP, that of a NON_TCP IP packet */
	uint8_t n_tun;            /* layers recorded in tun[] (outermost first) */
	uint8_t depth;            /* tunnel layers passed (decap.max_depth counts these) */
	uint8_t tun_err;          /* kind + 1 of the layer that was too deep or
	                             whose inner header was broken; 0 = none */
	uint32_t zone;            /* tunnel identity hash (decap.key_by_tunnel), else 0 */
	uint32_t l4_len; /* NON_TCP IP packet: bytes after the IP header(s) by the length fields */
	uint8_t l4_ip;   /* NON_TCP: 1 when the innermost layer is an IP packet (ip_proto,
	                    l4, l4_len are its own), 0 (ARP, a tunnel's non-IP inner frame) */
	uint8_t pad_l4[3];
	const uint8_t *frame; /* the frame it was parsed from */
	struct mosfw_tun_layer tun[MOSFW_MAX_TUNNELS];
};

/* Parse one frame (decap.c). verify_csum: verify IPv4 header and TCP checksums
 * (only when the whole packet was captured). dc: the decapsulation
 * settings (NULL = none: tags are walked, tunnels are not). */
int mosfw_parse(int linktype, const uint8_t *frame, uint32_t caplen, int verify_csum,
                const struct mosfw_decap_config *dc, struct mosfw_pkt *out);

/* For decap.c: parse the IPv4 / IPv6 packet at ip (avail captured bytes).
 * A NON_TCP result sets ip_proto, l4 (the first byte after the IP
 * header(s)) and l4_len. */
int mosfw_parse_ipv4(const uint8_t *ip, uint32_t avail, int verify, struct mosfw_pkt *p);
int mosfw_parse_ipv6(const uint8_t *ip, uint32_t avail, int verify, struct mosfw_pkt *p);

/* For decap.c: the link layer (packet.c): where the network layer
 * starts and its ethertype (IP, IPv6, or any other for decap.c's loop). */
int mosfw_parse_link(int linktype, const uint8_t *f, uint32_t caplen, uint32_t *off,
                     uint16_t *proto);

/* For packet.c: the link layers linktypes.c knows (PPP, Cisco HDLC,
 * NFLOG, 802.11, radiotap): the L3 start and its ethertype. A parse
 * result (MOSFW_PARSE_TCP = found). */
int mosfw_link_extra(int linktype, const uint8_t *f, uint32_t caplen, uint32_t *off,
                     uint16_t *proto);

int mosfw_linktype_supported(int linktype);
/* 1 with the message a core gives for a capture of an unsupported link
 * type (prefixed with "capture 'PATH': " when path is not NULL); else 0. */
int mosfw_linktype_refused(int linktype, const char *name, const char *path, char *errbuf);

/* A NON_TCP result that is a UDP datagram or an ICMP/ICMPv6 message
 * (dgram.c): fill its flow key and payload as Zeek keys them -- UDP by
 * ports; ICMP by type (sport) and, for the request/reply pairs Zeek pairs
 * (echo, timestamp, information, address mask, router and neighbour
 * discovery, MLD, node information, home agent discovery), the
 * counterpart type (dport), so a request and its reply find one flow; any
 * other ICMP message gets MOSFW_ICMP_ONE_WAY | code as dport, which no
 * message from the other side can match (Zeek keys one-way messages by
 * direction). The echo identifier is not part of the key (Zeek's is not).
 * payload: the UDP payload (payload_len by the UDP length field, as Zeek
 * counts it, the IP length when that field is under 8), or the ICMP message after its
 * 8-byte header (what Zeek counts as its bytes). seq, ack,
 * window, tcp_flags are zeroed. Any other IP protocol (and ICMP in the
 * other IP version): a flow by addresses and protocol number, ports 0,
 * payload = all after the IP header(s). Returns MOSFW_PROTO_UDP,
 * MOSFW_PROTO_ICMP or MOSFW_PROTO_OTHER, 0 for a packet that is not IP or
 * whose UDP or ICMP header is cut short (8 bytes must be there). caplen:
 * the bytes of p->frame captured. */
int mosfw_parse_dgram(struct mosfw_pkt *p, uint32_t caplen);

/* The IP length field against the frame's wire length (its orig_len):
 * an IP packet that claims more bytes than its frame had on the wire lies
 * (IPv4 total length 60000 in a 59-byte frame captured whole) and is
 * malformed, whatever mosfw_parse() said of it. A frame cut by the
 * snaplen (caplen < wire length) is judged by its wire length, so its
 * missing bytes are truncation, not a lie; a frame longer than its IP
 * packet (Ethernet padding, a trailer) is fine. mosfw_parse() cannot see
 * the wire length: every caller applies this to its result. */
static inline int mosfw_parse_wire(int r, const struct mosfw_pkt *p, uint32_t caplen,
                                   uint32_t wirelen)
{
	return p->ip_end > (wirelen > caplen ? wirelen : caplen) ? MOSFW_PARSE_MALFORMED : r;
}

/* Count one packet read (packets, bytes, first/last time) and what its
 * parse gave (enum mosfw_parse_result) in the input counters. */
static inline void mosfw_count_input(struct mosfw_stats *st, int r, uint32_t caplen,
                                     uint32_t wirelen, double ts)
{
	st->packets++;
	st->bytes += wirelen;
	if (st->packets == 1)
		st->first_ts = ts;
	if (ts > st->last_ts)
		st->last_ts = ts;
	switch (r) {
	case MOSFW_PARSE_TCP: st->tcp_packets++; break;
	case MOSFW_PARSE_NON_TCP: st->non_tcp++; break;
	case MOSFW_PARSE_FRAGMENT: st->fragments++; break;
	case MOSFW_PARSE_BAD_LINK: st->unsupported_link++; break;
	case MOSFW_PARSE_BAD_CSUM: st->bad_checksum++; break;
	case MOSFW_PARSE_TOO_DEEP: st->non_tcp++; break; /* and tunnel_too_deep */
	case MOSFW_PARSE_TRUNCATED:
		/* headers cut by the capture's snaplen are not the packet's fault */
		if (caplen < wirelen)
			st->truncated++;
		else
			st->malformed++;
		break;
	default: st->malformed++; break;
	}
}

/* A NON_TCP IP packet's protocol number (after mosfw_count_input, same r). */
static inline void mosfw_count_proto(struct mosfw_stats *st, int r, const struct mosfw_pkt *p)
{
	if (r == MOSFW_PARSE_NON_TCP && p->l4_ip)
		st->ip_protos[p->ip_proto]++;
}

/* The per-kind tunnel counters of one parsed packet (after
 * mosfw_count_input, same r). */
static inline void mosfw_count_tunnels(struct mosfw_stats *st, int r, const struct mosfw_pkt *p)
{
	unsigned i;

	if (p->tun_err) {
		if (r == MOSFW_PARSE_TOO_DEEP)
			st->tunnels.too_deep[(p->tun_err - 1) % MOSFW_TUN_KINDS]++;
		else
			st->tunnels.broken[(p->tun_err - 1) % MOSFW_TUN_KINDS]++;
		return;
	}
	for (i = 0; i < p->n_tun; i++)
		st->tunnels.packets[p->tun[i].kind % MOSFW_TUN_KINDS]++;
}

/* The layers (tunnels, tags) and tunnel identity of src on dst: a datagram
 * reassembled from fragments inside a tunnel is parsed as raw IP. */
static inline void mosfw_pkt_copy_layers(struct mosfw_pkt *dst, const struct mosfw_pkt *src)
{
	dst->n_tun = src->n_tun;
	dst->depth = src->depth;
	dst->zone = src->zone;
	memcpy(dst->tun, src->tun, sizeof(dst->tun[0]) * src->n_tun);
}

#endif /* MOSFW_PACKET_H */
