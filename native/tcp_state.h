/* SPDX-License-Identifier: MIT */
/*
 * tcp_state.h -- both endpoints' TCP state machines, emulated from the
 * packets a passive tap sees, after mOS (core/src/tcp_in.c, tcp_out.c):
 * for each packet the sender's stack is updated and its events raised
 * first, then the receiver's. Resilient to what taps miss (mOS's
 * BE_RESILIENT_TO_PACKET_DROP, always on): a lost SYN/ACK or handshake
 * ACK is inferred from later packets, FINs beyond a gap are accepted.
 */
#ifndef MOSFW_TCP_STATE_H
#define MOSFW_TCP_STATE_H

#include "event_ring.h"
#include "packet.h"

/* What the update decided about the flow's life. */
enum mosfw_tcp_verdict {
	MOSFW_TCP_GOING = 0, /* flow continues */
	MOSFW_TCP_ENDED_FIN, /* both sides closed after FINs */
	MOSFW_TCP_ENDED_RST, /* reset */
};

/* Update flow f (in slot) for packet p sent by side `dir`. Raises
 * PKT_IN, CONN_START, TCP_STATE_CHANGE, REXMIT, CONN_NEW_DATA, ERROR into
 * the ring (subscribed ones only) and counts into the flow. Returns a
 * verdict; the caller raises CONN_END. *rexmit is set to 1 when the
 * segment was classified as a retransmission. */
int mosfw_tcp_update(struct mosfw_flow *f, uint32_t slot, unsigned dir,
                     const struct mosfw_pkt_ctx *c, struct mosfw_ring *r, int *rexmit);

/* Initialise a new flow's endpoints. how: MOSFW_TCP_OPEN_SYN (client sent
 * a SYN: both start CLOSED/LISTEN), MOSFW_TCP_OPEN_SYNACK (server's SYN/ACK
 * seen first: client assumed SYN_SENT, mid-stream start), or
 * MOSFW_TCP_OPEN_MIDSTREAM (both ESTABLISHED). Raises the mid-stream
 * CONN_STARTs. */
enum {
	MOSFW_TCP_OPEN_SYN,
	MOSFW_TCP_OPEN_SYNACK,
	MOSFW_TCP_OPEN_MIDSTREAM
};
void mosfw_tcp_open(struct mosfw_flow *f, uint32_t slot, int how, const struct mosfw_pkt_ctx *c,
                    struct mosfw_ring *r);

/* Is the flow past its handshake (for idle-list choice)? */
static inline int mosfw_tcp_established(const struct mosfw_flow *f)
{
	return f->midstream || f->side[0].state >= MOSFW_TCP_ESTABLISHED ||
	       f->side[1].state >= MOSFW_TCP_ESTABLISHED;
}

/* Sequence arithmetic modulo 2^32. */
#define MOSFW_SEQ_LT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) < 0)
#define MOSFW_SEQ_LEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) <= 0)
#define MOSFW_SEQ_GT(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) > 0)
#define MOSFW_SEQ_GEQ(a, b) ((int32_t)((uint32_t)(a) - (uint32_t)(b)) >= 0)

/* History bits: what a side sent (Flow.history_bits). */
#define MOSFW_HIST_SYN 0x001
#define MOSFW_HIST_SYNACK 0x002
#define MOSFW_HIST_ACK 0x004 /* pure ACK */
#define MOSFW_HIST_DATA 0x008
#define MOSFW_HIST_FIN 0x010
#define MOSFW_HIST_RST 0x020
#define MOSFW_HIST_REXMIT 0x040
#define MOSFW_HIST_ZERO_WIN 0x080
#define MOSFW_HIST_BAD_SEQ 0x100

#endif /* MOSFW_TCP_STATE_H */
