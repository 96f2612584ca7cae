/* SPDX-License-Identifier: MIT */
/* timers.c -- a binary min-heap of one-shot timers. */
#include "timers.h"

#include <stdlib.h>

struct mosfw_timers *mosfw_timers_new(void) { return calloc(1, sizeof(struct mosfw_timers)); }

void mosfw_timers_free(struct mosfw_timers *t)
{
	if (!t)
		return;
	free(t->heap);
	free(t);
}

static inline int before(const struct mosfw_timer *a, const struct mosfw_timer *b)
{
	return a->deadline < b->deadline || (a->deadline == b->deadline && a->order < b->order);
}

int mosfw_timers_add(struct mosfw_timers *t, double deadline, uint32_t slot, uint64_t flow_id,
                     uint32_t handle)
{
	uint32_t i;

	if (t->n == t->cap) {
		uint32_t ncap = t->cap ? t->cap * 2 : 64;
		struct mosfw_timer *h = realloc(t->heap, (size_t)ncap * sizeof(*h));
		if (!h)
			return -1;
		t->heap = h;
		t->cap = ncap;
	}
	i = t->n++;
	t->heap[i].deadline = deadline;
	t->heap[i].order = t->next_order++;
	t->heap[i].flow_id = flow_id;
	t->heap[i].slot = slot;
	t->heap[i].handle = handle;
	while (i > 0) { /* sift up */
		uint32_t parent = (i - 1) / 2;
		struct mosfw_timer tmp;
		if (!before(&t->heap[i], &t->heap[parent]))
			break;
		tmp = t->heap[i];
		t->heap[i] = t->heap[parent];
		t->heap[parent] = tmp;
		i = parent;
	}
	return 0;
}

struct mosfw_timer mosfw_timers_pop(struct mosfw_timers *t)
{
	struct mosfw_timer top = t->heap[0];
	uint32_t i = 0;

	t->heap[0] = t->heap[--t->n];
	for (;;) { /* sift down */
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		struct mosfw_timer tmp;
		if (l < t->n && before(&t->heap[l], &t->heap[m]))
			m = l;
		if (r < t->n && before(&t->heap[r], &t->heap[m]))
			m = r;
		if (m == i)
			break;
		tmp = t->heap[i];
		t->heap[i] = t->heap[m];
		t->heap[m] = tmp;
		i = m;
	}
	return top;
}
