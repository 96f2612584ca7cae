/* SPDX-License-Identifier: MIT */
/*
 * core_ext.h -- what a core needs for the app-facing mOS API beyond
 * events: reassembly buffers (stream_buf.c), the per-burst packet arena
 * (pkt_arena.c), timers (timers.c), BPF filters (filters.c) and the
 * stop-monitoring bits. Embedded in struct mosfw_core; core_loop.c calls
 * the few hooks below at fixed points, tcp_state.c and event_ring.h reach
 * it through the ring. Every part is off (NULL) until asked for, so a run
 * that uses none of it pays a pointer test per packet.
 */
#ifndef MOSFW_CORE_EXT_H
#define MOSFW_CORE_EXT_H

#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_streams;
struct mosfw_arena;
struct mosfw_timers;
struct mosfw_filters;
struct mosfw_flow_table;
struct mosfw_source;
struct mosfw_ring;
struct mosfw_pkt_ctx;
struct mosfw_pkt;

struct mosfw_core_ext {
	struct mosfw_streams *streams; /* reassembly buffers; NULL = off */
	struct mosfw_arena *arena;     /* copies of packets that made records; NULL = off */
	struct mosfw_timers *timers;   /* app timers; NULL until the first one */
	struct mosfw_filters *filters; /* SYN/orphan/event BPF filters; NULL = none */
	uint8_t *stopmon;              /* per slot: 1 << side not monitored; NULL = none */
	uint32_t filter_types;         /* event bits some event filter applies to */
	uint32_t filter_only;          /* event bits kept only when a filter matched */
	int cut;                       /* this burst ends before a held packet */
	int bytestream_wanted;         /* the app asked for buffers explicitly */
	int started;                   /* the first packet was seen (input time known) */
	uint32_t rmem_size;
	uint64_t rmem_memcap;
	int no_ring_buffers;
	uint32_t burst_packets;
	/* the packet being processed (for the arena and BPF filters) */
	const uint8_t *frame;
	uint32_t caplen, wirelen;
	int frame_stable;              /* frame stays readable for the whole burst */
	/* the core's parts, set by core_loop.c */
	struct mosfw_flow_table *ft;
	struct mosfw_source **src;
	const double *now;
	uint32_t event_mask;
	/* counters (mosfw_core_ext_stats) */
	uint64_t syn_filtered, orphan_filtered, timers_fired, timers_dropped;
};

/* core_loop.c hooks ---------------------------------------------------- */

int mosfw_core_ext_init(struct mosfw_core_ext *x, const struct mosfw_config *cfg,
                        struct mosfw_flow_table *ft, struct mosfw_source **src,
                        const double *now);
void mosfw_core_ext_destroy(struct mosfw_core_ext *x);
/* The subscription mask changed: buffers come on with CONN_NEW_DATA. */
void mosfw_core_ext_mask(struct mosfw_core_ext *x, uint32_t mask);
/* Start of a burst. */
void mosfw_core_ext_burst(struct mosfw_core_ext *x);
/* Enough room for one more packet's worth (arena space). */
int mosfw_core_ext_room(const struct mosfw_core_ext *x);
/* A flow ended (its CONN_END was pushed). */
void mosfw_core_ext_flow_ended(struct mosfw_core_ext *x, uint32_t slot);
/* Before processing packet p (sent by side dir of the flow in slot): does
 * it have to wait for the next burst (it would change a reassembly buffer
 * of a flow whose records are not dispatched yet)? */
int mosfw_core_ext_must_cut(struct mosfw_core_ext *x, uint32_t slot, unsigned dir,
                            const struct mosfw_pkt *p);
/* After a packet's processing wrote records about the flow in slot. */
void mosfw_core_ext_records(struct mosfw_core_ext *x, uint32_t slot);
/* The first packet's time: timers set before it counted from 0 are moved
 * to count from it. */
void mosfw_core_ext_start(struct mosfw_core_ext *x, double ts);
/* A timer is due at or before now. */
int mosfw_core_ext_timer_due(const struct mosfw_core_ext *x, double now);
/* Fire the earliest due timer (one TIMEOUT record, or none when its flow
 * is gone). */
void mosfw_core_ext_fire_timer(struct mosfw_core_ext *x, struct mosfw_ring *r);
/* Monitor filters: 1 = track / report, 0 = filtered out. */
int mosfw_core_ext_syn_ok(struct mosfw_core_ext *x, double ts);
int mosfw_core_ext_orphan_ok(struct mosfw_core_ext *x, double ts);

static inline void mosfw_core_ext_frame(struct mosfw_core_ext *x, const uint8_t *frame,
                                        uint32_t caplen, uint32_t wirelen, int stable)
{
	x->frame = frame;
	x->frame_stable = stable;
	x->caplen = caplen;
	x->wirelen = wirelen;
}

/* tcp_state.c hooks (through the ring) ------------------------------------ */

/* Payload of p goes to the sender's buffer; 1 when buffered (CONN_NEW_DATA
 * is then raised from the stream), 0 when buffers are off for it. */
int mosfw_core_ext_data(struct mosfw_core_ext *x, struct mosfw_flow *f, uint32_t slot,
                        unsigned dir, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);
/* p's ACK may give up gaps in the peer's buffer. */
void mosfw_core_ext_ack(struct mosfw_core_ext *x, struct mosfw_flow *f, uint32_t slot,
                        unsigned dir, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);

/* event_ring.h hooks ------------------------------------------------------ */

/* Is a record of `type` about `side` of the flow in slot suppressed by
 * stop-monitoring? */
static inline int mosfw_core_ext_suppressed(const struct mosfw_core_ext *x, uint32_t slot,
                                            unsigned side, uint32_t type)
{
	uint8_t m = x->stopmon[slot];

	if (!m)
		return 0;
	if (m == 3)
		return 1;
	return type != MOSFW_EV_CONN_END && (m & (1u << (side & 1)));
}
/* A record about the packet being processed was written: evaluate event
 * filters, copy the packet into the arena. 0: drop the record (its type is
 * wanted only where a filter matched, and none did). */
int mosfw_core_ext_pushed(struct mosfw_core_ext *x, struct mosfw_event *e,
                          const struct mosfw_pkt_ctx *c);

#endif /* MOSFW_CORE_EXT_H */
