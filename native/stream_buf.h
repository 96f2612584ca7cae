/* SPDX-License-Identifier: MIT */
/*
 * stream_buf.h -- per-side reassembly buffers (mOS's TCP ring buffer,
 * core/src/tcp_rb.c, in passive form) and the per-slot monitor state
 * that goes with them (stop-monitoring bits, which flows have records
 * waiting for dispatch).
 *
 * Offsets: a side's byte stream is numbered from 0 = the first byte after
 * its ISN (when the SYN or SYN/ACK was seen; otherwise the first payload
 * byte the tap saw). One buffer keeps at most `cap` (rmem_size) bytes:
 * the window [head, head + cap). Inside it, [head, next) is the in-order
 * data (with holes where a gap was given up), and up to
 * MOSFW_SB_MAX_FRAGS out-of-order fragments lie beyond `next`.
 *
 * A gap is given up (its bytes counted as lost, `next` moved past it)
 * when the buffer would overflow, when the receiver acknowledges bytes
 * beyond it (it got them; the tap missed them for good), or when the
 * fragment list is full. Out-of-order bytes are never read by peek
 * before the gap before them fills or is given up.
 *
 * Allocated on a side's first payload byte, released at the start of the
 * burst after the flow's CONN_END (so CONN_END handlers can still read).
 */
#ifndef MOSFW_STREAM_BUF_H
#define MOSFW_STREAM_BUF_H

#include <stdint.h>

#include "mosfw_api.h"

#define MOSFW_SB_MAX_FRAGS 16
#define MOSFW_SB_MAX_HOLES 16
#define MOSFW_SB_MARK_WORDS 1024 /* 65536 bits */

struct mosfw_ring;
struct mosfw_pkt_ctx;
struct mosfw_pkt;
struct mosfw_flow_table;

struct mosfw_range {
	uint64_t s, e; /* [s, e) in stream offsets */
};

/* One side's buffer. Written by tcp_state.c (through mosfw_sb_*), read
 * by the peek functions between bursts. */
struct mosfw_sb {
	uint64_t head;         /* oldest offset still held */
	uint64_t next;         /* next_byte_expected: end of the in-order data */
	uint64_t read;         /* consuming read position (peek) */
	uint64_t hi;           /* one past the highest byte received */
	uint64_t lost_read;    /* bytes the consuming read skipped */
	uint64_t lost_gap;     /* bytes given up in gaps (never seen) */
	uint64_t lost_overrun; /* bytes evicted before the consuming read got them */
	uint32_t base_seq;     /* sequence number of offset 0 */
	uint32_t cap;          /* bytes of data[] */
	uint8_t policy;        /* MOSFW_OVERLAP_* */
	uint8_t nfrag, nhole;
	uint8_t peeked;                              /* the consuming read was used on this side */
	struct mosfw_range frag[MOSFW_SB_MAX_FRAGS]; /* beyond next, sorted, disjoint */
	struct mosfw_range hole[MOSFW_SB_MAX_HOLES]; /* in [head, next), sorted */
	uint8_t data[];                              /* the ring: offset o lives at data[o % cap] */
};

/* Per-core state: a buffer pointer per slot and side, monitor bits per
 * slot, release list. Only exists when buffers are enabled. */
struct mosfw_streams {
	uint32_t pool_cap;
	uint32_t cap; /* rmem_size */
	uint8_t default_policy;
	struct mosfw_sb **sb; /* [slot * 2 + side] */
	uint32_t *rec_burst;  /* burst id of the slot's last record */
	uint32_t burst;       /* current burst id (from 1) */
	/* flows marked in this burst, by hash: most packets are cleared by it
	 * without a flow-table lookup */
	uint64_t marked[MOSFW_SB_MARK_WORDS];
	uint32_t n_marked;
	uint32_t *release; /* slots whose buffers go at the next burst */
	uint32_t n_release, release_cap;
	/* the most bytes the buffers take together (0: no cap); payload
	 * bytes not kept because a new buffer would have gone past it */
	uint64_t memcap, memcap_bytes;
	/* counters */
	uint64_t allocated, alloc_failed, live, peak;
	uint64_t bytes_in, lost_gap, lost_overrun, bursts_cut;
};

