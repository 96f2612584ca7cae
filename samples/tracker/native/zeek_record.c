/* SPDX-License-Identifier: MIT */
/*
 * zeek_record.c -- the read side of Zeek's conn.log view (zeek_view.h):
 * Zeek's conn_state and payload sizes, the connection uid, and one
 * formatted record (JSON line or Zeek TSV).
 */
#include "zeek.h"
#include "zeek_view.h"

#include <string.h>

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

/* ---- the read side ---------------------------------------------------------
 */

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

static const char digits62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

#define B62_3 238328u    /* 62^3 */
#define B62_5 916132832u /* 62^5 */

/* v (below 62^n) as n base-62 digits, most significant first */
static inline void base62(char *p, int n, uint32_t v)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = digits62[v % 62];
		v /= 62;
	}
}

void zeek_conn_uid(const struct mosfw_flow *f, char *buf)
{
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
	/* buf[1..11]: h in base 62 (11 digits hold any 64-bit value),
   * buf[12..17]: h2 in base 62; cut into parts below 2^32 first, so
   * that most divisions are 32-bit and the parts' chains independent */
	buf[0] = 'C';
	base62(buf + 7, 5, (uint32_t)(h % B62_5));
	h /= B62_5;
	base62(buf + 2, 5, (uint32_t)(h % B62_5));
	buf[1] = digits62[h / B62_5]; /* < 62: 2^64 / 62^10 is about 21.5 */
	base62(buf + 15, 3, (uint32_t)(h2 % B62_3));
	base62(buf + 12, 3, (uint32_t)(h2 / B62_3));
	buf[18] = '\0';
}

int zeek_is_local(const struct zeek_nets *nets, unsigned family, const uint8_t *addr)
{
	uint32_t i;

	if (!nets || !nets->n)
		return -1;
	for (i = 0; i < nets->n; i++) {
		const struct zeek_net *n = &nets->net[i];
		unsigned whole = n->bits / 8u, rest = n->bits % 8u;
		if (n->family != family || memcmp(n->addr, addr, whole))
			continue;
		if (!rest || (addr[whole] & (0xffu << (8u - rest))) == n->addr[whole])
			return 1;
	}
	return 0;
}

/* ---- formatting ------------------------------------------------------------
 *
 * No printf, and no bounds check per byte: a record is written at once
 * into room for RECORD_ROOM bytes (the caller's buffer when it is that
 * large, a scratch one copied from otherwise). The longest record is
 * well under it: about 360 bytes of JSON keys, quotes and separators and
 * at most about 450 of values (two 45-byte IPv6 addresses, 31 history
 * letters, ts and duration of at most 21 characters each, nine 20-digit
 * counters, two booleans, the names), plus at most about 230 for the
 * layers (vlan and inner_vlan, and ZEEK_LAYERS_MAX "kind:id" items of at
 * most 25 bytes). */

#define RECORD_ROOM 1024u

/* "00" "01" ... "99" */
static const char DIGITS2[201] = "00010203040506070809101112131415161718192021222324"
				 "25262728293031323334353637383940414243444546474849"
				 "50515253545556575859606162636465666768697071727374"
				 "75767778798081828384858687888990919293949596979899";

