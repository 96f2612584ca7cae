/* SPDX-License-Identifier: MIT */
/*
 * conn_history.c -- Zeek's conn.log view of a flow (see conn_history.h).
 *
 * Per packet, mosfw_conn_packet() runs the steps of Zeek's
 * TCPSessionAdapter::Process in Zeek's order: initialise the sender's
 * sequence space, compute the relative sequence number, record history
 * letters (which may flip the roles), zero windows, last time, the ACK's
 * effect on the peer, last_seq (retransmissions), the endpoint state
 * machine, acknowledgement of the peer's data (content gaps), in-order
 * delivery of the sender's data, and close bookkeeping.
 *
 * Zeek keeps per-endpoint state by role (orig/resp) and swaps it on a
 * flip; here it is kept by mosfw side and `orig_side` says which side is
 * the originator, so a flip is one assignment. Zeek's hist_seen mask is
 * not swapped by a flip, and neither is it here.
 */
#include "conn_history.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#define TOO_LARGE_SEQ_DELTA 1048576                /* Zeek's TOO_LARGE_SEQ_DELTA */
#define MAX_ABOVE_HOLE_WITHOUT_ACKS 16384u         /* tcp_max_above_hole_without_any_acks */
#define EXCESSIVE_DATA_WITHOUT_ACKS (10u << 20)    /* tcp_excessive_data_without_further_acks */

/* mosfw_conn_side.flags */
#define EF_DID_CLOSE 0x01      /* Zeek's did_close */
#define EF_FIN 0x02            /* FIN_cnt > 0 */
#define EF_SKIP 0x04           /* the reassembler's skip_deliveries */
#define EF_SEEN 0x08           /* first packet seen (partial-connection status) */
#define EF_CLOSE_DEFERRED 0x10 /* close waits for data above a hole */

/* mosfw_conn.flags */
#define CF_INIT 0x01
#define CF_PARTIAL 0x02        /* Zeek's is_partial */

/* Zeek's TCP_Endpoint::HistoryMasks */
#define HM_SYN 0x01
#define HM_FIN 0x02
#define HM_RST 0x04
#define HM_FIN_RST 0x08
#define HM_DATA 0x10
#define HM_ACK 0x20
#define HM_MULTI 0x40

enum {
	Z_INACTIVE = MOSFW_ZEEK_INACTIVE,
	Z_SYN_SENT = MOSFW_ZEEK_SYN_SENT,
	Z_SYN_ACK_SENT = MOSFW_ZEEK_SYN_ACK_SENT,
	Z_PARTIAL = MOSFW_ZEEK_PARTIAL,
	Z_ESTABLISHED = MOSFW_ZEEK_ESTABLISHED,
	Z_CLOSED = MOSFW_ZEEK_CLOSED,
	Z_RESET = MOSFW_ZEEK_RESET,
};

typedef struct mosfw_conn_side ep_t;

int mosfw_conn_likely_server_port(uint16_t port)
{
	switch (port) {
	case 21: case 22: case 25: case 53: case 79: case 80: case 81: case 88: case 135:
	case 139: case 143: case 389: case 443: case 445: case 465: case 502: case 514:
	case 563: case 585: case 587: case 614: case 631: case 636: case 989: case 990:
	case 992: case 993: case 995: case 1080: case 1434: case 1883: case 2811: case 3128:
	case 3268: case 3306: case 3389: case 5222: case 5223: case 5269: case 5432:
	case 6379: case 6666: case 6667: case 6668: case 6669: case 8000: case 8080:
	case 8888: case 20000:
		return 1;
	default:
		return 0;
	}
}

/* ---- history ------------------------------------------------------------ */

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static void add_history(struct mosfw_conn *k, char c)
{
	if (k->hist_len < MOSFW_HISTORY_MAX) {
		k->history[k->hist_len++] = c;
		k->history[k->hist_len] = '\0';
	}
}

/* A letter about `side`: upper case for the originator. */
static void side_history(struct mosfw_conn *k, unsigned side, char code)
{
	add_history(k, side == k->orig_side ? code : lower(code));
}

