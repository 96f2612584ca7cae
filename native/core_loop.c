/* SPDX-License-Identifier: MIT */
/*
 * core_loop.c -- one core's event loop: read a bounded burst of packets,
 * find or create each packet's flow, update both TCP endpoints, end flows
 * (FIN/RST, idle timeout, eviction, end of input) and write the events
 * that were subscribed into the caller's record array.
 */
#define _GNU_SOURCE /* qsort_r */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core_ext.h"
#include "flow_table.h"
#include "mosfw_api.h"
#include "shared_input.h"
#include "source.h"
#include "stream_buf.h"
#include "tcp_state.h"
#include "timers.h"

/* Worst case records one packet can produce, with slack. */
#define ROOM_PER_PACKET 24u
#define MIN_RING_CAP 64u
#define CONN_RECORD_MAX 1024u    /* mosfw_conn_record() never needs more */
#define CONN_LOG_SIZE (256u * 1024u)
/* mapped input: a burst ends once it has read this much (its frames stay
 * mapped until the next burst) */
#define BURST_MAP_BYTES (64u << 20)

struct mosfw_core {
	struct mosfw_config cfg;
	struct mosfw_flow_table ft;
	struct mosfw_source *src;
	struct mosfw_stats st;
	struct mosfw_ring ring;
	struct mosfw_tuple *orphans; /* this burst's orphan packets */
	uint32_t orphans_cap, n_orphans;
	volatile int stop_requested;
	int input_done;              /* source finished: draining flows */
	int final_status;            /* returned once draining is over */
	int expiry_unfinished;       /* expiry ran out of room last burst */
	/* after a complete expiry: nothing is due before expire_at unless a
	 * flow was linked at an idle list's head since (ft.head_links moved
	 * from expire_links) or an app timer is due; -HUGE_VAL before the
	 * first expiry and while one is unfinished */
	double expire_at;
	uint32_t expire_links;
	int have_time;               /* now/last_tick are valid */
	double now;                  /* input time: latest packet (or wall, live idle) */
	double last_tick;            /* whole second of the last TICK */
	uint32_t pkt_index;
	/* a packet read while expiry ran out of room: processed first in the
	 * next burst, so timeouts stay ordered before later packets */
	uint8_t *held;
	uint32_t held_caplen, held_wirelen;
	double held_ts;
	int have_held;
	struct mosfw_core_ext x;     /* app-facing mOS API state (core_ext.c) */
	char *conn_log;              /* conn.log records of flows ended this burst */
	size_t conn_log_len, conn_log_cap;
	int conn_log_format;
	double flush_until;          /* live stop: read the kernel's ring until then */
	struct mosfw_share *share;   /* -c N offline: the shared index to read through */
	int shared;                  /* the source reads through it now (input counters
	                                are then the file's, from the index) */
	int seen_input;              /* a packet or time mark was handled */
	/* a time mark (MOSFW_SRC_TIME) whose expiry ran out of room */
	int have_held_time;
	double held_time_ts;
	uint32_t held_time_index;
	int pause_at_input_end;      /* return MOSFW_RUN_INPUT_END before draining */
	int input_end_told;          /* ... and it was returned */
	/* the records of the last recent_cap flows that ended before the end
	 * of the input, a ring: the oldest at recent_n == recent_cap is
	 * recent[recent_next] */
	struct mosfw_ended *recent;
	uint32_t recent_cap, recent_n, recent_next;
	/* frames parsed one ahead (mapped files): parsed[ahead] is the frame
	 * the source will most likely return next, parsed[ahead ^ 1] the one
	 * being processed (frame NULL when it is not the one) */
	struct mosfw_parsed {
		const uint8_t *frame;
		int r;          /* mosfw_parse() result */
		uint32_t hash;  /* mosfw_ft_hash(), with r == MOSFW_PARSE_TCP */
		struct mosfw_pkt p;
	} parsed[2];
	unsigned ahead;
	char err[MOSFW_ERRBUF_SIZE];
};

void mosfw_config_defaults(struct mosfw_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->shard_count = 1;
	cfg->max_concurrency = 1000000;
	cfg->tcp_timeout = 30.0;
	cfg->tcp_tw_interval = 5.0;
	cfg->event_mask = MOSFW_EV_ALL & ~(MOSFW_EV_PKT_IN | MOSFW_EV_TICK);
	cfg->burst_packets = 4096;
	cfg->snaplen = 65535;
	cfg->live_buffer_mb = 64;
	cfg->promisc = 1;
	cfg->rmem_size = 8192;
	cfg->rmem_memcap = (uint64_t)1 << 30;
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
	if (mosfw_ft_init(&c->ft, c->cfg.max_concurrency, c->cfg.core_id) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE,
		         "cannot allocate a flow table for max_concurrency=%u",
		         c->cfg.max_concurrency);
		free(c);
		return NULL;
	}
	c->ring.mask = c->cfg.event_mask;
	c->ring.conns = c->ft.conns;
	mosfw_core_ext_init(&c->x, &c->cfg, &c->ft, &c->src, &c->now);
	c->ring.x = &c->x;
	c->expire_at = -HUGE_VAL;
	return c;
}

