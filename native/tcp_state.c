/* SPDX-License-Identifier: MIT */
/*
 * tcp_state.c -- passive emulation of both endpoints' TCP stacks.
 *
 * Sender update (what sending this packet says about the sender's state)
 * runs before the receiver update (what receiving it does to the peer),
 * as mOS does (UpdatePassiveSendTCPContext, then UpdateRecvTCPContext).
 *
 * One deliberate difference from mOS: the server's stack stays in LISTEN
 * until the tap sees it answer (SYN/ACK); mOS moves it to SYN_RCVD when
 * the SYN arrives. A SYN nobody answered leaves the server in LISTEN and
 * raises no server CONN_START, which is what a passive observer can know.
 */
#include "tcp_state.h"

#include "observers.h"

#define SEQ_SANE_WINDOW 0x40000000 /* |jump| beyond this is not believed */

static void set_state(struct mosfw_flow *f, uint32_t slot, unsigned side, unsigned st,
                      const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	unsigned old = f->side[side].state;
	struct mosfw_event *e;

	if (old == st)
		return;
	f->side[side].state = (uint8_t)st;
	e = mosfw_ring_push(r, MOSFW_EV_TCP_STATE_CHANGE, c, f, slot, side);
	if (e) {
		e->old_state = (uint8_t)old;
		e->new_state = (uint8_t)st;
	}
}

static void conn_start(struct mosfw_flow *f, uint32_t slot, unsigned side, int midstream,
                       const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	struct mosfw_event *e;

	f->side[side].flags |= MOSFW_HF_STARTED;
	e = mosfw_ring_push(r, MOSFW_EV_CONN_START, c, f, slot, side);

	if (e) {
		e->new_state = f->side[side].state;
		e->flags = midstream ? MOSFW_EVF_MIDSTREAM : 0;
	}
}

/* An endpoint starts: CONN_START first (as mOS dispatches its bits in
 * order), then the state change that started it. */
static void start_side(struct mosfw_flow *f, uint32_t slot, unsigned side, unsigned st,
                       int midstream, const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	unsigned old = f->side[side].state;
	struct mosfw_event *e;

	f->side[side].state = (uint8_t)st;
	conn_start(f, slot, side, midstream, c, r);
	e = mosfw_ring_push(r, MOSFW_EV_TCP_STATE_CHANGE, c, f, slot, side);
	if (e) {
		e->old_state = (uint8_t)old;
		e->new_state = (uint8_t)st;
	}
}

void mosfw_tcp_open(struct mosfw_flow *f, uint32_t slot, int how, const struct mosfw_pkt_ctx *c,
                    struct mosfw_ring *r)
{
	f->first_ts = f->last_ts = c->ts;
	switch (how) {
	case MOSFW_TCP_OPEN_SYN:
		f->side[MOSFW_SIDE_CLIENT].state = MOSFW_TCP_CLOSED;
		f->side[MOSFW_SIDE_SERVER].state = MOSFW_TCP_LISTEN;
		break;
	case MOSFW_TCP_OPEN_SYNACK:
		/* the client's SYN was not seen: it must be in SYN_SENT */
		f->midstream = 1;
		f->side[MOSFW_SIDE_CLIENT].state = MOSFW_TCP_SYN_SENT;
		f->side[MOSFW_SIDE_SERVER].state = MOSFW_TCP_LISTEN;
		conn_start(f, slot, MOSFW_SIDE_CLIENT, 1, c, r);
		break;
	default:
		f->midstream = 1;
		f->side[MOSFW_SIDE_CLIENT].state = MOSFW_TCP_ESTABLISHED;
		f->side[MOSFW_SIDE_SERVER].state = MOSFW_TCP_ESTABLISHED;
		conn_start(f, slot, MOSFW_SIDE_CLIENT, 1, c, r);
		conn_start(f, slot, MOSFW_SIDE_SERVER, 1, c, r);
		break;
	}
}

/* Classify the segment against the highest sequence end seen from its
 * sender: new data, retransmission (starts before it), keep-alive. */
