/* SPDX-License-Identifier: MIT */
/* ipfrag.c -- IPv4/IPv6 fragment reassembly (ipfrag.h). Every read is
 * bounds-checked against caplen; memory is capped by memcap. */
#include "ipfrag.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N_BUCKETS 4096u
#define MAX_BLOCKS ((MOSFW_FRAG_MAX_IP + 7u) / 8u) /* 8-byte fragment blocks */

struct mosfw_frag_dgram {
	struct mosfw_frag_dgram *hnext;       /* hash chain */
	struct mosfw_frag_dgram *prev, *next; /* age list, oldest first */
	uint32_t hash, id;
	uint8_t family, proto;
	uint8_t have_last; /* the fragment with MF = 0 was seen: total is known */
	uint8_t conflict;  /* overlapping fragments carried different bytes */
	uint8_t src[16], dst[16];
	double first_ts;
	uint32_t total;    /* payload bytes of the whole datagram (have_last) */
	uint32_t max_end;  /* highest fragment end seen */
	uint32_t covered;  /* blocks present */
	uint32_t hdr_len;  /* bytes in hdr: 0 until the offset-0 fragment */
	uint32_t l3_off;   /* IP header in hdr */
	uint32_t frag_hdr; /* IPv6: the Fragment header, from the IP header */
	uint32_t nh_pos;   /* IPv6: the Next Header byte that names it, from the IP header */
	uint32_t cap;      /* bytes allocated at data */
	uint8_t *data;
	uint64_t bits[(MAX_BLOCKS + 63u) / 64u];
	uint8_t hdr[MOSFW_FRAG_MAX_HDR];
};