void mosfw_core_free(struct mosfw_core *c)
{
	if (!c)
		return;
	mosfw_source_close(c->src);
	mosfw_ft_destroy(&c->ft);
	mosfw_core_ext_destroy(&c->x);
	free(c->orphans);
	free(c->held);
	free(c->conn_log);
	free(c->recent);
	free(c);
}

static int attach(struct mosfw_core *c, struct mosfw_source *s, char *errbuf)
{
	if (!s)
		return -1;
	if (!mosfw_linktype_supported(mosfw_source_linktype(s))) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE,
		         "unsupported link type %d (%s): mosfw reads Ethernet, 802.1Q, "
		         "Linux SLL/SLL2, raw IP and NULL/loopback captures",
		         mosfw_source_linktype(s), mosfw_source_linktype_name(s));
		mosfw_source_close(s);
		return -1;
	}
	mosfw_source_close(c->src);
	c->src = s;
	return 0;
}

void mosfw_core_set_share(struct mosfw_core *c, struct mosfw_share *share)
{
	c->share = share;
}

int mosfw_core_input_shared(const struct mosfw_core *c) { return c->shared; }

int mosfw_core_open_file(struct mosfw_core *c, const char *path, const char *bpf, char *errbuf)
{
	struct mosfw_source *s = mosfw_source_open_file(path, bpf, errbuf);
	char why[MOSFW_ERRBUF_SIZE];

	if (!s) {
		mosfw_share_abandon(c->share); /* nobody waits for this core's part */
		return -1;
	}
	if (attach(c, s, why) < 0) {
		mosfw_share_abandon(c->share);
		/* name the file: the message is shown as is */
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "capture '%.200s': %.290s", path, why);
		return -1;
	}
	if (c->share)
		mosfw_source_use_share(c->src, c->share, c->cfg.shard_index, c->cfg.shard_count,
		                       c->cfg.verify_checksums);
	c->shared = mosfw_source_shared(c->src);
	return 0;
}

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
	mosfw_core_ext_mask(&c->x, mask);
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

const struct mosfw_conn *mosfw_core_conn(const struct mosfw_core *c, uint32_t slot)
{
	static const struct mosfw_conn none;

	if (slot >= c->ft.pool_cap || c->ft.conns[slot].flow_id != c->ft.flows[slot].id ||
	    !c->ft.flows[slot].id)
		return &none;
	return &c->ft.conns[slot];
}

struct mosfw_core_ext *mosfw_core_ext_of(struct mosfw_core *c)
{
	return &c->x;
}

const struct mosfw_tuple *mosfw_core_orphan_tuple(const struct mosfw_core *c, uint32_t i)
{
	return i < c->n_orphans ? &c->orphans[i] : NULL;
}

const char *mosfw_core_error(const struct mosfw_core *c) { return c->err; }

int64_t mosfw_core_input_offset(struct mosfw_core *c)
{
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
	*out = c->st;
	mosfw_memory_stats(&c->ft, c->x.streams, out);
	if (c->src && c->shared) /* the file's input counters, from the index */
		mosfw_source_shared_totals(c->src, out);
}

/* ---- ending flows ------------------------------------------------------ */

static int room(const struct mosfw_core *c)
{
	return mosfw_ring_room(&c->ring) >= ROOM_PER_PACKET &&
	       mosfw_source_burst_bytes(c->src) < BURST_MAP_BYTES &&
	       c->ft.n_pending + 8 < MOSFW_PENDING_MAX && c->n_orphans < c->orphans_cap &&
	       mosfw_core_ext_room(&c->x) &&
	       (!c->conn_log || c->conn_log_cap - c->conn_log_len >= 4 * CONN_RECORD_MAX);
}