static int classify_segment(struct mosfw_flow *f, uint32_t slot, unsigned dir,
                            const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	const struct mosfw_pkt *p = c->pkt;
	struct mosfw_half *x = &f->side[dir];
	uint32_t syn = (p->tcp_flags & MOSFW_TH_SYN) ? 1 : 0;
	uint32_t fin = (p->tcp_flags & MOSFW_TH_FIN) ? 1 : 0;
	uint32_t seglen = p->payload_len + syn + fin;
	uint32_t end = p->seq + seglen;
	uint32_t data_end = p->seq + syn + p->payload_len;
	int rexmit = 0;

	if (p->tcp_flags & MOSFW_TH_RST)
		return 0;
	if (!(x->flags & MOSFW_HF_SEQ_KNOWN)) {
		x->flags |= MOSFW_HF_SEQ_KNOWN;
		x->seq_hi = p->seq;
	} else if ((int32_t)(p->seq - x->seq_hi) > SEQ_SANE_WINDOW ||
	           (int32_t)(p->seq - x->seq_hi) < -SEQ_SANE_WINDOW) {
		struct mosfw_event *e = mosfw_ring_push(r, MOSFW_EV_ERROR, c, f, slot, dir);
		if (e)
			e->reason = MOSFW_ERR_BAD_SEQUENCE;
		x->hist |= MOSFW_HIST_BAD_SEQ;
		return 0;
	}
	if (seglen == 0)
		return 0;
	/* keep-alive: zero or one byte at seq_hi - 1, no SYN/FIN */
	if (!syn && !fin && p->payload_len <= 1 && p->seq == x->seq_hi - 1)
		return 0;
	if (MOSFW_SEQ_LT(p->seq, x->seq_hi)) {
		struct mosfw_event *e;
		rexmit = 1;
		x->rexmit_pkts++;
		x->rexmit_bytes += p->payload_len;
		x->hist |= MOSFW_HIST_REXMIT;
		e = mosfw_ring_push(r, MOSFW_EV_REXMIT, c, f, slot, dir);
		(void)e; /* seq/len of the segment are already in the record */
	}
	/* with reassembly buffers the stream raises CONN_NEW_DATA (in-order
	 * bytes readable); without, new bytes beyond seq_hi do */
	if (p->payload_len &&
	    !(r->obs->stream.data &&
	      r->obs->stream.data(r->obs->stream.self, f, slot, dir, c, r)) &&
	    MOSFW_SEQ_GT(data_end, x->seq_hi)) {
		uint32_t from = MOSFW_SEQ_GT(p->seq + syn, x->seq_hi) ? p->seq + syn : x->seq_hi;
		struct mosfw_event *e = mosfw_ring_push(r, MOSFW_EV_CONN_NEW_DATA, c, f, slot, dir);
		if (e) {
			e->seq = from;
			e->len = data_end - from;
		}
	}
	if (MOSFW_SEQ_GT(end, x->seq_hi))
		x->seq_hi = end;
	return rexmit;
}