/* Connection::FlipRoles (+ the adapter's: is_partial reset). */
static void flip_roles(struct mosfw_conn *k)
{
	k->orig_side ^= 1;
	k->flags &= (uint8_t)~CF_PARTIAL;
	add_history(k, '^');
}

/* TCP_Endpoint::CheckHistory: returns 1 when the letter was seen before. */
static int check_history(struct mosfw_conn *k, unsigned side, uint32_t mask, char code)
{
	if ((code == 'A' || code == 'D') && k->hist_len == 1 && k->history[0] == 'H') {
		/* began with a SYN/ACK; productive traffic now: flip, and pretend
		 * the missing SYN was seen */
		flip_roles(k);
		memcpy(k->history, "^h", 3);
		k->hist_len = 2;
		k->ep[k->orig_side].flags |= EF_SEEN;
	}
	if (side != k->orig_side) {
		mask <<= 16;
		code = lower(code);
	}
	if (!(k->hist_seen & mask)) {
		k->hist_seen |= mask;
		add_history(k, code);
		return 0;
	}
	return 1;
}

/* Session::ScaledHistoryEntry: the letter at counts 1, 10, 100, ... */
static void scaled_history(struct mosfw_conn *k, unsigned side, char code, uint32_t *cnt,
                           uint32_t *thresh)
{
	if (++*cnt == *thresh) {
		uint32_t next = *thresh * 10u;
		side_history(k, side, code);
		if (next <= *thresh)
			*cnt = 0; /* wrapped: keep the threshold */
		else
			*thresh = next;
	}
}

/* ---- sequence space ------------------------------------------------------- */

static inline uint64_t full_seq(uint32_t seq, uint32_t wraps)
{
	return ((uint64_t)wraps << 32) + seq;
}

static inline uint32_t start32(const ep_t *e)
{
	return (uint32_t)e->start_seq;
}

/* TCPSessionAdapter::get_relative_seq */
static uint64_t relative_seq(const ep_t *e, uint32_t cur, uint32_t last, uint32_t wraps,
                             int *underflow)
{
	int32_t delta = (int32_t)(cur - last);

	if (delta < 0) {
		if (wraps && cur > last)
			--wraps;
	} else if (delta > 0) {
		if (cur < last)
			++wraps;
	}
	if (wraps == 0) {
		delta = (int32_t)(cur - start32(e));
		if (underflow && delta < 0)
			*underflow = 1;
		return (uint64_t)(int64_t)delta;
	}
	return full_seq(cur, wraps) - (uint64_t)e->start_seq;
}

static void set_state(ep_t *e, unsigned st)
{
	if (st != e->state) {
		e->prev_state = e->state;
		e->state = (uint8_t)st;
	}
}

static void init_seqs(ep_t *e, uint32_t start, uint32_t last)
{
	e->start_seq = start;
	e->ack_seq = start;
	e->last_seq = last;
}

/* init_endpoint */
static void init_endpoint(ep_t *e, int syn, uint32_t first_seg_seq, uint32_t last_seq)
{
	switch (e->state) {
	case Z_INACTIVE:
		if (syn) {
			e->ack_seq = first_seg_seq;
			e->start_seq = first_seg_seq;
		} else {
			/* partial: number as though a SYN had been seen */
			e->ack_seq = first_seg_seq - 1;
			e->start_seq = (uint32_t)(first_seg_seq - 1);
			last_seq = first_seg_seq;
		}
		e->last_seq = last_seq;
		break;
	case Z_SYN_SENT:
	case Z_SYN_ACK_SENT:
		if (syn && first_seg_seq != start32(e))
			init_seqs(e, first_seg_seq, last_seq);
		break;
	case Z_ESTABLISHED:
	case Z_PARTIAL:
		if (syn)
			init_seqs(e, first_seg_seq, last_seq);
		break;
	case Z_RESET:
		if (syn && e->prev_state == Z_INACTIVE)
			init_seqs(e, first_seg_seq, last_seq);
		break;
	default:
		break;
	}
}

