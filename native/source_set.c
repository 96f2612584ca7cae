/* SPDX-License-Identifier: MIT */
/* source_set.c -- many capture files as one stream (see source_set.h). */
#define _GNU_SOURCE
#include "source_set.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "packet.h"

extern char **environ;

struct member {
	char *path;
	uint32_t index;    /* place in the list given */
	const char *unzip; /* decompressor program, NULL for a plain file */
	uint64_t size;
	double first_ts; /* from the scan (INFINITY: nothing to read) */
	int state;       /* enum mosfw_file_state */
	int retired;     /* finished, closed at the next burst */
	struct mosfw_source *src;
	pid_t child; /* the decompressor (0: none or reaped) */
	int cfd;     /* compressed: the file, the child's stdin (same offset) */
	/* merging: this file's next packet, copied */
	int have;
	uint8_t *buf;
	uint32_t bufcap, caplen, wirelen;
	double ts;
	uint64_t packets;
	double last_ts;
	char err[256];
};

struct mosfw_source_set {
	struct member *m; /* in read order (first packet time) */
	uint32_t n;
	uint32_t next; /* next member not opened yet */
	uint32_t *act; /* open members (indices into m), in read order */
	uint32_t nact;
	char *bpf;
	int stable; /* the last frame handed out stays readable for the burst */
};

static const char *unzipper(const char *path)
{
	static const struct {
		const char *prog;
		unsigned len;
		const char *magic;
	} kinds[] = {
		{ "gzip", 2, "\x1f\x8b" },
		{ "zstd", 4, "\x28\xb5\x2f\xfd" },
		{ "xz", 6, "\xfd\x37\x7a\x58\x5a\x00" },
		{ "lz4", 4, "\x04\x22\x4d\x18" },
	};
	unsigned char head[6] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd < 0 ? -1 : read(fd, head, sizeof(head));
	unsigned i;

	if (fd >= 0)
		close(fd);
	for (i = 0; got > 0 && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if ((unsigned)got >= kinds[i].len && !memcmp(head, kinds[i].magic, kinds[i].len))
			return kinds[i].prog;
	return NULL;
}

static void fail(struct member *m, const char *why)
{
	m->state = MOSFW_FILE_FAILED;
	snprintf(m->err, sizeof(m->err), "capture '%.120s': %.120s", m->path, why);
}

/* The decompressor finished (its output ended): 0 when it exited cleanly. */
static int reap(struct member *m)
{
	int st = 0;

	if (m->child <= 0)
		return 0;
	if (waitpid(m->child, &st, 0) < 0)
		st = 0;
	m->child = 0;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fail(m, "the decompressor failed: truncated or corrupt compressed file");
	return -1;
}

static void member_close(struct member *m)
{
	mosfw_source_close(m->src);
	m->src = NULL;
	if (m->child > 0) {
		kill(m->child, SIGTERM);
		waitpid(m->child, NULL, 0);
		m->child = 0;
	}
	if (m->cfd >= 0)
		close(m->cfd);
	m->cfd = -1;
}

/* Start the decompressor on m's file; its output is read by libpcap
 * through /dev/fd/N (a pipe: never on disk). */
static struct mosfw_source *open_unzip(struct member *m, const char *bpf, char *errbuf)
{
	char *argv[] = { (char *)m->unzip, (char *)"-dcq", NULL };
	posix_spawn_file_actions_t fa;
	struct mosfw_source *s;
	char dev[32];
	int p[2], rc;

	m->cfd = open(m->path, O_RDONLY | O_CLOEXEC);
	if (m->cfd < 0 || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot open: %m");
		return NULL;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, m->cfd, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	rc = posix_spawnp(&m->child, m->unzip, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc != 0) {
		m->child = 0;
		close(p[0]);
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot run '%s' to decompress it: %s",
		         m->unzip, strerror(rc));
		return NULL;
	}
	snprintf(dev, sizeof(dev), "/dev/fd/%d", p[0]);
	s = mosfw_source_open_file(dev, bpf, errbuf);
	close(p[0]); /* libpcap opened its own descriptor of the pipe */
	return s;
}

static int member_open(struct member *m, const char *bpf)
{
	char err[MOSFW_ERRBUF_SIZE] = "";

	m->src = m->unzip ? open_unzip(m, bpf, err) : mosfw_source_open_file(m->path, bpf, err);
	if (m->src && !mosfw_linktype_supported(mosfw_source_linktype(m->src)))
		snprintf(err, sizeof(err), "unsupported link type %d (%s)",
		         mosfw_source_linktype(m->src), mosfw_source_linktype_name(m->src));
	else if (m->src)
		return 0;
	if (m->src) {
		member_close(m);
		fail(m, err);
		return -1;
	}
	member_close(m);
	/* (libpcap's message names /dev/fd/N for a pipe: keep its reason) */
	fail(m, strstr(err, "': ") ? strstr(err, "': ") + 3 : err);
	return -1;
}

/* Read each file's first packet time (without the BPF filter). */
static void scan(struct member *m)
{
	const uint8_t *frame;
	uint32_t caplen, wirelen;
	double ts;
	int r;

	m->first_ts = INFINITY;
	if (member_open(m, NULL) < 0)
		return;
	r = mosfw_source_next(m->src, &frame, &caplen, &wirelen, &ts);
	if (r == MOSFW_SRC_PACKET)
		m->first_ts = ts;
	else if (r == MOSFW_SRC_ERROR)
		fail(m, mosfw_source_error(m->src));
	else
		m->state = MOSFW_FILE_DONE; /* no packet */
	member_close(m);
}

static int by_first_ts(const void *a, const void *b)
{
	const struct member *x = a, *y = b;

	if (x->first_ts != y->first_ts)
		return x->first_ts < y->first_ts ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

struct mosfw_source_set *mosfw_set_open(const char *const *paths, uint32_t n, const char *bpf,
                                        char *errbuf)
{
	struct mosfw_source_set *set = calloc(1, sizeof(*set));
	uint32_t i;

	if (!set || !(set->m = calloc(n ? n : 1, sizeof(*set->m))) ||
	    !(set->act = calloc(n ? n : 1, sizeof(*set->act))) ||
	    (bpf && *bpf && !(set->bpf = strdup(bpf)))) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		mosfw_set_close(set);
		return NULL;
	}
	set->n = n;
	for (i = 0; i < n; i++) {
		struct member *m = &set->m[i];
		struct stat st;

		m->cfd = -1;
		m->index = i;
		m->path = strdup(paths[i]);
		if (!m->path) {
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
			mosfw_set_close(set);
			return NULL;
		}
		m->size = stat(m->path, &st) == 0 ? (uint64_t)st.st_size : 0;
		m->unzip = unzipper(m->path);
		scan(m);
	}
	qsort(set->m, n, sizeof(*set->m), by_first_ts);
	if (n == 0 || set->m[0].first_ts == INFINITY) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "%s",
		         n == 0 ? "no capture files to read"
		         : set->m[0].state == MOSFW_FILE_FAILED
		                 ? set->m[0].err
		                 : "none of the capture files holds a packet");
		mosfw_set_close(set);
		return NULL;
	}
	return set;
}

