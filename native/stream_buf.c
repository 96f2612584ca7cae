/* SPDX-License-Identifier: MIT */
/*
 * stream_buf.c -- per-side reassembly buffers: in-order fill, out-of-order
 * fragments held until the gap fills or is given up, overlap policy
 * first/last, consuming (peek) and positional (ppeek) reads.
 */
#include "stream_buf.h"

#include <stdlib.h>
#include <string.h>

#include "event_ring.h"
#include "packet.h"
#include "tcp_state.h"

/* ---- offsets ----------------------------------------------------------- */

static inline uint32_t seq_of(const struct mosfw_sb *b, uint64_t off)
{
	return b->base_seq + (uint32_t)off;
}

int64_t mosfw_sb_offset(const struct mosfw_sb *b, uint32_t seq)
{
	/* relative to next: segments are within 2^30 of it (tcp_state.c
	 * rejects wilder jumps), so the 32-bit difference is unambiguous */
	return (int64_t)b->next + (int32_t)(seq - seq_of(b, b->next));
}

/* ---- ring copies --------------------------------------------------------- */

static void ring_put(struct mosfw_sb *b, uint64_t off, const uint8_t *src, uint64_t len)
{
	uint32_t pos = (uint32_t)(off % b->cap);
	uint32_t first = b->cap - pos;

	if (len <= first) {
		memcpy(b->data + pos, src, len);
	} else {
		memcpy(b->data + pos, src, first);
		memcpy(b->data, src + first, len - first);
	}
}

/* ---- holes (given-up ranges inside [head, next)) --------------------------- */

static uint64_t hole_bytes_in(const struct mosfw_sb *b, uint64_t s, uint64_t e)
{
	uint64_t n = 0;
	unsigned i;

	for (i = 0; i < b->nhole; i++) {
		uint64_t a = b->hole[i].s > s ? b->hole[i].s : s;
		uint64_t z = b->hole[i].e < e ? b->hole[i].e : e;
		if (z > a)
			n += z - a;
	}
	return n;
}

/* Drop everything before x (x <= next): bytes the consuming read had not
 * reached are overrun. */
static void evict_until(struct mosfw_streams *s, struct mosfw_sb *b, uint64_t x)
{
	unsigned i, k;

	if (x <= b->head)
		return;
	if (b->read < x) {
		uint64_t from = b->read > b->head ? b->read : b->head;
		uint64_t lost = (x - from) - hole_bytes_in(b, from, x);
		b->lost_overrun += lost;
		s->lost_overrun += lost;
	}
	b->head = x;
	for (i = 0, k = 0; i < b->nhole; i++) {
		if (b->hole[i].e <= x)
			continue;
		b->hole[k] = b->hole[i];
		if (b->hole[k].s < x)
			b->hole[k].s = x;
		k++;
	}
	b->nhole = (uint8_t)k;
}

static void add_hole(struct mosfw_streams *s, struct mosfw_sb *b, uint64_t from, uint64_t to)
{
	if (to <= from)
		return;
	b->lost_gap += to - from;
	s->lost_gap += to - from;
	if (b->nhole && b->hole[b->nhole - 1].e == from) {
		b->hole[b->nhole - 1].e = to;
		return;
	}
	if (b->nhole == MOSFW_SB_MAX_HOLES) {
		/* no room to remember it: forget the data before the oldest hole */
		evict_until(s, b, b->hole[0].e);
	}
	if (b->nhole == MOSFW_SB_MAX_HOLES) /* cannot happen: eviction pruned one */
		return;
	b->hole[b->nhole].s = from;
	b->hole[b->nhole].e = to;
	b->nhole++;
}

static void pop_frag(struct mosfw_sb *b)
{
	memmove(&b->frag[0], &b->frag[1], (size_t)(b->nfrag - 1) * sizeof(b->frag[0]));
	b->nfrag--;
}

/* Fragments that start at or before next join the in-order data. */
static void merge_front(struct mosfw_sb *b)
{
	while (b->nfrag && b->frag[0].s <= b->next) {
		if (b->frag[0].e > b->next)
			b->next = b->frag[0].e;
		pop_frag(b);
	}
}

/* Give up the gaps before x: next moves to at least x; what lies in
 * between and was never received becomes holes (lost). */
