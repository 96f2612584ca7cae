/* SPDX-License-Identifier: MIT */
/* source.c -- packet input: libpcap for live captures and pcapng, and our
 * own memory-mapped reader for classic pcap files (see map_*). */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef __linux__
#include <poll.h>
#endif

#include "map_guard.h"
#include "mosfw_api.h"
#include "pcap_record.h"
#include "source_live.h"
#include "source_ring.h"

/* The mapped reader: the whole file is mapped read-only and records are
 * handed out in place (no copy, no read() per record). Pages behind the
 * read position are dropped from the mapping every MAP_RELEASE bytes, so
 * resident memory stays bounded whatever the file's size (the kernel's
 * page cache keeps them). */
#define MAP_RELEASE (4u << 20)
/* Every cache line of the file is asked for this many bytes before the
 * read position reaches it (1-16 kB measured alike on the bench capture;
 * every line, not one per record: one per 128 or 256 bytes was slower) */
#define PREFETCH_AHEAD 4096u
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 */
#endif

struct mosfw_map {
	int fd;
	const uint8_t *base;
	size_t len;    /* bytes to read (the file's size when mapped) */
	size_t maplen; /* mapped bytes */
	/* the file shrank while it was read (map_shrink): from `was` to
	 * `shrunk_to` bytes; len stops at what is still there */
	size_t was, shrunk_to;
	int shrunk;
	int guard; /* map_guard.h handle (-1: unguarded) */
	struct mosfw_map_fault fault;
	size_t pos;         /* next record header */
	size_t released;    /* [0, released) dropped from the mapping */
	size_t populated;   /* [0, populated) asked to be mapped in */
	size_t burst_start; /* pos when the burst began: nothing from it is released */
	size_t prefetched;  /* [pos, prefetched) asked into the caches */
	uint32_t snapshot;  /* libpcap's snapshot length for the file */
	int nano;           /* nanosecond timestamps */
	struct bpf_program prog;
	int have_prog;
};

struct mosfw_source {
	pcap_t *pcap;
	struct mosfw_map *map;       /* classic pcap file read through mmap */
	struct mosfw_ring_src *ring; /* -c N offline: this core's ring of the feed */
	int linktype;
	int live;
	int nano;
	char iface[64]; /* live: the interface name */
	char err[MOSFW_ERRBUF_SIZE];
};

/* Live captures are non-blocking and mosfw_source_next() polls this long
 * itself: libpcap's TPACKET_V3 read blocks until a packet arrives, so an
 * idle capture would never return (no wall-time timeouts or ticks, and a
 * downed interface would not be noticed). */
#define LIVE_POLL_MS 50


static int apply_filter(struct mosfw_source *s, const char *bpf, char *errbuf)
{
	struct bpf_program prog;

	if (!bpf || !*bpf)
		return 0;
	if (pcap_compile(s->pcap, &prog, bpf, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "bad BPF filter '%s': %s", bpf,
		         pcap_geterr(s->pcap));
		return -1;
	}
	if (pcap_setfilter(s->pcap, &prog) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot set BPF filter '%s': %s", bpf,
		         pcap_geterr(s->pcap));
		pcap_freecode(&prog);
		return -1;
	}
	pcap_freecode(&prog);
	return 0;
}

/* ---- the mapped classic-pcap reader ------------------------------------
 *
 * libpcap has already opened the file and checked its header (its
 * messages for a bad header stay), so this only takes over reading the
 * records, and only for the common case: a classic pcap file of this
 * machine's byte order, version 2.4, micro- or nanosecond timestamps, on a
 * regular file that can be mapped. Anything else (pcapng, swapped byte
 * order, old versions, pipes) stays with libpcap. Records are checked as
 * libpcap's sf-pcap.c checks them, with its messages: a cut record header
 * or body is "truncated dump file; ...", a capture length above 262144 is
 * invalid, one above the file's snapshot length is cut to it.
 * MOSFW_READER=libpcap in the environment turns this reader off. */

static void map_close(struct mosfw_map *m)
{
	if (!m)
		return;
	mosfw_map_guard_remove(m->guard);
	if (m->base && m->maplen)
		munmap((void *)m->base, m->maplen);
	if (m->fd >= 0)
		close(m->fd);
	if (m->have_prog)
		pcap_freecode(&m->prog);
	free(m);
}

