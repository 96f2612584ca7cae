/* SPDX-License-Identifier: MIT */
/*
 * source_set.h -- many capture files read as one stream (`-r` repeated,
 * `-r DIR`): files ordered by their first packet's time, files that
 * overlap in time merged packet by packet by timestamp (as mergecap), and
 * gzip/zstd/xz/lz4-compressed files streamed through a decompressor child
 * process into libpcap (never written to disk). A file that cannot be read
 * (bad header, truncated, corrupt) is recorded with its message and the
 * stream goes on with the next one. Each file is read by a struct
 * mosfw_source of its own (source.h), so plain pcap files keep the mapped
 * fast path.
 */
#ifndef MOSFW_SOURCE_SET_H
#define MOSFW_SOURCE_SET_H

#include <stdint.h>

#include "mosfw_api.h"
#include "source.h"

struct mosfw_source_set;

/* struct mosfw_input_file.state */
enum mosfw_file_state {
	MOSFW_FILE_WAITING,
	MOSFW_FILE_OPEN,
	MOSFW_FILE_DONE,
	MOSFW_FILE_FAILED
};

/* Open the set of `n` files (scans each one's first packet time). NULL and
 * a message when none of them holds a packet that can be read; files that
 * fail are recorded (mosfw_set_files) and skipped. */
struct mosfw_source_set *mosfw_set_open(const char *const *paths, uint32_t n, const char *bpf,
                                        char *errbuf);
/* The next packet of the stream (a MOSFW_SRC_* result: PACKET or EOF; a
 * file's read error ends that file only). *cur is set to the source of the
 * file the packet came from (link type, peek); it stays valid until the
 * next call of mosfw_set_burst_begin() or mosfw_set_close(). */
int mosfw_set_next(struct mosfw_source_set *set, struct mosfw_source **cur, const uint8_t **frame,
                   uint32_t *caplen, uint32_t *wirelen, double *ts);
/* A burst starts: files finished in the last one are closed now (their
 * frames may have been kept until then); *cur is moved off them. */
void mosfw_set_burst_begin(struct mosfw_source_set *set, struct mosfw_source **cur);
/* Frames stay readable for the whole burst (mapped files, no merging). */
int mosfw_set_frames_stable(const struct mosfw_source_set *set);
/* Bytes of all files consumed so far (compressed files: compressed bytes). */
int64_t mosfw_set_offset(const struct mosfw_source_set *set);
/* Copy up to max files' records into out; returns the number of files. */
uint32_t mosfw_set_files(const struct mosfw_source_set *set, struct mosfw_input_file *out,
                         uint32_t max);
/* The source of a file still open (for the core's first link type). */
struct mosfw_source *mosfw_set_first(struct mosfw_source_set *set);
void mosfw_set_close(struct mosfw_source_set *set);

#endif /* MOSFW_SOURCE_SET_H */
