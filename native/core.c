/* SPDX-License-Identifier: MIT */
/*
 * core.c -- a core's construction and configuration (inputs, subscription
 * mask, the observer table's registration) and its read-only views
 * (flows, orphans, counters, the flows that ended recently). The loop
 * itself is in core_loop.c.
 */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "decap.h"
#include "feed.h"
#include "stream_buf.h"

void mosfw_config_defaults(struct mosfw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->shard_count = 1;
	cfg->max_concurrency = 1000000;
	cfg->tcp_timeout = 30.0;
	cfg->tcp_tw_interval = 5.0;
	cfg->tcp_attempt_delay = 0.0; /* mOS has none */
	cfg->tcp_one_sided_close = 0; /* mOS: such a flow waits for the idle timeout */
	cfg->tcp_partial_open = 0;    /* mOS: a first packet without SYN or ACK is an orphan */
	cfg->event_mask = MOSFW_EV_ALL & ~(MOSFW_EV_PKT_IN | MOSFW_EV_TICK);
	cfg->burst_packets = 4096;
	cfg->snaplen = 65535;
	cfg->live_buffer_mb = 64;
	cfg->promisc = 1;
	cfg->rmem_size = 8192;
	cfg->rmem_memcap = (uint64_t)1 << 30;
	cfg->frag_memcap = (uint64_t)32 << 20;
	cfg->frag_timeout = 30.0;
	mosfw_decap_defaults(&cfg->decap);
	cfg->protocols = 0; /* TCP only */
	cfg->udp_timeout = 60.0;
	cfg->icmp_timeout = 60.0;
	cfg->udp_checksums = 0; /* UDP checksums not verified */
}

struct mosfw_core *mosfw_core_new(const struct mosfw_config *cfg, char *errbuf)
{
	struct mosfw_core *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	c->cfg = *cfg;
	if (c->cfg.shard_count == 0)
		c->cfg.shard_count = 1;
	if (c->cfg.shard_index >= c->cfg.shard_count) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "shard_index %u >= shard_count %u",
		         c->cfg.shard_index, c->cfg.shard_count);
		free(c);
		return NULL;
	}
	if (c->cfg.burst_packets == 0)
		c->cfg.burst_packets = 4096;
	if (c->cfg.decap.max_depth > 32 || c->cfg.decap.mpls_pw > 2) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE,
		         "decap: max_depth %u is over 32 or mpls_pw %u is not 0, 1 or 2",
		         c->cfg.decap.max_depth, c->cfg.decap.mpls_pw);
		free(c);
		return NULL;
	}
	if (mosfw_ft_init(&c->ft, c->cfg.max_concurrency, c->cfg.core_id) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE,
		         "cannot allocate a flow table for max_concurrency=%u",
		         c->cfg.max_concurrency);
		free(c);
		return NULL;
	}
	if (!(c->frag = mosfw_ipfrag_new(c->cfg.frag_memcap, c->cfg.frag_timeout))) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		mosfw_ft_destroy(&c->ft);
		free(c);
		return NULL;
	}
	c->ring.mask = c->cfg.event_mask;
	c->ring.obs = &c->obs;
	mosfw_feat_init(&c->x, &c->cfg, &c->ft, &c->src, &c->now, &c->ring, &c->obs);
	c->expire_at = -HUGE_VAL;
	return c;
}

static void drop_input(struct mosfw_core *c)
{
	if (c->set)
		mosfw_set_close(c->set);
	else
		mosfw_source_close(c->src);
	c->set = NULL;
	c->src = NULL;
}

void mosfw_core_free(struct mosfw_core *c)
{
	if (!c)
		return;
	while (c->obs.n)
		mosfw_core_unobserve(c, c->obs.list[c->obs.n - 1].name);
	drop_input(c);
	mosfw_ft_destroy(&c->ft);
	mosfw_feat_destroy(&c->x);
	mosfw_ipfrag_free(c->frag);
	free(c->orphans);
	free(c->foreign);
	free(c->held);
	free(c->recent);
	mosfw_tun_store_free(&c->tun);
	free(c);
}

static int attach(struct mosfw_core *c, struct mosfw_source *s, char *errbuf)
{
	if (!s)
		return -1;
	if (mosfw_linktype_refused(mosfw_source_linktype(s), mosfw_source_linktype_name(s), NULL,
	                           errbuf)) {
		mosfw_source_close(s);
		return -1;
	}
	drop_input(c);
	c->src = s;
	return 0;
}

int mosfw_core_open_file(struct mosfw_core *c, const char *path, const char *bpf, char *errbuf)
{
	struct mosfw_source *s = mosfw_source_open_file(path, bpf, errbuf);
	char why[MOSFW_ERRBUF_SIZE];

	if (!s)
		return -1;
	if (attach(c, s, why) < 0) {
		/* name the file: the message is shown as is */
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "capture '%.200s': %.290s", path, why);
		return -1;
	}
	mosfw_source_expect_size(c->src, c->cfg.input_size);
	return 0;
}

