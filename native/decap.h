/* SPDX-License-Identifier: MIT */
/*
 * decap.h -- the layer loop between the link layer and the innermost IP
 * packet: VLAN/QinQ tags, MPLS, PPPoE, PBB, FabricPath, VN-Tag, and the
 * tunnels (IP in IP, GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, AYIYA).
 * mosfw_parse() (declared in packet.h) lives here: the link layer
 * (packet.c, linktypes.c), then this loop, which calls packet.c's IP/TCP
 * parsers for each IP header. Each layer is recorded in the packet's
 * tun[]; the innermost IP/TCP fields are left as a plain parse would.
 */
#ifndef MOSFW_DECAP_H
#define MOSFW_DECAP_H

#include <stdint.h>

#include "mosfw_api.h"
#include "packet.h"

/* IP protocols a tunnel may ride in (IP in IP, GRE, UDP). */
static inline int mosfw_decap_may_tunnel(uint8_t ip_proto)
{
	return ip_proto == 4 || ip_proto == 41 || ip_proto == 47 || ip_proto == 17;
}

/* The default settings (ports, depth 4). */
void mosfw_decap_defaults(struct mosfw_decap_config *dc);

#endif /* MOSFW_DECAP_H */
