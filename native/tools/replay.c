/* SPDX-License-Identifier: MIT */
/*
 * replay.c -- run the engine over capture files from C, with no Python:
 * the sanitizer (ASan+UBSan) build the test suite runs over every test
 * capture, and a pure-C speed reference for benchmarks.
 *
 *   mosfw-replay [-m EVENT_MASK] [-n MAX_CONCURRENCY] [-t TCP_TIMEOUT] [-b RMEM_SIZE]
 *                [-s SHARD/COUNT] [-c CORES [-T]] [-P PROTOCOLS] [-Z] [-v] FILE...
 *
 * -c CORES: that many cores fed by one reader thread (native/feed.c), run
 * round robin in the main thread, or with -T each in a thread of its own
 * (the cores as threads of one process: no fork, no Python).
 * -P: mosfw_config.protocols (1 UDP, 2 ICMP, 4 other IP protocols, 7 all;
 * default 0, TCP only). -Z: the settings of a tracker run (Zeek's model:
 * tcp_partial_open, tcp_one_sided_close, udp_checksums, a 5 s attempt delay).
 *
 * It also drives the app-facing API the way a plugin would: it peeks
 * every readable byte on CONN_NEW_DATA (and ppeeks, reads buffer info
 * and fragments), looks up every record's packet, sets a BPF event
 * filter, SYN and orphan filters and a timer per new flow. It pauses at
 * the end of the input (MOSFW_RUN_INPUT_END) to read the flow table then,
 * and keeps the records of the last RECENT_ENDS flows that ended, checking
 * both against the counters.
 *
 * Prints one line of counters per file. Exit 0 when every file was read
 * (a read error in a damaged file is reported and still exits 0: the
 * engine is expected to survive it), 1 when a file cannot be opened.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../mosfw_api.h"

/* What a plugin may do with a record: read the stream, the packet, set
 * timers, stop monitoring. Aborts on an inconsistent answer. */
static void api_calls(struct mosfw_core *core, const struct mosfw_event *e)
{
	static __thread uint8_t buf[1 << 16]; /* (-T: a core per thread) */
	struct mosfw_stream_info info;
	struct mosfw_stream_frag frags[8];
	const struct mosfw_packet *p = mosfw_core_packet(core, e->pkt_index);
	uint64_t lost;
	int64_t n;

	if (p && (p->caplen < p->payload_off || p->frame == NULL)) {
		fprintf(stderr, "mosfw-replay: bad packet record\n");
		abort();
	}
	if (e->type == MOSFW_EV_CONN_START && e->side == MOSFW_SIDE_CLIENT)
		mosfw_core_timer_add(core, e->ts + 0.5, e->slot, e->flow_id, 1);
	if (e->type != MOSFW_EV_CONN_NEW_DATA)
		return;
	if (mosfw_core_stream_info(core, e->slot, e->flow_id, e->side, &info) == 0) {
		if (info.next_byte_expected < info.head ||
		    info.last_byte_received < info.next_byte_expected) {
			fprintf(stderr, "mosfw-replay: inconsistent buffer info\n");
			abort();
		}
		(void)mosfw_core_ppeek(core, e->slot, e->flow_id, e->side, info.head, buf,
		                       sizeof(buf));
		(void)mosfw_core_stream_frags(core, e->slot, e->flow_id, e->side, frags, 8);
	}
	while ((n = mosfw_core_peek(core, e->slot, e->flow_id, e->side, buf, 1500, &lost)) > 0)
		;
	if (e->flow_id % 97 == 0) /* now and then, stop monitoring one side */
		mosfw_core_stop_monitor(core, e->slot, e->flow_id, 1u << (e->side ^ 1));
}

#define RECENT_ENDS 8

struct rcore {
	struct mosfw_core *core;
	const char *path;
	int verbose;
	uint64_t by_type[16];
	uint32_t open_at_input_end; /* live flows when MOSFW_RUN_INPUT_END came */
	int rc, done;
};

/* The flow table at the end of the input: every live flow is one the
 * engine is about to end with reason eof, in creation order. */
