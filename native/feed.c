/* SPDX-License-Identifier: MIT */
/*
 * feed.c -- -c N offline: the input read once, by one reader thread, and
 * each packet copied into the ring of the core that owns it (feed_ring.h
 * for the shared memory, source_ring.c for the cores' side).
 *
 * The input is opened when the feed is made (in the parent, before the
 * worker processes fork), through the same code the cores use with one
 * core: a file (source.c: classic pcap mapped, pcapng and pipes through
 * libpcap) or a set of files (source_set.c: -r DIR, -r repeated,
 * compressed files through a decompressor). The reader thread, started
 * once the workers are forked, reads every record, parses it as the cores
 * do, counts the input counters once (the cores report these totals), and
 * hands it to its owner (mosfw_ft_owner(), flow_table.h: the one decision the
 * cores also use): a TCP packet to its flow's shard (with the flow hash:
 * the core looks the flow up with it, not hashing again), an IP fragment to
 * every core (each reassembles it and keeps the datagram if its flow is
 * its own), anything else to core 0. A packet that opens a new second is
 * also announced to every other core as a time mark, so ticks and
 * timeouts on packet time are those of one reader. At the end (end of
 * input or a read error, with its message) an END record reaches every
 * ring. A ring that is full makes the reader wait (memory stays bounded
 * whatever the input's size); a core that leaves (stopped, or its worker
 * died: mosfw_feed_drop) gets nothing more.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "feed_ring.h"
#include "flow_table.h"
#include "packet.h"
#include "source.h"
#include "source_set.h"

#define RING_DEFAULT_KB 1024u /* measured: -c 4 took 16 % less CPU than with 4096 */
#define RING_MIN_KB 1024u     /* two of the largest records, with room to spare */
#define PUBLISH_EVERY 1024u   /* packets between two publications of every ring */
#define WAIT_MS 100           /* a sleep is re-checked this often (a core left?) */

struct prod {
	uint64_t tail;      /* written up to (published: ring->tail) */
	uint64_t published; /* ring->tail as last stored */
	uint64_t head_seen; /* ring->head as last read */
	uint64_t own_tcp;
	int gone;
};

struct mosfw_feed {
	struct feed_shared *sh;
	struct mosfw_source *src;     /* one file, or the set's current one */
	struct mosfw_source_set *set; /* many files */
	int verify_checksums;
	struct mosfw_decap_config decap;
	struct prod *p;
	struct mosfw_stats in; /* the input counters, the reader's copy */
	pthread_t thread;
	int started, joined;
	int stop; /* (atomic) the parent asks the reader to end */
};

static uint64_t ring_cap(void)
{
	const char *env = getenv("MOSFW_FEED_RING_KB");
	uint64_t kb = env && *env ? strtoull(env, NULL, 10) : RING_DEFAULT_KB, cap = 1;

	if (kb < RING_MIN_KB)
		kb = RING_MIN_KB;
	while (cap < kb * 1024)
		cap <<= 1;
	return cap;
}

static int open_input(struct mosfw_feed *f, const char *const *paths, uint32_t n_paths, int as_set,
                      const char *bpf, uint64_t input_size, char *errbuf)
{
	if (as_set) {
		f->set = mosfw_set_open(paths, n_paths, bpf, errbuf);
		if (!f->set)
			return -1;
		f->src = mosfw_set_first(f->set);
		if (!f->src) {
			snprintf(errbuf, MOSFW_ERRBUF_SIZE,
			         "none of the capture files can be read");
			return -1;
		}
		return 0;
	}
	f->src = mosfw_source_open_file(paths[0], bpf, errbuf);
	if (!f->src)
		return -1;
	if (mosfw_linktype_refused(mosfw_source_linktype(f->src),
	                           mosfw_source_linktype_name(f->src), paths[0], errbuf))
		return -1;
	mosfw_source_expect_size(f->src, input_size);
	return 0;
}