/* 0 with s->map set (mapped), 0 with s->map NULL (libpcap keeps reading),
 * -1 with a message (a bad BPF filter). */
static int map_open(struct mosfw_source *s, const char *path, const char *bpf, char *errbuf)
{
	const char *env = getenv("MOSFW_READER");
	struct mosfw_map *m;
	struct stat st;
	uint32_t hdr[6];
	void *base;

	if (env && strcmp(env, "libpcap") == 0)
		return 0;
	m = calloc(1, sizeof(*m));
	if (!m)
		return 0;
	m->guard = -1;
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0 || fstat(m->fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size < (off_t)sizeof(hdr) || pread(m->fd, hdr, sizeof(hdr), 0) != sizeof(hdr) ||
	    (hdr[0] != 0xa1b2c3d4u && hdr[0] != 0xa1b23c4du) || (hdr[1] & 0xffffu) != 2 ||
	    (hdr[1] >> 16) != 4) {
		map_close(m);
		return 0;
	}
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, m->fd, 0);
	if (base == MAP_FAILED) {
		map_close(m);
		return 0;
	}
	m->base = base;
	m->len = m->maplen = (size_t)st.st_size;
	m->guard = mosfw_map_guard_add(base, m->maplen, &m->fault);
	m->pos = sizeof(hdr);
	m->nano = hdr[0] == 0xa1b23c4du;
	m->snapshot = (uint32_t)pcap_snapshot(s->pcap);
	if (m->snapshot == 0 || m->snapshot > PCAP_MAX_CAPLEN)
		m->snapshot = PCAP_MAX_CAPLEN;
	madvise(base, m->len, MADV_SEQUENTIAL);
	if (bpf && *bpf) {
		if (pcap_compile(s->pcap, &m->prog, bpf, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "bad BPF filter '%s': %s", bpf,
			         pcap_geterr(s->pcap));
			map_close(m);
			return -1;
		}
		m->have_prog = 1;
	}
	s->map = m;
	return 0;
}

/* The file grew since it was mapped (still being written): map it again. */
static int map_grow(struct mosfw_map *m)
{
	struct stat st;
	void *base;

	if (fstat(m->fd, &st) < 0 || (size_t)st.st_size <= m->len)
		return 0;
	base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, m->fd, 0);
	if (base == MAP_FAILED)
		return 0;
	mosfw_map_guard_move(m->guard, base, (size_t)st.st_size);
	munmap((void *)m->base, m->maplen);
	m->base = base;
	m->len = m->maplen = (size_t)st.st_size;
	m->released = 0;
	m->populated = m->pos & ~(size_t)4095;
	madvise(base, m->len, MADV_SEQUENTIAL);
	return 1;
}

/* The file shrank under the reader (tcpdump -C/-W rotation, logrotate
 * copytruncate), or a page at offset `upto` vanished (map_guard.h):
 * nothing from there or the file's new end on is read; the input ends
 * there with a read error. */
static void map_shrink(struct mosfw_map *m, size_t upto)
{
	struct stat st;
	size_t now = fstat(m->fd, &st) == 0 ? (size_t)st.st_size : 0;

	if (upto > now)
		upto = now;
	if (upto >= m->len)
		return;
	if (!m->shrunk)
		m->was = m->len;
	m->shrunk = 1;
	m->shrunk_to = now;
	m->len = upto < m->pos ? m->pos : upto;
	if (m->populated > m->len)
		m->populated = m->len;
}

