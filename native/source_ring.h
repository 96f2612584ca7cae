/* SPDX-License-Identifier: MIT */
/*
 * source_ring.h -- a core's input with -c N offline: its ring of the feed
 * (feed.c, feed_ring.h). Packets, time marks and the end of the input come
 * as the reader read them; the input counters are the reader's (the whole
 * input's). Frames stay in the ring until the next burst begins.
 */
#ifndef MOSFW_SOURCE_RING_H
#define MOSFW_SOURCE_RING_H

#include <stdint.h>

#include "feed_ring.h"

struct mosfw_ring_src;

struct mosfw_ring_src *mosfw_ring_src_open(struct feed_shared *sh, uint32_t core);
/* A MOSFW_SRC_* result: PACKET (frame etc. and *linktype set), TIME (ts:
 * another core's packet opened a new second), WAIT (nothing yet: end the
 * burst and call again), EOF, ERROR (mosfw_ring_src_error). */
int mosfw_ring_src_next(struct mosfw_ring_src *rs, const uint8_t **frame, uint32_t *caplen,
                        uint32_t *wirelen, double *ts, int *linktype);
/* The frame mosfw_ring_src_next() will return next if it is a packet of
 * this link type already published (else NULL), without moving on; with
 * *flow_hash set and 1 in *hashed when the reader sent its TCP flow hash
 * (mosfw_ft_hash of the frame's parse), else 0 in *hashed. */
const uint8_t *mosfw_ring_src_peek(const struct mosfw_ring_src *rs, uint32_t *caplen, int linktype,
                                   uint32_t *flow_hash, int *hashed);
/* A burst begins: what the last one read is given back to the reader. */
void mosfw_ring_src_burst_begin(struct mosfw_ring_src *rs);
uint64_t mosfw_ring_src_burst_bytes(const struct mosfw_ring_src *rs);
/* The burst read half the ring: end it (its frames must stay put). */
int mosfw_ring_src_burst_full(const struct mosfw_ring_src *rs);
/* The core reads no more (stopped): the reader drops its records. */
void mosfw_ring_src_leave(struct mosfw_ring_src *rs);
uint32_t mosfw_ring_src_index(const struct mosfw_ring_src *rs);
int64_t mosfw_ring_src_offset(const struct mosfw_ring_src *rs);
const char *mosfw_ring_src_error(const struct mosfw_ring_src *rs);
/* Add the input counters of what the reader read (all cores') to *add,
 * with the other cores' TCP packets in other_shard. */
void mosfw_ring_src_totals(const struct mosfw_ring_src *rs, struct mosfw_stats *add);
void mosfw_ring_src_close(struct mosfw_ring_src *rs);

#endif /* MOSFW_SOURCE_RING_H */
