/* SPDX-License-Identifier: MIT */
/*
 * core_api.c -- the app-facing mOS API on a core's features, used between
 * bursts (from event handlers): reading reassembly buffers (peek, ppeek,
 * fragments), the packet arena, timers, BPF filters, stop-monitoring, and
 * the observer table's registration (mosfw_core_observe).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "filters.h"
#include "pkt_arena.h"
#include "stream_buf.h"
#include "timers.h"

/* ---- the public API ---------------------------------------------------------------- */

static struct mosfw_flow *flow_of(struct mosfw_features *x, uint32_t slot, uint64_t flow_id)
{
	struct mosfw_flow *f;

	if (slot >= x->ft->pool_cap || flow_id == 0)
		return NULL;
	f = &x->ft->flows[slot];
	return f->id == flow_id ? f : NULL;
}

static struct mosfw_sb *buffer_of(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                                  unsigned side, int *err)
{
	struct mosfw_features *x = (&core->x);
	struct mosfw_sb *b;

	if (!flow_of(x, slot, flow_id) || side > 1) {
		*err = -1;
		return NULL;
	}
	b = x->streams ? mosfw_streams_get(x->streams, slot, side) : NULL;
	*err = b ? 0 : -2;
	return b;
}

int mosfw_core_set_bytestream(struct mosfw_core *core, int on)
{
	struct mosfw_features *x = (&core->x);

	if (on) {
		x->bytestream_wanted = 1;
		mosfw_feat_streams_on(x);
	}
	return x->streams != NULL;
}

void mosfw_core_set_packets(struct mosfw_core *core, int on)
{
	struct mosfw_features *x = (&core->x);

	if (on && !x->arena) {
		x->arena = mosfw_arena_new(x->burst_packets);
		mosfw_feat_push_hook(x);
	}
}

int64_t mosfw_core_peek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                        uint8_t *buf, uint32_t len, uint64_t *lost)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (lost)
		*lost = 0;
	if (!b)
		return err;
	return mosfw_sb_peek(b, buf, len, lost);
}

int64_t mosfw_core_ppeek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                         uint64_t offset, uint8_t *buf, uint32_t len)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	return b ? mosfw_sb_ppeek(b, offset, buf, len) : err;
}

int mosfw_core_stream_info(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                           struct mosfw_stream_info *out)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (!b)
		return err;
	mosfw_sb_info(b, out);
	return 0;
}

int64_t mosfw_core_stream_frags(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                                unsigned side, struct mosfw_stream_frag *out, uint32_t max)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	return b ? (int64_t)mosfw_sb_frags(b, out, max) : err;
}

int mosfw_core_stream_offset(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                             unsigned side, uint32_t seq, int64_t *out)
{
	int err;
	struct mosfw_sb *b = buffer_of(core, slot, flow_id, side, &err);

	if (!b)
		return err;
	*out = mosfw_sb_offset(b, seq);
	return 0;
}

int mosfw_core_set_overlap(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                           int policy)
{
	struct mosfw_features *x = (&core->x);
	struct mosfw_flow *f = flow_of(x, slot, flow_id);
	struct mosfw_sb *b;

	if (!f || side > 1 || (policy != MOSFW_OVERLAP_FIRST && policy != MOSFW_OVERLAP_LAST))
		return -1;
	if (!x->streams)
		return -2;
	b = mosfw_streams_ensure(x->streams, f, slot, side);
	if (!b)
		return -2;
	b->policy = (uint8_t)policy;
	return 0;
}

int mosfw_core_own_window(struct mosfw_core *core, double t0, double t1)
{
	if (!core->foreign) {
		core->foreign = calloc(core->ft.pool_cap, 1);
		if (!core->foreign)
			return -1;
	}
	core->own_on = 1;
	core->own_t0 = t0;
	core->own_t1 = t1;
	{ /* the longest idle timeout of the protocols tracked */
		double idle = core->cfg.tcp_timeout;
		if ((core->cfg.protocols & (MOSFW_PROTO_UDP | MOSFW_PROTO_OTHER)) &&
		    core->cfg.udp_timeout > idle)
			idle = core->cfg.udp_timeout;
		if ((core->cfg.protocols & MOSFW_PROTO_ICMP) && core->cfg.icmp_timeout > idle)
			idle = core->cfg.icmp_timeout;
		core->own_lead = t0 - idle - core->cfg.tcp_tw_interval;
	}
	return 0;
}

