/* SPDX-License-Identifier: MIT */
/*
 * core_loop.c -- one core's event loop: read a bounded burst of packets,
 * find or create each packet's flow, update both TCP endpoints, call the
 * observers at the loop's fixed points (observers.h), end flows
 * (core_end.c) and write the events that were subscribed into the
 * caller's record array.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "tcp_state.h"
#include "timers.h"

static void orphan(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx, uint8_t evflags)
{
	const struct mosfw_pkt *p = ctx->pkt;
	struct mosfw_event *e;

	if (!mosfw_core_in_window(c, ctx->ts))
		return; /* segment mode: another segment's */
	c->st.orphans++;
	if (!mosfw_feat_orphan_ok(&c->x, ctx->ts))
		return; /* stream_orphan_filter */
	if (!mosfw_ring_wants(&c->ring, MOSFW_EV_ORPHAN))
		return;
	e = mosfw_ring_push(&c->ring, MOSFW_EV_ORPHAN, ctx, NULL, c->n_orphans, MOSFW_SIDE_CLIENT);
	if (e) {
		e->flags = evflags;
		struct mosfw_tuple *t = &c->orphans[c->n_orphans++];
		memset(t, 0, sizeof(*t));
		memcpy(t->cli_addr, p->src, 16);
		memcpy(t->srv_addr, p->dst, 16);
		t->cli_port = p->sport;
		t->srv_port = p->dport;
		t->family = p->family;
		t->proto = p->ip_proto;
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
	if (sec > c->last_tick && mosfw_ring_wants(&c->ring, MOSFW_EV_TICK) &&
	    mosfw_core_in_window(c, sec)) {
		struct mosfw_pkt_ctx ctx = { NULL, sec, c->pkt_index };
		pushed = mosfw_ring_push(&c->ring, MOSFW_EV_TICK, &ctx, NULL, MOSFW_NO_SLOT, 0) !=
		         NULL;
	}
	if (sec > c->last_tick)
		c->last_tick = sec;
	return pushed;
}

/* Keep the frame being read for the next burst (processed first there)
 * and end this burst. 0 when there is no memory to hold it. */
static int hold_frame(struct mosfw_core *c, const uint8_t *frame, uint32_t caplen, uint32_t wirelen,
                      double ts)
{
	uint32_t keep = caplen > 262144 ? 262144 : caplen;

	if (frame != c->held) { /* else it is there already */
		if (!c->held && !(c->held = malloc(262144)))
			return 0;
		memcpy(c->held, frame, keep);
		c->held_raw = 0; /* (hold_for_next_burst says when it is raw IP) */
		c->held_caplen = keep;
		c->held_wirelen = wirelen;
		c->held_ts = ts;
	}
	c->have_held = 1;
	c->x.cut = 1;
	return 1;
}

/* The packet being processed would change the reassembly buffer of a
 * flow whose records wait for dispatch: undo what process_frame counted,
 * hold it for the next burst and end this one (so every handler reads the
 * stream as it was after its own packet). 0 when it cannot be held. */
