/* SPDX-License-Identifier: MIT */
/*
 * mosfw_feed.h -- the -c N part of the public C surface, included by
 * mosfw_api.h (do not include it alone): one reader of the input copying
 * each packet into the ring of the core that owns it, and a worker
 * process's tie to its parent.
 */
#ifndef MOSFW_FEED_API_H
#define MOSFW_FEED_API_H

#ifndef MOSFW_API_H
#error "include mosfw_api.h, not mosfw_feed.h"
#endif

/* -c N offline: one reader feeding every core (native/feed.c).
 *
 * The input of N cores (worker processes) is read once: make the feed in
 * the parent before fork() (it opens the input as mosfw_core_open_file, or
 * as mosfw_core_open_files when as_set; NULL with the message a core would
 * give when it cannot), start it once the workers are forked (a thread of
 * the parent reads the input and copies each packet into the ring, in
 * shared memory, of the core that owns it), and in each worker open the
 * core (cfg.shard_index of n_cores) with mosfw_core_open_feed instead of a
 * file. The cores' results and counters are those of every core reading
 * the whole input and keeping its shard. cfg: verify_checksums, decap and
 * input_size are used (as a core uses them). The rings are
 * MOSFW_FEED_RING_KB KiB each (environment; default and least 1024):
 * a full ring makes the reader wait, so memory is bounded whatever the
 * input's size. mosfw_feed_drop: core's worker died, its packets are
 * dropped from now on. mosfw_feed_finish: stop reading (if not done) and
 * wait for the reader; then mosfw_feed_files gives the files' records
 * (as mosfw_core_input_files; 0 for one file). mosfw_feed_free finishes
 * and frees it (after every worker is done). */
struct mosfw_feed;
struct mosfw_feed *mosfw_feed_new(const struct mosfw_config *cfg, uint32_t n_cores,
                                  const char *const *paths, uint32_t n_paths, int as_set,
                                  const char *bpf, char *errbuf);
int mosfw_feed_start(struct mosfw_feed *feed, char *errbuf);
void mosfw_feed_drop(struct mosfw_feed *feed, uint32_t core);
void mosfw_feed_finish(struct mosfw_feed *feed);
uint32_t mosfw_feed_files(const struct mosfw_feed *feed, struct mosfw_input_file *out,
                          uint32_t max);
void mosfw_feed_free(struct mosfw_feed *feed);
int mosfw_core_open_feed(struct mosfw_core *core, struct mosfw_feed *feed, char *errbuf);
/* 1 when this core reads its ring of a feed. */
int mosfw_core_input_shared(const struct mosfw_core *core);

/* In a worker process: have the kernel send it signum when the thread
 * that forked it ends (prctl PR_SET_PDEATHSIG; Linux), so a killed parent
 * leaves no worker behind. 0, or -1 with errno set. */
int mosfw_worker_parent_death_signal(int signum);

#endif /* MOSFW_FEED_API_H */
