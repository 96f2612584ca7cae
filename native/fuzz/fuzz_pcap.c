/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pcap.c -- libFuzzer harness for whole capture files: the input is
 * a pcap or pcapng file image (any bytes), opened through the public API
 * exactly as `mosfw run -r FILE` opens a file and run to its end with
 * every event subscribed, a small flow table, reassembly buffers and
 * packet copies on, and the app-facing API poked on every record
 * (checks: fuzz_common.h).
 * What it adds to fuzz_packets.c: libpcap's file reader (pcapng blocks,
 * bad block lengths, byte orders, per-record caplen/snaplen, truncated
 * records) in front of the engine, and source.c's error path.
 *
 * Then a differential check of the -c N feed (feed.c, source_ring.c):
 * the same file read once by the reader thread and fed to 2..4 cores
 * (round robin in this process) must give what one core gives: the same
 * end (done, or the same read error after the same packets), the file's
 * input counters on every core, and the flows, retransmissions and
 * orphans of one core split between them.
 *
 * Build: native/fuzz/build.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "fuzz_common.h"

static void one_core(const char *path, struct mosfw_stats *st, int *rc)
{
	struct mosfw_config cfg;
	struct mosfw_core *core;
	static struct mosfw_event evs[1024];
	char err[MOSFW_ERRBUF_SIZE];
	uint32_t n;

	mosfw_config_defaults(&cfg);
	cfg.max_concurrency = 4096; /* never full (inputs <= 64 kB): flows split exactly */
	cfg.event_mask = MOSFW_EV_CONN_END | MOSFW_EV_TICK;
	core = mosfw_core_new(&cfg, err);
	FZ_CHECK(core != NULL, "mosfw_core_new: %s", err);
	*rc = -1;
	if (mosfw_core_open_file(core, path, NULL, err) == 0)
		while ((*rc = mosfw_core_run(core, evs, 1024, &n)) == MOSFW_RUN_MORE)
			;
	mosfw_core_stats(core, st);
	mosfw_core_free(core);
}

static void shared_cores(const char *path, uint32_t cores)
{
	struct mosfw_core *core[4];
	static struct mosfw_event evs[1024];
	struct mosfw_stats one, st, sum;
	char err[MOSFW_ERRBUF_SIZE];
	struct mosfw_feed *feed;
	int rc1, rc[4], done[4] = { 0 };
	uint32_t k, left = cores, n;
	struct mosfw_config fcfg;

	one_core(path, &one, &rc1);
	mosfw_config_defaults(&fcfg);
	feed = mosfw_feed_new(&fcfg, cores, &path, 1, 0, NULL, err);
	if (!feed) {
		FZ_CHECK(rc1 == -1, "one core opened the file, the feed did not: %s", err);
		return;
	}
	memset(&sum, 0, sizeof(sum));
	for (k = 0; k < cores; k++) {
		struct mosfw_config cfg;
		mosfw_config_defaults(&cfg);
		cfg.max_concurrency = 4096;
		cfg.event_mask = MOSFW_EV_CONN_END | MOSFW_EV_TICK;
		cfg.shard_index = k;
		cfg.shard_count = cores;
		core[k] = mosfw_core_new(&cfg, err);
		FZ_CHECK(core[k] != NULL, "mosfw_core_new: %s", err);
		FZ_CHECK(mosfw_core_open_feed(core[k], feed, err) == 0, "core %u of %u: %s", k,
		         cores, err);
	}
	FZ_CHECK(mosfw_feed_start(feed, err) == 0, "mosfw_feed_start: %s", err);
	while (left)
		for (k = 0; k < cores; k++) {
			if (done[k])
				continue;
			rc[k] = mosfw_core_run(core[k], evs, 1024, &n);
			if (rc[k] != MOSFW_RUN_MORE && rc[k] != MOSFW_RUN_IDLE) {
				done[k] = 1;
				left--;
			}
		}
	for (k = 0; k < cores; k++) {
		mosfw_core_stats(core[k], &st);
		FZ_CHECK(rc[k] == rc1, "core %u of %u ended with %d, one core with %d", k, cores,
		         rc[k], rc1);
		if (rc1 == MOSFW_RUN_ERROR)
			FZ_CHECK(strcmp(mosfw_core_error(core[k]), "") != 0,
			         "read error without a message");
		FZ_CHECK(st.packets == one.packets && st.bytes == one.bytes &&
		                 st.tcp_packets == one.tcp_packets &&
		                 st.malformed == one.malformed && st.non_tcp == one.non_tcp &&
		                 st.truncated == one.truncated,
		         "core %u of %u (%s): input counters %llu packets, one core %llu", k, cores,
		         mosfw_core_input_shared(core[k]) ? "ring" : "whole",
		         (unsigned long long)st.packets, (unsigned long long)one.packets);
		sum.flows_created += st.flows_created;
		sum.rexmits += st.rexmits;
		sum.orphans += st.orphans;
		mosfw_core_free(core[k]);
	}
	FZ_CHECK(sum.flows_created == one.flows_created && sum.rexmits == one.rexmits &&
	                 sum.orphans == one.orphans,
	         "%u cores: %llu flows %llu rexmits %llu orphans; one core: %llu %llu %llu", cores,
	         (unsigned long long)sum.flows_created, (unsigned long long)sum.rexmits,
	         (unsigned long long)sum.orphans, (unsigned long long)one.flows_created,
	         (unsigned long long)one.rexmits, (unsigned long long)one.orphans);
	mosfw_feed_free(feed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mosfw_config cfg;
	struct fz_opts o = { .cap = 64, .max_conc = 16, .poke = 1, .rng = fz_seed(data, size) };
	struct mosfw_core *core;
	char err[MOSFW_ERRBUF_SIZE];
	uint64_t recs;
	int rc;

	mosfw_config_defaults(&cfg);
	cfg.max_concurrency = 16;
	cfg.event_mask = MOSFW_EV_ALL;
	cfg.tcp_timeout = 5.0;
	cfg.burst_packets = 256;
	cfg.rmem_size = 4096;
	core = mosfw_core_new(&cfg, err);
	FZ_CHECK(core != NULL, "mosfw_core_new: %s", err);
	if (mosfw_core_open_file(core, fz_file(data, size), NULL, err) == 0) {
		mosfw_core_set_bytestream(core, 1);
		mosfw_core_set_packets(core, 1);
		rc = fz_drive(core, cfg.event_mask, &o, &recs);
		FZ_CHECK(rc == MOSFW_RUN_DONE || rc == MOSFW_RUN_ERROR, "final status %d", rc);
		if (rc == MOSFW_RUN_ERROR)
			FZ_CHECK(*mosfw_core_error(core), "read error without a message");
	} else {
		FZ_CHECK(*err, "open failed without a message");
	}
	mosfw_core_free(core);
	shared_cores(fz_file(data, size), 2 + (uint32_t)(o.rng % 3));
	return 0;
}