static int hold_for_next_burst(struct mosfw_core *c, const struct mosfw_pkt *p, double ts)
{
	unsigned i;

	if (c->x.frame == c->held || !hold_frame(c, c->x.frame, c->x.caplen, c->x.wirelen, ts))
		return 0;
	c->pkt_index--; /* counted again when it is processed */
	if ((c->held_raw = c->raw_layers != NULL))
		c->held_layers = *c->raw_layers;
	if (!c->shared) {
		c->st.packets--;
		c->st.bytes -= c->x.wirelen;
		c->st.tcp_packets--;
		for (i = 0; i < p->n_tun; i++) /* its layers too */
			c->st.tunnels.packets[p->tun[i].kind % MOSFW_TUN_KINDS]--;
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

	/* (from the feed's ring only this core's packets come) */
	if (c->cfg.shard_count > 1 && !c->shared &&
	    mosfw_ft_shard(hash, c->cfg.shard_count) != c->cfg.shard_index) {
		c->st.other_shard++;
		return;
	}
	slot = mosfw_ft_lookup(&c->ft, p, hash, &dir);
	if (slot != MOSFW_NO_SLOT && c->x.streams && mosfw_feat_must_cut(&c->x, slot, dir, p) &&
	    hold_for_next_burst(c, p, ts))
		return;
	if (slot != MOSFW_NO_SLOT) {
		f = &c->ft.flows[slot];
		if (f->end_reason) {
			/* zombie: a new SYN reuses the tuple, anything else is late */
			if (!pure_syn) {
				if (c->obs.n_late && !mosfw_core_foreign(c, slot))
					mosfw_obs_late_pkt(&c->obs, f, slot, dir, p, ts);
				orphan(c, &ctx, MOSFW_EVF_LATE);
				return;
			}
			mosfw_core_forget(c, slot);
			slot = MOSFW_NO_SLOT;
		} else if (c->cfg.tcp_attempt_delay > 0 && !f->side[MOSFW_SIDE_SERVER].pkts &&
		           !f->midstream && ts >= f->first_ts + c->cfg.tcp_attempt_delay) {
			/* an attempt nobody answered within tcp_attempt_delay ends
			 * then (Zeek's AttemptTimer); this packet starts a new flow */
			mosfw_core_end_flow(c, slot, MOSFW_END_TIMEOUT,
			                    f->first_ts + c->cfg.tcp_attempt_delay, NULL);
			slot = MOSFW_NO_SLOT;
		} else if (pure_syn && (f->side[dir].flags & MOSFW_HF_SYN_SEEN) &&
		           p->seq != f->side[dir].isn &&
		           ((f->side[0].flags | f->side[1].flags) &
		            (MOSFW_HF_FIN_SEEN | MOSFW_HF_RST_SEEN))) {
			/* port reuse while the old connection was closing */
			mosfw_core_end_flow(c, slot, MOSFW_END_REUSED, ts,
			                    p); /* not kept as a zombie */
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
			sender_is_client = !(mosfw_likely_server_port(p->sport) &&
			                     !mosfw_likely_server_port(p->dport));
		} else if (c->cfg.tcp_partial_open) {
			/* Zeek's partial_connection_ok: a lone RST, RST+ACK, a FIN,
			 * no flags... starts a connection too; the sender is its
			 * client unless it came from a likely server port (a SYN
			 * without ACK: always) */
			how = MOSFW_TCP_OPEN_MIDSTREAM;
			sender_is_client = (fl & (MOSFW_TH_SYN | MOSFW_TH_ACK)) == MOSFW_TH_SYN ||
			                   !(mosfw_likely_server_port(p->sport) &&
			                     !mosfw_likely_server_port(p->dport));
		} else {
			orphan(c, &ctx, 0);
			return;
		}
		if (!mosfw_feat_syn_ok(&c->x, ts))
			return; /* stream_syn_filter: not tracked, not an orphan */
		if (mosfw_core_make_room(c, &ctx) < 0 || /* full, or its index could not grow: */
		    (slot = mosfw_ft_insert(&c->ft, p, hash, sender_is_client)) == MOSFW_NO_SLOT) {
			struct mosfw_event *e;
			c->st.flows_refused++;
			e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, &ctx, NULL, MOSFW_NO_SLOT, 0);
			if (e)
				e->reason = MOSFW_ERR_TABLE_FULL;
			orphan(c, &ctx, 0);
			return;
		}
		dir = sender_is_client ? MOSFW_SIDE_CLIENT : MOSFW_SIDE_SERVER;
		f = &c->ft.flows[slot];
		f->first_dir = (uint8_t)dir;
		if (mosfw_tun_flow_created(&c->tun, c->ft.pool_cap, slot, p) < 0)
			c->st.nomem++;
		if (mosfw_core_claim(c, slot, ts)) {
			c->st.flows_created++;
			if (how != MOSFW_TCP_OPEN_SYN)
				c->st.flows_midstream++;
			if (c->obs.n_created)
				mosfw_obs_flow_created(&c->obs, f, slot);
			if (p->n_tun && c->tun.by_slot && c->obs.n)
				mosfw_obs_flow_layers(&c->obs, slot, c->tun.by_slot[slot].t,
				                      c->tun.by_slot[slot].n);
		}
		mosfw_tcp_open(f, slot, how, &ctx, &c->ring);
	}
	f = mosfw_idle_restart(&c->ft.flows[slot], c->now); /* idle time is input time */
	verdict = mosfw_tcp_update(f, slot, dir, &ctx, &c->ring, &rexmit);
	if (!mosfw_core_foreign(c, slot)) {
		c->st.rexmits += (uint64_t)rexmit;
		if (c->obs.n_tcp)
			mosfw_obs_tcp_updated(&c->obs, f, slot, dir, p, ts);
	}
	if (verdict == MOSFW_TCP_ENDED_FIN)
		mosfw_core_end_flow(c, slot, MOSFW_END_FIN, ts, p);
	else if (verdict == MOSFW_TCP_ENDED_RST)
		mosfw_core_end_flow(c, slot, MOSFW_END_RST, ts, p);
	else if ((fl & MOSFW_TH_FIN) && c->cfg.tcp_one_sided_close && !f->side[dir ^ 1u].pkts)
		/* Zeek: a close whose peer is inactive is complete (the
		 * connection goes tcp_tw_interval later, late packets count) */
		mosfw_core_end_flow(c, slot, MOSFW_END_FIN, ts, p);
	else
		mosfw_ft_touch(&c->ft, slot,
		               mosfw_core_confirmed(f) ? MOSFW_LRU_ESTAB : MOSFW_LRU_HALF_OPEN);
	if (c->ring.n != n0) /* its buffers stay put until these are dispatched */
		mosfw_feat_records(&c->x, slot);
}

