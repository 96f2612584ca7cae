/* SPDX-License-Identifier: MIT */
/*
 * flow_table.h -- one core's flow table: a pool of flow records, an
 * open-addressing index on the symmetric hash of the canonical 5-tuple
 * (both directions find the same flow), and idle lists in last-touched
 * order used for timeouts and eviction.
 *
 * Slots of flows ended during a burst are parked ("pending") and only
 * reused after the next burst starts, so event records can name them.
 */
#ifndef MOSFW_FLOW_TABLE_H
#define MOSFW_FLOW_TABLE_H

#include "mosfw_api.h"
#include "packet.h"

/* Idle lists, in eviction preference order. */
enum mosfw_lru_list {
	MOSFW_LRU_ZOMBIE = 0,    /* ended; tuple remembered for tcp_tw_interval */
	MOSFW_LRU_HALF_OPEN = 1, /* no side established yet */
	MOSFW_LRU_ESTAB = 2,     /* at least one side established */
	MOSFW_LRU_UDP = 3,       /* UDP flows (udp_timeout) */
	MOSFW_LRU_ICMP = 4,      /* ICMP/ICMPv6 flows (icmp_timeout) */
	MOSFW_LRU_OTHER = 5,     /* other IP protocols' flows (udp_timeout) */
	MOSFW_LRU_COUNT = 6,
	MOSFW_LRU_NONE = 0xff,
};

#define MOSFW_PENDING_MAX 4096u

struct mosfw_idx_entry {
	uint32_t hash;
	uint32_t slot1; /* slot + 1; 0 = empty */
};

struct mosfw_flow_table {
	struct mosfw_flow *flows; /* pool */
	uint32_t pool_cap;        /* max_live + MOSFW_PENDING_MAX */
	uint32_t max_live;        /* max_concurrency: tracked + zombie */
	uint32_t live;            /* in the index (tracked + zombies) */
	uint32_t bump;            /* slots never used start here */
	uint32_t *free_stack;
	uint32_t n_free;
	uint32_t *pending; /* ended this burst, reusable next burst */
	uint32_t n_pending;
	struct mosfw_idx_entry *index;
	uint32_t index_mask; /* index size - 1 (grows with live flows) */
	uint32_t index_max;  /* the most it grows to: 2 x pool_cap, a power of 2 */
	/* the index could not grow (out of memory): failed tries, and when
	 * (in inserts) the next one is made */
	uint64_t grow_failed, inserts, grow_retry_at;
	uint32_t head[MOSFW_LRU_COUNT], tail[MOSFW_LRU_COUNT];
	uint32_t count[MOSFW_LRU_COUNT];
	/* times a flow was linked at a list's head: the list's earliest idle
	 * deadline may then have come earlier */
	uint32_t head_links;
	/* a flow was once linked out of last_ts order (a capture's time went
	 * back further than the touch walk goes): a list's head may then not
	 * hold its earliest deadline */
	int unordered;
	uint64_t next_id;       /* the next TCP flow's id */
	uint64_t next_dgram_id; /* the next UDP/ICMP/other flow's (| MOSFW_ID_DGRAM) */
	uint32_t next_created;  /* creation order of every flow (mosfw_flow.created) */
	uint32_t core_id;
};

int mosfw_ft_init(struct mosfw_flow_table *t, uint32_t max_live, uint32_t core_id);
void mosfw_ft_destroy(struct mosfw_flow_table *t);

/* Symmetric hash of a TCP packet's endpoints. */
uint32_t mosfw_ft_hash(const struct mosfw_pkt *p);

/* Symmetric hash of a UDP/ICMP/other packet (mosfw_parse_dgram classified it):
 * TCP's of its endpoints, mixed with its protocol number, so TCP and UDP
 * flows on the same ports are two flows (and may be on two cores). */
static inline uint32_t mosfw_ft_hash_dgram(const struct mosfw_pkt *p)
{
	uint32_t h = mosfw_ft_hash(p) ^ ((uint32_t)p->ip_proto * 0x9e3779b1U);

	h ^= h >> 15;
	return h * 0x2c1b3c6dU;
}

/* The shard (0..n-1) of a flow's hash: its high bits (the index uses the
 * low ones, which would otherwise be the same on every flow of a core). */
static inline uint32_t mosfw_ft_shard(uint32_t hash, uint32_t n)
{
	return (uint32_t)(((uint64_t)hash * n) >> 32);
}

/* Every core takes the packet (an IP fragment: all reassemble it). */
#define MOSFW_OWNER_ALL 0xffffffffu

/* Which of n cores owns a packet parse result r gave for p (caplen bytes
 * captured): the shard of its flow's hash for a TCP segment, a UDP
 * datagram, an ICMP message or a packet of another IP protocol
 * (mosfw_parse_dgram; whether or not the run tracks them: the
 * core that would), MOSFW_OWNER_ALL for an IP fragment, 0 for anything
 * else (the core that counts it); for a TCP segment, *tcp_hash is set to
 * its flow hash (the core given the packet uses it). The one place the
 * owner is chosen: -c N's reader (feed.c) calls it per packet, and the
 * core's shard test of a packet it read itself (core_loop.c) is
 * mosfw_ft_shard of the same hash. */
static inline uint32_t mosfw_ft_owner(int r, struct mosfw_pkt *p, uint32_t caplen, uint32_t n,
                                      uint32_t *tcp_hash)
{
	if (r == MOSFW_PARSE_TCP)
		return mosfw_ft_shard(*tcp_hash = mosfw_ft_hash(p), n);
	if (r == MOSFW_PARSE_FRAGMENT)
		return MOSFW_OWNER_ALL;
	if (r == MOSFW_PARSE_NON_TCP && mosfw_parse_dgram(p, caplen))
		return mosfw_ft_shard(mosfw_ft_hash_dgram(p), n);
	return 0;
}

/* Start loading the index entry a lookup of this hash reads first. */
static inline void mosfw_ft_prefetch(const struct mosfw_flow_table *t, uint32_t hash)
{
	__builtin_prefetch(&t->index[hash & t->index_mask]);
}

/* Find the flow of packet p. Returns the slot or MOSFW_NO_SLOT; *dir gets
 * the sender's side (MOSFW_SIDE_CLIENT when p goes client->server). */
uint32_t mosfw_ft_lookup(struct mosfw_flow_table *t, const struct mosfw_pkt *p, uint32_t hash,
                         unsigned *dir);

/* Allocate a slot for a new flow (caller checks t->live < t->max_live
 * first) and index it. sender_is_client says which way p goes.
 * MOSFW_NO_SLOT when the index is 3/4 full and could not grow (out of
 * memory: grow_failed counts the tries): the newcomer is refused. */
uint32_t mosfw_ft_insert(struct mosfw_flow_table *t, const struct mosfw_pkt *p, uint32_t hash,
                         int sender_is_client);

/* Remove from the index and idle list; park the slot until the next
 * burst. The caller checks t->n_pending < MOSFW_PENDING_MAX first. */
void mosfw_ft_remove(struct mosfw_flow_table *t, uint32_t slot);

/* Move a flow to the tail of an idle list (or, when the capture's time
 * went back, to its place in last_ts order, at most 64 flows back). */
void mosfw_ft_touch(struct mosfw_flow_table *t, uint32_t slot, unsigned list);

/* Start of a burst: parked slots become reusable. */
void mosfw_ft_release_pending(struct mosfw_flow_table *t);

#endif /* MOSFW_FLOW_TABLE_H */