struct mosfw_streams *mosfw_streams_new(uint32_t pool_cap, uint32_t rmem_size, uint64_t memcap);
/* Would one more buffer take the buffers past the memory cap? (Each is
 * a header and rmem_size bytes, allocated whole on a side's first
 * payload byte: the cap is on what they may take, full.) */
static inline int mosfw_streams_over_memcap(const struct mosfw_streams *s)
{
	return s->memcap && (s->live + 1) * (sizeof(struct mosfw_sb) + s->cap) > s->memcap;
}
/* A side's buffer, allocated now: NULL when out of memory (counted:
 * alloc_failed) or over the cap. */
struct mosfw_sb *mosfw_sb_alloc(struct mosfw_streams *s, const struct mosfw_flow *f, unsigned side,
                                uint32_t first_payload_seq);
/* The memory counters of struct mosfw_stats (nomem, rmem_memcap_bytes). */
void mosfw_memory_stats(const struct mosfw_flow_table *ft, const struct mosfw_streams *s,
                        struct mosfw_stats *out);
void mosfw_streams_free(struct mosfw_streams *s);

/* Start of a burst: free the buffers of flows that ended in the last one. */
void mosfw_streams_new_burst(struct mosfw_streams *s);
/* A flow ended (CONN_END raised): release its buffers at the next burst. */
void mosfw_streams_flow_ended(struct mosfw_streams *s, uint32_t slot);
/* The flow in `slot` (hash `hash`) got records in this burst. */
static inline void mosfw_streams_mark(struct mosfw_streams *s, uint32_t slot, uint32_t hash)
{
	uint32_t h = hash & (MOSFW_SB_MARK_WORDS * 64 - 1);

	s->rec_burst[slot] = s->burst;
	s->marked[h >> 6] |= 1ull << (h & 63);
	s->n_marked++;
}
/* Might a flow with this hash be marked in this burst? */
static inline int mosfw_streams_maybe_marked(const struct mosfw_streams *s, uint32_t hash)
{
	uint32_t h = hash & (MOSFW_SB_MARK_WORDS * 64 - 1);

	return s->n_marked && (s->marked[h >> 6] >> (h & 63)) & 1;
}
/* Would processing p (sent by side dir of the flow in slot) change a
 * buffer of that flow while records about it wait for dispatch? Then the
 * burst is cut before p, so every handler reads the stream as it was
 * after the packet its event came from. */
int mosfw_streams_must_cut(const struct mosfw_streams *s, const struct mosfw_flow *f, uint32_t slot,
                           unsigned dir, const struct mosfw_pkt *p);

/* From tcp_state.c: p (sent by side dir) carries payload: store it and
 * raise CONN_NEW_DATA when in-order bytes became readable. */
void mosfw_streams_data(struct mosfw_streams *s, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                        const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);
/* From tcp_state.c: p (sent by side dir) acknowledges the peer's stream
 * up to p->ack: gaps the peer's receiver acknowledged are given up. */
void mosfw_streams_ack(struct mosfw_streams *s, struct mosfw_flow *f, uint32_t slot, unsigned dir,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r);

static inline struct mosfw_sb *mosfw_streams_get(const struct mosfw_streams *s, uint32_t slot,
                                                 unsigned side)
{
	return s->sb[(size_t)slot * 2 + (side & 1)];
}

/* Reads (between bursts). */
int64_t mosfw_sb_peek(struct mosfw_sb *b, uint8_t *buf, uint32_t len, uint64_t *lost);
int64_t mosfw_sb_ppeek(const struct mosfw_sb *b, uint64_t off, uint8_t *buf, uint32_t len);
uint32_t mosfw_sb_frags(const struct mosfw_sb *b, struct mosfw_stream_frag *out, uint32_t max);
void mosfw_sb_info(const struct mosfw_sb *b, struct mosfw_stream_info *out);
/* Stream offset of sequence number seq (may be negative: before offset 0). */
int64_t mosfw_sb_offset(const struct mosfw_sb *b, uint32_t seq);
/* The buffer of a side, allocated now if it does not exist yet (to set
 * its policy before data arrives); NULL when out of memory. */
struct mosfw_sb *mosfw_streams_ensure(struct mosfw_streams *s, const struct mosfw_flow *f,
                                      uint32_t slot, unsigned side);

#endif /* MOSFW_STREAM_BUF_H */
