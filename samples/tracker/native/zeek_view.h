/* SPDX-License-Identifier: MIT */
/*
 * zeek_view.h -- Zeek's conn.log view of a flow, kept up to date per
 * packet: Zeek's endpoint states and sequence bookkeeping, the history
 * letters with Zeek's repetition rules, and the originator/responder
 * roles (Zeek's flip rules). The public read side (conn_state, sizes,
 * uid, one formatted record) is declared in zeek.h.
 *
 * The emulation follows Zeek's src/packet_analysis/protocol/tcp/
 * TCPSessionAdapter.cc (Process, UpdateStateMachine and its helpers),
 * src/analyzer/protocol/tcp/TCP_Endpoint.cc (Size, CheckHistory, the
 * scaled letters), the content-gap logic of TCP_Reassembler.cc (with at
 * most two buffered blocks above a hole) and the conn_state() function of
 * scripts/base/protocols/conn/main.zeek. What it leaves out, and why, is
 * in samples/tracker/README.md.
 */
#ifndef ZEEK_VIEW_H
#define ZEEK_VIEW_H

#include "zeek.h"

/* zeek_conn_side.flags */
#define EF_DID_CLOSE 0x01      /* Zeek's did_close */
#define EF_FIN 0x02            /* FIN_cnt > 0 */
#define EF_SKIP 0x04           /* the reassembler's skip_deliveries */
#define EF_SEEN 0x08           /* first packet seen (partial-connection status) */
#define EF_CLOSE_DEFERRED 0x10 /* close waits for data above a hole */

/* zeek_conn.flags */
#define CF_INIT 0x01
#define CF_PARTIAL 0x02 /* Zeek's is_partial */

/* Zeek's TCP_Endpoint::HistoryMasks */
#define HM_SYN 0x01
#define HM_FIN 0x02
#define HM_RST 0x04
#define HM_FIN_RST 0x08
#define HM_DATA 0x10
#define HM_ACK 0x20
#define HM_MULTI 0x40

enum {
	Z_INACTIVE = ZEEK_INACTIVE,
	Z_SYN_SENT = ZEEK_SYN_SENT,
	Z_SYN_ACK_SENT = ZEEK_SYN_ACK_SENT,
	Z_PARTIAL = ZEEK_PARTIAL,
	Z_ESTABLISHED = ZEEK_ESTABLISHED,
	Z_CLOSED = ZEEK_CLOSED,
	Z_RESET = ZEEK_RESET,
};

typedef struct zeek_conn_side ep_t;

static inline uint64_t full_seq(uint32_t seq, uint32_t wraps)
{
	return ((uint64_t)wraps << 32) + seq;
}

static inline int no_data_acked(const ep_t *e)
{
	uint64_t ack = full_seq(e->ack_seq, e->ack_wraps);
	uint64_t start = (uint64_t)e->start_seq;
	return ack == start || ack == start + 1;
}

/* Account segment s (sent by mosfw side s->dir at s->ts) to flow f's
 * conn.log view k (the Zeek observer's views[slot], zeek_log.c). The
 * first call for a flow (k->flow_id is not f->id) clears k and decides
 * the roles from that segment, as Zeek's NewConn does. */
void zeek_conn_packet(struct zeek_conn *k, const struct mosfw_flow *f, const struct mosfw_seg *s);

/* zeek_history.c: history letters with Zeek's rules */
void zeek_add_history(struct zeek_conn *k, char c);
void zeek_side_history(struct zeek_conn *k, unsigned side, char code);
void zeek_flip_roles(struct zeek_conn *k);
int zeek_check_history(struct zeek_conn *k, unsigned side, uint32_t mask, char code);
void zeek_scaled_history(struct zeek_conn *k, unsigned side, char code, uint32_t *cnt,
                         uint32_t *thresh);

/* zeek_check_history() without its call when the letter was seen before
 * (most packets): with more or fewer than one letter so far, the
 * SYN/ACK-first flip cannot happen and only the mask is tested. */
static inline int check_history(struct zeek_conn *k, unsigned side, uint32_t mask, char code)
{
	if (k->hist_len != 1 && (k->hist_seen & (side != k->orig_side ? mask << 16 : mask)))
		return 1;
	return zeek_check_history(k, side, mask, code);
}

/* Zeek's likely_server_ports for TCP with the default (base) scripts:
 * the ports every protocol analyzer registers as server ports. */
int zeek_likely_server_port(uint16_t port);

/* zeek_dgram.c: a UDP/ICMP packet s of flow f into its view k (the first
 * one clears k and decides the roles, as Zeek's NewConn does); Zeek's
 * likely_server_ports for UDP; the conn_state of a UDP/ICMP flow. */
void zeek_conn_dgram(struct zeek_conn *k, const struct mosfw_flow *f, const struct mosfw_seg *s);
int zeek_udp_likely_server_port(uint16_t port);
const char *zeek_dgram_state(const struct mosfw_flow *f, const struct zeek_conn *k);
/* orig_bytes/resp_bytes of a UDP/ICMP/other flow's side (by mosfw side) */
uint64_t zeek_dgram_bytes(const struct mosfw_flow *f, const struct zeek_conn *k, unsigned side);

#endif /* ZEEK_VIEW_H */
