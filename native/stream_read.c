/* SPDX-License-Identifier: MIT */
/*
 * stream_read.c -- the read side of the per-side reassembly buffers
 * (stream_buf.h): peek (consume), ppeek (at an offset), the fragments
 * held and the buffer's counters, for the app-facing API (core_api.c).
 * Writing (data, ACKs, holes, eviction) is in stream_buf.c.
 */
#include "stream_buf.h"

#include <string.h>

static void ring_get(const struct mosfw_sb *b, uint64_t off, uint8_t *dst, uint64_t len)
{
	uint32_t pos = (uint32_t)(off % b->cap);
	uint32_t first = b->cap - pos;

	if (len <= first) {
		memcpy(dst, b->data + pos, len);
	} else {
		memcpy(dst, b->data + pos, first);
		memcpy(dst + first, b->data, len - first);
	}
}

/* ---- reads ------------------------------------------------------------- */

int64_t mosfw_sb_peek(struct mosfw_sb *b, uint8_t *buf, uint32_t len, uint64_t *lost)
{
	uint64_t skipped = 0, avail, n;
	unsigned i;

	b->peeked = 1;
	if (b->read < b->head) {
		skipped += b->head - b->read;
		b->read = b->head;
	}
	for (i = 0; i < b->nhole; i++) {
		if (b->hole[i].s <= b->read && b->hole[i].e > b->read) {
			skipped += b->hole[i].e - b->read;
			b->read = b->hole[i].e;
		}
	}
	avail = b->next > b->read ? b->next - b->read : 0;
	for (i = 0; i < b->nhole; i++) { /* stop at the next hole */
		if (b->hole[i].s >= b->read && b->hole[i].s - b->read < avail)
			avail = b->hole[i].s - b->read;
	}
	n = avail < len ? avail : len;
	if (n)
		ring_get(b, b->read, buf, n);
	b->read += n;
	b->lost_read += skipped;
	if (lost)
		*lost = skipped;
	return (int64_t)n;
}

int64_t mosfw_sb_ppeek(const struct mosfw_sb *b, uint64_t off, uint8_t *buf, uint32_t len)
{
	uint64_t end = 0, n;
	unsigned i;

	if (off >= b->head && off < b->next) {
		end = b->next;
		for (i = 0; i < b->nhole; i++) {
			if (b->hole[i].s <= off && b->hole[i].e > off)
				return 0;
			if (b->hole[i].s > off && b->hole[i].s < end)
				end = b->hole[i].s;
		}
	} else {
		for (i = 0; i < b->nfrag; i++)
			if (b->frag[i].s <= off && b->frag[i].e > off && b->frag[i].s >= b->head)
				end = b->frag[i].e;
		if (!end)
			return 0;
	}
	n = end - off < len ? end - off : len;
	ring_get(b, off, buf, n);
	return (int64_t)n;
}

uint32_t mosfw_sb_frags(const struct mosfw_sb *b, struct mosfw_stream_frag *out, uint32_t max)
{
	uint32_t n = 0;
	uint64_t pos = b->head;
	unsigned i;

	/* the in-order data, split by holes, then the fragments */
	for (i = 0; i <= b->nhole; i++) {
		uint64_t stop = i < b->nhole ? b->hole[i].s : b->next;
		if (stop > pos) {
			if (n < max) {
				out[n].offset = pos;
				out[n].len = (uint32_t)(stop - pos);
			}
			n++;
		}
		if (i < b->nhole)
			pos = b->hole[i].e;
	}
	for (i = 0; i < b->nfrag; i++) {
		if (n < max) {
			out[n].offset = b->frag[i].s;
			out[n].len = (uint32_t)(b->frag[i].e - b->frag[i].s);
		}
		n++;
	}
	return n;
}

void mosfw_sb_info(const struct mosfw_sb *b, struct mosfw_stream_info *out)
{
	memset(out, 0, sizeof(*out));
	out->init_seq = b->base_seq;
	out->size = b->cap;
	out->head = b->head;
	out->last_byte_read = b->read > b->head ? b->read : b->head;
	out->next_byte_expected = b->next;
	out->last_byte_received = b->hi > b->next ? b->hi : b->next;
	out->lost_read = b->lost_read;
	out->lost_gap = b->lost_gap;
	out->lost_overrun = b->lost_overrun;
	out->nfrags = b->nfrag;
	out->nholes = b->nhole;
	out->policy = b->policy;
}
