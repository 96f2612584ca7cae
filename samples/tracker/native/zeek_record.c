/* SPDX-License-Identifier: MIT */
/*
 * zeek_record.c -- the read side of Zeek's conn.log view (zeek_view.h):
 * Zeek's conn_state and payload sizes, the connection uid, and one
 * formatted record (JSON line or Zeek TSV).
 */
#include "zeek.h"
#include "zeek_view.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

/* mosfw's names (the engine's mosfw_state_name() and
 * mosfw_end_reason_name(), which this module does not link to) */
static const char *state_name(unsigned state)
{
	static const char *const n[] = {
		"CLOSED",     "LISTEN",     "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
		"FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK", "TIME_WAIT",
	};
	return state < sizeof(n) / sizeof(n[0]) ? n[state] : "UNKNOWN";
}

static const char *end_reason_name(unsigned r)
{
	static const char *const n[] = {
		"none", "fin", "rst", "timeout", "evicted", "eof", "reused"
	};
	return r < sizeof(n) / sizeof(n[0]) ? n[r] : "unknown";
}

/* ---- the read side --------------------------------------------------------- */

/* TCP_Endpoint::Size */
static uint64_t ep_size(const ep_t *e, const ep_t *peer)
{
	uint64_t size, last, ack;

	if (e->prev_state == Z_SYN_SENT && e->state == Z_RESET && peer->state == Z_INACTIVE &&
	    !no_data_acked(e))
		return 0; /* a half-open connection discovered and aborted */
	last = full_seq(e->last_seq, e->seq_wraps);
	ack = full_seq(e->ack_seq, e->ack_wraps);
	size = (last > ack ? last : ack) - (uint64_t)e->start_seq;
	if (size != 0)
		--size; /* the SYN octet */
	if ((e->flags & EF_FIN) && size != 0)
		--size; /* the FIN octet */
	return size;
}

uint64_t zeek_conn_size(const struct zeek_conn *k, unsigned role)
{
	unsigned side = (k->orig_side ^ (role ? 1u : 0u)) & 1u;
	return ep_size(&k->ep[side], &k->ep[side ^ 1]);
}

/* history matches /^\^?S[^HAFGIQ]*R.*$/ */
static int syn_then_rst(const char *h)
{
	if (*h == '^')
		h++;
	if (*h++ != 'S')
		return 0;
	for (; *h; h++) {
		if (*h == 'R')
			return 1;
		if (strchr("HAFGIQ", *h))
			return 0;
	}
	return 0;
}

/* conn_state() of base/protocols/conn/main.zeek */
const char *zeek_conn_state(const struct zeek_conn *k)
{
	const ep_t *o = &k->ep[k->orig_side & 1], *r = &k->ep[(k->orig_side & 1) ^ 1];
	unsigned os = o->state, rs = r->state;
	int o_inactive = os == Z_INACTIVE || os == Z_PARTIAL;
	int r_inactive = rs == Z_INACTIVE || rs == Z_PARTIAL;

	if (rs == Z_RESET) {
		if (os == Z_SYN_SENT || os == Z_SYN_ACK_SENT ||
		    (os == Z_RESET && ep_size(o, r) == 0 && ep_size(r, o) == 0))
			return "REJ";
		return o_inactive ? "RSTRH" : "RSTR";
	}
	if (os == Z_RESET) {
		if (r_inactive)
			return syn_then_rst(k->history) ? "RSTOS0" : "OTH";
		return "RSTO";
	}
	if (rs == Z_CLOSED && os == Z_CLOSED)
		return "SF";
	if (os == Z_CLOSED)
		return r_inactive ? "SH" : "S2";
	if (rs == Z_CLOSED)
		return o_inactive ? "SHR" : "S3";
	if (os == Z_SYN_SENT && rs == Z_INACTIVE)
		return "S0";
	if (os == Z_ESTABLISHED && rs == Z_ESTABLISHED)
		return "S1";
	return "OTH";
}

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A packet time clamped to what integer conversions can hold (|x| < 1e12
 * s): pcap seconds are signed 32-bit, so times before 1970 come out
 * negative, and pcapng's 64-bit timestamps reach far beyond. */
