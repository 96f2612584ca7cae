/* SPDX-License-Identifier: MIT */
/* source_ring.c -- a core's side of its feed ring (see source_ring.h). */
#define _GNU_SOURCE
#include "source_ring.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source.h"

#define WAIT_MS 50 /* an empty ring is slept on this long before WAIT returns */
/* Every cache line of the ring is asked for this many bytes before the
 * read position reaches it (the reader wrote it from another CPU) */
#define PREFETCH_AHEAD 4096u

struct mosfw_ring_src {
	struct feed_shared *sh;
	struct feed_ring *r;
	const uint8_t *data;
	uint64_t cap;
	uint64_t pos;         /* next record */
	uint64_t tail;        /* the published end last read */
	uint64_t burst_start; /* pos when the burst began (released then) */
	uint64_t prefetched;  /* [pos, prefetched) asked into the caches */
	uint32_t gidx;
	uint32_t core;
	int ended; /* MOSFW_SRC_EOF or _ERROR once the END record was read */
	int left;
	char err[MOSFW_ERRBUF_SIZE];
};

struct mosfw_ring_src *mosfw_ring_src_open(struct feed_shared *sh, uint32_t core)
{
	struct mosfw_ring_src *rs;

	if (!sh || core >= sh->n || !(rs = calloc(1, sizeof(*rs))))
		return NULL;
	rs->sh = sh;
	rs->r = &sh->ring[core];
	rs->core = core;
	rs->data = feed_data(sh, core);
	rs->cap = sh->cap;
	rs->pos = rs->tail = rs->burst_start = __atomic_load_n(&rs->r->head, __ATOMIC_ACQUIRE);
	return rs;
}

/* Nothing more published past pos: 1 when some came after a sleep. */
static int wait_data(struct mosfw_ring_src *rs)
{
	struct feed_ring *r = rs->r;
	uint32_t seq = __atomic_load_n(&r->data_seq, __ATOMIC_SEQ_CST);

	__atomic_store_n(&r->cons_wait, 1, __ATOMIC_SEQ_CST);
	rs->tail = __atomic_load_n(&r->tail, __ATOMIC_SEQ_CST);
	if (rs->tail == rs->pos) {
		feed_futex_wait(&r->data_seq, seq, WAIT_MS);
		rs->tail = __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE);
	}
	__atomic_store_n(&r->cons_wait, 0, __ATOMIC_RELAXED);
	return rs->tail != rs->pos;
}

int mosfw_ring_src_next(struct mosfw_ring_src *rs, const uint8_t **frame, uint32_t *caplen,
                        uint32_t *wirelen, double *ts, int *linktype)
{
	for (;;) {
		const struct feed_rec *rec;
		uint64_t off;

		if (rs->ended || rs->left)
			return rs->left ? MOSFW_SRC_EOF : rs->ended;
		if (rs->pos == rs->tail) {
			rs->tail = __atomic_load_n(&rs->r->tail, __ATOMIC_ACQUIRE);
			/* (a burst that read something gives it back first: the
			 * reader may be waiting for that space) */
			if (rs->pos == rs->tail && (rs->pos != rs->burst_start || !wait_data(rs)))
				return MOSFW_SRC_WAIT;
		}
		off = rs->pos & (rs->cap - 1);
		if (rs->cap - off < FEED_REC_HDR) {
			rs->pos += rs->cap - off;
			continue;
		}
		if (rs->prefetched < rs->pos)
			rs->prefetched = rs->pos & ~(uint64_t)63;
		for (; rs->prefetched < rs->pos + PREFETCH_AHEAD && rs->prefetched < rs->tail;
		     rs->prefetched += 64)
			__builtin_prefetch(rs->data + (rs->prefetched & (rs->cap - 1)));
		rec = (const struct feed_rec *)(rs->data + off);
		rs->pos += rec->len;
		switch (rec->kind) {
		case FEED_PACKET:
			*frame = (const uint8_t *)(rec + 1);
			*caplen = rec->caplen;
			*wirelen = rec->wirelen;
			*ts = rec->ts;
			*linktype = rec->linktype;
			rs->gidx = rec->gidx;
			return MOSFW_SRC_PACKET;
		case FEED_TIME:
			*ts = rec->ts;
			rs->gidx = rec->gidx;
			return MOSFW_SRC_TIME;
		case FEED_END:
			rs->ended = (int)__atomic_load_n(&rs->sh->status, __ATOMIC_ACQUIRE);
			if (rs->ended == MOSFW_SRC_ERROR)
				snprintf(rs->err, sizeof(rs->err), "%s", rs->sh->err);
			else
				rs->ended = MOSFW_SRC_EOF;
			return rs->ended;
		default: continue; /* FEED_PAD */
		}
	}
}