static uint32_t live_at_input_end(const char *path, struct mosfw_core *core)
{
	uint32_t n = mosfw_core_live_flows(core, NULL, 0), i;
	uint32_t *slots = malloc(((size_t)n + 1) * sizeof(*slots));

	if (!slots)
		abort();
	if (mosfw_core_live_flows(core, slots, n) != n)
		abort();
	for (i = 0; i < n; i++) {
		const struct mosfw_flow *f = mosfw_core_flow(core, slots[i]);
		if (!f || f->end_reason != MOSFW_END_NONE ||
		    (i &&
		     (int32_t)(f->created - mosfw_core_flow(core, slots[i - 1])->created) <= 0)) {
			fprintf(stderr,
			        "mosfw-replay: %s: bad flow table at the end of the input\n", path);
			abort();
		}
	}
	free(slots);
	return n;
}

/* The kept records of the last flows that ended: as many as ended before
 * the end of the input (up to RECENT_ENDS), none eof. */
static void check_recent_ends(const char *path, struct mosfw_core *core,
                              const struct mosfw_stats *st)
{
	struct mosfw_ended r[RECENT_ENDS];
	uint64_t ended = st->flows_ended_fin + st->flows_ended_rst + st->flows_ended_timeout +
	                 st->flows_evicted + st->flows_reused;
	uint32_t n = mosfw_core_recent_ends(core, r, RECENT_ENDS), i;

	if (n != (ended < RECENT_ENDS ? ended : RECENT_ENDS))
		goto bad;
	for (i = 0; i < n; i++)
		if (r[i].flow.end_reason == MOSFW_END_NONE || r[i].flow.end_reason == MOSFW_END_EOF)
			goto bad;
	return;
bad:
	fprintf(stderr, "mosfw-replay: %s: %u kept records of ended flows, %llu ended\n", path, n,
	        (unsigned long long)ended);
	abort();
}

/* -A: every FILE as one archive (mosfw_core_open_files); -W T0:T1: with a
 * segment window (mosfw_core_own_window) */
static const char *const *archive_files;
static uint32_t archive_n;
static int window_on;
static double window_t0, window_t1;

static struct mosfw_core *open_core(const char *path, const struct mosfw_config *cfg,
                                    struct mosfw_feed *feed)
{
	char err[MOSFW_ERRBUF_SIZE] = "";
	struct mosfw_core *core = mosfw_core_new(cfg, err);

	if (!core) {
		fprintf(stderr, "mosfw-replay: %s\n", err);
		return NULL;
	}
	if ((feed        ? mosfw_core_open_feed(core, feed, err)
	     : archive_n ? mosfw_core_open_files(core, archive_files, archive_n, NULL, err)
	                 : mosfw_core_open_file(core, path, NULL, err)) < 0 ||
	    (window_on && mosfw_core_own_window(core, window_t0, window_t1) < 0)) {
		fprintf(stderr, "mosfw-replay: %s\n", err);
		mosfw_core_free(core);
		return NULL;
	}
	mosfw_core_set_packets(core, 1);
	mosfw_core_pause_at_input_end(core, 1);
	if (mosfw_core_keep_recent_ends(core, RECENT_ENDS) < 0)
		abort();
	if (mosfw_core_set_filter(core, 0, MOSFW_EV_PKT_IN | MOSFW_EV_CONN_NEW_DATA,
	                          "tcp[13] & 8 != 0", err) < 0 ||
	    mosfw_core_set_filter(core, MOSFW_FILTER_SYN, 0,
	                          "tcp or udp or icmp or ip6 or ip proto 47 or ip proto 50",
	                          err) < 0 ||
	    mosfw_core_set_filter(core, MOSFW_FILTER_ORPHAN, 0, "tcp", err) < 0) {
		/* some link types cannot carry these (libpcap rejects them): go on
		 * without the filters that did not compile */
		fprintf(stderr, "mosfw-replay: %s: %s (filters skipped)\n", path, err);
	}
	return core;
}