int mosfw_core_set_conn_log(struct mosfw_core *c, int format)
{
	if (format < 0) {
		free(c->conn_log);
		c->conn_log = NULL;
		c->conn_log_len = c->conn_log_cap = 0;
		c->ring.conn_log = 0;
		return 0;
	}
	if (format != MOSFW_CONN_JSON && format != MOSFW_CONN_ZEEK)
		return -1;
	if (!c->conn_log) {
		c->conn_log_cap = CONN_LOG_SIZE;
		c->conn_log = malloc(c->conn_log_cap);
		if (!c->conn_log)
			return -1;
	}
	c->conn_log_format = format;
	c->conn_log_len = 0;
	c->ring.conn_log = 1;
	return 0;
}

size_t mosfw_core_conn_log(const struct mosfw_core *c, const char **data)
{
	*data = c->conn_log;
	return c->conn_log ? c->conn_log_len : 0;
}

static void count_end(struct mosfw_core *c, unsigned reason)
{
	switch (reason) {
	case MOSFW_END_FIN: c->st.flows_ended_fin++; break;
	case MOSFW_END_RST: c->st.flows_ended_rst++; break;
	case MOSFW_END_TIMEOUT: c->st.flows_ended_timeout++; break;
	case MOSFW_END_EVICTED: c->st.flows_evicted++; break;
	case MOSFW_END_EOF: c->st.flows_ended_eof++; break;
	case MOSFW_END_REUSED: c->st.flows_reused++; break;
	default: break;
	}
}

/* Raise CONN_END and retire the flow. FIN/RST-ended flows stay indexed as
 * zombies for tcp_tw_interval so late packets are orphans, not new flows. */
static void end_flow(struct mosfw_core *c, uint32_t slot, unsigned reason, double ts,
                     const struct mosfw_pkt *pkt)
{
	struct mosfw_flow *f = &c->ft.flows[slot];
	struct mosfw_pkt_ctx ctx = { pkt, ts, c->pkt_index };
	struct mosfw_event *e = mosfw_ring_push(&c->ring, MOSFW_EV_CONN_END, &ctx, f, slot,
	                                        MOSFW_SIDE_CLIENT);

	if (e)
		e->reason = (uint8_t)reason;
	f->end_reason = (uint8_t)reason;
	count_end(c, reason);
	if (c->conn_log) {
		size_t n = mosfw_conn_record(f, &c->ft.conns[slot], (unsigned)c->conn_log_format,
		                             c->conn_log + c->conn_log_len,
		                             c->conn_log_cap - c->conn_log_len);
		if (n < c->conn_log_cap - c->conn_log_len)
			c->conn_log_len += n;
	}
	if (c->recent_cap && reason != MOSFW_END_EOF) {
		struct mosfw_ended *r = &c->recent[c->recent_next];
		r->ts = ts;
		r->flow = *f;
		c->recent_next = (c->recent_next + 1) % c->recent_cap;
		if (c->recent_n < c->recent_cap)
			c->recent_n++;
	}
	mosfw_core_ext_flow_ended(&c->x, slot);
	if ((reason == MOSFW_END_FIN || reason == MOSFW_END_RST) && c->cfg.tcp_tw_interval > 0) {
		if (ts > f->last_ts)
			f->last_ts = ts;
		mosfw_ft_touch(&c->ft, slot, MOSFW_LRU_ZOMBIE);
	} else {
		mosfw_ft_remove(&c->ft, slot);
	}
}

/* End flows idle past their deadline, oldest first, while there is room. */
static void expire(struct mosfw_core *c)
{
	static const unsigned order[] = { MOSFW_LRU_ZOMBIE, MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB };
	unsigned i;
	double next = HUGE_VAL; /* the earliest deadline left */

	c->expiry_unfinished = 0;
	c->expire_at = -HUGE_VAL; /* until this pass completes */
	/* app timers due by now fire first (TIMEOUT, ts = their deadline) */
	while (mosfw_core_ext_timer_due(&c->x, c->now)) {
		if (!room(c)) {
			c->expiry_unfinished = 1;
			return;
		}
		mosfw_core_ext_fire_timer(&c->x, &c->ring);
	}
	for (i = 0; i < 3; i++) {
		unsigned l = order[i];
		double limit = l == MOSFW_LRU_ZOMBIE ? c->cfg.tcp_tw_interval : c->cfg.tcp_timeout;
		if (l != MOSFW_LRU_ZOMBIE && limit <= 0)
			continue;
		while (c->ft.head[l] != MOSFW_NO_SLOT) {
			uint32_t slot = c->ft.head[l];
			double deadline = c->ft.flows[slot].last_ts + limit;
			if (c->now < deadline)
				break;
			if (!room(c)) {
				c->expiry_unfinished = 1;
				return;
			}
			if (l == MOSFW_LRU_ZOMBIE)
				mosfw_ft_remove(&c->ft, slot);
			else
				end_flow(c, slot, MOSFW_END_TIMEOUT, deadline, NULL);
		}
		if (c->ft.head[l] != MOSFW_NO_SLOT) {
			double deadline = c->ft.flows[c->ft.head[l]].last_ts + limit;
			if (deadline < next)
				next = deadline;
		}
	}
	c->expire_at = next;
	c->expire_links = c->ft.head_links;
}