/* Moved past a record: map the pages ahead, drop those well behind. */
static void map_advance(struct mosfw_map *m)
{
	/* the records are read once, in order: stream the file into the
	 * caches ahead of the reader (a prefetch never faults) */
	{
		size_t want = m->pos + PREFETCH_AHEAD;
		if (m->prefetched < m->pos)
			m->prefetched = m->pos & ~(size_t)63;
		if (want > m->populated)
			want = m->populated;
		for (; m->prefetched < want; m->prefetched += 64)
			__builtin_prefetch(m->base + m->prefetched);
	}
	if (m->pos + MAP_RELEASE > m->populated && m->populated < m->len &&
	    (map_shrink(m, SIZE_MAX), m->populated < m->len)) {
		/* (one fstat per window: did the file shrink?) map the next
		 * pages in one call rather than a page fault per 64 kB (old
		 * kernels refuse it: faults then do it) */
		size_t n =
			m->len - m->populated < MAP_RELEASE ? m->len - m->populated : MAP_RELEASE;
		madvise((void *)(m->base + m->populated), n, MADV_POPULATE_READ);
		m->populated += n;
	}
	if (m->pos - m->released >= 2 * (size_t)MAP_RELEASE) {
		/* drop the pages well behind the read position */
		size_t upto = m->pos - MAP_RELEASE;
		if (upto > m->burst_start)
			upto = m->burst_start; /* this burst's frames stay readable */
		upto &= ~(size_t)0xfffff;
		if (upto > m->released) {
			madvise((void *)(m->base + m->released), upto - m->released, MADV_DONTNEED);
			m->released = upto;
		}
	}
}

static int map_next(struct mosfw_source *s, const uint8_t **frame, uint32_t *caplen,
                    uint32_t *wirelen, double *ts)
{
	struct mosfw_map *m = s->map;

	for (;;) {
		struct pcap_rec rec;
		struct pcap_pkthdr ph;
		int r = pcap_rec_read(m->base, m->len, m->pos, m->snapshot, &rec, s->err,
		                      sizeof(s->err));

		if (r != PCAP_REC_OK && !m->shrunk && map_grow(m))
			r = pcap_rec_read(m->base, m->len, m->pos, m->snapshot, &rec, s->err,
			                  sizeof(s->err));
		if (r == PCAP_REC_OK &&
		    (!rec.wirelen ||
		     !pcap_rec_next_wirelen(m->base, m->len, m->pos + 16 + rec.body) ||
		     m->fault.hit)) {
			/* zeros or a vanished page (pcap_record.h): did the file
			 * shrink under this record? (one fstat, only then) */
			map_shrink(m, m->fault.hit ? m->fault.off : SIZE_MAX);
			m->fault.hit = 0;
			if (m->pos + 16 + rec.body > m->len)
				r = PCAP_REC_ERROR;
		}
		if (r != PCAP_REC_OK && m->shrunk) {
			snprintf(
				s->err, sizeof(s->err),
				"truncated dump file; the file shrank from %zu to %zu bytes while it was "
				"read (next record at offset %zu)",
				m->was, m->shrunk_to, m->pos);
			return MOSFW_SRC_ERROR;
		}
		if (r == PCAP_REC_EOF)
			return MOSFW_SRC_EOF;
		if (r != PCAP_REC_OK)
			return MOSFW_SRC_ERROR;
		*frame = m->base + m->pos + 16;
		*caplen = rec.caplen;
		*wirelen = rec.wirelen;
		*ts = pcap_rec_ts(&rec, m->nano);
		m->pos += 16 + (size_t)rec.body;
		map_advance(m);
		if (m->have_prog) {
			ph.caplen = rec.caplen;
			ph.len = rec.wirelen;
			ph.ts.tv_sec = rec.sec;
			ph.ts.tv_usec = rec.frac;
			if (!pcap_offline_filter(&m->prog, &ph, *frame))
				continue;
		}
		return MOSFW_SRC_PACKET;
	}
}

struct mosfw_source *mosfw_source_open_file(const char *path, const char *bpf, char *errbuf)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct mosfw_source *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	s->pcap = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!s->pcap) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot read capture '%s': %s", path, perr);
		free(s);
		return NULL;
	}
	s->nano = pcap_get_tstamp_precision(s->pcap) == PCAP_TSTAMP_PRECISION_NANO;
	s->linktype = pcap_datalink(s->pcap);
	if (map_open(s, path, bpf, errbuf) < 0 || (!s->map && apply_filter(s, bpf, errbuf) < 0)) {
		mosfw_source_close(s);
		return NULL;
	}
	return s;
}