int mosfw_core_claim(struct mosfw_core *c, uint32_t slot, double ts)
{
	const struct mosfw_flow *f = &c->ft.flows[slot];

	if (!c->own_on)
		return 1;
	c->foreign[slot] = !mosfw_core_in_window(c, ts);
	if (!c->foreign[slot]) {
		c->owned_live++;
		return 1;
	}
	/* silent: no event, no buffer (stop-monitoring both sides) */
	return mosfw_core_stop_monitor(c, slot, f->id, 3) < 0 ? 1 : 0;
}

int mosfw_core_stop_monitor(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                            unsigned sides)
{
	struct mosfw_features *x = (&core->x);
	struct mosfw_flow *f = flow_of(x, slot, flow_id);
	unsigned i;

	if (!f || sides == 0 || sides > 3)
		return -1;
	if (f->end_reason)
		return 0; /* already ended: nothing more will come */
	if (!x->stopmon) {
		x->stopmon = calloc(x->ft->pool_cap, 1);
		if (!x->stopmon)
			return -1;
	}
	x->stopmon[slot] |= (uint8_t)sides;
	if (x->streams) {
		for (i = 0; i < 2; i++) {
			struct mosfw_sb **pb = &x->streams->sb[(size_t)slot * 2 + i];
			if ((sides & (1u << i)) && *pb) {
				free(*pb);
				*pb = NULL;
				x->streams->live--;
			}
		}
	}
	return 0;
}

const struct mosfw_packet *mosfw_core_packet(struct mosfw_core *core, uint32_t pkt_index)
{
	struct mosfw_features *x = (&core->x);

	return x->arena ? mosfw_arena_find(x->arena, pkt_index) : NULL;
}

int mosfw_core_timer_add(struct mosfw_core *core, double deadline, uint32_t slot, uint64_t flow_id,
                         uint32_t handle)
{
	struct mosfw_features *x = (&core->x);

	if (slot != MOSFW_NO_SLOT && !flow_of(x, slot, flow_id))
		return -1;
	if (slot == MOSFW_NO_SLOT)
		flow_id = 0;
	if (!x->timers && !(x->timers = mosfw_timers_new()))
		return -1;
	return mosfw_timers_add(x->timers, deadline, slot, flow_id, handle);
}

double mosfw_core_now(const struct mosfw_core *core)
{
	return *(&((struct mosfw_core *)core)->x)->now;
}

int mosfw_core_set_filter(struct mosfw_core *core, unsigned which, uint32_t event_types,
                          const char *bpf, char *errbuf)
{
	struct mosfw_features *x = (&core->x);

	if (!*x->src) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "open an input before setting BPF filters");
		return -1;
	}
	if (!x->filters && !(x->filters = mosfw_filters_new())) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return -1;
	}
	if (mosfw_filters_set(x->filters, which, event_types, bpf, mosfw_source_linktype(*x->src),
	                      262144, errbuf) < 0)
		return -1;
	x->filter_types = x->filters->types;
	mosfw_feat_push_hook(x);
	return 0;
}

void mosfw_core_set_filter_only(struct mosfw_core *core, uint32_t types)
{
	(&core->x)->filter_only = types & ~(uint32_t)MOSFW_EV_CONN_END;
}

void mosfw_core_feature_stats(struct mosfw_core *core, struct mosfw_feature_stats *out)
{
	struct mosfw_features *x = (&core->x);
	const struct mosfw_streams *s = x->streams;

	memset(out, 0, sizeof(*out));
	if (s) {
		out->buffers_allocated = s->allocated;
		out->buffers_failed = s->alloc_failed;
		out->buffers_live = s->live;
		out->buffers_peak = s->peak;
		out->stream_bytes = s->bytes_in;
		out->lost_gap_bytes = s->lost_gap;
		out->lost_overrun_bytes = s->lost_overrun;
		out->bursts_cut = s->bursts_cut;
	}
	out->syn_filtered = x->syn_filtered;
	out->orphan_filtered = x->orphan_filtered;
	out->timers_fired = x->timers_fired;
	out->timers_dropped = x->timers_dropped;
}
