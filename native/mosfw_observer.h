/* SPDX-License-Identifier: MIT */
/*
 * mosfw_observer.h -- the observer part of the public C surface, included
 * by mosfw_api.h where the flows and the core are declared (never on its
 * own): C features attached at the core loop's fixed points.
 */
#ifndef MOSFW_OBSERVER_H
#define MOSFW_OBSERVER_H

#ifndef MOSFW_API_H
#error "include mosfw_api.h, not mosfw_observer.h"
#endif

/* ---- observers: features attached at the core loop's fixed points -----
 *
 * Callbacks the core calls at fixed points of its loop, in attach order
 * (as Suricata's flow callbacks, Retina's trackers); NULL ones cost one test
 * a packet. They run inside mosfw_core_run() (GIL released): never call
 * Python. Per-flow state is the observer's own, e.g. an array of
 * mosfw_core_slots() entries allocated when it is attached. */

/* One TCP segment as the TCP layer saw it (the packet's headers), or one
 * UDP/ICMP packet (dgram_updated: seq, ack, window, tcp_flags 0;
 * payload_len: packet.h mosfw_parse_dgram's). */
struct mosfw_seg {
	double ts;
	uint32_t seq, ack;
	uint32_t payload_len;    /* as the headers say */
	uint32_t payload_caplen; /* of which captured */
	uint16_t window;
	uint8_t tcp_flags;
	uint8_t dir;                  /* the sender: MOSFW_SIDE_CLIENT or MOSFW_SIDE_SERVER */
	uint32_t ip_len;              /* IP bytes as the header says (header + payload) */
	uint8_t proto;                /* IP protocol: 6, 17, 1 or 58 */
	uint8_t icmp_type, icmp_code; /* of an ICMP message (0 otherwise) */
	uint8_t flags;                /* MOSFW_SEG_* (dgram_updated) */
};

/* dgram_updated: a UDP datagram whose checksum is wrong (checked only with
 * mosfw_config.udp_checksums, only when the whole datagram was captured;
 * the packet is counted in its flow all the same) */
#define MOSFW_SEG_BAD_CSUM 0x01

struct mosfw_observer {
	const char *name;
	void *self; /* passed back to every callback */
	/* A TCP packet was parsed (before its flow is looked up). */
	void (*pkt_parsed)(void *self, const struct mosfw_seg *s);
	/* A flow was created in slot (before its first packet's TCP update);
	 * flow_layers follows for a flow that came through layers. */
	void (*flow_created)(void *self, const struct mosfw_flow *f, uint32_t slot);
	void (*flow_layers)(void *self, uint32_t slot, const struct mosfw_tunnel *t, uint32_t n);
	/* Both endpoints were updated for s (records written), before any end */
	void (*tcp_updated)(void *self, const struct mosfw_flow *f, uint32_t slot,
	                    const struct mosfw_seg *s);
	/* The flow in slot ended (f->end_reason; CONN_END written); slot reusable */
	void (*flow_ended)(void *self, const struct mosfw_flow *f, uint32_t slot);
	/* A burst starts. */
	void (*burst)(void *self);
	/* Room for one more packet's output in this burst (0 ends it early) */
	int (*room)(void *self);
	/* The core is freed or the observer detached: release self. */
	void (*detach)(void *self);
	/* Optional, instead of room(): the core tests *room_used <= room_limit */
	const size_t *room_used;
	size_t room_limit;
	/* A non-SYN packet of a FIN/RST-ended flow within tcp_tw_interval (ORPHAN, EVF_LATE) */
	void (*late_pkt)(void *self, const struct mosfw_flow *f, uint32_t slot,
	                 const struct mosfw_seg *s);
	/* The ended flow leaves the table: once, after flow_ended and any late_pkt. */
	void (*flow_forgotten)(void *self, const struct mosfw_flow *f, uint32_t slot);
	/* A UDP/ICMP packet was counted in its flow (PKT_IN written); flows of
	 * the protocols mosfw_config.protocols tracks only */
	void (*dgram_updated)(void *self, const struct mosfw_flow *f, uint32_t slot,
	                      const struct mosfw_seg *s);
};

/* Attach obs (copied); 0, or -1: table full or that name is attached. */
int mosfw_core_observe(struct mosfw_core *core, const struct mosfw_observer *obs);
/* Detach the observer of that name (detach runs); 0, or -1: none. */
int mosfw_core_unobserve(struct mosfw_core *core, const char *name);
/* The attached observer of that name's self pointer, NULL when none. */
void *mosfw_core_observer(const struct mosfw_core *core, const char *name);
/* Number of flow slots (an observer's per-slot array size). */
uint32_t mosfw_core_slots(const struct mosfw_core *core);

#endif /* MOSFW_OBSERVER_H */