/* init_peer: the peer's numbering starts from the ACK, as if from a SYN */
static void init_peer(ep_t *peer, uint32_t ack_seq)
{
	peer->start_seq = (uint32_t)(ack_seq - 1);
	peer->ack_seq = ack_seq - 1;
	peer->last_seq = ack_seq - 1;
}

static void update_ack_seq(ep_t *e, uint32_t ack_seq)
{
	int32_t delta = (int32_t)(ack_seq - e->ack_seq);

	if (ack_seq == 0 && delta > TOO_LARGE_SEQ_DELTA)
		return; /* more likely a broken ack than a wrap onto 0 */
	if (delta > 0) {
		if (ack_seq < e->ack_seq)
			++e->ack_wraps;
		e->ack_seq = ack_seq;
	}
}

static void set_last_seq(ep_t *e, uint32_t seq)
{
	if (seq < e->last_seq)
		++e->seq_wraps;
	e->last_seq = seq;
}

/* update_last_seq: retransmitted payload ('T') when it does not advance */
static int32_t update_last_seq(struct mosfw_conn *k, unsigned side, uint32_t last_seq, int syn,
                               int fin, int rst, uint32_t len)
{
	ep_t *e = &k->ep[side];
	int32_t delta = (int32_t)(last_seq - e->last_seq);

	if ((syn || rst) && (delta > TOO_LARGE_SEQ_DELTA || delta < -TOO_LARGE_SEQ_DELTA))
		; /* not believed */
	else if (fin && e->last_seq == start32(e) + 1u)
		set_last_seq(e, last_seq); /* > 2 GB connection seen only by SYN and FIN */
	else if (e->state == Z_RESET)
		; /* nothing after a RST is trusted */
	else if (delta > 0)
		set_last_seq(e, last_seq);
	else if (len > 0)
		scaled_history(k, side, 'T', &e->rxmt_cnt, &e->rxmt_thresh);
	return delta;
}

/* ---- content gaps (a small model of TCP_Reassembler) ---------------------- */

static int no_data_acked(const ep_t *e)
{
	uint64_t ack = full_seq(e->ack_seq, e->ack_wraps);
	uint64_t start = (uint64_t)e->start_seq;
	return ack == start || ack == start + 1;
}

static inline int is_clean(const ep_t *a)
{
	return a->state == Z_ESTABLISHED || (a->state == Z_CLOSED && a->prev_state == Z_ESTABLISHED);
}

static void drop_block(ep_t *e)
{
	e->blk[0][0] = e->blk[1][0];
	e->blk[0][1] = e->blk[1][1];
	e->n_blk--;
}

/* Deliver the buffered blocks that are now in order. */
static void deliver_blocks(ep_t *e)
{
	while (e->n_blk && e->blk[0][0] <= e->reassem_seq) {
		if (e->blk[0][1] > e->reassem_seq)
			e->reassem_seq = e->blk[0][1];
		drop_block(e);
	}
}

/* Buffer [lo, hi) above a hole: merge with what overlaps or touches it;
 * with no room left, join the two nearest ranges (the smaller hole is
 * then taken as filled: at most one gap less is reported). */
static void insert_block(ep_t *e, uint64_t lo, uint64_t hi)
{
	uint64_t b[3][2];
	unsigned n = 0, i, j, best;

	for (i = 0; i < e->n_blk; i++) {
		if (e->blk[i][1] < lo || e->blk[i][0] > hi) {
			b[n][0] = e->blk[i][0];
			b[n][1] = e->blk[i][1];
			n++;
		} else {
			if (e->blk[i][0] < lo)
				lo = e->blk[i][0];
			if (e->blk[i][1] > hi)
				hi = e->blk[i][1];
		}
	}
	/* insert sorted */
	for (i = n; i > 0 && b[i - 1][0] > lo; i--) {
		b[i][0] = b[i - 1][0];
		b[i][1] = b[i - 1][1];
	}
	b[i][0] = lo;
	b[i][1] = hi;
	n++;
	if (n > 2) {
		best = 0;
		for (j = 1; j + 1 < n; j++)
			if (b[j + 1][0] - b[j][1] < b[best + 1][0] - b[best][1])
				best = j;
		b[best][1] = b[best + 1][1];
		for (j = best + 1; j + 1 < n; j++) {
			b[j][0] = b[j + 1][0];
			b[j][1] = b[j + 1][1];
		}
		n--;
	}
	for (i = 0; i < n; i++) {
		e->blk[i][0] = b[i][0];
		e->blk[i][1] = b[i][1];
	}
	e->n_blk = (uint8_t)n;
}

