/* SPDX-License-Identifier: MIT */
/*
 * replay.c -- run the engine over capture files from C, with no Python:
 * the sanitizer (ASan+UBSan) build the test suite runs over every test
 * capture, and a pure-C speed reference for benchmarks.
 *
 *   mosfw-replay [-m EVENT_MASK] [-n MAX_CONCURRENCY] [-t TCP_TIMEOUT] [-v] FILE...
 *
 * Prints one line of counters per file. Exit 0 when every file was read
 * (a read error in a damaged file is reported and still exits 0: the
 * engine is expected to survive it), 1 when a file cannot be opened.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../mosfw_api.h"

static int replay(const char *path, const struct mosfw_config *cfg, int verbose)
{
	char err[MOSFW_ERRBUF_SIZE] = "";
	struct mosfw_core *core = mosfw_core_new(cfg, err);
	static struct mosfw_event evs[4096];
	uint64_t by_type[16] = { 0 };
	struct mosfw_stats st;
	uint32_t n, i;
	int rc;

	if (!core) {
		fprintf(stderr, "mosfw-replay: %s\n", err);
		return 1;
	}
	if (mosfw_core_open_file(core, path, NULL, err) < 0) {
		fprintf(stderr, "mosfw-replay: %s\n", err);
		mosfw_core_free(core);
		return 1;
	}
	do {
		rc = mosfw_core_run(core, evs, 4096, &n);
		for (i = 0; i < n; i++) {
			const struct mosfw_event *e = &evs[i];
			unsigned b = (unsigned)__builtin_ctz(e->type);
			by_type[b & 15]++;
			/* touch what a consumer would read */
			if (e->slot != MOSFW_NO_SLOT && e->type != MOSFW_EV_ORPHAN && e->type != MOSFW_EV_TICK) {
				const struct mosfw_flow *f = mosfw_core_flow(core, e->slot);
				if (!f || f->id != e->flow_id) {
					fprintf(stderr, "mosfw-replay: %s: event %s names a stale flow slot\n",
					        path, mosfw_event_name(e->type));
					abort();
				}
			}
			if (verbose)
				printf("%.6f %s side=%u %s %s reason=%u\n", e->ts, mosfw_event_name(e->type),
				       e->side, mosfw_state_name(e->old_state), mosfw_state_name(e->new_state),
				       e->reason);
		}
	} while (rc == MOSFW_RUN_MORE || rc == MOSFW_RUN_IDLE);
	mosfw_core_stats(core, &st);
	printf("%s: packets=%llu tcp=%llu malformed=%llu flows=%llu rexmit=%llu orphans=%llu "
	       "conn_start=%llu state_change=%llu conn_end=%llu status=%s%s%s\n",
	       path, (unsigned long long)st.packets, (unsigned long long)st.tcp_packets,
	       (unsigned long long)st.malformed, (unsigned long long)st.flows_created,
	       (unsigned long long)st.rexmits, (unsigned long long)st.orphans,
	       (unsigned long long)by_type[1], (unsigned long long)by_type[2],
	       (unsigned long long)by_type[5],
	       rc == MOSFW_RUN_DONE ? "done" : rc == MOSFW_RUN_ERROR ? "read-error" : "stopped",
	       rc == MOSFW_RUN_ERROR ? ": " : "", rc == MOSFW_RUN_ERROR ? mosfw_core_error(core) : "");
	if (by_type[1] && st.flows_created && by_type[5] != st.flows_created) {
		fprintf(stderr, "mosfw-replay: %s: %llu flows but %llu CONN_END\n", path,
		        (unsigned long long)st.flows_created, (unsigned long long)by_type[5]);
		abort();
	}
	mosfw_core_free(core);
	return 0;
}

int main(int argc, char **argv)
{
	struct mosfw_config cfg;
	int opt, i, bad = 0, verbose = 0;

	mosfw_config_defaults(&cfg);
	cfg.event_mask = MOSFW_EV_ALL;
	while ((opt = getopt(argc, argv, "m:n:t:v")) != -1) {
		switch (opt) {
		case 'm': cfg.event_mask = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': cfg.max_concurrency = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 't': cfg.tcp_timeout = atof(optarg); break;
		case 'v': verbose = 1; break;
		default:
			fprintf(stderr, "usage: mosfw-replay [-m MASK] [-n MAXCONC] [-t TIMEOUT] [-v] FILE...\n");
			return 2;
		}
	}
	for (i = optind; i < argc; i++)
		bad |= replay(argv[i], &cfg, verbose);
	return bad;
}