struct mosfw_ipfrag {
	uint64_t memcap, mem, peak;
	double timeout;
	uint64_t live;
	struct mosfw_frag_dgram **buckets; /* allocated with the first fragment */
	struct mosfw_frag_dgram *oldest, *newest;
	uint8_t *out; /* the last rebuilt frame */
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

struct mosfw_ipfrag *mosfw_ipfrag_new(uint64_t memcap, double timeout)
{
	struct mosfw_ipfrag *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->memcap = memcap;
	t->timeout = timeout;
	return t;
}

static uint64_t dgram_mem(const struct mosfw_frag_dgram *d) { return sizeof(*d) + d->cap; }

static void unlink_dgram(struct mosfw_ipfrag *t, struct mosfw_frag_dgram *d)
{
	struct mosfw_frag_dgram **pp = &t->buckets[d->hash & (N_BUCKETS - 1)];

	while (*pp != d)
		pp = &(*pp)->hnext;
	*pp = d->hnext;
	if (d->prev)
		d->prev->next = d->next;
	else
		t->oldest = d->next;
	if (d->next)
		d->next->prev = d->prev;
	else
		t->newest = d->prev;
	t->mem -= dgram_mem(d);
	t->live--;
	free(d->data);
	free(d);
}

void mosfw_ipfrag_free(struct mosfw_ipfrag *t)
{
	if (!t)
		return;
	while (t->oldest)
		unlink_dgram(t, t->oldest);
	free(t->buckets);
	free(t->out);
	free(t);
}

double mosfw_ipfrag_next_expiry(const struct mosfw_ipfrag *t)
{
	return t->oldest ? t->oldest->first_ts + t->timeout : HUGE_VAL;
}

void mosfw_ipfrag_expire(struct mosfw_ipfrag *t, double now, struct mosfw_stats *st)
{
	while (t->oldest && t->oldest->first_ts + t->timeout <= now) {
		unlink_dgram(t, t->oldest);
		st->frag_timeouts++;
	}
}

void mosfw_ipfrag_usage(const struct mosfw_ipfrag *t, uint64_t *datagrams, uint64_t *peak)
{
	*datagrams = t ? t->live : 0;
	*peak = t ? t->peak : 0;
}

/* Make room for `need` more bytes by dropping the oldest datagrams other
 * than keep. 0 when there is still no room. */
static int make_room(struct mosfw_ipfrag *t, uint64_t need, const struct mosfw_frag_dgram *keep,
                     struct mosfw_stats *st)
{
	while (t->mem + need > t->memcap) {
		struct mosfw_frag_dgram *d = t->oldest;
		if (d && d == keep)
			d = d->next;
		if (!d)
			return 0;
		unlink_dgram(t, d);
		st->frag_cap_drops++;
	}
	return 1;
}

static uint32_t key_hash(int family, const uint8_t *src, const uint8_t *dst, uint32_t id)
{
	uint32_t h = 2166136261u ^ (uint32_t)family;
	int i, n = family == 4 ? 4 : 16;

	for (i = 0; i < n; i++)
		h = (h ^ src[i]) * 16777619u;
	for (i = 0; i < n; i++)
		h = (h ^ dst[i]) * 16777619u;
	h = (h ^ id) * 16777619u;
	return h ^ (h >> 15);
}

static struct mosfw_frag_dgram *find_or_add(struct mosfw_ipfrag *t, int family, const uint8_t *src,
                                            const uint8_t *dst, uint32_t id, uint8_t proto,
                                            double ts, struct mosfw_stats *st)
{
	uint32_t h = key_hash(family, src, dst, id), n = family == 4 ? 4 : 16;
	struct mosfw_frag_dgram *d;

	if (!t->buckets && !(t->buckets = calloc(N_BUCKETS, sizeof(*t->buckets)))) {
		st->nomem++;
		return NULL;
	}
	for (d = t->buckets[h & (N_BUCKETS - 1)]; d; d = d->hnext)
		if (d->hash == h && d->id == id && d->family == family && d->proto == proto &&
		    !memcmp(d->src, src, n) && !memcmp(d->dst, dst, n))
			return d;
	if (!make_room(t, sizeof(*d), NULL, st)) {
		st->frag_cap_drops++;
		return NULL;
	}
	if (!(d = calloc(1, sizeof(*d)))) {
		st->nomem++;
		return NULL;
	}
	d->hash = h;
	d->id = id;
	d->family = (uint8_t)family;
	d->proto = proto;
	memcpy(d->src, src, n);
	memcpy(d->dst, dst, n);
	d->first_ts = ts;
	d->hnext = t->buckets[h & (N_BUCKETS - 1)];
	t->buckets[h & (N_BUCKETS - 1)] = d;
	d->prev = t->newest;
	if (t->newest)
		t->newest->next = d;
	else
		t->oldest = d;
	t->newest = d;
	t->mem += dgram_mem(d);
	if (t->mem > t->peak)
		t->peak = t->mem;
	t->live++;
	return d;
}

/* Grow d->data to hold `end` bytes. 0 when the cap or memory says no
 * (the datagram is then dropped by the caller). */
static int reserve(struct mosfw_ipfrag *t, struct mosfw_frag_dgram *d, uint32_t end,
                   struct mosfw_stats *st)
{
	uint32_t ncap;
	uint8_t *nd;