/* TCP_Reassembler::Gap */
static void gap(struct mosfw_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];

	if (is_clean(e) && is_clean(&k->ep[side ^ 1]))
		scaled_history(k, side, 'G', &e->gap_cnt, &e->gap_thresh);
}

/* TCP_Reassembler::Undelivered: the peer acknowledged data up to up_to
 * that was never delivered in order. */
static void undelivered(struct mosfw_conn *k, unsigned side, uint64_t up_to)
{
	ep_t *e = &k->ep[side];

	if (up_to <= 2 && (k->flags & CF_PARTIAL))
		return; /* the faked-up initial sequence of a partial connection */
	if (!(e->flags & EF_SKIP)) {
		while (e->n_blk && e->blk[0][0] < up_to) {
			if (e->blk[0][0] > e->reassem_seq) {
				gap(k, side);
				e->reassem_seq = e->blk[0][0];
			}
			deliver_blocks(e);
		}
		if (up_to > e->reassem_seq)
			gap(k, side);
	}
	if (up_to > e->reassem_seq)
		e->reassem_seq = up_to;
}

static int data_pending(const struct mosfw_conn *k, unsigned side)
{
	const ep_t *e = &k->ep[side];
	uint64_t delivered, last;

	if (e->flags & EF_SKIP)
		return 0;
	delivered = (uint64_t)e->start_seq + e->reassem_seq;
	last = full_seq(e->last_seq, e->seq_wraps);
	if (last < delivered)
		return 0;
	if (delivered != last - 1 && delivered != last)
		return 1;
	return e->state != Z_RESET && k->ep[side ^ 1].n_blk != 0;
}

/* TCPSessionAdapter::ConnectionClosed (as far as did_close goes) */
static void connection_closed(struct mosfw_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];

	if (data_pending(k, side)) {
		e->flags |= EF_CLOSE_DEFERRED;
		return;
	}
	e->flags &= (uint8_t)~EF_CLOSE_DEFERRED;
	e->flags |= EF_DID_CLOSE;
}

/* TCP_Reassembler::CheckEOF -> EndpointEOF: a deferred close completes */
static void check_eof(struct mosfw_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];

	if ((e->flags & EF_CLOSE_DEFERRED) &&
	    ((e->flags & EF_FIN) || e->state == Z_CLOSED || e->state == Z_RESET) &&
	    !data_pending(k, side))
		connection_closed(k, side);
}

/* TCP_Reassembler::AckReceived on `side`'s data */
static void ack_received(struct mosfw_conn *k, unsigned side, uint64_t seq)
{
	ep_t *e = &k->ep[side];

	if ((e->flags & EF_FIN) && seq >= e->fin_seq)
		seq = e->fin_seq - 1;
	if (seq <= e->trim_seq)
		return;
	if (seq > e->reassem_seq)
		undelivered(k, side, seq);
	while (e->n_blk && e->blk[0][1] <= seq)
		drop_block(e);
	e->trim_seq = seq;
	deliver_blocks(e);
	check_eof(k, side);
}

