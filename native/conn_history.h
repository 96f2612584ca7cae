/* SPDX-License-Identifier: MIT */
/*
 * conn_history.h -- Zeek's conn.log view of a flow, kept up to date per
 * packet: Zeek's endpoint states and sequence bookkeeping, the history
 * letters with Zeek's repetition rules, and the originator/responder
 * roles (Zeek's flip rules). The public read side (conn_state, sizes,
 * uid, one formatted record) is declared in mosfw_api.h.
 *
 * The emulation follows Zeek's src/packet_analysis/protocol/tcp/
 * TCPSessionAdapter.cc (Process, UpdateStateMachine and its helpers),
 * src/analyzer/protocol/tcp/TCP_Endpoint.cc (Size, CheckHistory, the
 * scaled letters), the content-gap logic of TCP_Reassembler.cc (with at
 * most two buffered blocks above a hole) and the conn_state() function of
 * scripts/base/protocols/conn/main.zeek. What it leaves out, and why, is
 * in samples/tracker/README.md.
 */
#ifndef MOSFW_CONN_HISTORY_H
#define MOSFW_CONN_HISTORY_H

#include "mosfw_api.h"
#include "packet.h"

/* Account packet p, sent by mosfw side `dir` at time ts, to flow f's
 * conn.log view k (the flow table's conns[slot]). The first call for a
 * flow (k->flow_id is not f->id) clears k and decides the roles from that
 * packet, as Zeek's NewConn does. */
void mosfw_conn_packet(struct mosfw_conn *k, const struct mosfw_flow *f, unsigned dir,
                       const struct mosfw_pkt *p, double ts);

/* Zeek's likely_server_ports for TCP with the default (base) scripts:
 * the ports every protocol analyzer registers as server ports. */
int mosfw_conn_likely_server_port(uint16_t port);

#endif /* MOSFW_CONN_HISTORY_H */