static inline double ts_clamp(double x)
{
	return x > -1e12 && x < 1e12 ? x : (x < 0 ? -1e12 : 1e12);
}

void zeek_conn_uid(const struct mosfw_flow *f, char *buf)
{
	static const char digits[] =
		"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	const struct mosfw_tuple *t = &f->tuple;
	uint64_t w[4], h, h2;
	int64_t usec = (int64_t)(ts_clamp(f->first_ts) * 1e6 + 0.5);
	int i;

	memcpy(w, t->cli_addr, 16);
	memcpy(w + 2, t->srv_addr, 16);
	h = mix64(t->family);
	for (i = 0; i < 4; i++)
		h = mix64(h ^ w[i]);
	h = mix64(h ^ ((uint64_t)t->cli_port << 16 | t->srv_port));
	h = mix64(h ^ (uint64_t)usec);
	h2 = mix64(h ^ 0x5bd1e9955bd1e995ULL) % 56800235584ULL; /* 62^6 */
	buf[0] = 'C';
	for (i = 11; i >= 1; i--) {
		buf[i] = digits[h % 62];
		h /= 62;
	}
	for (i = 17; i >= 12; i--) {
		buf[i] = digits[h2 % 62];
		h2 /= 62;
	}
	buf[18] = '\0';
}

/* ---- formatting (no printf: a record costs a few hundred ns) -------------- */

struct out {
	char *p, *end;
	int overflow;
};

static inline void put_mem(struct out *o, const char *s, size_t n)
{
	if ((size_t)(o->end - o->p) < n) {
		o->overflow = 1;
		return;
	}
	memcpy(o->p, s, n);
	o->p += n;
}

static inline void put_str(struct out *o, const char *s) { put_mem(o, s, strlen(s)); }

#define PUT_LIT(o, lit) put_mem((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
	char tmp[20];
	int n = 0;

	do {
		tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	put_mem(o, tmp + sizeof(tmp) - n, (size_t)n);
}

/* x with 6 decimals, as "%.6f" prints packet timestamps (a time from a
 * damaged capture may be negative, or absurdly large: clamped) */
static void put_fixed6(struct out *o, double x)
{
	uint64_t us, r;
	char frac[7];
	int i;

	x = ts_clamp(x);
	if (x < 0) {
		PUT_LIT(o, "-");
		x = -x;
	}
	us = (uint64_t)(x * 1e6 + 0.5);
	r = us % 1000000;

	put_u64(o, us / 1000000);
	frac[0] = '.';
	for (i = 6; i >= 1; i--) {
		frac[i] = (char)('0' + r % 10);
		r /= 10;
	}
	put_mem(o, frac, 7);
}

static void put_addr(struct out *o, const uint8_t *a, unsigned family)
{
	char tmp[INET6_ADDRSTRLEN];

	if (family == 4) {
		int i;
		for (i = 0; i < 4; i++) {
			if (i)
				PUT_LIT(o, ".");
			put_u64(o, a[i]);
		}
		return;
	}
	if (!inet_ntop(AF_INET6, a, tmp, sizeof(tmp)))
		strcpy(tmp, "?");
	put_str(o, tmp);
}

/* Writing one record's fields in either format: put_field() opens a
 * field (its separator, and in JSON its key and an opening quote for a
 * string), the caller writes the value, the next put_field() or
 * end_record() closes it. unset_field(): Zeek's "-" in TSV, nothing in
 * JSON (the key is left out). */
struct fields {
	struct out *w;
	int json;
	int n;      /* fields written or unset so far */
	int quoted; /* the open field's value is a JSON string */
};

static void close_field(struct fields *fd)
{
	if (fd->json && fd->quoted)
		PUT_LIT(fd->w, "\"");
	fd->quoted = 0;
}

static void put_field(struct fields *fd, const char *key, int quoted)
{
	close_field(fd);
	if (fd->json) {
		put_str(fd->w, fd->n ? ",\"" : "{\"");
		put_str(fd->w, key);
		put_str(fd->w, quoted ? "\":\"" : "\":");
	} else if (fd->n) {
		PUT_LIT(fd->w, "\t");
	}
	fd->quoted = quoted;
	fd->n++;
}

