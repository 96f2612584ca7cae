/* SPDX-License-Identifier: MIT */
/*
 * zeek_view.c -- Zeek's conn.log view of a flow, kept per packet (see
 * zeek_view.h).
 *
 * Per packet, zeek_conn_packet() runs the steps of Zeek's
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
#include "zeek_view.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#define TOO_LARGE_SEQ_DELTA 1048576             /* Zeek's TOO_LARGE_SEQ_DELTA */
#define MAX_ABOVE_HOLE_WITHOUT_ACKS 16384u      /* tcp_max_above_hole_without_any_acks */
#define EXCESSIVE_DATA_WITHOUT_ACKS (10u << 20) /* tcp_excessive_data_without_further_acks */


/* ---- sequence space ------------------------------------------------------- */

static inline uint32_t start32(const ep_t *e) { return (uint32_t)e->start_seq; }

/* TCPSessionAdapter::get_relative_seq (inlined: twice per packet) */
static inline __attribute__((always_inline)) uint64_t
relative_seq(const ep_t *e, uint32_t cur, uint32_t last, uint32_t wraps, int *underflow)
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
	default: break;
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
static int32_t update_last_seq(struct zeek_conn *k, unsigned side, uint32_t last_seq, int syn,
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
		zeek_scaled_history(k, side, 'T', &k->rxmt_cnt[side], &k->rxmt_thresh[side]);
	return delta;
}

/* ---- content gaps (a small model of TCP_Reassembler) ---------------------- */

static inline int is_clean(const ep_t *a)
{
	return a->state == Z_ESTABLISHED ||
	       (a->state == Z_CLOSED && a->prev_state == Z_ESTABLISHED);
}

static void drop_block(struct zeek_conn *k, unsigned side)
{
	uint64_t(*b)[2] = k->blk[side];

	b[0][0] = b[1][0];
	b[0][1] = b[1][1];
	k->ep[side].n_blk--;
}

/* Deliver the buffered blocks that are now in order. */
static void deliver_blocks(struct zeek_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];
	uint64_t(*b)[2] = k->blk[side];

	while (e->n_blk && b[0][0] <= e->reassem_seq) {
		if (b[0][1] > e->reassem_seq)
			e->reassem_seq = b[0][1];
		drop_block(k, side);
	}
}

/* Buffer [lo, hi) above a hole: merge with what overlaps or touches it;
 * with no room left, join the two nearest ranges (the smaller hole is
 * then taken as filled: at most one gap less is reported). */
static void insert_block(struct zeek_conn *k, unsigned side, uint64_t lo, uint64_t hi)
{
	ep_t *e = &k->ep[side];
	uint64_t(*blk)[2] = k->blk[side];
	uint64_t b[3][2];
	unsigned n = 0, i, j, best;

	for (i = 0; i < e->n_blk; i++) {
		if (blk[i][1] < lo || blk[i][0] > hi) {
			b[n][0] = blk[i][0];
			b[n][1] = blk[i][1];
			n++;
		} else {
			if (blk[i][0] < lo)
				lo = blk[i][0];
			if (blk[i][1] > hi)
				hi = blk[i][1];
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
		blk[i][0] = b[i][0];
		blk[i][1] = b[i][1];
	}
	e->n_blk = (uint8_t)n;
}

/* TCP_Reassembler::Gap */
static void gap(struct zeek_conn *k, unsigned side, uint64_t len)
{
	ep_t *e = &k->ep[side];

	if (is_clean(e) && is_clean(&k->ep[side ^ 1])) {
		zeek_scaled_history(k, side, 'G', &k->gap_cnt[side], &k->gap_thresh[side]);
		k->missed_bytes += len; /* conn.zeek's content_gap handler */
	}
}

/* TCP_Reassembler::Undelivered: the peer acknowledged data up to up_to
 * that was never delivered in order. */
static void undelivered(struct zeek_conn *k, unsigned side, uint64_t up_to)
{
	ep_t *e = &k->ep[side];

	if (up_to <= 2 && (k->flags & CF_PARTIAL))
		return; /* the faked-up initial sequence of a partial connection */
	if (!(e->flags & EF_SKIP)) {
		while (e->n_blk && k->blk[side][0][0] < up_to) {
			if (k->blk[side][0][0] > e->reassem_seq) {
				gap(k, side, k->blk[side][0][0] - e->reassem_seq);
				e->reassem_seq = k->blk[side][0][0];
			}
			deliver_blocks(k, side);
		}
		if (up_to > e->reassem_seq)
			gap(k, side, up_to - e->reassem_seq);
	}
	if (up_to > e->reassem_seq)
		e->reassem_seq = up_to;
}

static int data_pending(const struct zeek_conn *k, unsigned side)
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
static void connection_closed(struct zeek_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];

	if (data_pending(k, side)) {
		e->flags |= EF_CLOSE_DEFERRED;
		return;
	}
	e->flags &= (uint8_t)~EF_CLOSE_DEFERRED;
	e->flags |= EF_DID_CLOSE;
}