static void give_up_until(struct mosfw_streams *s, struct mosfw_sb *b, uint64_t x)
{
	while (b->next < x) {
		uint64_t gap_end;
		merge_front(b);
		if (b->next >= x)
			break;
		gap_end = (b->nfrag && b->frag[0].s < x) ? b->frag[0].s : x;
		add_hole(s, b, b->next, gap_end);
		b->next = gap_end;
	}
	merge_front(b);
}

/* Insert [st, en) (beyond next) into the fragment list, merging. */
static void add_frag(struct mosfw_streams *s, struct mosfw_sb *b, uint64_t st, uint64_t en)
{
	unsigned i = 0, j;

	while (i < b->nfrag && b->frag[i].e < st)
		i++;
	/* frags i.. that touch [st, en) merge into one */
	j = i;
	while (j < b->nfrag && b->frag[j].s <= en) {
		if (b->frag[j].s < st)
			st = b->frag[j].s;
		if (b->frag[j].e > en)
			en = b->frag[j].e;
		j++;
	}
	if (j > i) {
		b->frag[i].s = st;
		b->frag[i].e = en;
		memmove(&b->frag[i + 1], &b->frag[j], (size_t)(b->nfrag - j) * sizeof(b->frag[0]));
		b->nfrag = (uint8_t)(b->nfrag - (j - i - 1));
		return;
	}
	if (b->nfrag == MOSFW_SB_MAX_FRAGS) {
		/* full: give up the first gap, which joins the first fragment */
		give_up_until(s, b, b->frag[0].s);
		if (st <= b->next) { /* the new one now touches the in-order data */
			if (en > b->next)
				b->next = en;
			merge_front(b);
			return;
		}
		i = 0;
		while (i < b->nfrag && b->frag[i].e < st)
			i++;
	}
	memmove(&b->frag[i + 1], &b->frag[i], (size_t)(b->nfrag - i) * sizeof(b->frag[0]));
	b->frag[i].s = st;
	b->frag[i].e = en;
	b->nfrag++;
}

/* Copy [st, en) of the segment (seg holds the byte at offset seg_off)
 * into the ring where the policy allows: holes are never written; with
 * policy FIRST neither are bytes already held (in-order data and
 * fragments), with LAST they are overwritten. */
static void store(struct mosfw_sb *b, uint64_t st, uint64_t en, const uint8_t *seg,
                  uint64_t seg_off)
{
	uint64_t pos = st;
	unsigned i;

	if (b->policy == MOSFW_OVERLAP_LAST) {
		for (i = 0; i < b->nhole && pos < en; i++) {
			if (b->hole[i].e <= pos)
				continue;
			if (b->hole[i].s >= en)
				break;
			if (b->hole[i].s > pos)
				ring_put(b, pos, seg + (pos - seg_off), b->hole[i].s - pos);
			pos = b->hole[i].e;
		}
	} else {
		if (pos < b->next)
			pos = b->next;
		for (i = 0; i < b->nfrag && pos < en; i++) {
			if (b->frag[i].e <= pos)
				continue;
			if (b->frag[i].s >= en)
				break;
			if (b->frag[i].s > pos)
				ring_put(b, pos, seg + (pos - seg_off), b->frag[i].s - pos);
			pos = b->frag[i].e;
		}
	}
	if (pos < en)
		ring_put(b, pos, seg + (pos - seg_off), en - pos);
}

/* Raise CONN_NEW_DATA for bytes that became readable: from the first
 * readable byte at or after `from` to next. */
static void new_data(struct mosfw_sb *b, struct mosfw_flow *f, uint32_t slot, unsigned side,
                     uint64_t from, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	struct mosfw_event *e;
	unsigned i;

	if (from < b->head)
		from = b->head;
	for (i = 0; i < b->nhole; i++) /* skip leading holes */
		if (b->hole[i].s <= from && b->hole[i].e > from)
			from = b->hole[i].e;
	if (from >= b->next)
		return;
	e = mosfw_ring_push(r, MOSFW_EV_CONN_NEW_DATA, c, f, slot, side);
	if (e) {
		e->seq = seq_of(b, from);
		e->len = (uint32_t)(b->next - from);
	}
}

