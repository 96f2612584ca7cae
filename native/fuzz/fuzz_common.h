/* SPDX-License-Identifier: MIT */
/*
 * fuzz_common.h -- shared by the libFuzzer harnesses in this folder: put a
 * capture file image into a memfd and open it through the public API
 * (mosfw_core_open_file on /proc/self/fd/N, so libpcap's reader and
 * source.c run as in production), drive mosfw_core_run() to the end, and
 * check the engine's contracts on every event record. A violated contract
 * calls abort(), which libFuzzer reports as a crash with the input saved.
 *
 * Checked, beyond what ASan/UBSan catch:
 *   - every record has one known type bit, a side <= 1, states <= 10;
 *   - a record naming a flow names a live slot whose id is the record's;
 *   - no record for a flow after its CONN_END; CONN_END once per flow,
 *     with a known reason; CONN_START at most once per side;
 *   - at most `cap` records per run(); flows_active <= max_concurrency;
 *   - counters add up: packets = tcp + non_tcp + malformed + truncated +
 *     unsupported_link + fragments + bad_checksum; at the end every
 *     created flow has ended (flows_created = sum of end reasons, as many
 *     CONN_END records when subscribed) and flows_active = 0.
 *
 * With `poke` on, the app-facing API is called between bursts the way
 * plugins call it, on the flows the records name (choices from a PRNG
 * seeded by the input): stream info, fragments, peek and ppeek into
 * buffers of random length at random offsets, stream offsets, overlap
 * policy, stop-monitoring, per-flow and global timers, the packet of a
 * record (every byte read), and on CONN_END the conn.log record, state
 * and uid. Results are checked against their documented bounds.
 */
#ifndef MOSFW_FUZZ_COMMON_H
#define MOSFW_FUZZ_COMMON_H

#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../mosfw_api.h"
#include "zeek.h" /* samples/tracker/native: an observer on the API */

#define FZ_CHECK(cond, ...)                                                             \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "mosfw-fuzz: contract violated: " __VA_ARGS__); \
			fputc('\n', stderr);                                            \
			abort();                                                        \
		}                                                                       \
	} while (0)

/* tests/hostile/test_fuzz.py builds a harness with this one check
 * inverted, to show that a broken contract fails the run. */
#ifdef MOSFW_FUZZ_SELFTEST
#define FZ_SAME(a, b) ((a) != (b))
#else
#define FZ_SAME(a, b) ((a) == (b))
#endif

/* One memfd reused for every input; its path opens a fresh description. */
static int fz_fd = -1;
static struct zeek_log *fz_zeek; /* the core frees it */
static char fz_path[64];