/* TCP_Endpoint::DataSent -> TCP_Reassembler::DataSent */
static void data_sent(ep_t *e, uint64_t seq, uint32_t len)
{
	uint64_t ack = full_seq(e->ack_seq, e->ack_wraps) - (uint64_t)e->start_seq;
	uint64_t upper = seq + len, stored;
	unsigned i;

	if (e->flags & EF_SKIP)
		return;
	if (seq < ack) {
		if (upper <= ack)
			return; /* delivered and acknowledged already */
		seq = ack;
	}
	if (upper <= e->trim_seq)
		return;
	if (seq < e->trim_seq)
		seq = e->trim_seq;
	if (upper <= e->reassem_seq)
		return;
	if (seq <= e->reassem_seq) {
		e->reassem_seq = upper;
		deliver_blocks(e);
	} else {
		insert_block(e, seq, upper);
	}
	/* what the reassembler holds: delivered but unacknowledged, and the
	 * blocks above a hole */
	stored = e->reassem_seq > e->trim_seq ? e->reassem_seq - e->trim_seq : 0;
	for (i = 0; i < e->n_blk; i++)
		stored += e->blk[i][1] - e->blk[i][0];
	if ((e->n_blk && no_data_acked(e) &&
	     e->blk[e->n_blk - 1][1] - e->reassem_seq > MAX_ABOVE_HOLE_WITHOUT_ACKS) ||
	    stored > EXCESSIVE_DATA_WITHOUT_ACKS) {
		e->n_blk = 0;
		e->flags |= EF_SKIP;
	}
}

/* ---- the endpoint state machine (UpdateStateMachine) ----------------------- */

static int update_inactive(struct mosfw_conn *k, unsigned side, uint32_t base_seq, uint32_t len,
                           int is_orig, int syn, int fin, int rst, int ack)
{
	ep_t *e = &k->ep[side], *peer = &k->ep[side ^ 1];
	int do_close = 0;

	if (syn) {
		if (is_orig) {
			set_state(e, ack ? Z_SYN_ACK_SENT : Z_SYN_SENT);
		} else {
			if (!ack && peer->state == Z_SYN_ACK_SENT && base_seq == start32(e)) {
				/* SYN/SYN-ACK reversal: flip and establish */
				flip_roles(k);
				set_state(peer, Z_ESTABLISHED);
				k->ep[k->orig_side].flags |= EF_SEEN;
			}
			if (peer->state == Z_SYN_SENT)
				set_state(peer, Z_ESTABLISHED);
			set_state(e, Z_ESTABLISHED);
		}
	}
	if (fin) {
		set_state(e, Z_CLOSED);
		do_close = 1;
	}
	if (rst) {
		set_state(e, Z_RESET);
		do_close = 1;
	}
	if (e->state == Z_INACTIVE) {
		if (!is_orig && len == 0 && k->ep[k->orig_side].state == Z_SYN_SENT) {
			; /* an ACK of the SYN before the SYN/ACK */
		} else if (ack && peer->state == Z_ESTABLISHED) {
			/* SYN missed, SYN/ACK seen, now an ACK: established */
			set_state(e, Z_ESTABLISHED);
			k->flags &= (uint8_t)~CF_PARTIAL;
			e->flags |= EF_SEEN;
		} else {
			set_state(e, Z_PARTIAL);
		}
	}
	return do_close;
}

static int update_established(struct mosfw_conn *k, unsigned side, int syn, int fin, int rst, int ack)
{
	ep_t *e = &k->ep[side], *peer = &k->ep[side ^ 1];
	int do_close = 0;

	if (syn && e->state == Z_PARTIAL && peer->state == Z_INACTIVE && !ack)
		set_state(e, Z_SYN_SENT);
	if (fin && !rst) {
		set_state(e, Z_CLOSED);
		if (peer->state == Z_RESET && peer->prev_state == Z_CLOSED)
			set_state(peer, Z_CLOSED); /* FIN then RST: a normal close */
		do_close = 1;
	}
	if (rst) {
		set_state(e, Z_RESET);
		do_close = 1;
	}
	return do_close;
}

