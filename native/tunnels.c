/* SPDX-License-Identifier: MIT */
/* tunnels.c -- per-flow layer records (see tunnels.h) and their names. */
#include "tunnels.h"

#include <stdlib.h>
#include <string.h>

#include "core.h"

static const char *const KIND_NAMES[] = {
	"vlan", "mpls",   "pppoe", "pbb",    "fabricpath", "vntag",  "ipip",
	"gre",  "erspan", "vxlan", "geneve", "gtpu",       "teredo", "ayiya",
};

const char *mosfw_tunnel_kind_name(int kind)
{
	if (kind < 0 || kind >= (int)(sizeof(KIND_NAMES) / sizeof(KIND_NAMES[0])))
		return "";
	return KIND_NAMES[kind];
}

int mosfw_tun_expand(const struct mosfw_pkt *p, struct mosfw_tunnel *out, int max)
{
	int i, n = p->n_tun < max ? p->n_tun : max;

	for (i = 0; i < n; i++) {
		const struct mosfw_tun_layer *l = &p->tun[i];
		struct mosfw_tunnel *t = &out[i];
		memset(t, 0, sizeof(*t));
		t->kind = l->kind;
		t->id = l->id;
		if (l->pad) { /* the outer IP header was parsed whole */
			const uint8_t *ip = p->frame + l->ip_off;
			if ((ip[0] >> 4) == 4) {
				t->family = 4;
				memcpy(t->src, ip + 12, 4);
				memcpy(t->dst, ip + 16, 4);
			} else {
				t->family = 6;
				memcpy(t->src, ip + 8, 16);
				memcpy(t->dst, ip + 24, 16);
			}
			if (l->l4_off) {
				const uint8_t *u = p->frame + l->l4_off;
				t->sport = (uint16_t)((u[0] << 8) | u[1]);
				t->dport = (uint16_t)((u[2] << 8) | u[3]);
			}
		}
	}
	return n;
}

int mosfw_tun_flow_created(struct mosfw_tun_store *s, uint32_t pool_cap, uint32_t slot,
                           const struct mosfw_pkt *p)
{
	struct mosfw_flow_tun *ft;
	uint32_t n;

	if (!p->n_tun && !s->by_slot)
		return 0; /* the plain case: nothing stored, nothing to drop */
	if (!s->by_slot) {
		s->by_slot = calloc(pool_cap, sizeof(*s->by_slot));
		if (!s->by_slot)
			return -1;
		s->cap = pool_cap;
	}
	if (slot >= s->cap)
		return -1;
	ft = &s->by_slot[slot];
	if (slot >= s->used)
		s->used = slot + 1;
	if (!p->n_tun) {
		ft->n = 0;
		return 0;
	}
	n = p->n_tun < MOSFW_MAX_TUNNELS ? p->n_tun : MOSFW_MAX_TUNNELS;
	if (ft->cap < n) { /* kept for the slot's next flows */
		struct mosfw_tunnel *t = realloc(ft->t, sizeof(*t) * n);
		if (!t) {
			ft->n = 0;
			return -1;
		}
		ft->t = t;
		ft->cap = n;
	}
	ft->n = (uint32_t)mosfw_tun_expand(p, ft->t, (int)n);
	return 0;
}

int mosfw_tun_flow_get(const struct mosfw_tun_store *s, uint32_t slot, struct mosfw_tunnel *out,
                       int max)
{
	const struct mosfw_flow_tun *ft;
	int n;

	if (!s->by_slot || slot >= s->cap || max <= 0)
		return 0;
	ft = &s->by_slot[slot];
	n = (int)ft->n < max ? (int)ft->n : max;
	if (n)
		memcpy(out, ft->t, sizeof(*out) * (size_t)n);
	return n;
}

void mosfw_tun_store_free(struct mosfw_tun_store *s)
{
	uint32_t i;

	if (s->by_slot)
		for (i = 0; i < s->used; i++)
			free(s->by_slot[i].t);
	free(s->by_slot);
	memset(s, 0, sizeof(*s));
}

int mosfw_core_flow_tunnels(const struct mosfw_core *c, uint32_t slot, struct mosfw_tunnel *out,
                            int max)
{
	return mosfw_tun_flow_get(&c->tun, slot, out, max);
}

int mosfw_core_frame_tunnels(const struct mosfw_core *c, const uint8_t *frame, uint32_t caplen,
                             struct mosfw_tunnel *out, int max)
{
	struct mosfw_pkt p;

	if (!c->src || !frame)
		return 0;
	mosfw_parse(mosfw_source_linktype(c->src), frame, caplen, 0, &c->cfg.decap, &p);
	return mosfw_tun_expand(&p, out, max);
}
