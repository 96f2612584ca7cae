/* SPDX-License-Identifier: MIT */
/*
 * core_dgram.c -- one core's UDP, ICMP and other-protocol flows
 * (mosfw_config.protocols):
 * a flow per Zeek key (packet.h: mosfw_parse_dgram), CONN_START on its
 * first packet, PKT_IN and the sender's counters on every packet, idle
 * timeouts on their own lists (core_end.c ends them). No state machine:
 * a datagram flow ends only by timeout, eviction or the end of input.
 * Also the likely server port rule both TCP (mid-stream pick-up) and UDP
 * use to say which side is the client.
 */
#include "core.h"
#include "csum.h"
#include "timers.h"

int mosfw_likely_server_port(uint16_t port)
{
	switch (port) {
	case 1080:
	case 1433:
	case 1521:
	case 2049:
	case 3128:
	case 3306:
	case 3389:
	case 5201:
	case 5432:
	case 5672:
	case 5900:
	case 6379:
	case 8000:
	case 8008:
	case 8080:
	case 8443:
	case 8888:
	case 9000:
	case 9092:
	case 9200:
	case 11211:
	case 27017: return 1;
	default: return port < 1024;
	}
}

/* A new flow for p in a free slot; MOSFW_NO_SLOT when the table is full
 * (ERROR table_full; no ORPHAN: those are TCP's) or the SYN filter (which
 * new flows are tracked) kept it out. */
static uint32_t dgram_new(struct mosfw_core *c, const struct mosfw_pkt_ctx *ctx, uint32_t hash,
                          unsigned *dir)
{
	const struct mosfw_pkt *p = ctx->pkt;
	int sender_is_client = 1;
	uint32_t slot;
	struct mosfw_flow *f;
	struct mosfw_event *e;

	/* Zeek's UDP role flip: the receiver is the client when only the
	 * sender's port is a likely server port (a DNS reply seen first) */
	if (p->ip_proto == 17)
		sender_is_client = !(mosfw_likely_server_port(p->sport) &&
		                     !mosfw_likely_server_port(p->dport));
	if (!mosfw_feat_syn_ok(&c->x, ctx->ts))
		return MOSFW_NO_SLOT;
	if (mosfw_core_make_room(c, ctx) < 0 ||
	    (slot = mosfw_ft_insert(&c->ft, p, hash, sender_is_client)) == MOSFW_NO_SLOT) {
		c->st.flows_refused++;
		e = mosfw_ring_push(&c->ring, MOSFW_EV_ERROR, ctx, NULL, MOSFW_NO_SLOT, 0);
		if (e)
			e->reason = MOSFW_ERR_TABLE_FULL;
		return MOSFW_NO_SLOT;
	}
	*dir = sender_is_client ? MOSFW_SIDE_CLIENT : MOSFW_SIDE_SERVER;
	f = &c->ft.flows[slot];
	f->first_dir = (uint8_t)*dir;
	f->first_ts = f->last_ts = ctx->ts;
	if (mosfw_tun_flow_created(&c->tun, c->ft.pool_cap, slot, p) < 0)
		c->st.nomem++;
	if (mosfw_core_claim(c, slot, ctx->ts)) {
		c->st.flows_created++;
		if (c->obs.n_created)
			mosfw_obs_flow_created(&c->obs, f, slot);
		if (p->n_tun && c->tun.by_slot && c->obs.n)
			mosfw_obs_flow_layers(&c->obs, slot, c->tun.by_slot[slot].t,
			                      c->tun.by_slot[slot].n);
	}
	f->side[*dir].flags |= MOSFW_HF_STARTED;
	mosfw_ring_push(&c->ring, MOSFW_EV_CONN_START, ctx, f, slot, *dir);
	return slot;
}

/* MOSFW_SEG_BAD_CSUM when the UDP checksum is wrong, by Zeek's check
 * (UDP.cc DeliverPacket): over the pseudo-header and the IP payload,
 * whatever the UDP length says; only when the frame and the IP payload
 * were captured whole; IPv4's 0 means none; a 0 in a datagram to a VXLAN
 * port (decap.vxlan_ports) that looks like VXLAN (more than a VXLAN and
 * an Ethernet header, the I flag) is none in IPv6 too. 0 otherwise. */
static unsigned udp_csum_flags(const struct mosfw_core *c, const struct mosfw_pkt *p)
{
	const uint8_t *u = p->l4;
	uint32_t len = p->l4_len, i, alen = p->family == 4 ? 4 : 16;
	uint64_t sum = 17u + (len >> 16) + (len & 0xffffu);
	int zero;

	if (len < 8 || p->frame != c->x.frame || c->x.wirelen > c->x.caplen ||
	    (uint64_t)(u - p->frame) + len > c->x.caplen)
		return 0;
	zero = !u[6] && !u[7];
	if (zero && p->family == 4)
		return 0;
	if (zero && len > 8 + 8 + 14 && (u[8] & 0x08))
		for (i = 0; i < 4; i++)
			if (c->cfg.decap.vxlan_ports[i] && c->cfg.decap.vxlan_ports[i] == p->dport)
				return 0;
	sum = mosfw_csum_add(sum, p->src, alen);
	sum = mosfw_csum_add(sum, p->dst, alen);
	sum = mosfw_csum_add(sum, u, len);
	return mosfw_csum_fold(sum) == 0 ? 0 : MOSFW_SEG_BAD_CSUM;
}

void mosfw_core_dgram(struct mosfw_core *c, const struct mosfw_pkt *p, uint32_t hash, double ts)
{
	struct mosfw_pkt_ctx ctx = { p, ts, c->pkt_index };
	unsigned dir = 0;
	uint32_t slot;
	struct mosfw_flow *f;
	struct mosfw_half *x;

	if (c->cfg.shard_count > 1 && !c->shared &&
	    mosfw_ft_shard(hash, c->cfg.shard_count) != c->cfg.shard_index)
		return; /* another core's (other_shard counts TCP packets only) */
	slot = mosfw_ft_lookup(&c->ft, p, hash, &dir);
	if (slot == MOSFW_NO_SLOT && (slot = dgram_new(c, &ctx, hash, &dir)) == MOSFW_NO_SLOT)
		return;
	f = mosfw_idle_restart(&c->ft.flows[slot], c->now); /* idle time is input time */
	if (ts > f->last_ts)
		f->last_ts = ts;
	x = &f->side[dir];
	x->pkts++;
	x->ip_bytes += p->ip_len;
	x->payload_bytes += p->payload_len;
	if (p->payload_len)
		x->flags |= MOSFW_HF_DATA_SEEN;
	mosfw_ring_push(&c->ring, MOSFW_EV_PKT_IN, &ctx, f, slot, dir);
	if (c->obs.n_dgram && !mosfw_core_foreign(c, slot))
		mosfw_obs_dgram_updated(
			&c->obs, f, slot, dir, p, ts,
			c->cfg.udp_checksums && p->ip_proto == 17 ? udp_csum_flags(c, p) : 0);
	mosfw_ft_touch(&c->ft, slot,
	               p->ip_proto == 17                       ? MOSFW_LRU_UDP
	               : p->ip_proto == 1 || p->ip_proto == 58 ? MOSFW_LRU_ICMP
	                                                       : MOSFW_LRU_OTHER);
}