struct mosfw_source *mosfw_source_open_live(const char *iface, const char *bpf, int snaplen,
                                            int promisc, int buffer_mb, char *errbuf)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct mosfw_source *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	s->live = 1;
	snprintf(s->iface, sizeof(s->iface), "%s", iface);
	s->pcap = pcap_create(iface, perr);
	if (!s->pcap) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot open interface '%s': %s", iface, perr);
		free(s);
		return NULL;
	}
	pcap_set_snaplen(s->pcap, snaplen > 0 ? snaplen : 65535);
	pcap_set_promisc(s->pcap, promisc);
	pcap_set_timeout(s->pcap, 50);
	pcap_set_buffer_size(s->pcap, (buffer_mb > 0 ? buffer_mb : 64) * 1024 * 1024);
	pcap_set_tstamp_precision(s->pcap, PCAP_TSTAMP_PRECISION_NANO);
	rc = pcap_activate(s->pcap);
	if (rc < 0) {
		const char *why = pcap_geterr(s->pcap);
		if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "no such interface '%s': %s", iface,
			         why);
		else if (rc == PCAP_ERROR_PERM_DENIED)
			snprintf(
				errbuf, MOSFW_ERRBUF_SIZE,
				"permission denied capturing on '%s' (needs root or CAP_NET_RAW): %s",
				iface, why);
		else if (rc == PCAP_ERROR_IFACE_NOT_UP)
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "interface '%s' is not up", iface);
		else
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot capture on '%s': %s", iface,
			         *why ? why : pcap_statustostr(rc));
		pcap_close(s->pcap);
		free(s);
		return NULL;
	}
	s->nano = pcap_get_tstamp_precision(s->pcap) == PCAP_TSTAMP_PRECISION_NANO;
	s->linktype = pcap_datalink(s->pcap);
	if (pcap_setnonblock(s->pcap, 1, perr) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot capture on '%s': %s", iface, perr);
		mosfw_source_close(s);
		return NULL;
	}
	if (apply_filter(s, bpf, errbuf) < 0) {
		mosfw_source_close(s);
		return NULL;
	}
	return s;
}

int mosfw_source_join_fanout(struct mosfw_source *s, unsigned group, char *errbuf)
{
	return mosfw_live_join_fanout(s->pcap, s->live, group, errbuf);
}

int mosfw_source_next(struct mosfw_source *s, const uint8_t **frame, uint32_t *caplen,
                      uint32_t *wirelen, double *ts)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	int rc;

	if (s->map)
		return map_next(s, frame, caplen, wirelen, ts);
	if (s->ring)
		return mosfw_ring_src_next(s->ring, frame, caplen, wirelen, ts, &s->linktype);
	rc = pcap_next_ex(s->pcap, &h, &data);

#ifdef __linux__
	if (rc == 0 && s->live) {
		/* nothing ready: wait (bounded) for the next block */
		struct pollfd pfd = { pcap_get_selectable_fd(s->pcap), POLLIN, 0 };
		if (pfd.fd >= 0 && poll(&pfd, 1, LIVE_POLL_MS) > 0)
			rc = pcap_next_ex(s->pcap, &h, &data);
	}
#endif
	if (rc == 1) {
		*frame = data;
		*caplen = h->caplen;
		*wirelen = h->len;
		*ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec * (s->nano ? 1e-9 : 1e-6);
		return MOSFW_SRC_PACKET;
	}
	if (rc == 0) {
		if (s->live && mosfw_live_iface_down(s->pcap, s->iface)) {
			snprintf(s->err, sizeof(s->err), "interface '%s' went down", s->iface);
			return MOSFW_SRC_ERROR;
		}
		return MOSFW_SRC_TIMEOUT;
	}
	if (rc == PCAP_ERROR_BREAK)
		return s->live ? MOSFW_SRC_BREAK : MOSFW_SRC_EOF;
	snprintf(s->err, sizeof(s->err), "%s", pcap_geterr(s->pcap));
	return MOSFW_SRC_ERROR;
}

int mosfw_source_linktype(const struct mosfw_source *s) { return s->linktype; }

const char *mosfw_source_linktype_name(const struct mosfw_source *s)
{
	const char *n = pcap_datalink_val_to_name(s->linktype);
	return n ? n : "unknown";
}