static void unset_field(struct fields *fd)
{
	close_field(fd);
	if (!fd->json)
		put_str(fd->w, fd->n ? "\t-" : "-");
	fd->n++;
}

static void end_record(struct fields *fd)
{
	close_field(fd);
	if (fd->json)
		PUT_LIT(fd->w, "}");
	PUT_LIT(fd->w, "\n");
}

size_t zeek_conn_record(const struct mosfw_flow *f, const struct zeek_conn *k, unsigned format,
                        char *buf, size_t cap)
{
	const struct mosfw_tuple *t = &f->tuple;
	unsigned orig = k->orig_side & 1, resp = orig ^ 1;
	const uint8_t *oh = orig == MOSFW_SIDE_CLIENT ? t->cli_addr : t->srv_addr;
	const uint8_t *rh = orig == MOSFW_SIDE_CLIENT ? t->srv_addr : t->cli_addr;
	uint16_t op = orig == MOSFW_SIDE_CLIENT ? t->cli_port : t->srv_port;
	uint16_t rp = orig == MOSFW_SIDE_CLIENT ? t->srv_port : t->cli_port;
	double duration = k->last_ts - f->first_ts;
	int have_duration = duration > 0;
	char uid[19];
	struct out o = { buf, buf + cap, 0 };
	struct out *w = &o;
	struct fields fd;

	zeek_conn_uid(f, uid);
	/* one field list for both formats: Zeek's conn.log fields, then
	 * mosfw's (TSV in the #fields order, JSON with the same names) */
	fd.w = w;
	fd.json = format != ZEEK_TSV;
	fd.n = 0;
	fd.quoted = 0;
	put_field(&fd, "ts", 0);
	put_fixed6(w, f->first_ts);
	put_field(&fd, "uid", 1);
	put_str(w, uid);
	put_field(&fd, "id.orig_h", 1);
	put_addr(w, oh, t->family);
	put_field(&fd, "id.orig_p", 0);
	put_u64(w, op);
	put_field(&fd, "id.resp_h", 1);
	put_addr(w, rh, t->family);
	put_field(&fd, "id.resp_p", 0);
	put_u64(w, rp);
	put_field(&fd, "proto", 1);
	PUT_LIT(w, "tcp");
	if (have_duration) { /* Zeek sets duration and the sizes only then */
		put_field(&fd, "duration", 0);
		put_fixed6(w, duration);
		put_field(&fd, "orig_bytes", 0);
		put_u64(w, zeek_conn_size(k, 0));
		put_field(&fd, "resp_bytes", 0);
		put_u64(w, zeek_conn_size(k, 1));
	} else {
		unset_field(&fd);
		unset_field(&fd);
		unset_field(&fd);
	}
	put_field(&fd, "conn_state", 1);
	put_str(w, zeek_conn_state(k));
	if (k->hist_len) {
		put_field(&fd, "history", 1);
		put_str(w, k->history);
	} else {
		unset_field(&fd);
	}
	put_field(&fd, "orig_pkts", 0);
	put_u64(w, f->side[orig].pkts);
	put_field(&fd, "orig_ip_bytes", 0);
	put_u64(w, f->side[orig].ip_bytes);
	put_field(&fd, "resp_pkts", 0);
	put_u64(w, f->side[resp].pkts);
	put_field(&fd, "resp_ip_bytes", 0);
	put_u64(w, f->side[resp].ip_bytes);
	put_field(&fd, "orig_rexmit_pkts", 0);
	put_u64(w, f->side[orig].rexmit_pkts);
	put_field(&fd, "resp_rexmit_pkts", 0);
	put_u64(w, f->side[resp].rexmit_pkts);
	put_field(&fd, "cli_state", 1);
	put_str(w, state_name(f->side[MOSFW_SIDE_CLIENT].state));
	put_field(&fd, "svr_state", 1);
	put_str(w, state_name(f->side[MOSFW_SIDE_SERVER].state));
	put_field(&fd, "close_reason", 1);
	put_str(w, end_reason_name(f->end_reason));
	put_field(&fd, "core", 0);
	put_u64(w, f->core);
	end_record(&fd);
	if (o.overflow)
		return cap;
	if (o.p < o.end)
		*o.p = '\0';
	return (size_t)(o.p - buf);
}
