/* SPDX-License-Identifier: MIT */
/* shared_input.c -- the -c N shared index of a classic pcap file (see
 * shared_input.h for the design). */
#define _GNU_SOURCE
#include "shared_input.h"

#include <math.h>
#include <pcap/pcap.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "flow_table.h"
#include "map_guard.h"
#include "packet.h"
#include "pcap_record.h"

#define SHARE_MAGIC 0x6d736878u
#define SHARE_MAX_WORKERS 4096u
#define NO_START UINT64_MAX
#define CHAIN_CHECK 6         /* records a found start must chain through */
#define SCAN_CHUNK (4u << 20) /* populate/drop granularity while indexing */
#define PREFETCH_AHEAD 8      /* records looked ahead for a worker's next own one */
#define WAIT_SLICE_NS 2000000 /* a WAIT returns after ~2 ms (signals, stop) */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* entry: offset | owner << 44 | flags << 60 */
#define E_OFF_MASK ((1ull << 44) - 1)
#define E_OWNER(e) ((uint32_t)(((e) >> 44) & 0xffffu))
#define E_NEW_SECOND (1ull << 60)
#define E_TCP (1ull << 61)
#define E_ALL (1ull << 62) /* an IP fragment: every worker reassembles it */

enum {
	SCAN_OK = 0,
	SCAN_ERROR = 1,
	SCAN_EOF = 2
};

struct share_scan {
	uint64_t start; /* first record start in the range (NO_START: none) */
	uint64_t end;   /* where the walk stopped (next record, or the bad one) */
	uint64_t n;     /* entries written */
	uint32_t status;
	uint32_t pad;
	char err[256];
	struct mosfw_stats in; /* input counters of the range */
};

struct mosfw_share {
	uint32_t magic, n;
	uint64_t file_len, dev, ino;
	int64_t mtime_ns;
	uint64_t cap; /* entries per range */
	size_t map_len;
	size_t entries_off;
	uint32_t scanned;         /* ranges indexed (atomic) */
	uint32_t abandoned;       /* a worker left or read alone: don't wait (atomic) */
	struct share_scan scan[]; /* n of them; entries follow at entries_off */
};

enum {
	R_INDEX = 0,
	R_WAIT,
	R_VERIFY,
	R_READ,
	R_END
};

struct mosfw_shared_reader {
	struct mosfw_share *sh;
	struct mosfw_shared_file f;
	uint32_t index;
	int phase;
	uint32_t range, last_range; /* reading: range i of [0, last_range] */
	uint64_t k;                 /* next entry of the range */
	uint32_t gidx;
	int final; /* MOSFW_SHARED_EOF or _ERROR after the last range */
	char err[256];
	uint64_t other_shard; /* other workers' TCP packets walked past */
	uint64_t own;         /* own packets handed out */
};

static uint64_t *entries(struct mosfw_share *sh, uint32_t i)
{
	return (uint64_t *)((uint8_t *)sh + sh->entries_off) + (size_t)i * sh->cap;
}

static size_t range_lo(const struct mosfw_share *sh, uint32_t i)
{
	return 24 + (size_t)((sh->file_len - 24) * (unsigned __int128)i / sh->n);
}

struct mosfw_share *mosfw_share_new(uint32_t n, const char *path, char *errbuf)
{
	struct stat st;
	FILE *fp;
	uint32_t hdr[6];
	struct mosfw_share *sh;
	size_t cap, head, len;

	if (n < 2 || n > SHARE_MAX_WORKERS) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "a shared index needs 2..%u workers, not %u",
		         SHARE_MAX_WORKERS, n);
		return NULL;
	}
	fp = fopen(path, "rb");
	if (!fp || fstat(fileno(fp), &st) < 0 || !S_ISREG(st.st_mode) ||
	    fread(hdr, 1, sizeof(hdr), fp) != sizeof(hdr) ||
	    (hdr[0] != 0xa1b2c3d4u && hdr[0] != 0xa1b23c4du) || hdr[1] != (2u | 4u << 16)) {
		snprintf(
			errbuf, MOSFW_ERRBUF_SIZE,
			"'%s' is not a classic pcap file of this byte order: every core reads it all",
			path);
		if (fp)
			fclose(fp);
		return NULL;
	}
	fclose(fp);
	cap = (size_t)(st.st_size - 24) / n / 16 + 2; /* a record takes 16 bytes at least */
	head = sizeof(*sh) + (size_t)n * sizeof(struct share_scan);
	head = (head + 63) & ~(size_t)63;
	len = head + (size_t)n * cap * sizeof(uint64_t);
	sh = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1,
	          0);
	if (sh == MAP_FAILED) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot map a %zu-byte shared index", len);
		return NULL;
	}
	sh->magic = SHARE_MAGIC;
	sh->n = n;
	sh->file_len = (uint64_t)st.st_size;
	sh->dev = (uint64_t)st.st_dev;
	sh->ino = (uint64_t)st.st_ino;
	sh->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	sh->cap = cap;
	sh->map_len = len;
	sh->entries_off = head;
	return sh;
}