/* An IP fragment: add it to its datagram. Once that is complete, the
 * rebuilt frame (ipfrag.h) is parsed into *out and returned (with *hash)
 * to go on as a packet read at the last fragment's time and index; NULL
 * otherwise. Every core reassembles every fragment (-c N: the feed
 * hands fragments to all, mosfw_ft_owner()), then keeps the datagram only when its flow is
 * this core's, so the frag_* counters are the input's. Out of line: the
 * loop's fast path stays as it was (one test of the parse result). */
static __attribute__((noinline)) struct mosfw_pkt *
reassemble(struct mosfw_core *c, const uint8_t *frame, uint32_t caplen, const struct mosfw_pkt *fp,
           double ts, struct mosfw_pkt *out, uint32_t *hash, int *dgram)
{
	const uint8_t *df = NULL;
	uint32_t dlen = 0, slot;
	unsigned dir = 0;
	int conflict = 0, r;

	/* A fragment inside a tunnel is kept from its inner IP header on: the
	 * datagram goes on as raw IP with its fragments' layers (the outer
	 * headers' lengths are those of one fragment, not of the datagram). */
	const uint8_t *from = fp->n_tun ? fp->l3 : frame;
	int linktype = fp->n_tun ? MOSFW_LINK_RAW : mosfw_source_linktype(c->src);

	if (mosfw_ipfrag_add(c->frag, from, caplen - (uint32_t)(from - frame),
	                     (uint32_t)(fp->l3 - from), fp->family,
	                     fp->family == 6 ? fp->frag_hdr : 0, ts, &c->st, &df, &dlen,
	                     &conflict) != MOSFW_FRAG_COMPLETE)
		return NULL;
	r = mosfw_parse(linktype, df, dlen, c->cfg.verify_checksums, &c->cfg.decap, out);
	/* a UDP datagram or ICMP message of a protocol the run tracks */
	*dgram = r == MOSFW_PARSE_NON_TCP && (c->cfg.protocols & mosfw_parse_dgram(out, dlen));
	if ((r == MOSFW_PARSE_TCP || *dgram) && fp->n_tun) {
		mosfw_pkt_copy_layers(out, fp);
		c->raw_layers = out; /* held as raw IP, with these layers */
	}
	if (r != MOSFW_PARSE_TCP && !*dgram) {
		if (r != MOSFW_PARSE_NON_TCP)   /* (other protocols: not tracked) */
			c->st.frag_malformed++; /* (bad_checksum counts packets read) */
		return NULL;
	}
	*hash = *dgram ? mosfw_ft_hash_dgram(out) : mosfw_ft_hash(out);
	if (c->cfg.shard_count > 1 &&
	    mosfw_ft_shard(*hash, c->cfg.shard_count) != c->cfg.shard_index) {
		c->st.other_shard += !*dgram;
		return NULL;
	}
	mosfw_feat_frame(&c->x, df, dlen, dlen, 0); /* (copied where records need it) */
	if (conflict) {
		struct mosfw_pkt_ctx ctx = { out, ts, c->pkt_index };
		struct mosfw_event *e;
		slot = mosfw_ft_lookup(&c->ft, out, *hash, &dir);
		if (slot != MOSFW_NO_SLOT && c->ft.flows[slot].end_reason)
			slot = MOSFW_NO_SLOT;
		e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, &ctx,
		                    slot == MOSFW_NO_SLOT ? NULL : &c->ft.flows[slot], slot, dir);
		if (e)
			e->reason = MOSFW_ERR_FRAG_OVERLAP;
	}
	return out;
}