static void sender_update(struct mosfw_flow *f, uint32_t slot, unsigned dir,
                          const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	const struct mosfw_pkt *p = c->pkt;
	struct mosfw_half *x = &f->side[dir];
	uint8_t fl = p->tcp_flags;
	unsigned s = x->state;

	if (fl & MOSFW_TH_RST) {
		x->flags |= MOSFW_HF_RST_SEEN;
		set_state(f, slot, dir, MOSFW_TCP_CLOSED, c, r);
		return;
	}
	if (fl & MOSFW_TH_SYN) {
		if (!(fl & MOSFW_TH_ACK)) {
			if (s == MOSFW_TCP_CLOSED || s == MOSFW_TCP_LISTEN) {
				x->isn = p->seq;
				x->flags |= MOSFW_HF_SYN_SEEN;
				start_side(f, slot, dir, MOSFW_TCP_SYN_SENT, 0, c, r);
			}
		} else {
			if (s == MOSFW_TCP_CLOSED || s == MOSFW_TCP_LISTEN) {
				x->isn = p->seq;
				x->flags |= MOSFW_HF_SYNACK_SEEN;
				start_side(f, slot, dir, MOSFW_TCP_SYN_RCVD, 0, c, r);
			} else if (s == MOSFW_TCP_SYN_SENT) {
				/* simultaneous open: it answers the peer's SYN */
				x->flags |= MOSFW_HF_SYNACK_SEEN;
				set_state(f, slot, dir, MOSFW_TCP_SYN_RCVD, c, r);
			}
		}
		return;
	}
	if (fl & MOSFW_TH_ACK) {
		/* a non-SYN ACK from an endpoint still in its handshake: it got
		 * the packet the tap missed (SYN/ACK or the handshake ACK) */
		if ((s == MOSFW_TCP_CLOSED || s == MOSFW_TCP_LISTEN) &&
		    !(x->flags & MOSFW_HF_STARTED)) {
			/* never restarts a side that already started and closed */
			start_side(f, slot, dir, MOSFW_TCP_ESTABLISHED, 1, c, r);
		} else if (s == MOSFW_TCP_SYN_SENT || s == MOSFW_TCP_SYN_RCVD) {
			set_state(f, slot, dir, MOSFW_TCP_ESTABLISHED, c, r);
		}
	}
	if (fl & MOSFW_TH_FIN) {
		s = x->state;
		if (!(x->flags & MOSFW_HF_FIN_SEEN))
			x->fin_seq = p->seq + p->payload_len;
		x->flags |= MOSFW_HF_FIN_SEEN;
		if (s == MOSFW_TCP_ESTABLISHED) {
			set_state(f, slot, dir, MOSFW_TCP_FIN_WAIT_1, c, r);
		} else if (s == MOSFW_TCP_CLOSE_WAIT) {
			const struct mosfw_half *y = &f->side[dir ^ 1];
			/* mOS: LAST_ACK if it acks the peer's FIN, else CLOSING */
			if ((fl & MOSFW_TH_ACK) && MOSFW_SEQ_GT(p->ack, y->fin_seq))
				set_state(f, slot, dir, MOSFW_TCP_LAST_ACK, c, r);
			else
				set_state(f, slot, dir, MOSFW_TCP_CLOSING, c, r);
		}
	}
}

static void receiver_update(struct mosfw_flow *f, uint32_t slot, unsigned dir,
                            const struct mosfw_pkt_ctx *c, struct mosfw_ring *r)
{
	const struct mosfw_pkt *p = c->pkt;
	unsigned rs = dir ^ 1;
	struct mosfw_half *y = &f->side[rs];
	uint8_t fl = p->tcp_flags;
	unsigned s = y->state;

	if (fl & MOSFW_TH_RST) {
		if (s != MOSFW_TCP_CLOSED)
			set_state(f, slot, rs, MOSFW_TCP_CLOSED, c, r);
		return;
	}
	if (fl & MOSFW_TH_SYN) {
		if (!(fl & MOSFW_TH_ACK)) {
			if (s == MOSFW_TCP_SYN_SENT) /* simultaneous open */
				set_state(f, slot, rs, MOSFW_TCP_SYN_RCVD, c, r);
		} else if (s == MOSFW_TCP_SYN_SENT || s == MOSFW_TCP_SYN_RCVD) {
			set_state(f, slot, rs, MOSFW_TCP_ESTABLISHED, c, r);
		}
		return;
	}
	if (fl & MOSFW_TH_ACK) {
		int acks_fin = (y->flags & MOSFW_HF_FIN_SEEN) && MOSFW_SEQ_GT(p->ack, y->fin_seq);
		switch (s) {
		case MOSFW_TCP_SYN_SENT: /* its SYN/ACK went unseen */
		case MOSFW_TCP_SYN_RCVD: set_state(f, slot, rs, MOSFW_TCP_ESTABLISHED, c, r); break;
		case MOSFW_TCP_FIN_WAIT_1:
			if (acks_fin)
				set_state(f, slot, rs, MOSFW_TCP_FIN_WAIT_2, c, r);
			break;
		case MOSFW_TCP_CLOSING:
			if (acks_fin)
				set_state(f, slot, rs, MOSFW_TCP_TIME_WAIT, c, r);
			break;
		case MOSFW_TCP_LAST_ACK:
			if (acks_fin)
				set_state(f, slot, rs, MOSFW_TCP_CLOSED, c, r);
			break;
		default: break;
		}
	}
	if (fl & MOSFW_TH_FIN) {
		s = y->state;
		if (s == MOSFW_TCP_ESTABLISHED)
			set_state(f, slot, rs, MOSFW_TCP_CLOSE_WAIT, c, r);
		else if (s == MOSFW_TCP_FIN_WAIT_1)
			set_state(f, slot, rs, MOSFW_TCP_CLOSING, c, r);
		else if (s == MOSFW_TCP_FIN_WAIT_2)
			set_state(f, slot, rs, MOSFW_TCP_TIME_WAIT, c, r);
	}
}