void mosfw_share_free(struct mosfw_share *sh)
{
	if (sh)
		munmap(sh, sh->map_len);
}

void mosfw_share_abandon(struct mosfw_share *sh)
{
	if (sh)
		__atomic_store_n(&sh->abandoned, 1, __ATOMIC_RELEASE);
}

struct mosfw_shared_reader *mosfw_shared_attach(struct mosfw_share *sh, uint32_t index,
                                                uint32_t count, const struct mosfw_shared_file *f)
{
	struct mosfw_shared_reader *r;

	if (!sh || sh->magic != SHARE_MAGIC || count != sh->n || index >= sh->n ||
	    f->len != sh->file_len) {
		mosfw_share_abandon(sh);
		return NULL;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		mosfw_share_abandon(sh);
		return NULL;
	}
	r->sh = sh;
	r->f = *f;
	r->index = index;
	return r;
}

void mosfw_shared_detach(struct mosfw_shared_reader *r)
{
	if (!r)
		return;
	if (r->phase < R_VERIFY)
		mosfw_share_abandon(r->sh); /* nobody may wait for this worker's range */
	free(r);
}

/* 1 with a message when the file shrank under the record at off (a page
 * vanished, or zeros past the new end: pcap_record.h, map_guard.h). */
static int shrank(const struct mosfw_shared_file *f, size_t off, const struct pcap_rec *rec,
                  char *err, size_t errlen)
{
	size_t end = off + 16 + rec->body;
	struct stat st;

	if (rec->wirelen && pcap_rec_next_wirelen(f->base, f->len, end) &&
	    !(f->fault && f->fault->hit))
		return 0;
	if (!(f->fault && f->fault->hit) && (fstat(f->fd, &st) < 0 || (size_t)st.st_size >= end))
		return 0; /* a real record of wire length 0 */
	snprintf(
		err, errlen,
		"truncated dump file; the file shrank while it was read (record at offset %zu cut)",
		off);
	return 1;
}

/* ---- phase 1: index one range ------------------------------------------- */

/* A plausible record header at pos (a found start must chain through
 * CHAIN_CHECK of them, or to the end of the file). */
static int plausible(const struct mosfw_shared_file *f, size_t pos, size_t *next)
{
	uint32_t h[4];

	if (f->len - pos < 16)
		return 0;
	memcpy(h, f->base + pos, 16);
	if (h[2] > f->snapshot || h[2] > h[3] || h[3] > 16 * PCAP_MAX_CAPLEN ||
	    (uint32_t)h[1] >= (f->nano ? 1000000000u : 1000000u) || f->len - pos - 16 < h[2])
		return 0;
	*next = pos + 16 + h[2];
	return 1;
}

static size_t find_start(const struct mosfw_shared_file *f, size_t lo, size_t hi)
{
	size_t o;

	for (o = lo; o < hi; o++) {
		size_t p = o, next;
		int k;
		for (k = 0; k < CHAIN_CHECK && p < f->len; k++) {
			if (!plausible(f, p, &next))
				break;
			p = next;
		}
		if (k == CHAIN_CHECK || p == f->len)
			return o;
	}
	return NO_START;
}

