/* SPDX-License-Identifier: MIT */
/*
 * observers.h -- the core's observer table: the features attached at the
 * loop's fixed points (packet parsed, flow created, TCP updated, flow
 * ended, late packet of an ended flow, flow forgotten, burst start), in attach order, plus the two points inside the
 * TCP update that stream reassembly needs (payload, ACK). core_loop.c
 * calls the points; tcp_state.c reaches the stream points through the
 * ring's pointer to this table. Only function pointers cross: a layer
 * below the core never uses a feature's symbols (tests/native/
 * test_layers.py checks it).
 */
#ifndef MOSFW_OBSERVERS_H
#define MOSFW_OBSERVERS_H

#include <stdint.h>

#include "mosfw_api.h"
#include "packet.h"

struct mosfw_pkt_ctx;
struct mosfw_ring;

#define MOSFW_OBSERVERS_MAX 8

/* Stream reassembly's points inside the TCP update (feature_set.c sets them
 * while buffers are on). */
struct mosfw_stream_points {
	void *self;
	/* Payload of c->pkt goes to the sender's buffer; 1 when buffered
	 * (CONN_NEW_DATA is then raised from the stream), 0 when not. */
	int (*data)(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
	            const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);
	/* c->pkt's ACK may give up gaps in the peer's buffer. */
	void (*ack)(void *self, struct mosfw_flow *f, uint32_t slot, unsigned dir,
	            const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);
};

struct mosfw_observers {
	uint32_t n; /* attached, in order */
	struct mosfw_observer list[MOSFW_OBSERVERS_MAX];
	/* per point, the observers that have a callback there (rebuilt on
	 * attach/detach), so an unobserved point is one test */
	uint8_t n_parsed, n_created, n_tcp, n_ended, n_burst, n_room, n_late, n_forgotten, n_dgram;
	uint8_t parsed[MOSFW_OBSERVERS_MAX], created[MOSFW_OBSERVERS_MAX], tcp[MOSFW_OBSERVERS_MAX],
		ended[MOSFW_OBSERVERS_MAX], burst[MOSFW_OBSERVERS_MAX], room[MOSFW_OBSERVERS_MAX],
		late[MOSFW_OBSERVERS_MAX], forgotten[MOSFW_OBSERVERS_MAX],
		dgram[MOSFW_OBSERVERS_MAX];
	struct mosfw_stream_points stream; /* data == NULL: off */
};

static inline void mosfw_obs_seg(struct mosfw_seg *s, const struct mosfw_pkt *p, unsigned dir,
                                 double ts)
{
	s->ts = ts;
	s->seq = p->seq;
	s->ack = p->ack;
	s->payload_len = p->payload_len;
	s->payload_caplen = p->payload_caplen;
	s->window = p->window;
	s->tcp_flags = p->tcp_flags;
	s->dir = (uint8_t)dir;
	s->ip_len = p->ip_len;
	s->proto = p->ip_proto;
	s->icmp_type = s->icmp_code = 0;
	s->flags = 0;
}

static inline void mosfw_obs_pkt_parsed(const struct mosfw_observers *o, const struct mosfw_pkt *p,
                                        double ts)
{
	struct mosfw_seg s;
	unsigned i;

	mosfw_obs_seg(&s, p, 0, ts);
	for (i = 0; i < o->n_parsed; i++)
		o->list[o->parsed[i]].pkt_parsed(o->list[o->parsed[i]].self, &s);
}

static inline void mosfw_obs_flow_created(const struct mosfw_observers *o,
                                          const struct mosfw_flow *f, uint32_t slot)
{
	unsigned i;

	for (i = 0; i < o->n_created; i++)
		o->list[o->created[i]].flow_created(o->list[o->created[i]].self, f, slot);
}

/* the layers of the flow just created in slot (only for flows with any) */
static inline void mosfw_obs_flow_layers(const struct mosfw_observers *o, uint32_t slot,
                                         const struct mosfw_tunnel *t, uint32_t n)
{
	unsigned i;

	for (i = 0; i < o->n; i++)
		if (o->list[i].flow_layers)
			o->list[i].flow_layers(o->list[i].self, slot, t, n);
}

static inline void mosfw_obs_tcp_updated(const struct mosfw_observers *o,
                                         const struct mosfw_flow *f, uint32_t slot, unsigned dir,
                                         const struct mosfw_pkt *p, double ts)
{
	struct mosfw_seg s;
	unsigned i;

	mosfw_obs_seg(&s, p, dir, ts);
	for (i = 0; i < o->n_tcp; i++)
		o->list[o->tcp[i]].tcp_updated(o->list[o->tcp[i]].self, f, slot, &s);
}

/* a UDP/ICMP packet updated its flow (core_dgram.c) */
static inline void mosfw_obs_dgram_updated(const struct mosfw_observers *o,
                                           const struct mosfw_flow *f, uint32_t slot, unsigned dir,
                                           const struct mosfw_pkt *p, double ts, unsigned seg_flags)
{
	struct mosfw_seg s;
	unsigned i;

	mosfw_obs_seg(&s, p, dir, ts);
	s.flags = (uint8_t)seg_flags;
	if (p->ip_proto == 1 || p->ip_proto == 58) {
		s.icmp_type = p->l4[0];
		s.icmp_code = p->l4[1];
	}
	for (i = 0; i < o->n_dgram; i++)
		o->list[o->dgram[i]].dgram_updated(o->list[o->dgram[i]].self, f, slot, &s);
}

static inline void mosfw_obs_flow_ended(const struct mosfw_observers *o, const struct mosfw_flow *f,
                                        uint32_t slot)
{
	unsigned i;

	for (i = 0; i < o->n_ended; i++)
		o->list[o->ended[i]].flow_ended(o->list[o->ended[i]].self, f, slot);
}

static inline void mosfw_obs_late_pkt(const struct mosfw_observers *o, const struct mosfw_flow *f,
                                      uint32_t slot, unsigned dir, const struct mosfw_pkt *p,
                                      double ts)
{
	struct mosfw_seg s;
	unsigned i;

	mosfw_obs_seg(&s, p, dir, ts);
	for (i = 0; i < o->n_late; i++)
		o->list[o->late[i]].late_pkt(o->list[o->late[i]].self, f, slot, &s);
}

static inline void mosfw_obs_flow_forgotten(const struct mosfw_observers *o,
                                            const struct mosfw_flow *f, uint32_t slot)
{
	unsigned i;

	for (i = 0; i < o->n_forgotten; i++)
		o->list[o->forgotten[i]].flow_forgotten(o->list[o->forgotten[i]].self, f, slot);
}

static inline void mosfw_obs_burst(const struct mosfw_observers *o)
{
	unsigned i;

	for (i = 0; i < o->n_burst; i++)
		o->list[o->burst[i]].burst(o->list[o->burst[i]].self);
}

static inline int mosfw_obs_room(const struct mosfw_observers *o)
{
	unsigned i;

	for (i = 0; i < o->n_room; i++) {
		const struct mosfw_observer *b = &o->list[o->room[i]];
		if (b->room_used ? *b->room_used > b->room_limit : !b->room(b->self))
			return 0;
	}
	return 1;
}

#endif /* MOSFW_OBSERVERS_H */
