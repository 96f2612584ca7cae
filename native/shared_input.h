/* SPDX-License-Identifier: MIT */
/*
 * shared_input.h -- offline -c N: one classic pcap file read by N worker
 * processes that split the parsing between them.
 *
 * Without it every worker reads and parses the whole file and keeps the
 * packets of its shard (the parsing of the others' packets is the part
 * that does not scale). With it the work has two phases:
 *
 *  1. Index. Worker i parses the i-th of N equal byte ranges of the file:
 *     it finds the first record that starts in its range (a chain of
 *     plausible record headers), walks the records that start in it,
 *     checks them as the mapped reader does (libpcap's checks and
 *     messages), and writes one 8-byte entry per record into shared
 *     memory: its offset, the worker that owns it (the shard of its
 *     flow's symmetric hash; non-TCP and unparseable packets go to worker
 *     0, which counts them) and whether its time starts a new second. It
 *     also sums the input counters of its range.
 *  2. Process. Once every range is indexed, each worker checks that the
 *     ranges chain (each one starts where the previous one ended: the
 *     found starts were real record boundaries), then walks the entries in
 *     file order and processes its own packets; another worker's packet
 *     that starts a new second only advances time (ticks, timeouts), so
 *     packet-time semantics stay those of one reader.
 *
 * When the ranges do not chain (a range began inside a record that looked
 * like a chain of headers), or a worker left before the index was complete,
 * every worker reads the whole file itself as without sharing: the
 * results are the same, only slower. A read error ends the input where a
 * single reader would have stopped, after the packets before it.
 */
#ifndef MOSFW_SHARED_INPUT_H
#define MOSFW_SHARED_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include "mosfw_api.h"

struct bpf_program;
struct mosfw_map_fault;

/* What one worker reads from the shared index (source.c owns it). */
struct mosfw_shared_reader;

/* The file as the mapped reader sees it. */
struct mosfw_shared_file {
	const uint8_t *base;
	size_t len;
	uint32_t snapshot;
	int nano;
	int linktype;
	int verify_checksums;
	struct mosfw_decap_config decap; /* tunnels, as the cores parse them */
	const struct bpf_program *prog;  /* NULL: no filter */
	/* set when a page of the file vanished (it shrank: map_guard.h);
	 * NULL: unguarded */
	const struct mosfw_map_fault *fault;
	int fd; /* the file (its size is checked when a record reads as zeros) */
};

enum mosfw_shared_result {
	MOSFW_SHARED_PACKET = 0, /* an own packet: frame etc. set */
	MOSFW_SHARED_TIME = 1,   /* another worker's packet opening a second: ts set */
	MOSFW_SHARED_WAIT = 2,   /* the index is not complete yet: call again */
	MOSFW_SHARED_EOF = 3,
	MOSFW_SHARED_ERROR = 4,    /* read error: message set */
	MOSFW_SHARED_FALLBACK = 5, /* not usable: read the whole file instead */
};

/* Attach worker `index` to the share for this file. NULL when the share
 * was made for another file or cannot be used (the caller then reads
 * the whole file, and the share is abandoned so no one waits for this
 * worker). */
struct mosfw_shared_reader *mosfw_shared_attach(struct mosfw_share *sh, uint32_t index,
                                                uint32_t count, const struct mosfw_shared_file *f);
/* The next record for this worker. *gidx: its 1-based index in the
 * input; *pos: the offset consumed up to (progress). */
int mosfw_shared_next(struct mosfw_shared_reader *r, const uint8_t **frame, uint32_t *caplen,
                      uint32_t *wirelen, double *ts, uint32_t *gidx, size_t *pos, char *err,
                      size_t errlen);
/* The input counters of the whole file (every worker reports them, as
 * when each reads the whole file); valid once mosfw_shared_next stopped
 * returning WAIT. `other_shard` counts the other workers' TCP packets. */
void mosfw_shared_totals(const struct mosfw_shared_reader *r, struct mosfw_stats *add);
/* Free the reader; leaving before the index is complete makes the
 * others read the whole file (they do not wait for this worker). */
void mosfw_shared_detach(struct mosfw_shared_reader *r);
/* Nobody waits for the index any more: every worker reads the whole file. */
void mosfw_share_abandon(struct mosfw_share *sh);

#endif /* MOSFW_SHARED_INPUT_H */