static inline char *put_mem(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

static inline char *put_str(char *p, const char *s) { return put_mem(p, s, strlen(s)); }

static inline unsigned n_digits(uint64_t v)
{
	unsigned n = 1;

	while (v >= 100) {
		v /= 100;
		n += 2;
	}
	return n + (v >= 10);
}

/* v in decimal */
static char *put_u64(char *p, uint64_t v)
{
	unsigned n = n_digits(v);
	char *q = p + n;

	while (v >= 100) {
		unsigned r = (unsigned)(v % 100) * 2;
		v /= 100;
		q -= 2;
		q[0] = DIGITS2[r];
		q[1] = DIGITS2[r + 1];
	}
	if (v >= 10) {
		q -= 2;
		q[0] = DIGITS2[v * 2];
		q[1] = DIGITS2[v * 2 + 1];
	} else {
		*--q = (char)('0' + v);
	}
	return p + n;
}

/* x with 6 decimals, as "%.6f" prints packet timestamps (a time from a
 * damaged capture may be negative, or absurdly large: clamped) */
static char *put_fixed6(char *p, double x)
{
	uint64_t us;
	unsigned r, i;

	x = ts_clamp(x);
	if (x < 0) {
		*p++ = '-';
		x = -x;
	}
	us = (uint64_t)(x * 1e6 + 0.5);
	r = (unsigned)(us % 1000000);
	p = put_u64(p, us / 1000000);
	*p = '.';
	for (i = 3; i >= 1; i--) {
		unsigned d = (r % 100) * 2;
		r /= 100;
		p[2 * i - 1] = DIGITS2[d];
		p[2 * i] = DIGITS2[d + 1];
	}
	return p + 7;
}

static char *put_ipv4(char *p, const uint8_t *a)
{
	p = put_u64(p, a[0]);
	for (int i = 1; i < 4; i++) {
		*p++ = '.';
		p = put_u64(p, a[i]);
	}
	return p;
}

/* a 16-bit word in lower-case hex, no leading zeros ("%x") */
static char *put_hex16(char *p, unsigned w)
{
	static const char hex[] = "0123456789abcdef";
	int shift = w >= 0x1000 ? 12 : w >= 0x100 ? 8 : w >= 0x10 ? 4 : 0;

	for (; shift >= 0; shift -= 4)
		*p++ = hex[(w >> shift) & 0xf];
	return p;
}

/* An IPv6 address as glibc's inet_ntop() writes it (its inet_ntop6,
 * which formats each word with sprintf: this is several times faster):
 * the first longest run of two or more zero words as "::", and the
 * IPv4-compatible and IPv4-mapped forms ("::a.b.c.d", "::ffff:a.b.c.d"). */
static char *put_ipv6(char *p, const uint8_t *a)
{
	unsigned w[8];
	int i, best = -1, best_len = 0, cur = -1, cur_len = 0;

	for (i = 0; i < 8; i++) {
		w[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
		if (w[i] == 0) {
			if (cur == -1) {
				cur = i;
				cur_len = 1;
			} else {
				cur_len++;
			}
		} else if (cur != -1) {
			if (best == -1 || cur_len > best_len) {
				best = cur;
				best_len = cur_len;
			}
			cur = -1;
		}
	}
	if (cur != -1 && (best == -1 || cur_len > best_len)) {
		best = cur;
		best_len = cur_len;
	}
	if (best != -1 && best_len < 2)
		best = -1;
	for (i = 0; i < 8; i++) {
		if (best != -1 && i >= best && i < best + best_len) {
			if (i == best)
				*p++ = ':';
			continue;
		}
		if (i != 0)
			*p++ = ':';
		if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff)))
			return put_ipv4(p, a + 12);
		p = put_hex16(p, w[i]);
	}
	if (best != -1 && best + best_len == 8)
		*p++ = ':';
	return p;
}

static char *put_addr(char *p, const uint8_t *a, unsigned family)
{
	return family == 4 ? put_ipv4(p, a) : put_ipv6(p, a);
}

/* Writing one record's fields in either format: FIELD() opens a field
 * (its separator, and in JSON its key and an opening quote for a
 * string), the caller writes the value at fd.p, the next FIELD() or
 * end_record() closes it. unset_field(): Zeek's "-" in TSV, nothing in
 * JSON (the key is left out). */
struct fields {
	char *p;
	int json;
	int n;      /* fields written or unset so far */
	int quoted; /* the open field's value is a JSON string */
};

static inline void close_field(struct fields *fd)
{
	if (fd->quoted)
		*fd->p++ = '"';
	fd->quoted = 0;
}

/* key: the field's JSON key with its quotes and colon, klen bytes */
static inline void put_field(struct fields *fd, const char *key, size_t klen, int quoted)
{
	char *p;

	close_field(fd);
	p = fd->p;
	if (fd->json) {
		*p++ = fd->n ? ',' : '{';
		p = put_mem(p, key, klen);
		if (quoted)
			*p++ = '"';
		fd->quoted = quoted;
	} else if (fd->n) {
		*p++ = '\t';
	}
	fd->p = p;
	fd->n++;
}

#define FIELD(fd, key, quoted) put_field((fd), "\"" key "\":", sizeof("\"" key "\":") - 1, (quoted))

static inline void unset_field(struct fields *fd)
{
	close_field(fd);
	if (!fd->json) {
		if (fd->n)
			*fd->p++ = '\t';
		*fd->p++ = '-';
	}
	fd->n++;
}

static inline void end_record(struct fields *fd)
{
	close_field(fd);
	if (fd->json)
		*fd->p++ = '}';
	*fd->p++ = '\n';
}