/* One burst of one core, its records checked and used as a plugin would. */
static void step(const char *path, struct rcore *rc, int verbose)
{
	static __thread struct mosfw_event evs[4096];
	uint32_t n, i;

	rc->rc = mosfw_core_run(rc->core, evs, 4096, &n);
	for (i = 0; i < n; i++) {
		const struct mosfw_event *e = &evs[i];
		unsigned b = (unsigned)__builtin_ctz(e->type);
		rc->by_type[b & 15]++;
		/* touch what a consumer would read */
		if (e->slot != MOSFW_NO_SLOT && e->type != MOSFW_EV_ORPHAN &&
		    e->type != MOSFW_EV_TICK) {
			const struct mosfw_flow *f = mosfw_core_flow(rc->core, e->slot);
			if (!f || f->id != e->flow_id) {
				fprintf(stderr,
				        "mosfw-replay: %s: event %s names a stale flow slot\n",
				        path, mosfw_event_name(e->type));
				abort();
			}
		}
		api_calls(rc->core, e);
		if (verbose)
			printf("%.6f %s side=%u %s %s reason=%u\n", e->ts,
			       mosfw_event_name(e->type), e->side, mosfw_state_name(e->old_state),
			       mosfw_state_name(e->new_state), e->reason);
	}
	if (rc->rc == MOSFW_RUN_INPUT_END)
		rc->open_at_input_end = live_at_input_end(path, rc->core);
	rc->done = !(rc->rc == MOSFW_RUN_MORE || rc->rc == MOSFW_RUN_IDLE ||
	             rc->rc == MOSFW_RUN_INPUT_END);
}

/* -T: one core's loop, in a thread of its own */
static void *core_thread(void *arg)
{
	struct rcore *rc = arg;

	while (!rc->done)
		step(rc->path, rc, rc->verbose);
	return NULL;
}

static int threads_on; /* -T */

/* Replay one file (or the archive set) on `cores` cores (round robin in
 * this process, or -T a thread each; with several, fed by the reader
 * thread: native/feed.c). */
static int replay(const char *path, const struct mosfw_config *cfg, int verbose, uint32_t cores)
{
	char err[MOSFW_ERRBUF_SIZE] = "";
	struct mosfw_feed *feed = NULL;
	struct rcore rcs[64];
	uint32_t k, left = cores;
	int bad = 0;

	if (cores > 1) {
		feed = archive_n
		               ? mosfw_feed_new(cfg, cores, archive_files, archive_n, 1, NULL, err)
		               : mosfw_feed_new(cfg, cores, &path, 1, 0, NULL, err);
		if (!feed) {
			fprintf(stderr, "mosfw-replay: %s\n", err);
			return 1;
		}
	}
	memset(rcs, 0, sizeof(rcs));
	for (k = 0; k < cores; k++) {
		struct mosfw_config c = *cfg;
		if (cores > 1) {
			c.shard_index = k;
			c.shard_count = cores;
		}
		rcs[k].core = open_core(path, &c, feed);
		if (!rcs[k].core) {
			while (k--)
				mosfw_core_free(rcs[k].core);
			mosfw_feed_free(feed);
			return 1;
		}
	}
	if (feed && mosfw_feed_start(feed, err) < 0) {
		fprintf(stderr, "mosfw-replay: %s\n", err);
		abort();
	}
	if (threads_on && cores > 1) {
		pthread_t th[64];

		for (k = 0; k < cores; k++) {
			rcs[k].path = path;
			rcs[k].verbose = verbose;
			if (pthread_create(&th[k], NULL, core_thread, &rcs[k]) != 0) {
				fprintf(stderr, "mosfw-replay: cannot start a thread\n");
				abort();
			}
		}
		for (k = 0; k < cores; k++)
			pthread_join(th[k], NULL);
		left = 0;
	}
	while (left)
		for (k = 0; k < cores; k++)
			if (!rcs[k].done) {
				step(path, &rcs[k], verbose);
				left -= (uint32_t)rcs[k].done;
			}
	for (k = 0; k < cores; k++) {
		struct mosfw_stats st;
		const uint64_t *by_type = rcs[k].by_type;
		int rc = rcs[k].rc;
		mosfw_core_stats(rcs[k].core, &st);
		printf("%s: %spackets=%llu tcp=%llu malformed=%llu flows=%llu rexmit=%llu orphans=%llu "
		       "conn_start=%llu state_change=%llu conn_end=%llu frags=%llu reassembled=%llu "
		       "frag_timeouts=%llu frag_cap_drops=%llu frag_overlaps=%llu "
		       "frag_conflicts=%llu frag_unusable=%llu frag_pending=%llu frag_peak=%llu "
		       "errors=%llu status=%s%s%s\n",
		       path,
		       cores > 1 ? (mosfw_core_input_shared(rcs[k].core) ? "ring " : "whole ") : "",
		       (unsigned long long)st.packets, (unsigned long long)st.tcp_packets,
		       (unsigned long long)st.malformed, (unsigned long long)st.flows_created,
		       (unsigned long long)st.rexmits, (unsigned long long)st.orphans,
		       (unsigned long long)by_type[1], (unsigned long long)by_type[2],
		       (unsigned long long)by_type[5], (unsigned long long)st.fragments,
		       (unsigned long long)st.frag_reassembled,
		       (unsigned long long)st.frag_timeouts, (unsigned long long)st.frag_cap_drops,
		       (unsigned long long)st.frag_overlaps, (unsigned long long)st.frag_conflicts,
		       (unsigned long long)st.frag_malformed, (unsigned long long)st.frag_pending,
		       (unsigned long long)st.frag_mem_peak, (unsigned long long)by_type[7],
		       rc == MOSFW_RUN_DONE    ? "done"
		       : rc == MOSFW_RUN_ERROR ? "read-error"
		                               : "stopped",
		       rc == MOSFW_RUN_ERROR ? ": " : "",
		       rc == MOSFW_RUN_ERROR ? mosfw_core_error(rcs[k].core) : "");
		if (by_type[1] && st.flows_created && by_type[5] != st.flows_created) {
			fprintf(stderr, "mosfw-replay: %s: %llu flows but %llu CONN_END\n", path,
			        (unsigned long long)st.flows_created,
			        (unsigned long long)by_type[5]);
			abort();
		}
		/* (a flow stopped on both sides is not live, and still ends eof) */
		if (rcs[k].open_at_input_end > st.flows_ended_eof) {
			fprintf(stderr,
			        "mosfw-replay: %s: %u flows open at the end of the input, %llu ended eof\n",
			        path, rcs[k].open_at_input_end,
			        (unsigned long long)st.flows_ended_eof);
			abort();
		}
		check_recent_ends(path, rcs[k].core, &st);
		mosfw_core_free(rcs[k].core);
	}
	mosfw_feed_free(feed);
	return bad;
}

