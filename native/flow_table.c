/* SPDX-License-Identifier: MIT */
/* flow_table.c -- pool, symmetric-hash index, idle lists. */
#include "flow_table.h"

#include <stdlib.h>
#include <string.h>

static inline uint32_t mix32(uint32_t h)
{
	h ^= h >> 16;
	h *= 0x7feb352dU;
	h ^= h >> 15;
	h *= 0x846ca68bU;
	h ^= h >> 16;
	return h;
}

static inline uint32_t endpoint_hash(const uint8_t *a, uint16_t port, int fam)
{
	uint32_t w[4];
	uint32_t h;

	memcpy(w, a, 16);
	h = w[0] * 0x9e3779b1U;
	if (fam == 6)
		h ^= (w[1] * 0x85ebca77U) ^ (w[2] * 0xc2b2ae3dU) ^ (w[3] * 0x27d4eb2fU);
	return mix32(h ^ ((uint32_t)port * 0x165667b1U));
}

uint32_t mosfw_ft_hash(const struct mosfw_pkt *p)
{
	/* addition is commutative: both directions hash alike */
	uint32_t h = endpoint_hash(p->src, p->sport, p->family) +
	             endpoint_hash(p->dst, p->dport, p->family);
	return mix32(h ^ p->family ^ p->zone);
}

static uint32_t next_pow2(uint64_t v)
{
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p > 0x80000000ULL ? 0x80000000U : (uint32_t)p;
}

/* The index starts small and doubles while the table fills (load <= 1/2):
 * a few thousand live flows then fit in the CPU's caches and TLB instead
 * of being spread over an index sized for max_concurrency. */
#define INDEX_MIN 4096u

static void index_place(struct mosfw_idx_entry *index, uint32_t mask, uint32_t hash, uint32_t slot1)
{
	uint32_t i = hash & mask;

	while (index[i].slot1)
		i = (i + 1) & mask;
	index[i].hash = hash;
	index[i].slot1 = slot1;
}

/* Double the index (rehash every entry). -1 when memory runs out: the
 * table then stays at its size, fuller. */
static int index_grow(struct mosfw_flow_table *t)
{
	uint32_t old_n = t->index_mask + 1, new_mask = old_n * 2 - 1, i;
	struct mosfw_idx_entry *bigger = calloc((size_t)new_mask + 1, sizeof(*bigger));

	if (!bigger)
		return -1;
	for (i = 0; i < old_n; i++)
		if (t->index[i].slot1)
			index_place(bigger, new_mask, t->index[i].hash, t->index[i].slot1);
	free(t->index);
	t->index = bigger;
	t->index_mask = new_mask;
	return 0;
}

int mosfw_ft_init(struct mosfw_flow_table *t, uint32_t max_live, uint32_t core_id)
{
	uint32_t i;

	memset(t, 0, sizeof(*t));
	if (max_live == 0 || max_live > 0x40000000U)
		return -1;
	t->max_live = max_live;
	t->pool_cap = max_live + MOSFW_PENDING_MAX;
	t->core_id = core_id;
	/* calloc: untouched pages stay unbacked until flows use them */
	t->flows = calloc(t->pool_cap, sizeof(*t->flows));
	t->free_stack = malloc((size_t)t->pool_cap * sizeof(uint32_t));
	t->pending = malloc((size_t)MOSFW_PENDING_MAX * sizeof(uint32_t));
	t->index_max = next_pow2((uint64_t)t->pool_cap * 2);
	t->index_mask = (t->index_max < INDEX_MIN ? t->index_max : INDEX_MIN) - 1;
	t->index = calloc((size_t)t->index_mask + 1, sizeof(*t->index));
	if (!t->flows || !t->free_stack || !t->pending || !t->index) {
		mosfw_ft_destroy(t);
		return -1;
	}
	for (i = 0; i < MOSFW_LRU_COUNT; i++)
		t->head[i] = t->tail[i] = MOSFW_NO_SLOT;
	t->next_id = t->next_dgram_id = 1;
	return 0;
}