struct mosfw_feed *mosfw_feed_new(const struct mosfw_config *cfg, uint32_t n_cores,
                                  const char *const *paths, uint32_t n_paths, int as_set,
                                  const char *bpf, char *errbuf)
{
	struct mosfw_feed *f;
	uint64_t cap = ring_cap();
	size_t head, len;
	void *m;

	if (n_cores < 2 || n_cores > 4096 || n_paths < 1) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "a feed needs 2..4096 cores and an input");
		return NULL;
	}
	f = calloc(1, sizeof(*f));
	if (!f || !(f->p = calloc(n_cores, sizeof(*f->p)))) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		free(f);
		return NULL;
	}
	f->verify_checksums = cfg->verify_checksums;
	f->decap = cfg->decap;
	if (open_input(f, paths, n_paths, as_set, bpf, cfg->input_size, errbuf) < 0) {
		mosfw_feed_free(f);
		return NULL;
	}
	head = sizeof(struct feed_shared) + (size_t)n_cores * sizeof(struct feed_ring);
	head = (head + 4095) & ~(size_t)4095;
	len = head + (size_t)n_cores * cap;
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1,
	         0);
	if (m == MAP_FAILED) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot map %zu bytes of rings for %u cores",
		         len, n_cores);
		mosfw_feed_free(f);
		return NULL;
	}
	f->sh = m;
	f->sh->n = n_cores;
	f->sh->cap = cap;
	f->sh->map_len = len;
	f->sh->data_off = head;
	f->sh->linktype = mosfw_source_linktype(f->src);
	return f;
}

struct feed_shared *mosfw_feed_shared(struct mosfw_feed *f) { return f->sh; }

/* ---- the producer side of the rings ------------------------------------- */

/* Publish what was written to ring k. A core that sleeps on it is woken
 * only once FEED_WAKE_BYTES wait for it, or when `force`d (the end). */
static void publish(struct mosfw_feed *f, uint32_t k, int force)
{
	struct feed_ring *r = &f->sh->ring[k];
	struct prod *p = &f->p[k];

	if (p->tail != p->published) {
		__atomic_store_n(&r->tail, p->tail, __ATOMIC_SEQ_CST);
		p->published = p->tail;
	}
	if (force) {
		feed_wake_if_waiting(&r->cons_wait, &r->data_seq);
	} else if (__atomic_load_n(&r->cons_wait, __ATOMIC_SEQ_CST)) {
		/* asleep: what it has not read is past the head it gave back
		 * before sleeping (head_seen, the reader's own copy, is only
		 * brought up to date when a ring is full: with it, a core was
		 * woken at nearly every publication, for a few dozen packets) */
		p->head_seen = __atomic_load_n(&r->head, __ATOMIC_SEQ_CST);
		if (p->tail - p->head_seen >= FEED_WAKE_BYTES(f->sh->cap))
			feed_wake_if_waiting(&r->cons_wait, &r->data_seq);
	}
}

/* The input counters (and each core's TCP packets) for the cores to read. */
static void publish_stats(struct mosfw_feed *f)
{
	struct feed_shared *sh = f->sh;
	uint32_t k;

	__atomic_store_n(&sh->stats_seq, sh->stats_seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(&sh->in, &f->in, sizeof(f->in));
	for (k = 0; k < sh->n; k++)
		sh->ring[k].own_tcp = f->p[k].own_tcp;
	sh->offset = f->set ? mosfw_set_offset(f->set) : mosfw_source_offset(f->src);
	__atomic_store_n(&sh->stats_seq, sh->stats_seq + 1, __ATOMIC_RELEASE);
}

static void publish_all(struct mosfw_feed *f, int force)
{
	uint32_t k;

	publish_stats(f);
	for (k = 0; k < f->sh->n; k++)
		publish(f, k, force);
}

/* Wait until ring k has `need` bytes free past p->tail; 0 when the core
 * left (its records are dropped from now on). It waits for
 * FEED_WAKE_BYTES at least, and the core wakes it only then: woken for
 * each burst the core gave back, it wrote a few records and slept again
 * (with 16 cores on 2 CPUs, 16k context switches for the bench capture).
 * Core k is woken (most of its ring waits for it); the others as usual
 * (publish), not all of them: the reader waits for ring k only. */
static int wait_space(struct mosfw_feed *f, uint32_t k, uint64_t need)
{
	struct feed_ring *r = &f->sh->ring[k];
	struct prod *p = &f->p[k];
	uint64_t cap = f->sh->cap;

	if (need < FEED_WAKE_BYTES(cap))
		need = FEED_WAKE_BYTES(cap);
	publish_all(f, 0);
	feed_wake_if_waiting(&r->cons_wait, &r->data_seq);
	for (;;) {
		uint32_t seq;

		if (__atomic_load_n(&r->gone, __ATOMIC_ACQUIRE) ||
		    __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)) {
			p->gone = 1;
			return 0;
		}
		seq = __atomic_load_n(&r->space_seq, __ATOMIC_SEQ_CST);
		__atomic_store_n(&r->prod_wait, 1, __ATOMIC_SEQ_CST);
		p->head_seen = __atomic_load_n(&r->head, __ATOMIC_SEQ_CST);
		if (p->tail + need - p->head_seen <= cap) {
			__atomic_store_n(&r->prod_wait, 0, __ATOMIC_RELAXED);
			return 1;
		}
		feed_futex_wait(&r->space_seq, seq, WAIT_MS);
	}
}

