/* SPDX-License-Identifier: MIT */
/*
 * source.h -- packet input through libpcap: pcap/pcapng files (packet
 * time, nanosecond precision) or a live interface (promiscuous,
 * memory-mapped TPACKET_V3 ring, wall time), with an optional BPF filter.
 */
#ifndef MOSFW_SOURCE_H
#define MOSFW_SOURCE_H

#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_source;

enum mosfw_source_result {
	MOSFW_SRC_PACKET = 0,  /* frame, caplen, wirelen and ts are set */
	MOSFW_SRC_TIMEOUT = 1, /* live: nothing within the poll timeout */
	MOSFW_SRC_EOF = 2,     /* end of file */
	MOSFW_SRC_ERROR = 3,   /* read error (truncated file, interface gone) */
	MOSFW_SRC_BREAK = 4,   /* libpcap reported a break (pcap_breakloop) */
	MOSFW_SRC_TIME = 5,    /* -c N ring: another core's packet that opens a
	                          new second; only ts is set */
	MOSFW_SRC_WAIT = 6,    /* -c N ring: nothing yet, end the burst, call again */
};

struct mosfw_source *mosfw_source_open_file(const char *path, const char *bpf, char *errbuf);
struct mosfw_source *mosfw_source_open_live(const char *iface, const char *bpf, int snaplen,
                                            int promisc, int buffer_mb, char *errbuf);
/* Live only: join AF_PACKET fanout group `group` (1..65535) in hash mode
 * with defragmentation, so the kernel splits flows between the group's
 * sockets (Linux). 0 on success, -1 with a message. */
int mosfw_source_join_fanout(struct mosfw_source *s, unsigned group, char *errbuf);
int mosfw_source_next(struct mosfw_source *s, const uint8_t **frame, uint32_t *caplen,
                      uint32_t *wirelen, double *ts);
/* The frame mosfw_source_next() will most likely return next, without
 * moving on (the mapped file reader without a BPF filter, or a ring
 * source when it is a packet of the current link type; else NULL): the
 * caller may parse it early and prefetch what it needs. *hashed: 1 when
 * *flow_hash holds the frame's TCP flow hash (a ring source's packet, as
 * the -c N reader computed it), else 0. */
const uint8_t *mosfw_source_peek(const struct mosfw_source *s, uint32_t *caplen,
                                 uint32_t *flow_hash, int *hashed);
int mosfw_source_linktype(const struct mosfw_source *s);
const char *mosfw_source_linktype_name(const struct mosfw_source *s);
int mosfw_source_is_live(const struct mosfw_source *s);
const char *mosfw_source_error(const struct mosfw_source *s);
/* kernel drops / interface drops for live sources (0 for files) */
void mosfw_source_drops(struct mosfw_source *s, uint64_t *kernel, uint64_t *iface);
/* A burst starts: frames returned from now on stay readable until the
 * next call when mosfw_source_frames_stable() (the mapped file reader
 * releases no page at or after this point until then). */
void mosfw_source_burst_begin(struct mosfw_source *s);
int mosfw_source_frames_stable(const struct mosfw_source *s);
/* Bytes read since mosfw_source_burst_begin() (mapped reader; else 0). */
uint64_t mosfw_source_burst_bytes(const struct mosfw_source *s);
/* file offset consumed so far, -1 for live */
int64_t mosfw_source_offset(struct mosfw_source *s);
void mosfw_source_close(struct mosfw_source *s);

/* The file had `size` bytes when the run started (0: unknown): when it
 * is smaller now, it shrank before this source opened it, and the input
 * ends with the "shrank" read error after the records still there. */
void mosfw_source_expect_size(struct mosfw_source *s, uint64_t size);
/* The burst must end now: its frames stay readable only while it reads
 * less than map_bytes of a mapped file, or half of a core's ring. */
int mosfw_source_burst_full(const struct mosfw_source *s, uint64_t map_bytes);

/* -c N offline: core `core`'s ring of the feed (feed.c, source_ring.h):
 * only its own packets and the others' time marks come (TIME), with their
 * 1-based index in the input (mosfw_source_index); the input counters of
 * the whole input are the reader's (mosfw_source_ring_totals). A ring
 * source never returns TIMEOUT; WAIT: nothing yet, end the burst. */
struct feed_shared;
struct mosfw_source *mosfw_source_open_ring(struct feed_shared *sh, uint32_t core, char *errbuf);
int mosfw_source_from_ring(const struct mosfw_source *s);
uint32_t mosfw_source_index(const struct mosfw_source *s);
void mosfw_source_ring_totals(const struct mosfw_source *s, struct mosfw_stats *add);
/* The core reads no more (stopped): a ring source tells the reader. */
void mosfw_source_leave(struct mosfw_source *s);

#endif /* MOSFW_SOURCE_H */