/* Open the next file in read order; 0 when none is left. */
static int open_next(struct mosfw_source_set *set)
{
	while (set->next < set->n) {
		struct member *m = &set->m[set->next++];

		if (m->state != MOSFW_FILE_WAITING)
			continue; /* failed or empty at the scan */
		if (member_open(m, set->bpf) < 0)
			continue;
		m->state = MOSFW_FILE_OPEN;
		set->act[set->nact++] = (uint32_t)(m - set->m);
		return 1;
	}
	return 0;
}

/* m's input ended with r: mark it, take it off the open list. */
static void finish(struct mosfw_source_set *set, struct member *m, int r)
{
	uint32_t i, k = (uint32_t)(m - set->m);

	if (r == MOSFW_SRC_ERROR)
		fail(m, mosfw_source_error(m->src));
	else if (reap(m) == 0)
		m->state = MOSFW_FILE_DONE;
	m->have = 0;
	m->retired = 1;
	for (i = 0; i < set->nact; i++)
		if (set->act[i] == k) {
			memmove(&set->act[i], &set->act[i + 1],
			        (set->nact - i - 1) * sizeof(*set->act));
			set->nact--;
			break;
		}
}

static int hold(struct member *m, const uint8_t *frame, uint32_t caplen, uint32_t wirelen,
                double ts)
{
	if (caplen > m->bufcap) {
		uint8_t *b = realloc(m->buf, caplen);
		if (!b)
			return -1;
		m->buf = b;
		m->bufcap = caplen;
	}
	memcpy(m->buf, frame, caplen);
	m->caplen = caplen;
	m->wirelen = wirelen;
	m->ts = ts;
	m->have = 1;
	return 0;
}

static int deliver(struct member *m, struct mosfw_source **cur, double ts)
{
	m->packets++;
	m->last_ts = ts;
	*cur = m->src;
	return MOSFW_SRC_PACKET;
}