	if (end <= d->cap)
		return 1;
	ncap = (end + 2047u) & ~2047u;
	if (ncap > MOSFW_FRAG_MAX_IP + 1u)
		ncap = MOSFW_FRAG_MAX_IP + 1u;
	if (!make_room(t, ncap - d->cap, d, st)) {
		st->frag_cap_drops++;
		return 0;
	}
	if (!(nd = realloc(d->data, ncap))) {
		st->nomem++;
		return 0;
	}
	t->mem += ncap - d->cap;
	if (t->mem > t->peak)
		t->peak = t->mem;
	d->data = nd;
	d->cap = ncap;
	return 1;
}

/* Copy [off, off + len) in, first copy wins. Returns bit 0: an overlap,
 * bit 1: overlapping bytes differed. */
static int merge(struct mosfw_frag_dgram *d, const uint8_t *src, uint32_t off, uint32_t len)
{
	uint32_t b, end = off + len, res = 0;

	for (b = off / 8u; b * 8u < end; b++) {
		uint32_t lo = b * 8u < off ? off : b * 8u;
		uint32_t hi = b * 8u + 8u < end ? b * 8u + 8u : end;
		uint64_t bit = 1ull << (b & 63u);
		if (d->bits[b / 64u] & bit) {
			res |= 1;
			if (memcmp(d->data + lo, src + (lo - off), hi - lo))
				res |= 2;
		} else {
			memcpy(d->data + lo, src + (lo - off), hi - lo);
			d->bits[b / 64u] |= bit;
			d->covered++;
		}
	}
	return (int)res;
}

/* IPv6: where the Next Header byte naming the Fragment header at frag_hdr
 * is (6: the fixed header's; else in the extension header before it),
 * walking the headers the parser walked (all before frag_hdr, captured).
 * 0 when they do not end at frag_hdr. */
static uint32_t v6_next_header_pos(const uint8_t *ip, uint32_t frag_hdr)
{
	uint32_t pos = 6, o = 40;
	uint8_t nh = ip[6];

	while (o < frag_hdr) {
		pos = o;
		o += nh == 51 ? ((uint32_t)ip[o + 1] + 2u) * 4u : ((uint32_t)ip[o + 1] + 1u) * 8u;
		nh = ip[pos];
	}
	return o == frag_hdr ? pos : 0;
}

static uint16_t ip_csum(const uint8_t *p, uint32_t len)
{
	uint32_t s = 0;

	for (; len > 1; p += 2, len -= 2)
		s += rd16(p);
	if (len)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* The whole datagram as one frame in t->out. */
static uint32_t rebuild(struct mosfw_ipfrag *t, const struct mosfw_frag_dgram *d)
{
	uint8_t *ip = t->out + d->l3_off;

	memcpy(t->out, d->hdr, d->hdr_len);
	memcpy(t->out + d->hdr_len, d->data, d->total);
	if (d->family == 4) {
		uint32_t ihl = d->hdr_len - d->l3_off, n = ihl + d->total;
		uint16_t c;
		ip[2] = (uint8_t)(n >> 8);
		ip[3] = (uint8_t)n;
		ip[6] &= 0x40; /* DF kept; MF and the offset cleared */
		ip[7] = 0;
		ip[10] = ip[11] = 0;
		c = ip_csum(ip, ihl);
		ip[10] = (uint8_t)(c >> 8);
		ip[11] = (uint8_t)c;
	} else {
		/* the Fragment header is taken out (RFC 8200 4.5: the
		 * reassembled packet's Next Header is the first fragment's
		 * Fragment header's), as if it had never been cut */
		uint32_t hl = d->hdr_len - 8u, n = hl - d->l3_off - 40u + d->total;
		ip[4] = (uint8_t)(n >> 8);
		ip[5] = (uint8_t)n;
		ip[d->nh_pos] = d->hdr[d->l3_off + d->frag_hdr];
		memmove(t->out + hl, t->out + hl + 8u, d->total);
		return hl + d->total;
	}
	return d->hdr_len + d->total;
}

int mosfw_ipfrag_add(struct mosfw_ipfrag *t, const uint8_t *frame, uint32_t caplen, uint32_t l3_off,
                     int family, uint32_t frag_hdr, double ts, struct mosfw_stats *st,
                     const uint8_t **out, uint32_t *out_len, int *conflict)
{
	const uint8_t *ip = frame + l3_off;
	uint32_t avail = caplen > l3_off ? caplen - l3_off : 0;
	uint32_t hlen, iplen, off, len, id, end;
	uint8_t proto = 0;
	int mf, m;
	struct mosfw_frag_dgram *d;

	*conflict = 0;
	if (t->oldest && ts >= mosfw_ipfrag_next_expiry(t))
		mosfw_ipfrag_expire(t, ts, st);
	if (!t->memcap)
		return MOSFW_FRAG_DROPPED; /* reassembly off: only counted */
	if (family == 4) {
		uint16_t fo;
		if (avail < 20)
			goto bad;
		hlen = (uint32_t)(ip[0] & 0x0f) * 4u;
		iplen = rd16(ip + 2);
		fo = rd16(ip + 6);
		off = (uint32_t)(fo & 0x1fff) * 8u;
		mf = (fo & 0x2000) != 0;
		id = rd16(ip + 4);
		proto = ip[9];
	} else {
		uint16_t fo;
		if (avail < 40 || frag_hdr < 40 || frag_hdr + 8u > avail)
			goto bad;
		hlen = frag_hdr + 8u;
		iplen = 40u + rd16(ip + 4);
		fo = rd16(ip + frag_hdr + 2);
		off = fo & 0xfff8u;
		mf = fo & 1;
		id = rd32(ip + frag_hdr + 4);
	}
	/* the fragment's bytes: all captured, a whole number of 8-byte
	 * blocks unless it is the last, and the datagram within 65535 bytes
	 * (RFC 791 / RFC 8200: the reassembled length field must hold it) */
	if (hlen < 20 || iplen <= hlen || iplen > avail)
		goto bad;
	len = iplen - hlen;
	end = off + len;
	if ((mf && (len & 7u)) || (family == 4 ? hlen : hlen - 48u) + end > MOSFW_FRAG_MAX_IP)
		goto bad;
	if (!(d = find_or_add(t, family, ip + (family == 4 ? 12 : 8), ip + (family == 4 ? 16 : 24),
	                      id, proto, ts, st)))
		return MOSFW_FRAG_DROPPED;
	/* a last fragment that ends elsewhere than the first one said, or a
	 * fragment past the end: the datagram is inconsistent, first wins */
	if ((!mf && d->have_last && end != d->total) ||
	    (!mf && !d->have_last && d->max_end > end) || (d->have_last && end > d->total)) {
		st->frag_overlaps++;
		st->frag_conflicts++;
		d->conflict = 1;
		return MOSFW_FRAG_HELD;
	}
	if (!reserve(t, d, end, st)) {
		unlink_dgram(t, d);
		return MOSFW_FRAG_DROPPED;
	}
	if (!mf && !d->have_last) {
		d->have_last = 1;
		d->total = end;
	}
	if (end > d->max_end)
		d->max_end = end;
	m = merge(d, ip + hlen, off, len);
	if (m & 1)
		st->frag_overlaps++;
	if (m & 2) {
		st->frag_conflicts++;
		d->conflict = 1;
	}
	if (off == 0 && !d->hdr_len) {
		if (l3_off + hlen > MOSFW_FRAG_MAX_HDR) {
			/* a link layer and extension headers that long: not kept */
			unlink_dgram(t, d);
			goto bad;
		}
		if (family == 6 && !(d->nh_pos = v6_next_header_pos(ip, frag_hdr))) {
			unlink_dgram(t, d);
			goto bad;
		}
		memcpy(d->hdr, frame, l3_off + hlen);
		d->hdr_len = l3_off + hlen;
		d->l3_off = l3_off;
		d->frag_hdr = frag_hdr;
	}
	if (!d->have_last || !d->hdr_len || d->covered != (d->total + 7u) / 8u)
		return MOSFW_FRAG_HELD;
	if (d->hdr_len - d->l3_off - (family == 4 ? 0u : 48u) + d->total > MOSFW_FRAG_MAX_IP) {
		/* the first fragment's headers are longer than the last one's
		 * and the whole no longer fits the length field */
		unlink_dgram(t, d);
		goto bad;
	}
	if (!t->out && !(t->out = malloc(MOSFW_FRAG_MAX_HDR + MOSFW_FRAG_MAX_IP + 1u))) {
		st->nomem++;
		unlink_dgram(t, d);
		return MOSFW_FRAG_DROPPED;
	}
	*out = t->out;
	*out_len = rebuild(t, d);
	*conflict = d->conflict;
	st->frag_reassembled++;
	unlink_dgram(t, d);
	return MOSFW_FRAG_COMPLETE;
bad:
	st->frag_malformed++;
	return MOSFW_FRAG_DROPPED;
}
