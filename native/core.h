/* SPDX-License-Identifier: MIT */
/*
 * core.h -- one core's state (struct mosfw_core), private to the core's
 * own files: core.c (construction, configuration, read-only views),
 * core_loop.c (the burst loop: packets in, flows updated, records out),
 * core_end.c (ending flows: FIN/RST, idle timeout, eviction, end of input)
 * and core_api.c (the app-facing mOS API: buffers, timers, filters, stop
 * monitoring). Features attach through the observer table (observers.h)
 * or are driven from here (feature_set.h); lower layers never see this.
 */
#ifndef MOSFW_CORE_H
#define MOSFW_CORE_H

#include "event_ring.h"
#include "feature_set.h"
#include "flow_table.h"
#include "ipfrag.h"
#include "mosfw_api.h"
#include "observers.h"
#include "packet.h"
#include "source.h"
#include "source_set.h"
#include "tunnels.h"

/* Worst case records one packet can produce, with slack. */
#define ROOM_PER_PACKET 24u
#define MIN_RING_CAP 64u
/* mapped input: a burst ends once it has read this much (its frames stay
 * mapped until the next burst) */
#define BURST_MAP_BYTES (64u << 20)

struct mosfw_core {
	struct mosfw_config cfg;
	struct mosfw_flow_table ft;
	struct mosfw_source *src;     /* a file of set, when set: owned by it */
	struct mosfw_source_set *set; /* many files (mosfw_core_open_files) */
	/* segment mode (mosfw_core_own_window): flows first seen outside
	 * [own_t0, own_t1) are foreign (foreign[slot]): tracked, silent */
	int own_on;
	double own_t0, own_t1;
	double own_lead; /* own_t0 - tcp_timeout - tcp_tw_interval: packets before it are skipped */
	uint8_t *foreign;
	uint64_t owned_live; /* owned flows not forgotten yet */
	struct mosfw_stats st;
	struct mosfw_ring ring;
	struct mosfw_tuple *orphans; /* this burst's orphan packets */
	uint32_t orphans_cap, n_orphans;
	volatile int stop_requested;
	int input_done;        /* source finished: draining flows */
	int final_status;      /* returned once draining is over */
	int expiry_unfinished; /* expiry ran out of room last burst */
	/* after a complete expiry: nothing is due before expire_at unless a
	 * flow was linked at an idle list's head since (ft.head_links moved
	 * from expire_links) or an app timer is due; -HUGE_VAL before the
	 * first expiry and while one is unfinished */
	double expire_at;
	uint32_t expire_links;
	int have_time;    /* now/last_tick are valid */
	double now;       /* input time: latest packet (or wall, live idle) */
	double last_tick; /* whole second of the last TICK */
	uint32_t pkt_index;
	/* a packet read while expiry ran out of room: processed first in the
	 * next burst, so timeouts stay ordered before later packets */
	uint8_t *held;
	uint32_t held_caplen, held_wirelen;
	double held_ts;
	int have_held;
	/* a datagram reassembled from fragments inside a tunnel is raw IP
	 * (core_loop.c reassemble): the one being processed (its layers), and
	 * whether the held frame is one (held_layers: its layers) */
	const struct mosfw_pkt *raw_layers;
	int held_raw;
	struct mosfw_pkt held_layers;
	struct mosfw_features x;    /* buffers, arena, timers, filters (feature_set.c) */
	struct mosfw_observers obs; /* what is attached at the fixed points (observers.h) */
	struct mosfw_ipfrag *frag;  /* IP fragments being reassembled (ipfrag.h) */
	struct mosfw_tun_store tun; /* the layers of the flows that came through any */
	double flush_until;         /* live stop: read the kernel's ring until then */
	int shared;                 /* -c N offline: the source is this core's ring of
	                                the feed (input counters are the reader's) */
	int seen_input;             /* a packet or time mark was handled */
	/* a time mark (MOSFW_SRC_TIME) whose expiry ran out of room */
	int have_held_time;
	double held_time_ts;
	uint32_t held_time_index;
	int pause_at_input_end; /* return MOSFW_RUN_INPUT_END before draining */
	int input_end_told;     /* ... and it was returned */
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
		int r;         /* mosfw_parse() result */
		uint32_t hash; /* mosfw_ft_hash(), with r == MOSFW_PARSE_TCP */
		struct mosfw_pkt p;
	} parsed[2];
	unsigned ahead;
	char err[MOSFW_ERRBUF_SIZE];
};