/* Whether expire() may have anything to do at input time c->now. It looks
 * at the idle lists' heads; each list is in last_ts order (flows are
 * touched to its tail), so a head that leaves its list is followed by one
 * due no earlier, and last_ts only grows. Only a flow linked at a head
 * can bring a deadline earlier than the one the last expire() saw. Once a
 * list was linked out of order (ft.unordered) this no longer holds and
 * expire() runs for every packet, as it always did. */
static inline int expiry_due(const struct mosfw_core *c)
{
	return c->now >= c->expire_at || c->ft.head_links != c->expire_links || c->ft.unordered ||
	       mosfw_core_ext_timer_due(&c->x, c->now);
}

/* Established and confirmed: both endpoints were seen sending and both
 * are past the handshake. Only such flows sit on the ESTAB idle list and
 * are never evicted. A lone SYN, a SYN answered by a SYN/ACK that was
 * never acknowledged, and a flow picked up mid-stream from one direction
 * only (a spoofed ACK costs no more than a spoofed SYN) are half-open. */
static int confirmed(const struct mosfw_flow *f)
{
	return f->side[0].pkts && f->side[1].pkts && f->side[0].state >= MOSFW_TCP_ESTABLISHED &&
	       f->side[1].state >= MOSFW_TCP_ESTABLISHED;
}

/* Make room for one new flow: forget the oldest zombie, else evict the
 * oldest half-open flow. A newcomer never displaces a confirmed
 * established flow (it is refused instead). Returns 0 when there is room. */
static int make_room(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx)
{
	uint32_t slot;
	struct mosfw_event *e;

	if (c->ft.live < c->ft.max_live)
		return 0;
	if (c->ft.head[MOSFW_LRU_ZOMBIE] != MOSFW_NO_SLOT) {
		mosfw_ft_remove(&c->ft, c->ft.head[MOSFW_LRU_ZOMBIE]);
		return 0;
	}
	slot = c->ft.head[MOSFW_LRU_HALF_OPEN];
	if (slot == MOSFW_NO_SLOT)
		return -1;
	e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, ctx, &c->ft.flows[slot], slot,
	                    MOSFW_SIDE_CLIENT);
	if (e)
		e->reason = MOSFW_ERR_TABLE_FULL;
	end_flow(c, slot, MOSFW_END_EVICTED, ctx->ts, NULL);
	return 0;
}

/* ---- packets ----------------------------------------------------------- */

static int likely_server_port(uint16_t port)
{
	switch (port) {
	case 1080: case 1433: case 1521: case 2049: case 3128: case 3306: case 3389:
	case 5201: case 5432: case 5672: case 5900: case 6379: case 8000: case 8008:
	case 8080: case 8443: case 8888: case 9000: case 9092: case 9200: case 11211:
	case 27017:
		return 1;
	default:
		return port < 1024;
	}
}

static void orphan(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx)
{
	const struct mosfw_pkt *p = ctx->pkt;
	struct mosfw_event *e;

	c->st.orphans++;
	if (!mosfw_core_ext_orphan_ok(&c->x, ctx->ts))
		return; /* stream_orphan_filter */
	if (!mosfw_ring_wants(&c->ring, MOSFW_EV_ORPHAN))
		return;
	e = mosfw_ring_push(&c->ring, MOSFW_EV_ORPHAN, ctx, NULL, c->n_orphans, MOSFW_SIDE_CLIENT);
	if (e) {
		struct mosfw_tuple *t = &c->orphans[c->n_orphans++];
		memset(t, 0, sizeof(*t));
		memcpy(t->cli_addr, p->src, 16);
		memcpy(t->srv_addr, p->dst, 16);
		t->cli_port = p->sport;
		t->srv_port = p->dport;
		t->family = p->family;
	}
}

/* Raise TICK when ts crossed a whole second. Returns 1 when a TICK
 * record was written. */
