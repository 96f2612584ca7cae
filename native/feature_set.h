/* SPDX-License-Identifier: MIT */
/*
 * feature_set.h -- the features a core attaches on demand for the
 * app-facing mOS API beyond events: reassembly buffers (stream_buf.c), the
 * per-burst packet arena (pkt_arena.c), timers (timers.c), BPF filters
 * (filters.c) and the stop-monitoring bits. Embedded in struct mosfw_core;
 * the core calls the functions below at fixed points. Lower layers reach
 * a feature only through function pointers it sets: the stream points of
 * the observer table (observers.h) and the ring's push hook and
 * stop-monitoring bits (event_ring.h). Every part is off (NULL) until
 * asked for, so a run that uses none of it pays a pointer test per packet.
 */
#ifndef MOSFW_FEATURE_SET_H
#define MOSFW_FEATURE_SET_H

#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_streams;
struct mosfw_arena;
struct mosfw_timers;
struct mosfw_filters;
struct mosfw_flow_table;
struct mosfw_source;
struct mosfw_ring;
struct mosfw_observers;
struct mosfw_pkt_ctx;
struct mosfw_pkt;

struct mosfw_features {
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
	int frame_stable; /* frame stays readable for the whole burst */
	/* the core's parts, set by the core */
	struct mosfw_flow_table *ft;
	struct mosfw_ring *ring;     /* its push hook follows arena/filters */
	struct mosfw_observers *obs; /* its stream points follow the buffers */
	struct mosfw_source **src;
	const double *now;
	uint32_t event_mask;
	/* counters (mosfw_core_feature_stats) */
	uint64_t syn_filtered, orphan_filtered, timers_fired, timers_dropped;
};

/* called by the core ------------------------------------------------------ */

int mosfw_feat_init(struct mosfw_features *x, const struct mosfw_config *cfg,
                    struct mosfw_flow_table *ft, struct mosfw_source **src, const double *now,
                    struct mosfw_ring *ring, struct mosfw_observers *obs);
/* Turn reassembly buffers on (CONN_NEW_DATA subscribed or asked for). */
void mosfw_feat_streams_on(struct mosfw_features *x);
/* The arena or the event filters changed: (un)set the ring's push hook. */
void mosfw_feat_push_hook(struct mosfw_features *x);
void mosfw_feat_destroy(struct mosfw_features *x);
/* The subscription mask changed: buffers come on with CONN_NEW_DATA. */
void mosfw_feat_mask(struct mosfw_features *x, uint32_t mask);
/* Start of a burst. */
void mosfw_feat_burst(struct mosfw_features *x);
/* Enough room for one more packet's worth (arena space). */
int mosfw_feat_room(const struct mosfw_features *x);
/* A flow ended (its CONN_END was pushed). */
void mosfw_feat_flow_ended(struct mosfw_features *x, uint32_t slot);
/* Before processing packet p (sent by side dir of the flow in slot): does
 * it have to wait for the next burst (it would change a reassembly buffer
 * of a flow whose records are not dispatched yet)? */
int mosfw_feat_must_cut(struct mosfw_features *x, uint32_t slot, unsigned dir,
                        const struct mosfw_pkt *p);
/* After a packet's processing wrote records about the flow in slot. */
void mosfw_feat_records(struct mosfw_features *x, uint32_t slot);
/* The first packet's time: timers set before it counted from 0 are moved
 * to count from it. */
void mosfw_feat_start(struct mosfw_features *x, double ts);
/* A timer is due at or before now. */
int mosfw_feat_timer_due(const struct mosfw_features *x, double now);
/* Fire the earliest due timer (one TIMEOUT record, or none when its flow
 * is gone). */
void mosfw_feat_fire_timer(struct mosfw_features *x, struct mosfw_ring *r);
/* Monitor filters: 1 = track / report, 0 = filtered out. */
int mosfw_feat_syn_ok(struct mosfw_features *x, double ts);
int mosfw_feat_orphan_ok(struct mosfw_features *x, double ts);

static inline void mosfw_feat_frame(struct mosfw_features *x, const uint8_t *frame, uint32_t caplen,
                                    uint32_t wirelen, int stable)
{
	x->frame = frame;
	x->frame_stable = stable;
	x->caplen = caplen;
	x->wirelen = wirelen;
}

#endif /* MOSFW_FEATURE_SET_H */