/* Append one record to ring k (frame: caplen bytes, or NULL; flow_hash:
 * the TCP segment's flow hash, or NULL). */
static void push(struct mosfw_feed *f, uint32_t k, uint8_t kind, uint16_t linktype,
                 const uint8_t *frame, uint32_t caplen, uint32_t wirelen, uint32_t gidx, double ts,
                 const uint32_t *flow_hash)
{
	struct prod *p = &f->p[k];
	uint64_t cap = f->sh->cap, off, rem, skip = 0;
	uint32_t need = feed_rec_len(frame ? caplen : 0);
	uint8_t *data;
	struct feed_rec *rec;

	if (p->gone)
		return;
	off = p->tail & (cap - 1);
	rem = cap - off;
	if (rem < FEED_REC_HDR || need > rem)
		skip = rem; /* to the start of the array (a PAD record when it fits) */
	if (p->tail + skip + need - p->head_seen > cap) {
		p->head_seen = __atomic_load_n(&f->sh->ring[k].head, __ATOMIC_ACQUIRE);
		if (p->tail + skip + need - p->head_seen > cap && !wait_space(f, k, skip + need))
			return;
	}
	data = feed_data(f->sh, k);
	if (skip >= FEED_REC_HDR) {
		rec = (struct feed_rec *)(data + off);
		rec->len = (uint32_t)skip;
		rec->kind = FEED_PAD;
	}
	p->tail += skip;
	rec = (struct feed_rec *)(data + (p->tail & (cap - 1)));
	rec->len = need;
	rec->kind = kind;
	rec->hashed = flow_hash != NULL;
	rec->flow_hash = flow_hash ? *flow_hash : 0;
	rec->linktype = linktype;
	rec->caplen = frame ? caplen : 0;
	rec->wirelen = wirelen;
	rec->gidx = gidx;
	rec->ts = ts;
	if (frame)
		memcpy(rec + 1, frame, caplen);
	p->tail += need;
	if (p->tail - p->published >= cap / 8)
		publish(f, k, 0);
}

/* ---- the reader thread ---------------------------------------------------- */

static int all_gone(struct mosfw_feed *f)
{
	uint32_t k;

	for (k = 0; k < f->sh->n; k++) {
		if (!f->p[k].gone && __atomic_load_n(&f->sh->ring[k].gone, __ATOMIC_ACQUIRE))
			f->p[k].gone = 1;
		if (!f->p[k].gone)
			return 0;
	}
	return 1;
}