/* frame was read: parse the one after it now and start loading its flow
 * index entry, so that the lookup finds it in the cache a packet later */
static void read_ahead(struct mosfw_core *c, const uint8_t *frame)
{
	struct mosfw_parsed *next;
	const uint8_t *nf;
	uint32_t ncaplen, nhash = 0;
	int hashed;

	if (c->parsed[c->ahead].frame != frame)
		c->parsed[c->ahead].frame = NULL; /* the source read something else */
	c->ahead ^= 1;
	next = &c->parsed[c->ahead];
	next->frame = NULL;
	nf = mosfw_source_peek(c->src, &ncaplen, &nhash, &hashed);
	if (!nf)
		return;
	next->r = mosfw_parse(mosfw_source_linktype(c->src), nf, ncaplen, c->cfg.verify_checksums,
	                      &c->cfg.decap, &next->p);
	if (next->r == MOSFW_PARSE_TCP) {
		/* (-c N: the reader hashed it choosing its core) */
		next->hash = hashed ? nhash : mosfw_ft_hash(&next->p);
#ifdef MOSFW_CHECK_FEED /* (the sanitizer build: the reader's hash is the core's) */
		if (hashed && nhash != mosfw_ft_hash(&next->p))
			abort();
#endif
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
	struct mosfw_pkt p, whole;
	struct mosfw_pkt *pp = &p;
	uint32_t hash = 0;
	int r, dgram = 0;

	c->pkt_index++;
	c->raw_layers = NULL;
	if (tick(c, ts) && hold_frame(c, frame, caplen, wirelen, ts)) {
		/* the TICK ends this burst: the packet is processed in the next */
		c->pkt_index--;
		return;
	}
	mosfw_feat_frame(&c->x, frame, caplen, wirelen,
	                 frame != c->held && (c->set ? mosfw_set_frames_stable(c->set)
	                                             : mosfw_source_frames_stable(c->src)));
	if (done->frame == frame) { /* parsed by read_ahead(), without the wire length */
		r = mosfw_parse_wire(done->r, &done->p, caplen, wirelen);
		pp = &done->p;
		hash = done->hash;
	} else {
		int raw = frame == c->held && c->held_raw; /* (reassembled in a tunnel) */
		r = mosfw_parse_wire(
			mosfw_parse(raw ? MOSFW_LINK_RAW : mosfw_source_linktype(c->src), frame,
		                    caplen, c->cfg.verify_checksums, &c->cfg.decap, &p),
			&p, caplen, wirelen);
		if (raw && (r == MOSFW_PARSE_TCP || r == MOSFW_PARSE_NON_TCP)) {
			mosfw_pkt_copy_layers(&p, &c->held_layers);
			c->raw_layers = &p;
		}
		if (r == MOSFW_PARSE_TCP)
			hash = mosfw_ft_hash(&p);
	}
	if (!c->shared && mosfw_core_in_window(c, ts)) { /* else the reader counted it */
		mosfw_count_input(&c->st, r, caplen, wirelen, ts);
		if (pp->n_tun | pp->tun_err)
			mosfw_count_tunnels(&c->st, r, pp);
		mosfw_count_proto(&c->st, r, pp);
	}
	if (r == MOSFW_PARSE_FRAGMENT) {
		if (!(pp = reassemble(c, frame, caplen, pp, ts, &whole, &hash, &dgram)))
			return;
		r = dgram ? MOSFW_PARSE_NON_TCP : MOSFW_PARSE_TCP; /* the whole datagram, parsed */
	}
	if (r == MOSFW_PARSE_TCP) {
		if (c->obs.n_parsed)
			mosfw_obs_pkt_parsed(&c->obs, pp, ts);
		handle_tcp(c, pp, hash, ts);
	} else if (r == MOSFW_PARSE_NON_TCP && c->cfg.protocols) {
		/* UDP and ICMP, when asked for (a TCP-only run tests one word) */
		if (dgram)
			mosfw_core_dgram(c, pp, hash, ts);
		else if (c->cfg.protocols & mosfw_parse_dgram(pp, caplen))
			mosfw_core_dgram(c, pp, mosfw_ft_hash_dgram(pp), ts);
	}
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
		mosfw_feat_start(&c->x, ts); /* timers set before it count from here */
	}
	if (mosfw_core_expiry_due(c))
		mosfw_core_expire(c);
	if (c->expiry_unfinished && hold_frame(c, frame, caplen, wirelen, ts))
		return;
	/* (no memory to hold it: process now, timeouts finish later) */
	process_frame(c, frame, caplen, wirelen, ts);
}