/* TCP_Reassembler::CheckEOF -> EndpointEOF: a deferred close completes
 * (the test of the deferral is inlined: up to twice per packet) */
static void check_eof_deferred(struct zeek_conn *k, unsigned side)
{
	ep_t *e = &k->ep[side];

	if (((e->flags & EF_FIN) || e->state == Z_CLOSED || e->state == Z_RESET) &&
	    !data_pending(k, side))
		connection_closed(k, side);
}

static inline void check_eof(struct zeek_conn *k, unsigned side)
{
	if (k->ep[side].flags & EF_CLOSE_DEFERRED)
		check_eof_deferred(k, side);
}

/* TCP_Reassembler::AckReceived on `side`'s data */
static void ack_received(struct zeek_conn *k, unsigned side, uint64_t seq)
{
	ep_t *e = &k->ep[side];

	if ((e->flags & EF_FIN) && seq >= e->fin_seq)
		seq = e->fin_seq - 1;
	if (seq <= e->trim_seq)
		return;
	if (seq > e->reassem_seq)
		undelivered(k, side, seq);
	while (e->n_blk && k->blk[side][0][1] <= seq)
		drop_block(k, side);
	e->trim_seq = seq;
	deliver_blocks(k, side);
	check_eof(k, side);
}

/* TCP_Endpoint::DataSent -> TCP_Reassembler::DataSent */
static void data_sent(struct zeek_conn *k, unsigned side, uint64_t seq, uint32_t len)
{
	ep_t *e = &k->ep[side];
	uint64_t(*blk)[2] = k->blk[side];
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
		deliver_blocks(k, side);
	} else {
		insert_block(k, side, seq, upper);
	}
	/* what the reassembler holds: delivered but unacknowledged, and the
	 * blocks above a hole */
	stored = e->reassem_seq > e->trim_seq ? e->reassem_seq - e->trim_seq : 0;
	for (i = 0; i < e->n_blk; i++)
		stored += blk[i][1] - blk[i][0];
	if ((e->n_blk && no_data_acked(e) &&
	     blk[e->n_blk - 1][1] - e->reassem_seq > MAX_ABOVE_HOLE_WITHOUT_ACKS) ||
	    stored > EXCESSIVE_DATA_WITHOUT_ACKS) {
		e->n_blk = 0;
		e->flags |= EF_SKIP;
	}
}

/* ---- the endpoint state machine (UpdateStateMachine) ----------------------- */

