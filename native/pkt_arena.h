/* SPDX-License-Identifier: MIT */
/*
 * pkt_arena.h -- the per-burst packet arena: every packet that produced
 * at least one event record in the current burst (a copy, or where it lies
 * when the source keeps it in place for the burst), so that
 * "the packet of this event" (mOS mtcp_getlastpkt) can be answered while
 * the records are dispatched after the burst. Reset at the start of each
 * burst; a burst ends early when it is nearly full (mosfw_arena_room).
 */
#ifndef MOSFW_PKT_ARENA_H
#define MOSFW_PKT_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_pkt;

#define MOSFW_ARENA_BYTES (16u << 20)
#define MOSFW_ARENA_MAX_FRAME 262144u /* the largest frame one packet can add */

struct mosfw_arena {
	uint8_t *buf; /* frames, back to back */
	size_t used;
	struct mosfw_packet *pkts; /* entries, in pkt_index order */
	uint32_t n, cap;
	uint32_t last_index; /* pkt_index of the last copy (dedup) */
};

struct mosfw_arena *mosfw_arena_new(uint32_t burst_packets);
void mosfw_arena_free(struct mosfw_arena *a);
void mosfw_arena_reset(struct mosfw_arena *a);
/* Room for one more packet of any size. */
static inline int mosfw_arena_room(const struct mosfw_arena *a)
{
	return a->n < a->cap && a->used + MOSFW_ARENA_MAX_FRAME <= MOSFW_ARENA_BYTES;
}
/* Note the packet being processed (once per pkt_index): a copy of its
 * frame, or with `stable` (the source keeps it readable until the next
 * burst: the mapped file reader) the frame where it is. */
void mosfw_arena_note(struct mosfw_arena *a, uint32_t pkt_index, double ts, const uint8_t *frame,
                      uint32_t caplen, uint32_t wirelen, const struct mosfw_pkt *p, int stable);
const struct mosfw_packet *mosfw_arena_find(const struct mosfw_arena *a, uint32_t pkt_index);

#endif /* MOSFW_PKT_ARENA_H */