int mosfw_set_next(struct mosfw_source_set *set, struct mosfw_source **cur, const uint8_t **frame,
                   uint32_t *caplen, uint32_t *wirelen, double *ts)
{
	for (;;) {
		struct member *m, *best = NULL;
		uint32_t i;
		int r;

		if (set->nact == 0 && !open_next(set))
			return MOSFW_SRC_EOF;
		m = &set->m[set->act[0]];
		if (set->nact == 1 && !m->have) {
			/* one file at a time: its frames as they are */
			r = mosfw_source_next(m->src, frame, caplen, wirelen, ts);
			if (r != MOSFW_SRC_PACKET) {
				finish(set, m, r);
				continue;
			}
			if (set->next < set->n && set->m[set->next].first_ts < *ts) {
				/* the next file starts before this packet: merge */
				if (hold(m, *frame, *caplen, *wirelen, *ts) < 0) {
					fail(m, "out of memory");
					finish(set, m, MOSFW_SRC_EOF);
				}
				open_next(set);
				continue;
			}
			set->stable = mosfw_source_frames_stable(m->src);
			return deliver(m, cur, *ts);
		}
		/* files that overlap in time: each one's next packet is held
		 * (copied), the earliest goes first (ties: the earlier file) */
		for (i = 0; i < set->nact; i++) {
			m = &set->m[set->act[i]];
			if (m->have)
				continue;
			r = mosfw_source_next(m->src, frame, caplen, wirelen, ts);
			if (r != MOSFW_SRC_PACKET || hold(m, *frame, *caplen, *wirelen, *ts) < 0) {
				finish(set, m, r == MOSFW_SRC_PACKET ? MOSFW_SRC_EOF : r);
				if (r == MOSFW_SRC_PACKET)
					fail(m, "out of memory");
				i--;
			}
		}
		for (i = 0; i < set->nact; i++) {
			m = &set->m[set->act[i]];
			if (!best || m->ts < best->ts)
				best = m;
		}
		if (!best)
			continue;
		if (set->next < set->n && set->m[set->next].first_ts < best->ts) {
			open_next(set);
			continue;
		}
		best->have = 0;
		*frame = best->buf;
		*caplen = best->caplen;
		*wirelen = best->wirelen;
		*ts = best->ts;
		set->stable = 0;
		return deliver(best, cur, best->ts);
	}
}

void mosfw_set_burst_begin(struct mosfw_source_set *set, struct mosfw_source **cur)
{
	uint32_t i;

	if (set->nact)
		*cur = set->m[set->act[0]].src;
	for (i = 0; i < set->n; i++) {
		struct member *m = &set->m[i];

		if (m->retired && m->src != *cur) {
			member_close(m);
			m->retired = 0;
		}
		if (m->src && !m->retired)
			mosfw_source_burst_begin(m->src);
	}
}

int mosfw_set_frames_stable(const struct mosfw_source_set *set) { return set->stable; }

int64_t mosfw_set_offset(const struct mosfw_source_set *set)
{
	int64_t sum = 0;
	uint32_t i;

	for (i = 0; i < set->n; i++) {
		const struct member *m = &set->m[i];

		if (m->state == MOSFW_FILE_DONE || m->state == MOSFW_FILE_FAILED)
			sum += (int64_t)m->size;
		else if (m->state == MOSFW_FILE_OPEN && m->cfd >= 0)
			sum += lseek(m->cfd, 0, SEEK_CUR) > 0 ? lseek(m->cfd, 0, SEEK_CUR) : 0;
		else if (m->state == MOSFW_FILE_OPEN && mosfw_source_offset(m->src) > 0)
			sum += mosfw_source_offset(m->src);
	}
	return sum;
}

uint32_t mosfw_set_files(const struct mosfw_source_set *set, struct mosfw_input_file *out,
                         uint32_t max)
{
	uint32_t i;

	for (i = 0; i < set->n && i < max; i++) {
		const struct member *m = &set->m[i];

		out[i].index = m->index;
		out[i].state = m->state;
		out[i].size = m->size;
		out[i].packets = m->packets;
		out[i].first_ts = m->first_ts == INFINITY ? 0 : m->first_ts;
		out[i].last_ts = m->last_ts;
		snprintf(out[i].error, sizeof(out[i].error), "%s", m->err);
	}
	return set->n;
}

struct mosfw_source *mosfw_set_first(struct mosfw_source_set *set)
{
	if (set->nact == 0)
		open_next(set);
	return set->nact ? set->m[set->act[0]].src : NULL;
}

void mosfw_set_close(struct mosfw_source_set *set)
{
	uint32_t i;

	if (!set)
		return;
	for (i = 0; set->m && i < set->n; i++) {
		member_close(&set->m[i]);
		free(set->m[i].path);
		free(set->m[i].buf);
	}
	free(set->m);
	free(set->act);
	free(set->bpf);
	free(set);
}