static int update_inactive(struct zeek_conn *k, unsigned side, uint32_t base_seq, uint32_t len,
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
				zeek_flip_roles(k);
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

static int update_established(struct zeek_conn *k, unsigned side, int syn, int fin, int rst,
                              int ack)
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

static int update_state_machine(struct zeek_conn *k, unsigned side, uint32_t base_seq, uint32_t len,
                                int is_orig, int syn, int fin, int rst, int ack)
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
	case Z_PARTIAL: return update_established(k, side, syn, fin, rst, ack);
	case Z_CLOSED:
		if (rst && k->ep[side ^ 1].state != Z_CLOSED) {
			set_state(e, Z_RESET);
			if (!(e->flags & EF_DID_CLOSE))
				do_close = 1; /* RST after FIN */
		}
		return do_close;
	default: /* Z_RESET: nothing changes */ return 0;
	}
}

/* ---- per packet ------------------------------------------------------------ */

/* The first packet: NewConn + WantConnection's flip rule. */
static void init_conn(struct zeek_conn *k, const struct mosfw_flow *f, unsigned dir,
                      const struct mosfw_seg *p)
{
	uint8_t fl = p->tcp_flags;
	/* the sender's and the receiver's ports */
	uint16_t sport = dir == MOSFW_SIDE_CLIENT ? f->tuple.cli_port : f->tuple.srv_port;
	uint16_t dport = dir == MOSFW_SIDE_CLIENT ? f->tuple.srv_port : f->tuple.cli_port;
	int syn = (fl & MOSFW_TH_SYN) != 0, ack = (fl & MOSFW_TH_ACK) != 0;
	int flip = 0;
	unsigned s;

	k->flags = CF_INIT;
	for (s = 0; s < 2; s++) {
		k->rxmt_thresh[s] = k->win0_thresh[s] = k->gap_thresh[s] = 1;
		k->ep[s].reassem_seq = k->ep[s].trim_seq = 1;
	}
	k->orig_side = (uint8_t)dir;
	if ((!syn || ack) && zeek_likely_server_port(sport)) {
		if (zeek_likely_server_port(dport))
			flip = !syn && sport < dport; /* both plausible */
		else
			flip = 1;
	}
	if (flip)
		zeek_flip_roles(k);
}

void zeek_conn_packet(struct zeek_conn *k, const struct mosfw_flow *f, const struct mosfw_seg *p)
{
	unsigned dir = p->dir;
	double ts = p->ts;
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
		init_conn(k, f, dir, p);
	}
	dir &= 1;
	e = &k->ep[dir];
	peer = &k->ep[dir ^ 1];
	is_orig = dir == k->orig_side;

	/* SetPartialStatus */
	if (is_orig) {
		if (!(e->flags & EF_SEEN))
			k->flags = (uint8_t)((k->flags & ~CF_PARTIAL) |
			                     ((!syn || ack) ? CF_PARTIAL : 0));
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
		if (check_history(k, dir, HM_SYN, code) && rel != k->hist_last_syn[dir])
			zeek_side_history(k, dir, code);
		k->hist_last_syn[dir] = rel;
	} else if (fin) {
		if (check_history(k, dir, HM_FIN, 'F') && rel + len != k->hist_last_fin[dir])
			zeek_side_history(k, dir, 'F');
		k->hist_last_fin[dir] = rel + len;
	} else if (rst) {
		if (check_history(k, dir, HM_RST, 'R') && rel != k->hist_last_rst[dir])
			zeek_side_history(k, dir, 'R');
		k->hist_last_rst[dir] = rel;
	} else if (len) {
		check_history(k, dir, HM_DATA, 'D');
	} else if (ack) {
		check_history(k, dir, HM_ACK, 'A');
	}

	/* update_window: zero windows ('W') */
	if (p->window == 0 && !rst && peer->state != Z_CLOSED && e->state != Z_RESET)
		zeek_scaled_history(k, dir, 'W', &k->win0_cnt[dir], &k->win0_thresh[dir]);

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
			rel_ack = relative_seq(peer, p->ack, peer->ack_seq, peer->ack_wraps,
			                       &ack_underflow);
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
		data_sent(k, dir, syn ? rel + 1 : rel, len);
	check_eof(k, dir);
	if (do_close && !(e->flags & EF_DID_CLOSE))
		connection_closed(k, dir);
	e->flags |= EF_SEEN;
}