static inline int closed_or_tw(unsigned s)
{
	return s == MOSFW_TCP_CLOSED || s == MOSFW_TCP_TIME_WAIT;
}

int mosfw_tcp_update(struct mosfw_flow *f, uint32_t slot, unsigned dir,
                     const struct mosfw_pkt_ctx *c, struct mosfw_ring *r, int *rexmit)
{
	const struct mosfw_pkt *p = c->pkt;
	struct mosfw_half *x = &f->side[dir];
	uint8_t fl = p->tcp_flags;

	if (c->ts > f->last_ts) /* a packet from the past does not take it back */
		f->last_ts = c->ts;
	x->pkts++;
	x->ip_bytes += p->ip_len;
	x->payload_bytes += p->payload_len;
	x->window = p->window;
	if (fl & MOSFW_TH_ACK)
		x->last_ack = p->ack;
	if (p->payload_len)
		x->flags |= MOSFW_HF_DATA_SEEN;

	/* history bits, Zeek's letters */
	if ((fl & (MOSFW_TH_SYN | MOSFW_TH_ACK)) == MOSFW_TH_SYN)
		x->hist |= MOSFW_HIST_SYN;
	else if ((fl & (MOSFW_TH_SYN | MOSFW_TH_ACK)) == (MOSFW_TH_SYN | MOSFW_TH_ACK))
		x->hist |= MOSFW_HIST_SYNACK;
	if (fl & MOSFW_TH_FIN)
		x->hist |= MOSFW_HIST_FIN;
	if (fl & MOSFW_TH_RST)
		x->hist |= MOSFW_HIST_RST;
	if (p->payload_len)
		x->hist |= MOSFW_HIST_DATA;
	else if ((fl & (MOSFW_TH_ACK | MOSFW_TH_SYN | MOSFW_TH_FIN | MOSFW_TH_RST)) == MOSFW_TH_ACK)
		x->hist |= MOSFW_HIST_ACK;
	if (p->window == 0 && !(fl & (MOSFW_TH_SYN | MOSFW_TH_FIN | MOSFW_TH_RST)))
		x->hist |= MOSFW_HIST_ZERO_WIN;

	mosfw_ring_push(r, MOSFW_EV_PKT_IN, c, f, slot, dir);
	if (r->obs->stream.ack) /* an ACK past a gap in the peer's stream gives it up */
		r->obs->stream.ack(r->obs->stream.self, f, slot, dir, c, r);
	sender_update(f, slot, dir, c, r);
	*rexmit = classify_segment(f, slot, dir, c, r);
	receiver_update(f, slot, dir, c, r);

	if (fl & MOSFW_TH_RST)
		return MOSFW_TCP_ENDED_RST;
	if ((f->side[0].flags & MOSFW_HF_FIN_SEEN) && (f->side[1].flags & MOSFW_HF_FIN_SEEN) &&
	    closed_or_tw(f->side[0].state) && closed_or_tw(f->side[1].state))
		return MOSFW_TCP_ENDED_FIN;
	return MOSFW_TCP_GOING;
}
