/* SPDX-License-Identifier: MIT */
/*
 * mosfw_tunnel.h -- the encapsulation part of the public C surface,
 * included by mosfw_api.h (never on its own): the layers a packet came
 * through and the decapsulation settings.
 */
#ifndef MOSFW_TUNNEL_H
#define MOSFW_TUNNEL_H

#include <stdint.h>

/* ---- encapsulation (decap.c, tunnels.c; docs/encapsulation.md) ------ */

/* Layers a packet came through; a layer's id is the VLAN id, MPLS label,
 * PPPoE session, PBB I-SID, FabricPath FTag, VN-Tag destination VIF, GRE
 * key (0 without), ERSPAN session, VXLAN/Geneve VNI, GTP-U TEID, or 0. */
enum mosfw_tunnel_kind {
	MOSFW_TUN_VLAN = 0,
	MOSFW_TUN_MPLS = 1,
	MOSFW_TUN_PPPOE = 2,
	MOSFW_TUN_PBB = 3,
	MOSFW_TUN_FABRICPATH = 4,
	MOSFW_TUN_VNTAG = 5,
	MOSFW_TUN_IPIP = 6,
	MOSFW_TUN_GRE = 7,
	MOSFW_TUN_ERSPAN = 8,
	MOSFW_TUN_VXLAN = 9,
	MOSFW_TUN_GENEVE = 10,
	MOSFW_TUN_GTPU = 11,
	MOSFW_TUN_TEREDO = 12,
	MOSFW_TUN_AYIYA = 13,
};
#define MOSFW_TUN_KINDS 16   /* size of the per-kind counter arrays */
#define MOSFW_MAX_TUNNELS 16 /* layers recorded per packet / flow */

/* One layer; L2 layers (VLAN ... VN-Tag) have family 0, no addresses. */
struct mosfw_tunnel {
	uint8_t kind, family;  /* enum mosfw_tunnel_kind; outer IP family 4/6 or 0 */
	uint16_t sport, dport; /* outer UDP ports (UDP tunnels), else 0 */
	uint16_t pad;
	uint32_t id;              /* see enum mosfw_tunnel_kind */
	uint8_t src[16], dst[16]; /* outer addresses (IPv4 in the first 4) */
};

/* Decapsulation settings; a port 0 is unused. max_depth: tunnel layers a
 * packet may come through (VLAN tags do not count, an MPLS stack counts
 * once); a deeper packet is skipped (tunnel_too_deep); 0 = decapsulate
 * nothing (VLAN tags are still walked). key_by_tunnel: key flows by
 * tunnel identity too (tuple.zone). mpls_pw: an MPLS payload that is not
 * IP is 0 = not decoded, 1 = Ethernet, 2 = Ethernet after a control word. */
struct mosfw_decap_config {
	uint16_t vxlan_ports[4], geneve_ports[4];       /* 4789; 6081 */
	uint16_t gtpu_ports[4], teredo_ports[4];        /* 2152; 3544 */
	uint16_t ayiya_ports[4];                        /* 5072 */
	uint8_t max_depth, key_by_tunnel, mpls_pw, pad; /* 4, 0, 0 */
};

/* Counters by enum mosfw_tunnel_kind (struct mosfw_stats.tunnels). */
struct mosfw_tunnel_stats {
	uint64_t packets[MOSFW_TUN_KINDS];  /* packets through a layer of it (once per layer) */
	uint64_t too_deep[MOSFW_TUN_KINDS]; /* skipped: that layer went past max_depth */
	uint64_t broken[MOSFW_TUN_KINDS];   /* skipped: a broken header in or of it (also
	                                       counted in malformed or truncated) */
};

struct mosfw_core;

/* Layers (outermost first, at most max) of flow slot, stored from its
 * first packet; or of one frame of the source, decoded with the core's
 * settings. Return how many (0: plain). */
int mosfw_core_flow_tunnels(const struct mosfw_core *core, uint32_t slot, struct mosfw_tunnel *out,
                            int max);
int mosfw_core_frame_tunnels(const struct mosfw_core *core, const uint8_t *frame, uint32_t caplen,
                             struct mosfw_tunnel *out, int max);
/* "vlan", "mpls", ... for an enum mosfw_tunnel_kind; "" when unknown. */
const char *mosfw_tunnel_kind_name(int kind);

#endif /* MOSFW_TUNNEL_H */