void mosfw_streams_data(struct mosfw_streams *s, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                        const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	const struct mosfw_pkt *p = c->pkt;
	uint32_t seq = p->seq + ((p->tcp_flags & MOSFW_TH_SYN) ? 1 : 0);
	struct mosfw_sb **pb = &s->sb[(size_t)slot * 2 + dir];
	struct mosfw_sb *b = *pb;
	const uint8_t *data = p->payload;
	uint64_t len = p->payload_caplen < p->payload_len ? p->payload_caplen : p->payload_len;
	int64_t so;
	uint64_t st, en, old_next;

	if (p->payload_len == 0)
		return;
	if (!b) {
		b = *pb = mosfw_sb_alloc(s, f, dir, seq);
		if (!b) {
			if (mosfw_streams_over_memcap(s)) /* (else: out of memory, counted) */
				s->memcap_bytes += p->payload_len;
			return;
		}
	}
	/* bytes cut off by the snap length count as received and lost */
	so = mosfw_sb_offset(b, seq);
	if (so + (int64_t)p->payload_len <= 0)
		return; /* entirely before offset 0 */
	en = (uint64_t)(so + (int64_t)len > 0 ? so + (int64_t)len : 0);
	if (so < 0) {
		data += -so;
		so = 0;
	}
	st = (uint64_t)so;
	s->bytes_in += len;
	old_next = b->next;
	if (st < b->head) {
		data += b->head - st;
		st = b->head;
	}
	if (en > st) {
		/* keep the window: [head, head + cap) */
		if (en > b->head + b->cap) {
			uint64_t need = en - b->cap;
			int overrun = b->peeked && b->read < need;
			if (need > b->next) {
				uint64_t lost0 = b->lost_gap, to = st;
				give_up_until(s, b, need);
				/* the gap in the way goes whole, up to the data after it */
				if (b->nfrag && b->frag[0].s < to)
					to = b->frag[0].s;
				if (to > b->next)
					give_up_until(s, b, to);
				overrun |= b->lost_gap != lost0;
			}
			if (overrun) {
				struct mosfw_event *e =
					mosfw_ring_push(r, MOSFW_EV_ERROR, c, f, slot, dir);
				if (e)
					e->reason = MOSFW_ERR_BUFFER_OVERRUN;
			}
			evict_until(s, b, need);
			if (st < b->head) { /* a segment longer than the buffer */
				data += b->head - st;
				st = b->head;
			}
		}
		store(b, st, en, data, st);
		if (en > b->next) {
			if (st <= b->next) {
				b->next = en;
				merge_front(b);
			} else {
				add_frag(s, b, st, en);
			}
		}
	}
	/* the part beyond the snap length: received, never readable */
	if (p->payload_len > len) {
		uint64_t full_end = (uint64_t)(mosfw_sb_offset(b, seq) + (int64_t)p->payload_len);
		if (b->next == en && full_end > en)
			give_up_until(s, b, full_end);
		if (full_end > b->hi)
			b->hi = full_end;
	}
	if (en > b->hi)
		b->hi = en;
	if (b->next > old_next)
		new_data(b, f, slot, dir, old_next, c, r);
}

void mosfw_streams_ack(struct mosfw_streams *s, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	unsigned peer = dir ^ 1;
	struct mosfw_sb *b = s->sb[(size_t)slot * 2 + peer];
	const struct mosfw_half *h = &f->side[peer];
	uint32_t ack = c->pkt->ack;
	int64_t ao;
	uint64_t old_next;

	if (!b || !MOSFW_SEQ_GT(ack, seq_of(b, b->next)))
		return;
	/* an ack beyond the peer's FIN covers the FIN, not data */
	if ((h->flags & MOSFW_HF_FIN_SEEN) && MOSFW_SEQ_GT(ack, h->fin_seq))
		ack = h->fin_seq;
	ao = mosfw_sb_offset(b, ack);
	if (ao <= (int64_t)b->next || ao - (int64_t)b->next > (1 << 30))
		return; /* nothing new, or not believable */
	old_next = b->next;
	give_up_until(s, b, (uint64_t)ao);
	if ((uint64_t)ao > b->hi)
		b->hi = (uint64_t)ao;
	if (b->next > old_next)
		new_data(b, f, slot, peer, old_next, c, r);
}

int mosfw_streams_must_cut(const struct mosfw_streams *s, const struct mosfw_flow *f, uint32_t slot,
                           unsigned dir, const struct mosfw_pkt *p)
{
	const struct mosfw_sb *peer;

	if (s->rec_burst[slot] != s->burst)
		return 0;
	if (p->payload_len)
		return 1;
	peer = s->sb[(size_t)slot * 2 + (dir ^ 1)];
	return peer && (p->tcp_flags & MOSFW_TH_ACK) &&
	       MOSFW_SEQ_GT(p->ack, seq_of(peer, peer->next));
}