void mosfw_ft_destroy(struct mosfw_flow_table *t)
{
	free(t->flows);
	free(t->free_stack);
	free(t->pending);
	free(t->index);
	memset(t, 0, sizeof(*t));
}

/* 16 address bytes alike (IPv4 addresses are zero-padded to 16 bytes, in
 * packets as in tuples: one compare fits both families) */
static inline int addr_eq(const uint8_t *a, const uint8_t *b)
{
	uint64_t a0, a1, b0, b1;

	memcpy(&a0, a, 8);
	memcpy(&a1, a + 8, 8);
	memcpy(&b0, b, 8);
	memcpy(&b1, b + 8, 8);
	return ((a0 ^ b0) | (a1 ^ b1)) == 0;
}

static inline int tuple_match(const struct mosfw_flow *f, const struct mosfw_pkt *p, unsigned *dir)
{
	const struct mosfw_tuple *k = &f->tuple;

	if (k->family != p->family || k->proto != p->ip_proto || k->zone != p->zone)
		return 0;
	if (k->cli_port == p->sport && k->srv_port == p->dport && addr_eq(k->cli_addr, p->src) &&
	    addr_eq(k->srv_addr, p->dst)) {
		*dir = MOSFW_SIDE_CLIENT;
		return 1;
	}
	if (k->cli_port == p->dport && k->srv_port == p->sport && addr_eq(k->cli_addr, p->dst) &&
	    addr_eq(k->srv_addr, p->src)) {
		*dir = MOSFW_SIDE_SERVER;
		return 1;
	}
	return 0;
}

uint32_t mosfw_ft_lookup(struct mosfw_flow_table *t, const struct mosfw_pkt *p, uint32_t hash,
                         unsigned *dir)
{
	uint32_t i = hash & t->index_mask;

	for (;;) {
		const struct mosfw_idx_entry *e = &t->index[i];
		if (!e->slot1)
			return MOSFW_NO_SLOT;
		if (e->hash == hash && tuple_match(&t->flows[e->slot1 - 1], p, dir))
			return e->slot1 - 1;
		i = (i + 1) & t->index_mask;
	}
}

static void lru_unlink(struct mosfw_flow_table *t, uint32_t slot)
{
	struct mosfw_flow *f = &t->flows[slot];
	unsigned l = f->lru_list;

	if (l >= MOSFW_LRU_COUNT)
		return;
	if (f->lru_prev != MOSFW_NO_SLOT)
		t->flows[f->lru_prev].lru_next = f->lru_next;
	else
		t->head[l] = f->lru_next;
	if (f->lru_next != MOSFW_NO_SLOT)
		t->flows[f->lru_next].lru_prev = f->lru_prev;
	else
		t->tail[l] = f->lru_prev;
	t->count[l]--;
	f->lru_list = MOSFW_LRU_NONE;
}

/* How far back from the tail a flow is moved to keep a list in last_ts
 * order when a capture's timestamps go back (bounded: a hostile capture
 * cannot make every packet walk the list). */
#define TOUCH_WALK_MAX 64

void mosfw_ft_touch(struct mosfw_flow_table *t, uint32_t slot, unsigned list)
{
	struct mosfw_flow *f = &t->flows[slot];
	uint32_t after;
	unsigned steps = 0;

	if (f->lru_list == list && t->tail[list] == slot)
		return; /* already last; its last_ts only grows */
	lru_unlink(t, slot);
	/* timeouts walk a list from its head and stop at the first flow not
	 * due: keep it in last_ts order (appending, unless time went back) */
	after = t->tail[list];
	while (after != MOSFW_NO_SLOT && t->flows[after].last_ts > f->last_ts &&
	       steps++ < TOUCH_WALK_MAX)
		after = t->flows[after].lru_prev;
	if (after != MOSFW_NO_SLOT && t->flows[after].last_ts > f->last_ts)
		t->unordered = 1; /* gave up walking: linked out of order */
	f->lru_list = (uint8_t)list;
	f->lru_prev = after;
	if (after == MOSFW_NO_SLOT) {
		f->lru_next = t->head[list];
		t->head[list] = slot;
		t->head_links++;
	} else {
		f->lru_next = t->flows[after].lru_next;
		t->flows[after].lru_next = slot;
	}
	if (f->lru_next != MOSFW_NO_SLOT)
		t->flows[f->lru_next].lru_prev = slot;
	else
		t->tail[list] = slot;
	t->count[list]++;
}

