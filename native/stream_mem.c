/* SPDX-License-Identifier: MIT */
/*
 * stream_mem.c -- the memory side of the reassembly buffers (stream_buf.h):
 * the per-core table of buffers, allocating and releasing them, and the
 * per-core cap on the memory they take together (rmem_memcap).
 */
#include "stream_buf.h"

#include <stdlib.h>
#include <string.h>

#include "flow_table.h"
#include "tcp_state.h"

/* ---- the per-core table ------------------------------------------------ */

struct mosfw_streams *mosfw_streams_new(uint32_t pool_cap, uint32_t rmem_size, uint64_t memcap)
{
	struct mosfw_streams *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->pool_cap = pool_cap;
	s->cap = rmem_size;
	s->memcap = memcap;
	s->default_policy = MOSFW_OVERLAP_FIRST;
	/* calloc: pages of slots never used stay unbacked */
	s->sb = calloc((size_t)pool_cap * 2, sizeof(*s->sb));
	s->rec_burst = calloc(pool_cap, sizeof(*s->rec_burst));
	s->burst = 1;
	if (!s->sb || !s->rec_burst) {
		mosfw_streams_free(s);
		return NULL;
	}
	return s;
}

static void release_slot(struct mosfw_streams *s, uint32_t slot)
{
	unsigned i;

	for (i = 0; i < 2; i++) {
		struct mosfw_sb **pb = &s->sb[(size_t)slot * 2 + i];
		if (*pb) {
			free(*pb);
			*pb = NULL;
			s->live--;
		}
	}
}

void mosfw_streams_free(struct mosfw_streams *s)
{
	uint32_t i;

	if (!s)
		return;
	if (s->sb && s->live) {
		for (i = 0; i < s->pool_cap && s->live; i++)
			release_slot(s, i);
	}
	free(s->sb);
	free(s->rec_burst);
	free(s->release);
	free(s);
}

void mosfw_streams_new_burst(struct mosfw_streams *s)
{
	uint32_t i;

	for (i = 0; i < s->n_release; i++)
		release_slot(s, s->release[i]);
	s->n_release = 0;
	if (s->n_marked) {
		memset(s->marked, 0, sizeof(s->marked));
		s->n_marked = 0;
	}
	s->burst++;
	if (s->burst == 0) { /* wrapped: forget old marks */
		memset(s->rec_burst, 0, (size_t)s->pool_cap * sizeof(*s->rec_burst));
		s->burst = 1;
	}
}

void mosfw_streams_flow_ended(struct mosfw_streams *s, uint32_t slot)
{
	if (!s->sb[(size_t)slot * 2] && !s->sb[(size_t)slot * 2 + 1])
		return;
	if (s->n_release == s->release_cap) {
		uint32_t ncap = s->release_cap ? s->release_cap * 2 : 256;
		uint32_t *n = realloc(s->release, (size_t)ncap * sizeof(*n));
		if (!n) { /* cannot defer: free now (a CONN_END handler then reads nothing) */
			release_slot(s, slot);
			return;
		}
		s->release = n;
		s->release_cap = ncap;
	}
	s->release[s->n_release++] = slot;
}


/* ---- buffers ---------------------------------------------------------- */

struct mosfw_sb *mosfw_sb_alloc(struct mosfw_streams *s, const struct mosfw_flow *f, unsigned side,
                                uint32_t first_payload_seq)
{
	const struct mosfw_half *h = &f->side[side];
	struct mosfw_sb *b;

	if (mosfw_streams_over_memcap(s))
		return NULL;
	/* the data needs no zeroing: only bytes written are ever read */
	b = malloc(sizeof(*b) + s->cap);
	if (!b) {
		s->alloc_failed++;
		return NULL;
	}
	memset(b, 0, sizeof(*b));
	b->cap = s->cap;
	b->policy = s->default_policy;
	/* offset 0 = the byte after the ISN when the handshake was seen */
	b->base_seq = (h->flags & (MOSFW_HF_SYN_SEEN | MOSFW_HF_SYNACK_SEEN)) ? h->isn + 1
	                                                                      : first_payload_seq;
	s->allocated++;
	s->live++;
	if (s->live > s->peak)
		s->peak = s->live;
	return b;
}

struct mosfw_sb *mosfw_streams_ensure(struct mosfw_streams *s, const struct mosfw_flow *f,
                                      uint32_t slot, unsigned side)
{
	struct mosfw_sb **pb = &s->sb[(size_t)slot * 2 + (side & 1)];
	const struct mosfw_half *h = &f->side[side & 1];

	if (!*pb)
		*pb = mosfw_sb_alloc(s, f, side & 1,
		                     (h->flags & MOSFW_HF_SEQ_KNOWN) ? h->seq_hi : h->isn + 1);
	return *pb;
}


void mosfw_memory_stats(const struct mosfw_flow_table *ft, const struct mosfw_streams *s,
                        struct mosfw_stats *out)
{
	out->nomem = ft->grow_failed + (s ? s->alloc_failed : 0);
	out->rmem_memcap_bytes = s ? s->memcap_bytes : 0;
}