static void index_range(struct mosfw_shared_reader *r)
{
	struct mosfw_share *sh = r->sh;
	const struct mosfw_shared_file *f = &r->f;
	struct share_scan *s = &sh->scan[r->index];
	uint64_t *out = entries(sh, r->index);
	size_t lo = range_lo(sh, r->index), hi = range_lo(sh, r->index + 1);
	size_t pos = r->index == 0 ? 24 : find_start(f, lo, hi), mapped = lo & ~(size_t)4095;
	size_t dropped = mapped;
	int64_t prev_sec = INT64_MIN;

	memset(s, 0, sizeof(*s));
	s->start = pos;
	s->end = pos;
	if (pos == NO_START)
		return;
	while (pos < hi) {
		struct pcap_rec rec;
		struct mosfw_pkt p;
		int res;
		double ts;
		uint64_t e;
		uint32_t owner;

		while (pos + SCAN_CHUNK > mapped && mapped < f->len) {
			size_t n = f->len - mapped < SCAN_CHUNK ? f->len - mapped : SCAN_CHUNK;
			madvise((void *)(f->base + mapped), n, MADV_POPULATE_READ);
			mapped += n;
		}
		if (pos > dropped + 4 * (size_t)SCAN_CHUNK) {
			/* keep resident memory bounded: the pages well behind (read
			 * again in phase 2 only where this worker's packets are) */
			size_t upto = (pos - 2 * (size_t)SCAN_CHUNK) & ~(size_t)4095;
			madvise((void *)(f->base + dropped), upto - dropped, MADV_DONTNEED);
			dropped = upto;
		}
		res = pcap_rec_read(f->base, f->len, pos, f->snapshot, &rec, s->err,
		                    sizeof(s->err));
		if (res == PCAP_REC_EOF) {
			s->status = SCAN_EOF;
			break;
		}
		if (res != PCAP_REC_OK || shrank(f, pos, &rec, s->err, sizeof(s->err))) {
			s->status = SCAN_ERROR;
			break;
		}
		if (f->prog) {
			struct pcap_pkthdr ph;
			ph.caplen = rec.caplen;
			ph.len = rec.wirelen;
			ph.ts.tv_sec = rec.sec;
			ph.ts.tv_usec = rec.frac;
			if (!pcap_offline_filter(f->prog, &ph, f->base + pos + 16)) {
				pos += 16 + (size_t)rec.body;
				continue;
			}
		}
		ts = pcap_rec_ts(&rec, f->nano);
		res = mosfw_parse(f->linktype, f->base + pos + 16, rec.caplen, f->verify_checksums,
		                  &f->decap, &p);
		res = mosfw_parse_wire(res, &p, rec.caplen, rec.wirelen);
		mosfw_count_input(&s->in, res, rec.caplen, rec.wirelen, ts);
		mosfw_count_tunnels(&s->in, res, &p);
		mosfw_count_proto(&s->in, res, &p);
		e = (uint64_t)pos;
		owner = mosfw_ft_owner(res, &p, rec.caplen, sh->n);
		if (owner == MOSFW_OWNER_ALL)
			e |= E_ALL;
		else
			e |= (uint64_t)owner << 44 | (res == MOSFW_PARSE_TCP ? E_TCP : 0);
		if ((int64_t)floor(ts) != prev_sec) {
			e |= E_NEW_SECOND;
			prev_sec = (int64_t)floor(ts);
		}
		out[s->n++] = e;
		pos += 16 + (size_t)rec.body;
	}
	if (pos >= f->len && s->status == SCAN_OK)
		s->status = SCAN_EOF;
	s->end = pos;
}

/* ---- phase 2: check the chain, then read ---------------------------------- */

/* Do the ranges chain? Sets last_range and final. 0 when they do not. */
static int verify(struct mosfw_shared_reader *r)
{
	struct mosfw_share *sh = r->sh;
	uint64_t cur = 24;
	uint32_t i;

	for (i = 0; i < sh->n; i++) {
		const struct share_scan *s = &sh->scan[i];
		uint64_t hi = range_lo(sh, i + 1);
		if (s->start == NO_START) {
			if (cur < hi && cur < sh->file_len)
				return 0; /* a record starts here that this range did not find */
			continue;
		}
		if (s->start != cur)
			return 0;
		cur = s->end;
		r->last_range = i;
		if (s->status == SCAN_ERROR) {
			r->final = MOSFW_SHARED_ERROR;
			snprintf(r->err, sizeof(r->err), "%s", s->err);
			return 1;
		}
		if (s->status == SCAN_EOF) {
			r->final = MOSFW_SHARED_EOF;
			return 1;
		}
	}
	return 0; /* the last range always ends at the end of the file */
}

static int wait_indexed(struct mosfw_shared_reader *r)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (__atomic_load_n(&r->sh->scanned, __ATOMIC_ACQUIRE) == r->sh->n)
			return 1;
		if (__atomic_load_n(&r->sh->abandoned, __ATOMIC_ACQUIRE))
			return -1;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) >
		    WAIT_SLICE_NS)
			return 0;
		sched_yield();
	}
}