/* -c N feed: another core's packet opened a new second at ts. Time
 * moves as if this core had read it: timeouts due end, a TICK is raised
 * (and ends the burst, as a packet's would). If expiry runs out of room
 * the mark is kept for the next burst. */
static void handle_time(struct mosfw_core *c, double ts, uint32_t index)
{
	if (ts > c->now || !c->seen_input)
		c->now = ts;
	if (!c->seen_input) {
		c->seen_input = 1;
		mosfw_feat_start(&c->x, ts);
	}
	if (mosfw_core_expiry_due(c))
		mosfw_core_expire(c);
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

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int mosfw_core_run(struct mosfw_core *c, struct mosfw_event *evs, uint32_t cap, uint32_t *n_events)
{
	uint32_t i;
	int idle = 0;

	*n_events = 0;
	if (!c->src) {
		snprintf(c->err, sizeof(c->err), "no input opened");
		return MOSFW_RUN_ERROR;
	}
	if (cap < MIN_RING_CAP) {
		snprintf(c->err, sizeof(c->err), "event array too small (%u < %u)", cap,
		         MIN_RING_CAP);
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
	if (c->set)
		mosfw_set_burst_begin(c->set, &c->src);
	else
		mosfw_source_burst_begin(c->src);
	mosfw_feat_burst(&c->x);
	mosfw_obs_burst(&c->obs);
	c->n_orphans = 0;
	c->ring.evs = evs;
	c->ring.cap = cap;
	c->ring.n = 0;

	if (!c->input_done && c->expiry_unfinished)
		mosfw_core_expire(c);
	if (!c->expiry_unfinished && c->have_held) {
		c->have_held = 0;
		process_frame(c, c->held, c->held_caplen, c->held_wirelen, c->held_ts);
	}
	if (!c->expiry_unfinished && c->have_held_time) {
		c->have_held_time = 0;
		handle_time(c, c->held_time_ts, c->held_time_index);
	}
	for (i = 0;
	     !c->input_done && !c->expiry_unfinished && !c->x.cut && i < c->cfg.burst_packets;
	     i++) {
		/* (set by mosfw_source_next() when it returns a packet or a time
		 * mark; initialised for the compiler, which cannot see that
		 * across files with link-time optimisation) */
		const uint8_t *frame = NULL;
		uint32_t caplen = 0, wirelen = 0;
		double ts = 0;
		int r;

		if (!mosfw_core_room(c))
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
				mosfw_source_leave(c->src); /* -c N: the reader stops feeding it */
				c->final_status = MOSFW_RUN_STOPPED;
				break;
			}
		}
		r = c->set ? mosfw_set_next(c->set, &c->src, &frame, &caplen, &wirelen, &ts)
		           : mosfw_source_next(c->src, &frame, &caplen, &wirelen, &ts);
		if (r == MOSFW_SRC_PACKET && c->own_on && ts < c->own_lead) {
			continue; /* segment mode: before the lead-in, not needed */
		}
		if (r == MOSFW_SRC_PACKET) {
			if (c->shared) /* its place in the input, other cores' packets included */
				c->pkt_index = mosfw_source_index(c->src) - 1;
			read_ahead(c, frame);
			handle_frame(c, frame, caplen, wirelen, ts);
			if (c->own_on && ts >= c->own_t1 && c->owned_live == 0) {
				/* segment mode: past the window, every owned flow forgotten */
				c->input_done = 1;
				c->final_status = MOSFW_RUN_DONE;
				break;
			}
			continue;
		}
		if (r == MOSFW_SRC_TIME) {
			handle_time(c, ts, mosfw_source_index(c->src));
			continue;
		}
		if (r == MOSFW_SRC_WAIT)
			break; /* the ring is empty: next call (once this burst's part is given back) */
		if (r == MOSFW_SRC_TIMEOUT) {
			/* live and quiet: wall time drives timeouts and ticks */
			double now = wall_now();
			if (now > c->now) {
				c->now = now;
				if (c->have_time)
					tick(c, now);
			}
			mosfw_core_expire(c);
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
			mosfw_source_ring_totals(c->src, &t);
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
	if (c->input_done && mosfw_core_drain(c)) {
		*n_events = c->ring.n;
		return c->final_status;
	}
	*n_events = c->ring.n;
	return idle && c->ring.n == 0 ? MOSFW_RUN_IDLE : MOSFW_RUN_MORE;
}