/* ---- shared between the core's files --------------------------------------- */

/* Enough room in the ring and the burst's buffers for one more packet's
 * worst case. */
static inline int mosfw_core_room(const struct mosfw_core *c)
{
	return mosfw_ring_room(&c->ring) >= ROOM_PER_PACKET &&
	       !mosfw_source_burst_full(c->src, BURST_MAP_BYTES) &&
	       c->ft.n_pending + 8 < MOSFW_PENDING_MAX && c->n_orphans < c->orphans_cap &&
	       mosfw_feat_room(&c->x) && mosfw_obs_room(&c->obs);
}

/* Established and confirmed: both endpoints were seen sending and both
 * are past the handshake. Only such flows sit on the ESTAB idle list and
 * are never evicted. A lone SYN, a SYN answered by a SYN/ACK that was
 * never acknowledged, and a flow picked up mid-stream from one direction
 * only (a spoofed ACK costs no more than a spoofed SYN) are half-open. */
static inline int mosfw_core_confirmed(const struct mosfw_flow *f)
{
	return f->side[0].pkts && f->side[1].pkts && f->side[0].state >= MOSFW_TCP_ESTABLISHED &&
	       f->side[1].state >= MOSFW_TCP_ESTABLISHED;
}

/* core_dgram.c: a UDP/ICMP packet of a tracked protocol (hash:
 * mosfw_ft_hash_dgram), and the likely server port rule */
void mosfw_core_dgram(struct mosfw_core *c, const struct mosfw_pkt *p, uint32_t hash, double ts);
int mosfw_likely_server_port(uint16_t port);

/* core_end.c */
/* Forget the ended flow in slot: observers' flow_forgotten, then it
 * leaves the table (its slot is released after the burst). */
static inline void mosfw_core_forget(struct mosfw_core *c, uint32_t slot)
{
	if (!c->own_on || !c->foreign[slot]) { /* (segment mode: a foreign flow is silent) */
		if (c->obs.n_forgotten)
			mosfw_obs_flow_forgotten(&c->obs, &c->ft.flows[slot], slot);
		if (c->own_on)
			c->owned_live--; /* owned flows live until forgotten: late packets count */
	}
	mosfw_ft_remove(&c->ft, slot);
}

void mosfw_core_end_flow(struct mosfw_core *c, uint32_t slot, unsigned reason, double ts,
                         const struct mosfw_pkt *pkt);
void mosfw_core_expire(struct mosfw_core *c);
int mosfw_core_make_room(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx);
int mosfw_core_drain(struct mosfw_core *c);

/* Whether mosfw_core_expire() may have anything to do at input time
 * c->now. It looks at the idle lists' heads; each list is in last_ts order
 * (flows are touched to its tail), so a head that leaves its list is
 * followed by one due no earlier, and last_ts only grows. Only a flow
 * linked at a head can bring a deadline earlier than the one the last
 * expiry saw. Once a list was linked out of order (ft.unordered) this no
 * longer holds and expiry runs for every packet, as it always did. */
static inline int mosfw_core_expiry_due(const struct mosfw_core *c)
{
	return c->now >= c->expire_at || c->ft.head_links != c->expire_links || c->ft.unordered ||
	       mosfw_feat_timer_due(&c->x, c->now);
}

/* Segment mode: is input time ts inside the window (always without one)?
 * Is the flow in slot foreign? Claim a new flow: 1 owned, 0 foreign (muted). */
static inline int mosfw_core_in_window(const struct mosfw_core *c, double ts)
{
	return !c->own_on || (ts >= c->own_t0 && ts < c->own_t1);
}
static inline int mosfw_core_foreign(const struct mosfw_core *c, uint32_t slot)
{
	return c->own_on && c->foreign[slot];
}
int mosfw_core_claim(struct mosfw_core *c, uint32_t slot, double ts);

#endif /* MOSFW_CORE_H */
