/* SPDX-License-Identifier: MIT */
/*
 * timers.h -- the app's one-shot timers (mOS mtcp_settimer), per core: a
 * binary min-heap on input time (packet time when reading files, wall
 * time when live and idle). Timers with equal deadlines fire in the order
 * they were set.
 */
#ifndef MOSFW_TIMERS_H
#define MOSFW_TIMERS_H

#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_timer {
	double deadline;
	uint64_t order;   /* insertion order: ties fire first-set first */
	uint64_t flow_id; /* 0: a global timer */
	uint32_t slot;    /* MOSFW_NO_SLOT: a global timer */
	uint32_t handle;  /* the app's handle, returned in the record's seq */
};

struct mosfw_timers {
	struct mosfw_timer *heap;
	uint32_t n, cap;
	uint64_t next_order;
};

struct mosfw_timers *mosfw_timers_new(void);
void mosfw_timers_free(struct mosfw_timers *t);
int mosfw_timers_add(struct mosfw_timers *t, double deadline, uint32_t slot, uint64_t flow_id,
                     uint32_t handle);
/* The earliest timer is due at `now`. */
static inline int mosfw_timers_due(const struct mosfw_timers *t, double now)
{
	return t && t->n && t->heap[0].deadline <= now;
}
/* Remove and return the earliest timer (t->n > 0). */
struct mosfw_timer mosfw_timers_pop(struct mosfw_timers *t);

/* A packet of flow f is processed at input time `now` (the latest packet
 * time read so far): the flow's idle clock (last_ts, which idle timeouts
 * count from) restarts at now, also when the packet's own timestamp is
 * older -- a capture whose clock stepped back (`mergecap -a`, an NTP
 * step). Input time never goes back, so a packet from the past neither
 * makes its flow look idle since then (a flow it opens would time out at
 * once) nor moves a deadline back. The packet keeps its own timestamp in
 * events and in conn.log. Returns f. */
static inline struct mosfw_flow *mosfw_idle_restart(struct mosfw_flow *f, double now)
{
	if (f->last_ts < now)
		f->last_ts = now;
	return f;
}

#endif /* MOSFW_TIMERS_H */