static int update_state_machine(struct mosfw_conn *k, unsigned side, uint32_t base_seq,
                                uint32_t len, int is_orig, int syn, int fin, int rst, int ack)
{
	ep_t *e = &k->ep[side];
	int do_close = 0;

	switch (e->state) {
	case Z_INACTIVE:
		return update_inactive(k, side, base_seq, len, is_orig, syn, fin, rst, ack);
	case Z_SYN_SENT:
	case Z_SYN_ACK_SENT:
		if (fin) {
			set_state(e, Z_CLOSED);
			do_close = 1;
		}
		if (rst) {
			set_state(e, Z_RESET);
			do_close = 1;
		}
		return do_close;
	case Z_ESTABLISHED:
	case Z_PARTIAL:
		return update_established(k, side, syn, fin, rst, ack);
	case Z_CLOSED:
		if (rst && k->ep[side ^ 1].state != Z_CLOSED) {
			set_state(e, Z_RESET);
			if (!(e->flags & EF_DID_CLOSE))
				do_close = 1; /* RST after FIN */
		}
		return do_close;
	default: /* Z_RESET: nothing changes */
		return 0;
	}
}

/* ---- per packet ------------------------------------------------------------ */

/* The first packet: NewConn + WantConnection's flip rule. */
static void init_conn(struct mosfw_conn *k, unsigned dir, const struct mosfw_pkt *p)
{
	uint8_t fl = p->tcp_flags;
	int syn = (fl & MOSFW_TH_SYN) != 0, ack = (fl & MOSFW_TH_ACK) != 0;
	int flip = 0;
	unsigned s;

	k->flags = CF_INIT;
	for (s = 0; s < 2; s++) {
		k->ep[s].rxmt_thresh = k->ep[s].win0_thresh = k->ep[s].gap_thresh = 1;
		k->ep[s].reassem_seq = k->ep[s].trim_seq = 1;
	}
	k->orig_side = (uint8_t)dir;
	if ((!syn || ack) && mosfw_conn_likely_server_port(p->sport)) {
		if (mosfw_conn_likely_server_port(p->dport))
			flip = !syn && p->sport < p->dport; /* both plausible */
		else
			flip = 1;
	}
	if (flip)
		flip_roles(k);
}