uint32_t mosfw_ft_insert(struct mosfw_flow_table *t, const struct mosfw_pkt *p, uint32_t hash,
                         int sender_is_client)
{
	uint32_t slot;
	struct mosfw_flow *f;
	struct mosfw_tuple *k;

	if ((uint64_t)(t->live + 1) * 2 > (uint64_t)t->index_mask + 1 &&
	    t->index_mask + 1 < t->index_max && t->inserts >= t->grow_retry_at &&
	    index_grow(t) < 0) {
		/* out of memory: try again 1024 new flows later (a failed
		 * calloc is cheap, but not free) */
		t->grow_failed++;
		t->grow_retry_at = t->inserts + 1024;
	}
	t->inserts++;
	/* the index must keep empty entries (lookups probe up to one): past
	 * 3/4 full, a table whose index could not grow refuses newcomers */
	if ((uint64_t)(t->live + 1) * 4 > ((uint64_t)t->index_mask + 1) * 3)
		return MOSFW_NO_SLOT;
	if (t->n_free)
		slot = t->free_stack[--t->n_free];
	else if (t->bump < t->pool_cap)
		slot = t->bump++;
	else
		return MOSFW_NO_SLOT;
	f = &t->flows[slot];
	memset(f, 0, sizeof(*f));
	k = &f->tuple;
	k->family = p->family;
	k->proto = p->ip_proto;
	k->zone = p->zone;
	if (sender_is_client) {
		memcpy(k->cli_addr, p->src, 16);
		memcpy(k->srv_addr, p->dst, 16);
		k->cli_port = p->sport;
		k->srv_port = p->dport;
	} else {
		memcpy(k->cli_addr, p->dst, 16);
		memcpy(k->srv_addr, p->src, 16);
		k->cli_port = p->dport;
		k->srv_port = p->sport;
	}
	/* TCP flows' ids do not depend on whether other protocols are tracked */
	f->id = p->ip_proto == 6 ? t->next_id++ : MOSFW_ID_DGRAM | t->next_dgram_id++;
	f->created = t->next_created++;
	f->hash = hash;
	f->core = t->core_id;
	f->lru_list = MOSFW_LRU_NONE;
	f->lru_prev = f->lru_next = MOSFW_NO_SLOT;
	index_place(t->index, t->index_mask, hash, slot + 1);
	t->live++;
	return slot;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
static void index_delete(struct mosfw_flow_table *t, uint32_t slot)
{
	uint32_t i = t->flows[slot].hash & t->index_mask, j;

	while (t->index[i].slot1 != slot + 1) {
		if (!t->index[i].slot1)
			return; /* not indexed */
		i = (i + 1) & t->index_mask;
	}
	j = i;
	for (;;) {
		uint32_t home;
		j = (j + 1) & t->index_mask;
		if (!t->index[j].slot1)
			break;
		home = t->index[j].hash & t->index_mask;
		/* move j into the hole at i if its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
			t->index[i] = t->index[j];
			i = j;
		}
	}
	t->index[i].slot1 = 0;
	t->index[i].hash = 0;
}

void mosfw_ft_remove(struct mosfw_flow_table *t, uint32_t slot)
{
	lru_unlink(t, slot);
	index_delete(t, slot);
	t->live--;
	t->pending[t->n_pending++] = slot;
}

void mosfw_ft_release_pending(struct mosfw_flow_table *t)
{
	uint32_t i;

	for (i = 0; i < t->n_pending; i++) {
		t->flows[t->pending[i]].id = 0;
		t->free_stack[t->n_free++] = t->pending[i];
	}
	t->n_pending = 0;
}