static int tick(struct mosfw_core *c, double ts)
{
	double sec;
	int pushed = 0;

	if (c->have_time && ts < c->last_tick + 1.0)
		return 0; /* same second (last_tick is a whole number) */
	sec = floor(ts);
	if (!c->have_time) {
		c->have_time = 1;
		c->last_tick = sec;
		return 0;
	}
	if (sec > c->last_tick && mosfw_ring_wants(&c->ring, MOSFW_EV_TICK)) {
		struct mosfw_pkt_ctx ctx = { NULL, sec, c->pkt_index };
		pushed = mosfw_ring_push(&c->ring, MOSFW_EV_TICK, &ctx, NULL, MOSFW_NO_SLOT, 0) != NULL;
	}
	if (sec > c->last_tick)
		c->last_tick = sec;
	return pushed;
}

/* Keep the frame being read for the next burst (processed first there)
 * and end this burst. 0 when there is no memory to hold it. */
static int hold_frame(struct mosfw_core *c, const uint8_t *frame, uint32_t caplen,
                      uint32_t wirelen, double ts)
{
	uint32_t keep = caplen > 262144 ? 262144 : caplen;

	if (frame != c->held) { /* else it is there already */
		if (!c->held && !(c->held = malloc(262144)))
			return 0;
		memcpy(c->held, frame, keep);
		c->held_caplen = keep;
		c->held_wirelen = wirelen;
		c->held_ts = ts;
	}
	c->have_held = 1;
	c->x.cut = 1;
	return 1;
}

static int by_flow_id(const void *a, const void *b, void *flows)
{
	const struct mosfw_flow *f = flows;
	uint64_t x = f[*(const uint32_t *)a].id, y = f[*(const uint32_t *)b].id;

	return x < y ? -1 : x > y;
}