void mosfw_conn_packet(struct mosfw_conn *k, const struct mosfw_flow *f, unsigned dir,
                       const struct mosfw_pkt *p, double ts)
{
	ep_t *e, *peer;
	uint8_t fl = p->tcp_flags;
	int syn = (fl & MOSFW_TH_SYN) != 0, fin = (fl & MOSFW_TH_FIN) != 0;
	int rst = (fl & MOSFW_TH_RST) != 0, ack = (fl & MOSFW_TH_ACK) != 0;
	uint32_t len = p->payload_len, seg_len, end;
	uint64_t rel, rel_ack = 0;
	int is_orig, underflow = 0, do_close, bits;

	if (k->flow_id != f->id || !(k->flags & CF_INIT)) {
		memset(k, 0, sizeof(*k)); /* the slot's previous flow, or never used */
		k->flow_id = f->id;
		init_conn(k, dir, p);
	}
	dir &= 1;
	e = &k->ep[dir];
	peer = &k->ep[dir ^ 1];
	is_orig = dir == k->orig_side;

	/* SetPartialStatus */
	if (is_orig) {
		if (!(e->flags & EF_SEEN))
			k->flags = (uint8_t)((k->flags & ~CF_PARTIAL) | ((!syn || ack) ? CF_PARTIAL : 0));
	} else if (!(e->flags & EF_SEEN) && !(k->flags & CF_PARTIAL) && !syn) {
		k->flags |= CF_PARTIAL;
	}

	seg_len = len + (uint32_t)syn + (uint32_t)fin;
	if (rst)
		seg_len -= len; /* a RST's payload is not stream data */
	end = p->seq + seg_len;
	init_endpoint(e, syn, p->seq, end);
	rel = relative_seq(e, p->seq, e->last_seq, e->seq_wraps, &underflow);

	/* update_history */
	bits = syn + fin + rst;
	if (bits > 1) {
		if (fin && rst)
			check_history(k, dir, HM_FIN_RST, 'I');
		else
			check_history(k, dir, HM_MULTI, 'Q');
	} else if (syn) {
		char code = ack ? 'H' : 'S';
		if (check_history(k, dir, HM_SYN, code) && rel != e->hist_last_syn)
			side_history(k, dir, code);
		e->hist_last_syn = rel;
	} else if (fin) {
		if (check_history(k, dir, HM_FIN, 'F') && rel + len != e->hist_last_fin)
			side_history(k, dir, 'F');
		e->hist_last_fin = rel + len;
	} else if (rst) {
		if (check_history(k, dir, HM_RST, 'R') && rel != e->hist_last_rst)
			side_history(k, dir, 'R');
		e->hist_last_rst = rel;
	} else if (len) {
		check_history(k, dir, HM_DATA, 'D');
	} else if (ack) {
		check_history(k, dir, HM_ACK, 'A');
	}

	/* update_window: zero windows ('W') */
	if (p->window == 0 && !rst && peer->state != Z_CLOSED && e->state != Z_RESET)
		scaled_history(k, dir, 'W', &e->win0_cnt, &e->win0_thresh);

	if (!(k->ep[0].flags & EF_DID_CLOSE) || !(k->ep[1].flags & EF_DID_CLOSE))
		k->last_ts = ts;
	if (fin) {
		e->flags |= EF_FIN;
		e->fin_seq = rel + seg_len;
	}
	if (ack) {
		if (peer->state == Z_INACTIVE) {
			rel_ack = 1;
			init_peer(peer, p->ack);
		} else {
			int ack_underflow = 0;
			rel_ack = relative_seq(peer, p->ack, peer->ack_seq, peer->ack_wraps, &ack_underflow);
			if (ack_underflow)
				rel_ack = 0;
			else if (!rst)
				update_ack_seq(peer, p->ack); /* acks in RSTs are not trusted */
		}
	}
	update_last_seq(k, dir, end, syn, fin, rst, len);
	do_close = update_state_machine(k, dir, p->seq, len, is_orig, syn, fin, rst, ack);
	if (ack)
		ack_received(k, dir ^ 1, rel_ack);
	if (len > 0 && !rst && !underflow && p->payload_caplen >= len)
		data_sent(e, syn ? rel + 1 : rel, len);
	check_eof(k, dir);
	if (do_close && !(e->flags & EF_DID_CLOSE))
		connection_closed(k, dir);
	e->flags |= EF_SEEN;
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

uint64_t mosfw_conn_size(const struct mosfw_conn *k, unsigned role)
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
const char *mosfw_conn_state(const struct mosfw_conn *k)
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

void mosfw_conn_uid(const struct mosfw_flow *f, char *buf)
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

static inline void put_str(struct out *o, const char *s)
{
	put_mem(o, s, strlen(s));
}

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
	int n;       /* fields written or unset so far */
	int quoted;  /* the open field's value is a JSON string */
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

size_t mosfw_conn_record(const struct mosfw_flow *f, const struct mosfw_conn *k, unsigned format,
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

	mosfw_conn_uid(f, uid);
	/* one field list for both formats: Zeek's conn.log fields, then
	 * mosfw's (TSV in the #fields order, JSON with the same names) */
	fd.w = w;
	fd.json = format != MOSFW_CONN_ZEEK;
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
		put_u64(w, mosfw_conn_size(k, 0));
		put_field(&fd, "resp_bytes", 0);
		put_u64(w, mosfw_conn_size(k, 1));
	} else {
		unset_field(&fd);
		unset_field(&fd);
		unset_field(&fd);
	}
	put_field(&fd, "conn_state", 1);
	put_str(w, mosfw_conn_state(k));
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
	put_str(w, mosfw_state_name(f->side[MOSFW_SIDE_CLIENT].state));
	put_field(&fd, "svr_state", 1);
	put_str(w, mosfw_state_name(f->side[MOSFW_SIDE_SERVER].state));
	put_field(&fd, "close_reason", 1);
	put_str(w, mosfw_end_reason_name(f->end_reason));
	put_field(&fd, "core", 0);
	put_u64(w, f->core);
	end_record(&fd);
	if (o.overflow)
		return cap;
	if (o.p < o.end)
		*o.p = '\0';
	return (size_t)(o.p - buf);
}
