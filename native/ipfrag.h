/* SPDX-License-Identifier: MIT */
/*
 * ipfrag.h -- IPv4 and IPv6 fragment reassembly, one table per core, on
 * packet time (docs/fragments.md).
 *
 * A fragment the parser reported (MOSFW_PARSE_FRAGMENT) is added to its
 * datagram, keyed by (source, destination, identification, protocol) for
 * IPv4 (RFC 791) and by (source, destination, Fragment header
 * identification) for IPv6 (RFC 8200). When every byte from 0 to the end
 * the last fragment (MF = 0) gives is present, the whole datagram is
 * rebuilt as one frame: the link-layer and IP headers of the fragment at
 * offset 0, its length fields set to the whole datagram and the fragment
 * fields cleared (IPv4: MF and offset 0, header checksum recomputed;
 * IPv6: the Fragment header taken out, its Next Header moved to the
 * header before it), then the payload. The caller parses that frame as if it had been read.
 *
 * Overlaps: the first copy of a byte wins (the bytes already held are
 * kept, as Zeek does and Suricata's "first" policy; Linux drops the whole
 * datagram since 4.19, other stacks keep the last copy or mix).
 * An overlap is counted; one whose bytes differ from the held ones is
 * counted apart and flagged on the datagram (an evasion attempt:
 * receivers disagree on which copy they keep).
 *
 * Bounded memory: the datagrams held take at most memcap bytes together
 * (each is counted as its header copy, its payload buffer and this
 * struct); a fragment that would go past it drops the oldest datagrams
 * first. A datagram not complete `timeout` seconds of packet time after
 * its first fragment is dropped. Nothing is allocated before the first
 * fragment: a capture without fragments pays one branch per packet.
 */
#ifndef MOSFW_IPFRAG_H
#define MOSFW_IPFRAG_H

#include <stdint.h>

#include "mosfw_api.h"

/* the most link-layer + IP header bytes kept from a first fragment (the
 * link layer, VLAN tags, the IPv6 unfragmentable extension headers) */
#define MOSFW_FRAG_MAX_HDR 512u
/* largest IP datagram (the length fields are 16 bits) */
#define MOSFW_FRAG_MAX_IP 65535u

struct mosfw_ipfrag;
struct mosfw_frag_dgram;

/* What mosfw_ipfrag_add() did with a fragment. */
enum mosfw_frag_result {
	MOSFW_FRAG_HELD = 0,     /* kept, the datagram is not complete yet */
	MOSFW_FRAG_COMPLETE = 1, /* the datagram is complete: *frame set */
	MOSFW_FRAG_DROPPED = 2,  /* malformed or no room: counted, not kept */
};

/* A table, or NULL (out of memory). memcap: bytes (0: reassembly off,
 * every fragment is only counted); timeout: seconds of packet time. */
struct mosfw_ipfrag *mosfw_ipfrag_new(uint64_t memcap, double timeout);
void mosfw_ipfrag_free(struct mosfw_ipfrag *t);

/* Add the fragment in frame (caplen captured bytes) whose IP header is
 * at frame + l3_off (family 4 or 6; frag_hdr: IPv6 only, the offset of
 * its Fragment header from the IP header). ts: its time, which also
 * drops the datagrams that timed out. On COMPLETE *frame / *len are the
 * rebuilt frame (valid until the next call on this table) and *conflict
 * says whether overlapping fragments of it differed. Counters go to st
 * (frag_* fields). */
int mosfw_ipfrag_add(struct mosfw_ipfrag *t, const uint8_t *frame, uint32_t caplen, uint32_t l3_off,
                     int family, uint32_t frag_hdr, double ts, struct mosfw_stats *st,
                     const uint8_t **out, uint32_t *out_len, int *conflict);

/* Drop the datagrams that timed out by packet time now. */
void mosfw_ipfrag_expire(struct mosfw_ipfrag *t, double now, struct mosfw_stats *st);

/* Datagrams held now (incomplete), and the most bytes they took at once. */
void mosfw_ipfrag_usage(const struct mosfw_ipfrag *t, uint64_t *datagrams, uint64_t *peak);

/* The earliest time a held datagram times out (HUGE_VAL: none held):
 * callers test this per packet before calling mosfw_ipfrag_expire. */
double mosfw_ipfrag_next_expiry(const struct mosfw_ipfrag *t);

#endif /* MOSFW_IPFRAG_H */