static const char *const LAYER_NAMES[] = {
	"vlan", "mpls",   "pppoe", "pbb",    "fabricpath", "vntag",  "ipip",
	"gre",  "erspan", "vxlan", "geneve", "gtpu",       "teredo", "ayiya",
};

/* Zeek's vlan and inner_vlan, and the tunnels field (JSON: an array of
 * "kind:id" strings; TSV: a set, comma-separated); unset without them */
static void put_layers(struct fields *fd, const struct zeek_layers *l)
{
	unsigned i;

	if (l && l->vlan >= 0) {
		FIELD(fd, "vlan", 0);
		fd->p = put_u64(fd->p, (uint64_t)l->vlan);
	} else
		unset_field(fd);
	if (l && l->inner_vlan >= 0) {
		FIELD(fd, "inner_vlan", 0);
		fd->p = put_u64(fd->p, (uint64_t)l->inner_vlan);
	} else
		unset_field(fd);
	if (!l || !l->n) {
		unset_field(fd);
		return;
	}
	FIELD(fd, "tunnels", 0);
	if (fd->json)
		*fd->p++ = '[';
	for (i = 0; i < l->n && i < ZEEK_LAYERS_MAX; i++) {
		const char *name = l->kind[i] < sizeof(LAYER_NAMES) / sizeof(LAYER_NAMES[0])
		                           ? LAYER_NAMES[l->kind[i]]
		                           : "other";
		if (i)
			*fd->p++ = ',';
		if (fd->json)
			*fd->p++ = '"';
		fd->p = put_str(fd->p, name);
		*fd->p++ = ':';
		fd->p = put_u64(fd->p, l->id[i]);
		if (fd->json)
			*fd->p++ = '"';
	}
	if (fd->json)
		*fd->p++ = ']';
}

/* a Zeek bool: T/F in TSV, true/false in JSON */
static inline const char *bool_text(int json, int v)
{
	return json ? (v ? "true" : "false") : (v ? "T" : "F");
}