int main(int argc, char **argv)
{
	struct mosfw_config cfg;
	int opt, i, bad = 0, verbose = 0;
	uint32_t cores = 1;

	mosfw_config_defaults(&cfg);
	cfg.event_mask = MOSFW_EV_ALL;
	while ((opt = getopt(argc, argv, "m:n:t:b:s:c:TvAW:P:Z")) != -1) {
		switch (opt) {
		case 'm': cfg.event_mask = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': cfg.max_concurrency = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 't': cfg.tcp_timeout = atof(optarg); break;
		case 'b': cfg.rmem_size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'P': cfg.protocols = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'Z':
			cfg.tcp_partial_open = cfg.tcp_one_sided_close = cfg.udp_checksums = 1;
			cfg.tcp_attempt_delay = 5.0;
			break;
		case 's': /* INDEX/COUNT: keep one shard, as worker INDEX of -c COUNT */
			if (sscanf(optarg, "%u/%u", &cfg.shard_index, &cfg.shard_count) != 2 ||
			    cfg.shard_index >= cfg.shard_count) {
				fprintf(stderr,
				        "mosfw-replay: -s wants INDEX/COUNT, INDEX < COUNT\n");
				return 2;
			}
			break;
		case 'c': /* N cores round robin in this process, fed by one reader thread */
			cores = (uint32_t)strtoul(optarg, NULL, 0);
			if (cores < 1 || cores > 64) {
				fprintf(stderr, "mosfw-replay: -c wants 1..64\n");
				return 2;
			}
			break;
		case 'T': threads_on = 1; break;
		case 'v': verbose = 1; break;
		case 'A': archive_n = 1; break;
		case 'W':
			if (sscanf(optarg, "%lf:%lf", &window_t0, &window_t1) != 2) {
				fprintf(stderr, "mosfw-replay: -W wants T0:T1\n");
				return 2;
			}
			window_on = 1;
			break;
		default:
			fprintf(stderr,
			        "usage: mosfw-replay [-m MASK] [-n MAXCONC] [-t TIMEOUT] [-b RMEM] "
			        "[-s SHARD/COUNT] [-c CORES [-T]] [-v] [-A] [-W T0:T1] FILE...\n");
			return 2;
		}
	}
	if (archive_n) {
		archive_files = (const char *const *)&argv[optind];
		archive_n = (uint32_t)(argc - optind);
		return archive_n ? replay("archive", &cfg, verbose, cores) : 2;
	}
	for (i = optind; i < argc; i++)
		bad |= replay(argv[i], &cfg, verbose, cores);
	return bad;
}