const uint8_t *mosfw_ring_src_peek(const struct mosfw_ring_src *rs, uint32_t *caplen, int linktype,
                                   uint32_t *flow_hash, int *hashed)
{
	uint64_t pos = rs->pos;
	int k;

	for (k = 0; k < 2 && pos != rs->tail; k++) { /* (past one filler at most) */
		uint64_t off = pos & (rs->cap - 1);
		const struct feed_rec *rec = (const struct feed_rec *)(rs->data + off);

		if (rs->cap - off < FEED_REC_HDR) {
			pos += rs->cap - off;
			continue;
		}
		if (rec->kind == FEED_PAD) {
			pos += rec->len;
			continue;
		}
		if (rec->kind != FEED_PACKET || rec->linktype != linktype)
			return NULL;
		*caplen = rec->caplen;
		*flow_hash = rec->flow_hash;
		*hashed = rec->hashed;
		return (const uint8_t *)(rec + 1);
	}
	return NULL;
}

void mosfw_ring_src_burst_begin(struct mosfw_ring_src *rs)
{
	if (rs->pos == rs->burst_start)
		return;
	rs->burst_start = rs->pos;
	__atomic_store_n(&rs->r->head, rs->pos, __ATOMIC_SEQ_CST);
	/* the reader, if it waits, waits for FEED_WAKE_BYTES of space; an
	 * empty ring always has it */
	if (rs->cap - (__atomic_load_n(&rs->r->tail, __ATOMIC_SEQ_CST) - rs->pos) >=
	    FEED_WAKE_BYTES(rs->cap))
		feed_wake_if_waiting(&rs->r->prod_wait, &rs->r->space_seq);
}

uint64_t mosfw_ring_src_burst_bytes(const struct mosfw_ring_src *rs)
{
	return rs->pos - rs->burst_start;
}

int mosfw_ring_src_burst_full(const struct mosfw_ring_src *rs)
{
	return rs->pos - rs->burst_start >= rs->cap / 2;
}

void mosfw_ring_src_leave(struct mosfw_ring_src *rs)
{
	if (rs->left)
		return;
	rs->left = 1;
	__atomic_store_n(&rs->r->gone, 1, __ATOMIC_SEQ_CST);
	feed_futex_wake(&rs->r->space_seq);
}

uint32_t mosfw_ring_src_index(const struct mosfw_ring_src *rs) { return rs->gidx; }

int64_t mosfw_ring_src_offset(const struct mosfw_ring_src *rs)
{
	return __atomic_load_n(&rs->sh->offset, __ATOMIC_RELAXED);
}

const char *mosfw_ring_src_error(const struct mosfw_ring_src *rs) { return rs->err; }

static void add_tunnels(struct mosfw_tunnel_stats *a, const struct mosfw_tunnel_stats *s)
{
	int k;

	for (k = 0; k < MOSFW_TUN_KINDS; k++) {
		a->packets[k] += s->packets[k];
		a->too_deep[k] += s->too_deep[k];
		a->broken[k] += s->broken[k];
	}
}

void mosfw_ring_src_totals(const struct mosfw_ring_src *rs, struct mosfw_stats *a)
{
	struct mosfw_stats s;
	uint64_t own;
	int k;

	for (;;) { /* (the counters and this core's share, from one publication) */
		uint32_t seq = __atomic_load_n(&rs->sh->stats_seq, __ATOMIC_ACQUIRE);
		if (seq & 1) {
			sched_yield();
			continue;
		}
		memcpy(&s, &rs->sh->in, sizeof(s));
		own = rs->r->own_tcp;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(&rs->sh->stats_seq, __ATOMIC_RELAXED) == seq)
			break;
	}
	if (s.packets) {
		if (!a->packets)
			a->first_ts = s.first_ts;
		if (s.last_ts > a->last_ts)
			a->last_ts = s.last_ts;
	}
	a->packets += s.packets;
	a->bytes += s.bytes;
	a->tcp_packets += s.tcp_packets;
	a->non_tcp += s.non_tcp;
	a->malformed += s.malformed;
	a->truncated += s.truncated;
	a->unsupported_link += s.unsupported_link;
	a->fragments += s.fragments;
	a->bad_checksum += s.bad_checksum;
	add_tunnels(&a->tunnels, &s.tunnels);
	for (k = 0; k < 256; k++)
		a->ip_protos[k] += s.ip_protos[k];
	a->other_shard += s.tcp_packets - own;
}

void mosfw_ring_src_close(struct mosfw_ring_src *rs)
{
	if (!rs)
		return;
	mosfw_ring_src_leave(rs);
	free(rs);
}