int mosfw_source_is_live(const struct mosfw_source *s) { return s->live; }

void mosfw_source_expect_size(struct mosfw_source *s, uint64_t size)
{
	struct mosfw_map *m = s->map;

	if (!m || size <= m->len || m->shrunk)
		return;
	m->was = (size_t)size;
	m->shrunk = 1;
	m->shrunk_to = m->len;
}

struct mosfw_source *mosfw_source_open_ring(struct feed_shared *sh, uint32_t core, char *errbuf)
{
	struct mosfw_source *s = calloc(1, sizeof(*s));

	if (!s || !(s->ring = mosfw_ring_src_open(sh, core))) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot read core %u's ring of the input",
		         core);
		free(s);
		return NULL;
	}
	s->linktype = sh->linktype;
	return s;
}

int mosfw_source_from_ring(const struct mosfw_source *s) { return s->ring != NULL; }

uint32_t mosfw_source_index(const struct mosfw_source *s)
{
	return s->ring ? mosfw_ring_src_index(s->ring) : 0;
}

void mosfw_source_ring_totals(const struct mosfw_source *s, struct mosfw_stats *add)
{
	if (s->ring)
		mosfw_ring_src_totals(s->ring, add);
}

void mosfw_source_leave(struct mosfw_source *s)
{
	if (s->ring)
		mosfw_ring_src_leave(s->ring);
}

void mosfw_source_burst_begin(struct mosfw_source *s)
{
	if (s->ring)
		mosfw_ring_src_burst_begin(s->ring);
	else if (s->map)
		s->map->burst_start = s->map->pos;
}

int mosfw_source_frames_stable(const struct mosfw_source *s) { return s->map || s->ring; }

int mosfw_source_burst_full(const struct mosfw_source *s, uint64_t map_bytes)
{
	if (s->ring)
		return mosfw_ring_src_burst_full(s->ring);
	return s->map && s->map->pos - s->map->burst_start >= map_bytes;
}

const uint8_t *mosfw_source_peek(const struct mosfw_source *s, uint32_t *caplen,
                                 uint32_t *flow_hash, int *hashed)
{
	const struct mosfw_map *m = s->map;
	struct pcap_rec rec;
	char err[MOSFW_ERRBUF_SIZE]; /* (a bad record is told when it is read) */

	*hashed = 0;
	if (s->ring)
		return mosfw_ring_src_peek(s->ring, caplen, s->linktype, flow_hash, hashed);
	if (!m || m->have_prog ||
	    pcap_rec_read(m->base, m->len, m->pos, m->snapshot, &rec, err, sizeof(err)) !=
	            PCAP_REC_OK)
		return NULL;
	*caplen = rec.caplen;
	return m->base + m->pos + 16;
}

uint64_t mosfw_source_burst_bytes(const struct mosfw_source *s)
{
	if (s->ring)
		return mosfw_ring_src_burst_bytes(s->ring);
	return s->map ? s->map->pos - s->map->burst_start : 0;
}
const char *mosfw_source_error(const struct mosfw_source *s)
{
	return s->ring ? mosfw_ring_src_error(s->ring) : s->err;
}

void mosfw_source_drops(struct mosfw_source *s, uint64_t *kernel, uint64_t *iface)
{
	struct pcap_stat st;

	*kernel = *iface = 0;
	if (s->live && pcap_stats(s->pcap, &st) == 0) {
		*kernel = st.ps_drop;
		*iface = st.ps_ifdrop;
	}
}

int64_t mosfw_source_offset(struct mosfw_source *s)
{
	FILE *fp;

	if (s->live)
		return -1;
	if (s->ring)
		return mosfw_ring_src_offset(s->ring);
	if (s->map)
		return (int64_t)s->map->pos;
	fp = pcap_file(s->pcap);
	return fp ? (int64_t)ftell(fp) : -1;
}


void mosfw_source_close(struct mosfw_source *s)
{
	if (!s)
		return;
	map_close(s->map);
	mosfw_ring_src_close(s->ring);
	if (s->pcap)
		pcap_close(s->pcap);
	free(s);
}