int mosfw_core_open_feed(struct mosfw_core *c, struct mosfw_feed *feed, char *errbuf)
{
	struct mosfw_source *s;

	if (c->cfg.shard_index >= mosfw_feed_shared(feed)->n) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "core %u is not one of the feed's %u",
		         c->cfg.shard_index, mosfw_feed_shared(feed)->n);
		return -1;
	}
	s = mosfw_source_open_ring(mosfw_feed_shared(feed), c->cfg.shard_index, errbuf);
	if (attach(c, s, errbuf) < 0)
		return -1;
	c->shared = 1;
	return 0;
}

int mosfw_core_open_files(struct mosfw_core *c, const char *const *paths, uint32_t n,
                          const char *bpf, char *errbuf)
{
	struct mosfw_source_set *set = mosfw_set_open(paths, n, bpf, errbuf);

	if (!set)
		return -1;
	drop_input(c);
	c->set = set;
	c->src = mosfw_set_first(set);
	if (!c->src) {
		drop_input(c);
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "none of the capture files can be read");
		return -1;
	}
	return 0;
}

uint32_t mosfw_core_input_files(const struct mosfw_core *c, struct mosfw_input_file *out,
                                uint32_t max)
{
	return c->set ? mosfw_set_files(c->set, out, max) : 0;
}

int mosfw_core_input_shared(const struct mosfw_core *c) { return c->shared; }
const char *mosfw_core_error(const struct mosfw_core *c) { return c->err; }

int mosfw_core_open_live(struct mosfw_core *c, const char *iface, const char *bpf, char *errbuf)
{
	struct mosfw_source *s = mosfw_source_open_live(iface, bpf, c->cfg.snaplen, c->cfg.promisc,
	                                                c->cfg.live_buffer_mb, errbuf);

	if (s && c->cfg.fanout_group) {
		if (mosfw_source_join_fanout(s, c->cfg.fanout_group, errbuf) < 0) {
			mosfw_source_close(s);
			return -1;
		}
		/* the kernel splits flows between the group's sockets */
		c->cfg.shard_index = 0;
		c->cfg.shard_count = 1;
	}
	return attach(c, s, errbuf);
}

void mosfw_core_set_event_mask(struct mosfw_core *c, uint32_t mask)
{
	c->cfg.event_mask = mask;
	c->ring.mask = mask;
	mosfw_feat_mask(&c->x, mask);
}

void mosfw_core_stop(struct mosfw_core *c)
{
	/* no pcap_breakloop(): live reads wait at most one 50 ms poll, and
	 * the loop first reads what the kernel still holds (see run()) */
	c->stop_requested = 1;
}

const struct mosfw_flow *mosfw_core_flow(const struct mosfw_core *c, uint32_t slot)
{
	return slot < c->ft.pool_cap ? &c->ft.flows[slot] : NULL;
}

const struct mosfw_tuple *mosfw_core_orphan_tuple(const struct mosfw_core *c, uint32_t i)
{
	return i < c->n_orphans ? &c->orphans[i] : NULL;
}

int64_t mosfw_core_input_offset(struct mosfw_core *c)
{
	if (c->set)
		return mosfw_set_offset(c->set);
	return c->src ? mosfw_source_offset(c->src) : -1;
}

const char *mosfw_core_linktype(const struct mosfw_core *c)
{
	return c->src ? mosfw_source_linktype_name(c->src) : "none";
}

void mosfw_core_stats(struct mosfw_core *c, struct mosfw_stats *out)
{
	c->st.flows_active = c->ft.live - c->ft.count[MOSFW_LRU_ZOMBIE];
	c->st.events = c->ring.total;
	if (c->src)
		mosfw_source_drops(c->src, &c->st.kernel_drops, &c->st.iface_drops);
	mosfw_ipfrag_usage(c->frag, &c->st.frag_pending, &c->st.frag_mem_peak);
	*out = c->st;
	mosfw_memory_stats(&c->ft, c->x.streams, out);
	if (c->src && c->shared) /* the input's counters, from the reader */
		mosfw_source_ring_totals(c->src, out);
}

_Static_assert(MOSFW_EV_ALL == (1u << MOSFW_EV_TYPES) - 1,
               "MOSFW_EV_TYPES: one per MOSFW_EV_ALL bit");

uint32_t mosfw_core_event_counts(const struct mosfw_core *c, uint64_t *out, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n && i < MOSFW_EV_TYPES; i++)
		out[i] = c->ring.by_type[i];
	return MOSFW_EV_TYPES;
}