/* The record in buf (room for RECORD_ROOM bytes); its length. */
static size_t write_record(const struct mosfw_flow *f, const struct zeek_conn *k,
                           const struct zeek_nets *nets, const struct zeek_layers *l,
                           unsigned format, char *buf)
{
	int lo, lr;
	const struct mosfw_tuple *t = &f->tuple;
	unsigned orig = k->orig_side & 1, resp = orig ^ 1;
	const uint8_t *oh = orig == MOSFW_SIDE_CLIENT ? t->cli_addr : t->srv_addr;
	const uint8_t *rh = orig == MOSFW_SIDE_CLIENT ? t->srv_addr : t->cli_addr;
	uint16_t op = orig == MOSFW_SIDE_CLIENT ? t->cli_port : t->srv_port;
	uint16_t rp = orig == MOSFW_SIDE_CLIENT ? t->srv_port : t->cli_port;
	int tcp = t->proto == 6 || t->proto == 0;
	/* ICMP: orig_p the type, resp_p the answering type or the code (Zeek's) */
	int icmp = t->proto == 1 || t->proto == 58;
	const char *proto = tcp              ? "tcp"
	                    : t->proto == 17 ? "udp"
	                    : icmp           ? "icmp"
	                                     : "unknown_transport";
	double duration = k->last_ts - f->first_ts;
	struct fields fd = { buf, format != ZEEK_TSV, 0, 0 };

	lo = zeek_is_local(nets, t->family, oh);
	lr = zeek_is_local(nets, t->family, rh);

	/* one field list for both formats: Zeek's conn.log fields, then
   * mosfw's (TSV in the #fields order, JSON with the same names) */
	FIELD(&fd, "ts", 0);
	fd.p = put_fixed6(fd.p, f->first_ts);
	FIELD(&fd, "uid", 1);
	zeek_conn_uid(f, fd.p);
	fd.p += 18;
	FIELD(&fd, "id.orig_h", 1);
	fd.p = put_addr(fd.p, oh, t->family);
	FIELD(&fd, "id.orig_p", 0);
	fd.p = put_u64(fd.p, op);
	FIELD(&fd, "id.resp_h", 1);
	fd.p = put_addr(fd.p, rh, t->family);
	FIELD(&fd, "id.resp_p", 0);
	if (icmp)
		rp &= (rp & MOSFW_ICMP_ONE_WAY) ? 0xff : 0xffff;
	fd.p = put_u64(fd.p, rp);
	FIELD(&fd, "proto", 1);
	fd.p = put_str(fd.p, proto);
	if (duration > 0) { /* Zeek sets duration and the sizes only then */
		FIELD(&fd, "duration", 0);
		fd.p = put_fixed6(fd.p, duration);
		FIELD(&fd, "orig_bytes", 0);
		fd.p = put_u64(fd.p, tcp ? zeek_conn_size(k, 0) : zeek_dgram_bytes(f, k, orig));
		FIELD(&fd, "resp_bytes", 0);
		fd.p = put_u64(fd.p, tcp ? zeek_conn_size(k, 1) : zeek_dgram_bytes(f, k, resp));
	} else {
		unset_field(&fd);
		unset_field(&fd);
		unset_field(&fd);
	}
	FIELD(&fd, "conn_state", 1);
	fd.p = put_str(fd.p, tcp ? zeek_conn_state(k) : zeek_dgram_state(f, k));
	if (lo < 0) {
		unset_field(&fd);
		unset_field(&fd);
	} else {
		FIELD(&fd, "local_orig", 0);
		fd.p = put_str(fd.p, bool_text(fd.json, lo));
		FIELD(&fd, "local_resp", 0);
		fd.p = put_str(fd.p, bool_text(fd.json, lr));
	}
	FIELD(&fd, "missed_bytes", 0);
	fd.p = put_u64(fd.p, k->missed_bytes);
	if (k->hist_len) {
		FIELD(&fd, "history", 1);
		fd.p = put_str(fd.p, k->history);
	} else {
		unset_field(&fd);
	}
	/* packets until the record is written: the engine's, and the late
   * ones within the close delay */
	FIELD(&fd, "orig_pkts", 0);
	fd.p = put_u64(fd.p, f->side[orig].pkts + k->late_pkts[orig]);
	FIELD(&fd, "orig_ip_bytes", 0);
	fd.p = put_u64(fd.p, f->side[orig].ip_bytes + k->late_ip_bytes[orig]);
	FIELD(&fd, "resp_pkts", 0);
	fd.p = put_u64(fd.p, f->side[resp].pkts + k->late_pkts[resp]);
	FIELD(&fd, "resp_ip_bytes", 0);
	fd.p = put_u64(fd.p, f->side[resp].ip_bytes + k->late_ip_bytes[resp]);
	/* Zeek's ip_proto (after tunnel_parents, which is not written) */
	FIELD(&fd, "ip_proto", 0);
	fd.p = put_u64(fd.p, tcp ? 6u : t->proto);
	FIELD(&fd, "orig_rexmit_pkts", 0);
	fd.p = put_u64(fd.p, f->side[orig].rexmit_pkts);
	FIELD(&fd, "resp_rexmit_pkts", 0);
	fd.p = put_u64(fd.p, f->side[resp].rexmit_pkts);
	if (tcp) { /* (UDP/ICMP flows have no TCP state machine) */
		FIELD(&fd, "cli_state", 1);
		fd.p = put_str(fd.p, state_name(f->side[MOSFW_SIDE_CLIENT].state));
		FIELD(&fd, "svr_state", 1);
		fd.p = put_str(fd.p, state_name(f->side[MOSFW_SIDE_SERVER].state));
	} else {
		unset_field(&fd);
		unset_field(&fd);
	}
	FIELD(&fd, "close_reason", 1);
	fd.p = put_str(fd.p, end_reason_name(f->end_reason));
	FIELD(&fd, "core", 0);
	fd.p = put_u64(fd.p, f->core);
	put_layers(&fd, l);
	end_record(&fd);
	return (size_t)(fd.p - buf);
}

size_t zeek_conn_record(const struct mosfw_flow *f, const struct zeek_conn *k,
                        const struct zeek_nets *nets, unsigned format, char *buf, size_t cap)
{
	return zeek_conn_record_layers(f, k, nets, NULL, format, buf, cap);
}

size_t zeek_conn_record_layers(const struct mosfw_flow *f, const struct zeek_conn *k,
                               const struct zeek_nets *nets, const struct zeek_layers *l,
                               unsigned format, char *buf, size_t cap)
{
	char scratch[RECORD_ROOM];
	size_t n;

	if (cap >= RECORD_ROOM) {
		n = write_record(f, k, nets, l, format, buf);
	} else {
		n = write_record(f, k, nets, l, format, scratch);
		if (n > cap)
			return cap; /* does not fit */
		memcpy(buf, scratch, n);
	}
	if (n < cap)
		buf[n] = '\0';
	return n;
}