uint32_t mosfw_core_live_flows(const struct mosfw_core *c, uint32_t *slots, uint32_t cap)
{
	static const unsigned lists[] = { MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB };
	uint32_t n = c->ft.count[MOSFW_LRU_HALF_OPEN] + c->ft.count[MOSFW_LRU_ESTAB], k = 0, i;
	unsigned l;

	if (n > cap)
		return n; /* the caller asks again with room for all */
	for (l = 0; l < 2; l++)
		for (i = c->ft.head[lists[l]]; i != MOSFW_NO_SLOT; i = c->ft.flows[i].lru_next)
			if (!c->x.stopmon || c->x.stopmon[i] != 3) /* both sides stopped: not shown */
				slots[k++] = i;
	if (k > 1)
		qsort_r(slots, k, sizeof(*slots), by_flow_id, (void *)c->ft.flows); /* start order */
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

/* The packet being processed would change the reassembly buffer of a
 * flow whose records wait for dispatch: undo what process_frame counted,
 * hold it for the next burst and end this one (so every handler reads the
 * stream as it was after its own packet). 0 when it cannot be held. */
static int hold_for_next_burst(struct mosfw_core *c, double ts)
{
	if (c->x.frame == c->held || !hold_frame(c, c->x.frame, c->x.caplen, c->x.wirelen, ts))
		return 0;
	c->pkt_index--; /* counted again when it is processed */
	if (!c->shared) {
		c->st.packets--;
		c->st.bytes -= c->x.wirelen;
		c->st.tcp_packets--;
	}
	return 1;
}

static void handle_tcp(struct mosfw_core *c, const struct mosfw_pkt *p, uint32_t hash, double ts)
{
	struct mosfw_pkt_ctx ctx = { p, ts, c->pkt_index };
	uint8_t fl = p->tcp_flags;
	int pure_syn = (fl & (MOSFW_TH_SYN | MOSFW_TH_ACK | MOSFW_TH_RST)) == MOSFW_TH_SYN;
	unsigned dir = 0;
	uint32_t slot;
	struct mosfw_flow *f;
	int how, verdict, rexmit = 0;
	uint32_t n0 = c->ring.n;

	/* the shard comes from the hash's high bits: the flow index uses the
	 * low ones, which would otherwise be the same on every flow of a core
	 * (the shared index hands out this core's packets only) */
	if (c->cfg.shard_count > 1 && !c->shared &&
	    (uint32_t)(((uint64_t)hash * c->cfg.shard_count) >> 32) != c->cfg.shard_index) {
		c->st.other_shard++;
		return;
	}
	slot = mosfw_ft_lookup(&c->ft, p, hash, &dir);
	if (slot != MOSFW_NO_SLOT && c->x.streams && mosfw_core_ext_must_cut(&c->x, slot, dir, p) &&
	    hold_for_next_burst(c, ts))
		return;
	if (slot != MOSFW_NO_SLOT) {
		f = &c->ft.flows[slot];
		if (f->end_reason) {
			/* zombie: a new SYN reuses the tuple, anything else is late */
			if (!pure_syn) {
				orphan(c, &ctx);
				return;
			}
			mosfw_ft_remove(&c->ft, slot);
			slot = MOSFW_NO_SLOT;
		} else if (pure_syn && (f->side[dir].flags & MOSFW_HF_SYN_SEEN) &&
		           p->seq != f->side[dir].isn &&
		           ((f->side[0].flags | f->side[1].flags) &
		            (MOSFW_HF_FIN_SEEN | MOSFW_HF_RST_SEEN))) {
			/* port reuse while the old connection was closing */
			end_flow(c, slot, MOSFW_END_REUSED, ts, p); /* not kept as a zombie */
			slot = MOSFW_NO_SLOT;
		}
	}
	if (slot == MOSFW_NO_SLOT) {
		int sender_is_client;
		if (pure_syn) {
			how = MOSFW_TCP_OPEN_SYN;
			sender_is_client = 1;
		} else if ((fl & (MOSFW_TH_SYN | MOSFW_TH_ACK | MOSFW_TH_RST)) ==
		           (MOSFW_TH_SYN | MOSFW_TH_ACK)) {
			how = MOSFW_TCP_OPEN_SYNACK;
			sender_is_client = 0;
		} else if ((fl & MOSFW_TH_ACK) && !(fl & (MOSFW_TH_RST | MOSFW_TH_SYN))) {
			how = MOSFW_TCP_OPEN_MIDSTREAM;
			sender_is_client = !(likely_server_port(p->sport) && !likely_server_port(p->dport));
		} else {
			orphan(c, &ctx);
			return;
		}
		if (!mosfw_core_ext_syn_ok(&c->x, ts))
			return; /* stream_syn_filter: not tracked, not an orphan */
		if (make_room(c, &ctx) < 0 || /* full, or its index could not grow: */
		    (slot = mosfw_ft_insert(&c->ft, p, hash, sender_is_client)) == MOSFW_NO_SLOT) {
			struct mosfw_event *e;
			c->st.flows_refused++;
			e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, &ctx, NULL, MOSFW_NO_SLOT, 0);
			if (e)
				e->reason = MOSFW_ERR_TABLE_FULL;
			orphan(c, &ctx);
			return;
		}
		dir = sender_is_client ? MOSFW_SIDE_CLIENT : MOSFW_SIDE_SERVER;
		f = &c->ft.flows[slot];
		f->first_dir = (uint8_t)dir;
		c->st.flows_created++;
		if (how != MOSFW_TCP_OPEN_SYN)
			c->st.flows_midstream++;
		mosfw_tcp_open(f, slot, how, &ctx, &c->ring);
	}
	f = mosfw_idle_restart(&c->ft.flows[slot], c->now); /* idle time is input time */
	verdict = mosfw_tcp_update(f, slot, dir, &ctx, &c->ring, &rexmit);
	c->st.rexmits += (uint64_t)rexmit;
	if (verdict == MOSFW_TCP_ENDED_FIN)
		end_flow(c, slot, MOSFW_END_FIN, ts, p);
	else if (verdict == MOSFW_TCP_ENDED_RST)
		end_flow(c, slot, MOSFW_END_RST, ts, p);
	else
		mosfw_ft_touch(&c->ft, slot, confirmed(f) ? MOSFW_LRU_ESTAB : MOSFW_LRU_HALF_OPEN);
	if (c->ring.n != n0) /* its buffers stay put until these are dispatched */
		mosfw_core_ext_records(&c->x, slot);
}


/* frame was read: parse the one after it now and start loading its flow
 * index entry, so that the lookup finds it in the cache a packet later */
static void read_ahead(struct mosfw_core *c, const uint8_t *frame)
{
	struct mosfw_parsed *next;
	const uint8_t *nf;
	uint32_t ncaplen;

	if (c->parsed[c->ahead].frame != frame)
		c->parsed[c->ahead].frame = NULL; /* the source read something else */
	c->ahead ^= 1;
	next = &c->parsed[c->ahead];
	next->frame = NULL;
	nf = mosfw_source_peek(c->src, &ncaplen);
	if (!nf)
		return;
	next->r = mosfw_parse(mosfw_source_linktype(c->src), nf, ncaplen, c->cfg.verify_checksums,
	                      &next->p);
	if (next->r == MOSFW_PARSE_TCP) {
		next->hash = mosfw_ft_hash(&next->p);
		/* (also for another shard's packet, which is never looked up: a
		 * test of the shard here, a branch taken at random, made -c 2
		 * slower, 147 -> 165 ms a core) */
		mosfw_ft_prefetch(&c->ft, next->hash);
	}
	next->frame = nf;
}