int mosfw_shared_next(struct mosfw_shared_reader *r, const uint8_t **frame, uint32_t *caplen,
                      uint32_t *wirelen, double *ts, uint32_t *gidx, size_t *pos, char *err,
                      size_t errlen)
{
	struct mosfw_share *sh = r->sh;

	if (r->phase == R_INDEX) {
		if (__atomic_load_n(&sh->abandoned, __ATOMIC_ACQUIRE)) {
			r->phase = R_END;
			return MOSFW_SHARED_FALLBACK;
		}
		index_range(r);
		__atomic_add_fetch(&sh->scanned, 1, __ATOMIC_ACQ_REL);
		r->phase = R_WAIT;
	}
	if (r->phase == R_WAIT) {
		int w = wait_indexed(r);
		if (w == 0)
			return MOSFW_SHARED_WAIT;
		if (w < 0 || !verify(r)) {
			/* someone reads alone, or a range started inside a record:
			 * every worker reads the whole file itself */
			mosfw_share_abandon(sh);
			r->phase = R_END;
			return MOSFW_SHARED_FALLBACK;
		}
		r->phase = R_READ;
		r->range = 0;
		r->k = 0;
	}
	while (r->phase == R_READ) {
		const struct share_scan *s = &sh->scan[r->range];
		const uint64_t *ent = entries(sh, r->range);

		while (r->k < s->n) {
			uint64_t e = ent[r->k++];
			size_t off = (size_t)(e & E_OFF_MASK);
			int own = E_OWNER(e) == r->index || (e & E_ALL);
			struct pcap_rec rec;

			if (r->k + PREFETCH_AHEAD < s->n) {
				/* this worker's records are scattered through the file:
				 * start loading the headers of one a few records on */
				uint64_t a = ent[r->k + PREFETCH_AHEAD];
				if (E_OWNER(a) == r->index || (a & E_NEW_SECOND))
					__builtin_prefetch(r->f.base + (size_t)(a & E_OFF_MASK));
			}

			r->gidx++;
			if (!own && !(e & E_NEW_SECOND)) {
				r->other_shard += (e & E_TCP) != 0;
				continue;
			}
			r->other_shard += !own && (e & E_TCP);
			if (pcap_rec_read(r->f.base, r->f.len, off, r->f.snapshot, &rec, err,
			                  errlen) !=
			            PCAP_REC_OK || /* (cannot be: checked when indexed) */
			    shrank(&r->f, off, &rec, err, errlen)) {
				r->phase = R_END;
				r->final = MOSFW_SHARED_ERROR;
				snprintf(r->err, sizeof(r->err), "%s", err);
				return MOSFW_SHARED_ERROR;
			}
			*ts = pcap_rec_ts(&rec, r->f.nano);
			*gidx = r->gidx;
			*pos = off + 16 + rec.body;
			if (!own)
				return MOSFW_SHARED_TIME;
			*frame = r->f.base + off + 16;
			*caplen = rec.caplen;
			*wirelen = rec.wirelen;
			r->own++;
			return MOSFW_SHARED_PACKET;
		}
		if (r->range < r->last_range) {
			r->range++;
			r->k = 0;
			continue;
		}
		r->phase = R_END;
	}
	if (r->final == MOSFW_SHARED_ERROR)
		snprintf(err, errlen, "%s", r->err);
	return r->final;
}

static void add_tunnels(struct mosfw_tunnel_stats *a, const struct mosfw_tunnel_stats *s)
{
	int k;

	for (k = 0; k < MOSFW_TUN_KINDS; k++) {
		a->packets[k] += s->packets[k];
		a->too_deep[k] += s->too_deep[k];
		a->broken[k] += s->broken[k];
	}
}

void mosfw_shared_totals(const struct mosfw_shared_reader *r, struct mosfw_stats *a)
{
	const struct mosfw_share *sh = r->sh;
	uint32_t i, k;

	if (r->phase < R_READ)
		return;
	for (i = 0; i <= r->last_range; i++) {
		const struct mosfw_stats *s = &sh->scan[i].in;
		if (!s->packets)
			continue;
		if (!a->packets)
			a->first_ts = s->first_ts; /* the first packet's, as one reader has it */
		if (s->last_ts > a->last_ts)
			a->last_ts = s->last_ts;
		a->packets += s->packets;
		a->bytes += s->bytes;
		a->tcp_packets += s->tcp_packets;
		a->non_tcp += s->non_tcp;
		a->malformed += s->malformed;
		a->truncated += s->truncated;
		a->unsupported_link += s->unsupported_link;
		a->fragments += s->fragments;
		a->bad_checksum += s->bad_checksum;
		add_tunnels(&a->tunnels, &s->tunnels);
		for (k = 0; k < 256; k++)
			a->ip_protos[k] += s->ip_protos[k];
	}
	a->other_shard += r->other_shard;
}