/* creation order (live flows span far less than 2^31 creations) */
static int by_creation(const void *a, const void *b, void *flows)
{
	const struct mosfw_flow *f = flows;
	int32_t d = (int32_t)(f[*(const uint32_t *)a].created - f[*(const uint32_t *)b].created);

	return d < 0 ? -1 : d > 0;
}

uint32_t mosfw_core_live_flows(const struct mosfw_core *c, uint32_t *slots, uint32_t cap)
{
	static const unsigned lists[] = { MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB, MOSFW_LRU_UDP,
		                          MOSFW_LRU_ICMP, MOSFW_LRU_OTHER };
	uint32_t n = c->ft.live - c->ft.count[MOSFW_LRU_ZOMBIE], k = 0, i;
	unsigned l;

	if (n > cap)
		return n; /* the caller asks again with room for all */
	for (l = 0; l < 5; l++)
		for (i = c->ft.head[lists[l]]; i != MOSFW_NO_SLOT; i = c->ft.flows[i].lru_next)
			if (!c->x.stopmon ||
			    c->x.stopmon[i] != 3) /* both sides stopped: not shown */
				slots[k++] = i;
	if (k > 1)
		qsort_r(slots, k, sizeof(*slots), by_creation,
		        (void *)c->ft.flows); /* start order */
	return k;
}

void mosfw_core_pause_at_input_end(struct mosfw_core *c, int on)
{
	c->pause_at_input_end = on != 0;
}

int mosfw_core_keep_recent_ends(struct mosfw_core *c, uint32_t n)
{
	struct mosfw_ended *r = NULL;

	if (n && !(r = calloc(n, sizeof(*r))))
		return -1;
	free(c->recent);
	c->recent = r;
	c->recent_cap = n;
	c->recent_n = c->recent_next = 0;
	return 0;
}

uint32_t mosfw_core_recent_ends(const struct mosfw_core *c, struct mosfw_ended *out, uint32_t cap)
{
	uint32_t first = c->recent_n < c->recent_cap ? 0 : c->recent_next, i;

	for (i = 0; i < c->recent_n && i < cap; i++)
		out[i] = c->recent[(first + i) % c->recent_cap];
	return c->recent_n;
}

/* ---- the observer table ---------------------------------------------------- */

/* Rebuild the per-point lists from the attached observers, in order. */
static void index_points(struct mosfw_observers *o)
{
	uint8_t i;

	o->n_parsed = o->n_created = o->n_tcp = o->n_ended = o->n_burst = o->n_room = 0;
	o->n_late = o->n_forgotten = o->n_dgram = 0;
	for (i = 0; i < o->n; i++) {
		const struct mosfw_observer *b = &o->list[i];
		if (b->pkt_parsed)
			o->parsed[o->n_parsed++] = i;
		if (b->flow_created)
			o->created[o->n_created++] = i;
		if (b->tcp_updated)
			o->tcp[o->n_tcp++] = i;
		if (b->flow_ended)
			o->ended[o->n_ended++] = i;
		if (b->burst)
			o->burst[o->n_burst++] = i;
		if (b->room || b->room_used)
			o->room[o->n_room++] = i;
		if (b->late_pkt)
			o->late[o->n_late++] = i;
		if (b->flow_forgotten)
			o->forgotten[o->n_forgotten++] = i;
		if (b->dgram_updated)
			o->dgram[o->n_dgram++] = i;
	}
}

static int find_observer(const struct mosfw_observers *o, const char *name)
{
	uint32_t i;

	for (i = 0; name && i < o->n; i++)
		if (o->list[i].name && !strcmp(o->list[i].name, name))
			return (int)i;
	return -1;
}

int mosfw_core_observe(struct mosfw_core *c, const struct mosfw_observer *obs)
{
	if (!obs || !obs->name || c->obs.n >= MOSFW_OBSERVERS_MAX ||
	    find_observer(&c->obs, obs->name) >= 0)
		return -1;
	c->obs.list[c->obs.n++] = *obs;
	index_points(&c->obs);
	return 0;
}

int mosfw_core_unobserve(struct mosfw_core *c, const char *name)
{
	int i = find_observer(&c->obs, name);
	struct mosfw_observer gone;

	if (i < 0)
		return -1;
	gone = c->obs.list[i];
	memmove(&c->obs.list[i], &c->obs.list[i + 1], (c->obs.n - (uint32_t)i - 1) * sizeof(gone));
	c->obs.n--;
	index_points(&c->obs);
	if (gone.detach)
		gone.detach(gone.self);
	return 0;
}

void *mosfw_core_observer(const struct mosfw_core *c, const char *name)
{
	int i = find_observer(&c->obs, name);

	return i < 0 ? NULL : c->obs.list[i].self;
}

uint32_t mosfw_core_slots(const struct mosfw_core *c) { return c->ft.pool_cap; }