static void process_frame(struct mosfw_core *c, const uint8_t *frame, uint32_t caplen,
                          uint32_t wirelen, double ts)
{
	struct mosfw_parsed *done = &c->parsed[c->ahead ^ 1];
	struct mosfw_pkt p;
	const struct mosfw_pkt *pp = &p;
	uint32_t hash = 0;
	int r;

	c->pkt_index++;
	if (tick(c, ts) && hold_frame(c, frame, caplen, wirelen, ts)) {
		/* the TICK ends this burst: the packet is processed in the next */
		c->pkt_index--;
		return;
	}
	mosfw_core_ext_frame(&c->x, frame, caplen, wirelen,
	                     frame != c->held && mosfw_source_frames_stable(c->src));
	if (done->frame == frame) { /* parsed by read_ahead(), without the wire length */
		r = mosfw_parse_wire(done->r, &done->p, caplen, wirelen);
		pp = &done->p;
		hash = done->hash;
	} else {
		r = mosfw_parse_wire(mosfw_parse(mosfw_source_linktype(c->src), frame, caplen,
		                                 c->cfg.verify_checksums, &p), &p, caplen, wirelen);
		if (r == MOSFW_PARSE_TCP)
			hash = mosfw_ft_hash(&p);
	}
	if (!c->shared) /* else the index counted it, with the whole file's */
		mosfw_count_input(&c->st, r, caplen, wirelen, ts);
	if (r == MOSFW_PARSE_TCP)
		handle_tcp(c, pp, hash, ts);
}

/* Advance input time to the packet's, end the flows that timed out before
 * it, then process it. If expiry runs out of room the packet is held
 * (copied) for the next burst. */
static void handle_frame(struct mosfw_core *c, const uint8_t *frame, uint32_t caplen,
                         uint32_t wirelen, double ts)
{
	if (ts > c->now || !c->seen_input)
		c->now = ts;
	if (!c->seen_input) {
		c->seen_input = 1;
		mosfw_core_ext_start(&c->x, ts); /* timers set before it count from here */
	}
	if (expiry_due(c))
		expire(c);
	if (c->expiry_unfinished && hold_frame(c, frame, caplen, wirelen, ts))
		return;
	/* (no memory to hold it: process now, timeouts finish later) */
	process_frame(c, frame, caplen, wirelen, ts);
}

/* Shared index: another core's packet opened a new second at ts. Time
 * moves as if this core had read it: timeouts due end, a TICK is raised
 * (and ends the burst, as a packet's would). If expiry runs out of room
 * the mark is kept for the next burst. */
static void handle_time(struct mosfw_core *c, double ts, uint32_t index)
{
	if (ts > c->now || !c->seen_input)
		c->now = ts;
	if (!c->seen_input) {
		c->seen_input = 1;
		mosfw_core_ext_start(&c->x, ts);
	}
	if (expiry_due(c))
		expire(c);
	if (c->expiry_unfinished) {
		c->have_held_time = 1;
		c->held_time_ts = ts;
		c->held_time_index = index;
		return;
	}
	c->pkt_index = index; /* the TICK names the packet that crossed the second */
	if (tick(c, ts))
		c->x.cut = 1;
}