static const char *fz_file(const uint8_t *data, size_t len)
{
	if (fz_fd < 0) {
		fz_fd = memfd_create("mosfw-fuzz", 0);
		if (fz_fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(fz_path, sizeof(fz_path), "/proc/self/fd/%d", fz_fd);
	}
	if (ftruncate(fz_fd, 0) < 0 || (len && pwrite(fz_fd, data, len, 0) != (ssize_t)len)) {
		perror("memfd write");
		abort();
	}
	return fz_path;
}

/* Per flow id (ids are 1, 2, 3... per core): bit 0/1 = CONN_START seen
 * for client/server, bit 2 = ended, bit 3/4 = monitoring stopped for
 * client/server (mosfw_core_stop_monitor, from the next burst on). */
struct fz_flows {
	uint8_t *st;
	uint64_t cap;
};

static uint8_t *fz_flow(struct fz_flows *t, uint64_t id)
{
	if (id >= t->cap) {
		uint64_t n = t->cap ? t->cap : 256;
		uint8_t *p;
		while (n <= id)
			n *= 2;
		p = realloc(t->st, n);
		if (!p)
			abort();
		memset(p + t->cap, 0, n - t->cap);
		t->st = p;
		t->cap = n;
	}
	return &t->st[id];
}

struct fz_opts {
	uint32_t cap;         /* event array size (>= 64) */
	uint32_t stop_at_run; /* call mosfw_core_stop() before this run (0 = never) */
	uint32_t max_conc;
	int poke;             /* exercise the app-facing API on the records */
	uint64_t rng;         /* PRNG state for poke (seeded from the input) */
	uint64_t stop_id[64]; /* stop_monitor calls of this burst: flow ids */
	uint8_t stop_sides[64];
	uint32_t n_stops;
};

static uint64_t fz_seed(const uint8_t *d, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	size_t i;

	for (i = 0; i < n && i < 256; i++)
		h = (h ^ d[i]) * 1099511628211ULL;
	return h ^ n;
}

static uint32_t fz_rand(struct fz_opts *o)
{
	o->rng ^= o->rng << 13; /* xorshift64 */
	o->rng ^= o->rng >> 7;
	o->rng ^= o->rng << 17;
	return (uint32_t)(o->rng >> 11);
}

/* Read every byte of p[0..n) so ASan checks the whole range. */
static unsigned fz_touch(const uint8_t *p, size_t n)
{
	unsigned x = 0;
	size_t i;

	for (i = 0; i < n; i++)
		x += p[i];
	return x;
}

static void fz_poke(struct mosfw_core *core, const struct mosfw_event *e, struct fz_opts *o)
{
	static uint8_t buf[70000];
	struct mosfw_stream_info info;
	struct mosfw_stream_frag frags[8];
	const struct mosfw_packet *pk;
	unsigned side = e->side;
	uint32_t len;
	int64_t r, off;
	uint64_t lost;
	int have;

	if (e->pkt_index && (pk = mosfw_core_packet(core, e->pkt_index)) != NULL) {
		FZ_CHECK(pk->pkt_index == e->pkt_index, "packet %u for record of packet %u",
		         pk->pkt_index, e->pkt_index);
		FZ_CHECK(pk->l3_off <= pk->caplen && pk->l4_off <= pk->caplen &&
		                 pk->payload_off <= pk->caplen &&
		                 pk->payload_caplen <= pk->caplen - pk->payload_off,
		         "packet offsets past caplen");
		fz_touch(pk->frame, pk->caplen);
	}
	if (e->slot == MOSFW_NO_SLOT || !e->flow_id || e->type == MOSFW_EV_ORPHAN ||
	    e->type == MOSFW_EV_TICK)
		return;
	if (e->type == MOSFW_EV_CONN_END && fz_zeek) {
		const struct mosfw_flow *f = mosfw_core_flow(core, e->slot);
		const struct zeek_conn *k = zeek_log_view(fz_zeek, f, e->slot);
		char uid[19];
		size_t n;
		FZ_CHECK(k->flow_id == e->flow_id, "conn view of another flow");
		FZ_CHECK(zeek_conn_state(k) != NULL, "no conn_state");
		memset(uid, 0x55, sizeof(uid));
		zeek_conn_uid(f, uid);
		FZ_CHECK(uid[0] == 'C' && memchr(uid, 0, sizeof(uid)), "bad uid");
		n = zeek_conn_record(f, k, zeek_log_nets(fz_zeek), fz_rand(o) & 1, (char *)buf,
		                     1024);
		FZ_CHECK(n < 1024 && n > 0 && buf[n - 1] == '\n', "conn record of %zu bytes", n);
		zeek_conn_size(k, 0);
		zeek_conn_size(k, 1);
	}
	have = mosfw_core_stream_info(core, e->slot, e->flow_id, side, &info) == 0;
	if (have) {
		/* stream_buf.h: [head, next) is the in-order data (given-up gaps
		 * in it are holes, which may reach past the window); the bytes
		 * held, in order or not, lie in the window [head, head + size) */
		FZ_CHECK(info.head <= info.last_byte_read &&
		                 info.last_byte_read <= info.next_byte_expected &&
		                 info.next_byte_expected <= info.last_byte_received,
		         "stream info head %llu read %llu next %llu received %llu size %u",
		         (unsigned long long)info.head, (unsigned long long)info.last_byte_read,
		         (unsigned long long)info.next_byte_expected,
		         (unsigned long long)info.last_byte_received, info.size);
		FZ_CHECK(info.nfrags <= 16 && info.nholes <= 16, "%u fragments, %u holes",
		         info.nfrags, info.nholes);
		r = mosfw_core_stream_frags(core, e->slot, e->flow_id, side, frags, 8);
		FZ_CHECK(r >= 0, "stream_frags %lld with a buffer", (long long)r);
		for (len = 0; len < (uint32_t)r && len < 8; len++) {
			FZ_CHECK(frags[len].len > 0 && frags[len].offset >= info.head &&
			                 frags[len].offset + frags[len].len <=
			                         info.head + info.size &&
			                 (len == 0 ||
			                  frags[len].offset >
			                          frags[len - 1].offset + frags[len - 1].len - 1),
			         "held range %u [%llu, +%u) outside the window or out of order",
			         len, (unsigned long long)frags[len].offset, frags[len].len);
		}
	}
	switch (fz_rand(o) % 8) {
	case 0:
	case 1:
	case 2:
		len = fz_rand(o) % 3 == 0 ? fz_rand(o) % sizeof(buf) : fz_rand(o) % 64;
		r = mosfw_core_peek(core, e->slot, e->flow_id, side, buf, len, &lost);
		FZ_CHECK(r <= (int64_t)len && r >= -2, "peek %lld of %u", (long long)r, len);
		if (r > 0)
			fz_touch(buf, (size_t)r);
		break;
	case 3:
	case 4:
		len = fz_rand(o) % 2048;
		off = have ? (int64_t)info.head + (int64_t)(fz_rand(o) % (info.size + 64)) - 32
		           : fz_rand(o);
		r = mosfw_core_ppeek(core, e->slot, e->flow_id, side, off < 0 ? 0 : (uint64_t)off,
		                     buf, len);
		FZ_CHECK(r <= (int64_t)len && r >= -2, "ppeek %lld of %u", (long long)r, len);
		if (r > 0)
			fz_touch(buf, (size_t)r);
		break;
	case 5:
		mosfw_core_stream_offset(core, e->slot, e->flow_id, side,
		                         e->seq + fz_rand(o) % 3000, &off);
		mosfw_core_set_overlap(core, e->slot, e->flow_id, side, fz_rand(o) & 1);
		break;
	case 6:
		mosfw_core_timer_add(core, mosfw_core_now(core) + (fz_rand(o) % 4000) / 100.0,
		                     fz_rand(o) & 1 ? e->slot : MOSFW_NO_SLOT, e->flow_id,
		                     fz_rand(o));
		break;
	default:
		if (fz_rand(o) % 16 == 0 && o->n_stops < 64) {
			unsigned sides = 1 + fz_rand(o) % 3;
			if (mosfw_core_stop_monitor(core, e->slot, e->flow_id, sides) == 0) {
				o->stop_id[o->n_stops] = e->flow_id;
				o->stop_sides[o->n_stops++] = (uint8_t)sides;
			}
		}
		break;
	}
}

/* Run the core to its end; returns the final status. */
static int fz_drive(struct mosfw_core *core, uint32_t mask, struct fz_opts *o, uint64_t *n_records)
{
	static struct mosfw_event evs[4096];
	struct fz_flows fl = { NULL, 0 };
	struct mosfw_stats st;
	uint64_t ends = 0, runs = 0, silent = 0, id;
	uint32_t n, i;
	int rc;

	*n_records = 0;
	/* the tracker's Zeek view, attached as an observer: checked in fz_poke */
	fz_zeek = zeek_log_new(mosfw_core_slots(core), ZEEK_JSON);
	FZ_CHECK(fz_zeek && zeek_log_add_local_net(fz_zeek, 4, (const uint8_t[16]){ 10 }, 8) == 0 &&
	                 mosfw_core_observe(core, zeek_log_observer(fz_zeek)) == 0,
	         "cannot attach the Zeek observer");
	for (;;) {
		if (o->stop_at_run && runs == o->stop_at_run)
			mosfw_core_stop(core);
		runs++;
		FZ_CHECK(runs < 10000000, "run() never finishes");
		n = 0xdeadbeef;
		rc = mosfw_core_run(core, evs, o->cap, &n);
		FZ_CHECK(n <= o->cap, "%u records into an array of %u", n, o->cap);
		*n_records += n;
		for (i = 0; i < n; i++) {
			const struct mosfw_event *e = &evs[i];
			uint32_t t = e->type;
			int names_flow;
			FZ_CHECK(t && !(t & (t - 1)) && (t & MOSFW_EV_ALL), "record type %#x", t);
			FZ_CHECK(t & mask, "unsubscribed record type %s", mosfw_event_name(t));
			FZ_CHECK(e->side <= 1 && e->cli_state <= 10 && e->srv_state <= 10 &&
			                 e->old_state <= 10 && e->new_state <= 10,
			         "bad side/state in %s", mosfw_event_name(t));
			names_flow = t != MOSFW_EV_ORPHAN && t != MOSFW_EV_TICK &&
			             e->slot != MOSFW_NO_SLOT;
			if (t == MOSFW_EV_ORPHAN)
				FZ_CHECK(mosfw_core_orphan_tuple(core, e->slot) != NULL,
				         "orphan index %u", e->slot);
			if (names_flow) {
				const struct mosfw_flow *f = mosfw_core_flow(core, e->slot);
				uint8_t *s;
				FZ_CHECK(f && f->id && f->id == e->flow_id,
				         "%s names stale slot %u", mosfw_event_name(t), e->slot);
				s = fz_flow(&fl, e->flow_id);
				FZ_CHECK(!(*s & 4), "%s for flow %llu after its CONN_END",
				         mosfw_event_name(t), (unsigned long long)e->flow_id);
				if (*s & (8u << e->side))
					FZ_CHECK(
						t == MOSFW_EV_CONN_END || t == MOSFW_EV_ERROR ||
							t == MOSFW_EV_TIMEOUT,
						"%s for side %u of flow %llu after mosfw_core_stop_monitor",
						mosfw_event_name(t), e->side,
						(unsigned long long)e->flow_id);
				if (t == MOSFW_EV_CONN_END)
					FZ_CHECK((*s & 0x18) != 0x18,
					         "CONN_END of flow %llu with both sides stopped",
					         (unsigned long long)e->flow_id);
				if (t == MOSFW_EV_CONN_START) {
					FZ_CHECK(!(*s & (1u << e->side)),
					         "second CONN_START for side %u of flow %llu",
					         e->side, (unsigned long long)e->flow_id);
					*s |= (uint8_t)(1u << e->side);
				}
				if (t == MOSFW_EV_CONN_END) {
					FZ_CHECK(e->reason >= MOSFW_END_FIN &&
					                 e->reason <= MOSFW_END_REUSED,
					         "CONN_END reason %u", e->reason);
					*s |= 4;
					ends++;
				}
			} else {
				FZ_CHECK(t != MOSFW_EV_CONN_END && t != MOSFW_EV_CONN_START &&
				                 t != MOSFW_EV_TCP_STATE_CHANGE &&
				                 t != MOSFW_EV_PKT_IN,
				         "%s without a flow", mosfw_event_name(t));
			}
			if (o->poke)
				fz_poke(core, e, o);
		}
		for (i = 0; i < o->n_stops; i++) /* in force from the next burst */
			*fz_flow(&fl, o->stop_id[i]) |= (uint8_t)(o->stop_sides[i] << 3);
		o->n_stops = 0;
		mosfw_core_stats(core, &st);
		FZ_CHECK(st.flows_active <= o->max_conc, "%llu flows active, max_concurrency %u",
		         (unsigned long long)st.flows_active, o->max_conc);
		if (rc != MOSFW_RUN_MORE && rc != MOSFW_RUN_IDLE)
			break;
	}
	FZ_CHECK(st.packets == st.tcp_packets + st.non_tcp + st.malformed + st.truncated +
	                               st.unsupported_link + st.fragments + st.bad_checksum,
	         "packet counters do not add up");
	FZ_CHECK(st.flows_active == 0, "%llu flows still active at the end",
	         (unsigned long long)st.flows_active);
	FZ_CHECK(st.flows_created == st.flows_ended_fin + st.flows_ended_rst +
	                                     st.flows_ended_timeout + st.flows_evicted +
	                                     st.flows_ended_eof + st.flows_reused,
	         "flows created %llu != flows ended", (unsigned long long)st.flows_created);
	/* a flow whose both sides stopped being monitored ends silently */
	for (id = 1; id < fl.cap; id++)
		if ((fl.st[id] & 0x1c) == 0x18)
			silent++;
	if (mask & MOSFW_EV_CONN_END)
		FZ_CHECK(FZ_SAME(ends + silent, st.flows_created),
		         "%llu CONN_END (+%llu silent) for %llu flows", (unsigned long long)ends,
		         (unsigned long long)silent, (unsigned long long)st.flows_created);
	free(fl.st);
	fz_zeek = NULL; /* freed with the core */
	return rc;
}

#endif /* MOSFW_FUZZ_COMMON_H */
