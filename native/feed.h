/* SPDX-License-Identifier: MIT */
/*
 * feed.h -- -c N offline: one reader thread feeding each core's ring
 * (feed.c; the API is in mosfw_feed.h, the shared memory in feed_ring.h,
 * the cores' side in source_ring.c).
 */
#ifndef MOSFW_FEED_H
#define MOSFW_FEED_H

#include "feed_ring.h"
#include "mosfw_api.h"

/* The memory the feed shares with the cores (for source_ring.c). */
struct feed_shared *mosfw_feed_shared(struct mosfw_feed *f);

#endif /* MOSFW_FEED_H */