/* End of input: end every remaining flow with reason eof, oldest first. */
static int drain(struct mosfw_core *c)
{
	static const unsigned order[] = { MOSFW_LRU_ZOMBIE, MOSFW_LRU_HALF_OPEN, MOSFW_LRU_ESTAB };
	unsigned i;

	for (i = 0; i < 3; i++) {
		unsigned l = order[i];
		while (c->ft.head[l] != MOSFW_NO_SLOT) {
			uint32_t slot = c->ft.head[l];
			if (!room(c))
				return 0;
			if (l == MOSFW_LRU_ZOMBIE)
				mosfw_ft_remove(&c->ft, slot);
			else
				end_flow(c, slot, MOSFW_END_EOF, c->now, NULL);
		}
	}
	return 1;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mosfw_core_run(struct mosfw_core *c, struct mosfw_event *evs, uint32_t cap,
                   uint32_t *n_events)
{
	uint32_t i;
	int idle = 0;

	*n_events = 0;
	if (!c->src) {
		snprintf(c->err, sizeof(c->err), "no input opened");
		return MOSFW_RUN_ERROR;
	}
	if (cap < MIN_RING_CAP) {
		snprintf(c->err, sizeof(c->err), "event array too small (%u < %u)", cap, MIN_RING_CAP);
		return MOSFW_RUN_ERROR;
	}
	if (c->orphans_cap < cap) {
		struct mosfw_tuple *o = realloc(c->orphans, (size_t)cap * sizeof(*o));
		if (!o) {
			snprintf(c->err, sizeof(c->err), "out of memory");
			return MOSFW_RUN_ERROR;
		}
		c->orphans = o;
		c->orphans_cap = cap;
	}
	mosfw_ft_release_pending(&c->ft);
	mosfw_source_burst_begin(c->src);
	c->conn_log_len = 0;
	mosfw_core_ext_burst(&c->x);
	c->n_orphans = 0;
	c->ring.evs = evs;
	c->ring.cap = cap;
	c->ring.n = 0;

	if (!c->input_done && c->expiry_unfinished)
		expire(c);
	if (!c->expiry_unfinished && c->have_held) {
		c->have_held = 0;
		process_frame(c, c->held, c->held_caplen, c->held_wirelen, c->held_ts);
	}
	if (!c->expiry_unfinished && c->have_held_time) {
		c->have_held_time = 0;
		handle_time(c, c->held_time_ts, c->held_time_index);
	}
	for (i = 0; !c->input_done && !c->expiry_unfinished && !c->x.cut &&
	            i < c->cfg.burst_packets; i++) {
		/* (set by mosfw_source_next() when it returns a packet or a time
		 * mark; initialised for the compiler, which cannot see that
		 * across files with link-time optimisation) */
		const uint8_t *frame = NULL;
		uint32_t caplen = 0, wirelen = 0;
		double ts = 0;
		int r;

		if (!room(c))
			break;
		if (c->stop_requested) {
			/* live: packets the kernel already captured are still read
			 * (TPACKET_V3 hands them over a block at a time, a block is
			 * retired within the 50 ms poll timeout), then stop */
			int live = mosfw_source_is_live(c->src);
			if (live && c->flush_until == 0)
				c->flush_until = wall_now() + 0.15;
			if (!live || wall_now() >= c->flush_until) {
				c->input_done = 1;
				c->final_status = MOSFW_RUN_STOPPED;
				break;
			}
		}
		r = mosfw_source_next(c->src, &frame, &caplen, &wirelen, &ts);
		if (c->shared && !mosfw_source_shared(c->src))
			/* the index fell back to reading the whole file (nothing was
			 * handed out before): this core now counts it all itself */
			c->shared = 0;
		if (r == MOSFW_SRC_PACKET) {
			if (c->shared) /* its place in the input, other cores' packets included */
				c->pkt_index = mosfw_source_index(c->src) - 1;
			else
				read_ahead(c, frame);
			handle_frame(c, frame, caplen, wirelen, ts);
			continue;
		}
		if (r == MOSFW_SRC_TIME) {
			handle_time(c, ts, mosfw_source_index(c->src));
			continue;
		}
		if (r == MOSFW_SRC_WAIT)
			break; /* the other cores are still indexing: next call */
		if (r == MOSFW_SRC_TIMEOUT) {
			/* live and quiet: wall time drives timeouts and ticks */
			double now = wall_now();
			if (now > c->now) {
				c->now = now;
				if (c->have_time)
					tick(c, now);
			}
			expire(c);
			if (c->stop_requested)
				continue; /* flushing: poll again until flush_until */
			idle = (i == 0);
			break;
		}
		c->input_done = 1;
		if (c->shared) {
			/* input time ends at the file's last packet, as for one reader */
			struct mosfw_stats t;
			memset(&t, 0, sizeof(t));
			mosfw_source_shared_totals(c->src, &t);
			if (t.packets && t.last_ts > c->now)
				c->now = t.last_ts;
		}
		if (r == MOSFW_SRC_EOF) {
			c->final_status = MOSFW_RUN_DONE;
		} else if (r == MOSFW_SRC_BREAK) {
			c->final_status = MOSFW_RUN_STOPPED;
		} else {
			c->final_status = MOSFW_RUN_ERROR;
			snprintf(c->err, sizeof(c->err), "%s", mosfw_source_error(c->src));
		}
	}
	if (c->input_done && c->pause_at_input_end && !c->input_end_told) {
		/* the table at the end of the input, before its flows end */
		c->input_end_told = 1;
		*n_events = c->ring.n;
		return MOSFW_RUN_INPUT_END;
	}
	if (c->input_done && drain(c)) {
		*n_events = c->ring.n;
		return c->final_status;
	}
	*n_events = c->ring.n;
	return idle && c->ring.n == 0 ? MOSFW_RUN_IDLE : MOSFW_RUN_MORE;
}