static void *reader(void *arg)
{
	struct mosfw_feed *f = arg;
	struct feed_shared *sh = f->sh;
	struct mosfw_source *cur = f->src;
	uint32_t n = sh->n, gidx = 0, k, status;
	/* the whole second of the last packet is [sec_lo, sec_lo + 1): a
	 * packet outside it opens a new one (no floor() per packet) */
	double sec_lo = INFINITY;

	pthread_setname_np(pthread_self(), "mosfw-reader"); /* (top -H, perf) */
	for (;;) {
		const uint8_t *frame = NULL;
		uint32_t caplen = 0, wirelen = 0, owner, tcp_hash = 0;
		double ts = 0;
		struct mosfw_pkt pkt;
		int r, res;
		uint16_t lt;

		if ((gidx & (PUBLISH_EVERY - 1)) == 0) {
			/* frames are copied at once: the sources may drop what is behind */
			if (f->set)
				mosfw_set_burst_begin(f->set, &cur);
			else
				mosfw_source_burst_begin(f->src);
			publish_all(f, 0);
			if (__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE) || all_gone(f)) {
				status = MOSFW_SRC_EOF;
				break;
			}
		}
		r = f->set ? mosfw_set_next(f->set, &cur, &frame, &caplen, &wirelen, &ts)
		           : mosfw_source_next(f->src, &frame, &caplen, &wirelen, &ts);
		if (r != MOSFW_SRC_PACKET) {
			status = r == MOSFW_SRC_ERROR ? MOSFW_SRC_ERROR : MOSFW_SRC_EOF;
			if (status == MOSFW_SRC_ERROR)
				snprintf(sh->err, sizeof(sh->err), "%s", mosfw_source_error(cur));
			break;
		}
		gidx++;
		lt = (uint16_t)mosfw_source_linktype(cur);
		res = mosfw_parse_wire(
			mosfw_parse(lt, frame, caplen, f->verify_checksums, &f->decap, &pkt), &pkt,
			caplen, wirelen);
		mosfw_count_input(&f->in, res, caplen, wirelen, ts);
		if (pkt.n_tun | pkt.tun_err)
			mosfw_count_tunnels(&f->in, res, &pkt);
		mosfw_count_proto(&f->in, res, &pkt);
		owner = mosfw_ft_owner(res, &pkt, caplen, n, &tcp_hash);
		if (owner == MOSFW_OWNER_ALL) {
			for (k = 0; k < n; k++)
				push(f, k, FEED_PACKET, lt, frame, caplen, wirelen, gidx, ts, NULL);
			sec_lo = floor(ts);
			continue;
		}
		f->p[owner].own_tcp += res == MOSFW_PARSE_TCP;
		push(f, owner, FEED_PACKET, lt, frame, caplen, wirelen, gidx, ts,
		     res == MOSFW_PARSE_TCP ? &tcp_hash : NULL);
		if (!(ts >= sec_lo && ts < sec_lo + 1.0)) {
			sec_lo = floor(ts);
			for (k = 0; k < n; k++)
				if (k != owner)
					push(f, k, FEED_TIME, lt, NULL, 0, 0, gidx, ts, NULL);
		}
	}
	publish_stats(f);
	__atomic_store_n(&sh->status, status, __ATOMIC_RELEASE);
	for (k = 0; k < n; k++)
		push(f, k, FEED_END, 0, NULL, 0, 0, gidx, 0, NULL);
	for (k = 0; k < n; k++)
		publish(f, k, 1);
	return NULL;
}

int mosfw_feed_start(struct mosfw_feed *f, char *errbuf)
{
	sigset_t all, old;
	int rc;

	if (f->started) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "the feed was started already");
		return -1;
	}
	/* signals are the parent's main thread's business, but for the
	 * synchronous ones: a page of the mapped file that vanished raises
	 * SIGBUS in this thread (map_guard.h), which must reach its handler */
	sigfillset(&all);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&f->thread, NULL, reader, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot start the reader thread: %s",
		         strerror(rc));
		return -1;
	}
	f->started = 1;
	return 0;
}

void mosfw_feed_drop(struct mosfw_feed *f, uint32_t core)
{
	struct feed_ring *r;

	if (!f || core >= f->sh->n)
		return;
	r = &f->sh->ring[core];
	__atomic_store_n(&r->gone, 1, __ATOMIC_RELEASE);
	feed_futex_wake(&r->space_seq);
}

void mosfw_feed_finish(struct mosfw_feed *f)
{
	uint32_t k;

	if (!f || !f->started || f->joined)
		return;
	__atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);
	for (k = 0; k < f->sh->n; k++)
		feed_futex_wake(&f->sh->ring[k].space_seq);
	pthread_join(f->thread, NULL);
	f->joined = 1;
}

uint32_t mosfw_feed_files(const struct mosfw_feed *f, struct mosfw_input_file *out, uint32_t max)
{
	return f->set ? mosfw_set_files(f->set, out, max) : 0;
}

void mosfw_feed_free(struct mosfw_feed *f)
{
	if (!f)
		return;
	mosfw_feed_finish(f);
	if (f->sh)
		munmap(f->sh, f->sh->map_len);
	if (f->set)
		mosfw_set_close(f->set);
	else
		mosfw_source_close(f->src);
	free(f->p);
	free(f);
}

int mosfw_worker_parent_death_signal(int signum)
{
	return prctl(PR_SET_PDEATHSIG, (unsigned long)signum, 0UL, 0UL, 0UL);
}
