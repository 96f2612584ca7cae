/* SPDX-License-Identifier: MIT */
/*
 * zeek_log.c -- Zeek's conn.log view as an observer of an engine core, on
 * the engine's public header only (mosfw_api.h): it keeps one struct
 * zeek_conn per flow slot (allocated with the observer, so a run without
 * the tracker pays nothing), updates it after each TCP update
 * (zeek_view.c) and, with a log format, appends each ended flow's record
 * (zeek_record.c) to a per-burst buffer the tracker takes after each
 * burst. The record is written when the engine forgets the flow, not when
 * it ends it: a flow that ended on FIN or RST lingers for tcp_tw_interval
 * (Zeek's tcp_close_delay), and its late packets (a last ACK, a FIN sent
 * again, a second RST) still count, as Zeek counts them.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "zeek.h"
#include "zeek_view.h"

#define CONN_RECORD_MAX 1024u /* zeek_conn_record() never needs more */
#define CONN_LOG_SIZE (256u * 1024u)
#define HUGE_PAGE (2u << 20)

/* what every packet reads fills the view's first two cache lines (zeek.h) */
_Static_assert(sizeof(struct zeek_conn) == 6 * 64, "struct zeek_conn: six cache lines");
_Static_assert(offsetof(struct zeek_conn, history) == 2 * 64, "struct zeek_conn: hot part");

struct zeek_log {
	struct mosfw_observer obs;
	struct zeek_conn *views; /* by flow slot */
	uint32_t n_slots;
	void *map; /* the mapping views lie in; its length */
	size_t map_len;
	struct zeek_layers *layers; /* by flow slot, made at the first flow with layers */
	uint64_t created_id;        /* the flow created last (flow_layers follows) */
	char *log;                  /* records of flows ended this burst; NULL = no log */
	size_t len, cap;
	int format;
	struct zeek_nets nets;      /* Site::local_nets */
	struct zeek_nets csum_nets; /* ignore_checksums_nets */
};

static void on_tcp(void *self, const struct mosfw_flow *f, uint32_t slot, const struct mosfw_seg *s)
{
	struct zeek_log *z = self;

	if (slot < z->n_slots)
		zeek_conn_packet(&z->views[slot], f, s);
}

static void on_dgram(void *self, const struct mosfw_flow *f, uint32_t slot,
                     const struct mosfw_seg *s)
{
	struct zeek_log *z = self;

	if (slot >= z->n_slots)
		return;
	if ((s->flags & MOSFW_SEG_BAD_CSUM) && z->csum_nets.n &&
	    zeek_is_local(&z->csum_nets, f->tuple.family,
	                  (s->dir & 1u) == MOSFW_SIDE_CLIENT ? f->tuple.cli_addr
	                                                     : f->tuple.srv_addr) == 1) {
		/* Zeek's ignore_checksums_nets: a sender there is not checked */
		struct mosfw_seg unchecked = *s;
		unchecked.flags = (uint8_t)(unchecked.flags & ~MOSFW_SEG_BAD_CSUM);
		zeek_conn_dgram(&z->views[slot], f, &unchecked);
		return;
	}
	zeek_conn_dgram(&z->views[slot], f, s);
}

/* A packet of a flow the engine ended (within tcp_tw_interval, Zeek's
 * close delay): counted apart, then accounted as any packet. */
static void on_late(void *self, const struct mosfw_flow *f, uint32_t slot,
                    const struct mosfw_seg *s)
{
	struct zeek_log *z = self;
	struct zeek_conn *k;
	unsigned dir = s->dir & 1u;

	if (slot >= z->n_slots)
		return;
	k = &z->views[slot];
	if (k->flow_id != f->id || !(k->flags & CF_INIT))
		return; /* not kept */
	k->late_pkts[dir]++;
	k->late_ip_bytes[dir] += s->ip_len;
	zeek_conn_packet(k, f, s);
}

/* the flow is forgotten (after its close delay, or at once): its record */
static void on_forgotten(void *self, const struct mosfw_flow *f, uint32_t slot)
{
	struct zeek_log *z = self;
	size_t n;

	if (!z->log || slot >= z->n_slots)
		return;
	n = zeek_conn_record_layers(f, &z->views[slot], &z->nets, zeek_log_layers(z, f, slot),
	                            (unsigned)z->format, z->log + z->len, z->cap - z->len);
	if (n < z->cap - z->len)
		z->len += n;
}

static void on_created(void *self, const struct mosfw_flow *f, uint32_t slot)
{
	((struct zeek_log *)self)->created_id = f->id;
}

static void on_layers(void *self, uint32_t slot, const struct mosfw_tunnel *t, uint32_t n)
{
	struct zeek_log *z = self;
	struct zeek_layers *l;
	uint32_t i, vlans = 0;

	if (slot >= z->n_slots)
		return;
	if (!z->layers && !(z->layers = calloc(z->n_slots, sizeof(*z->layers))))
		return; /* out of memory: the record shows no layers */
	l = &z->layers[slot];
	l->flow_id = z->created_id;
	l->vlan = l->inner_vlan = -1;
	l->n = 0;
	for (i = 0; i < n; i++) {
		if (t[i].kind == MOSFW_TUN_VLAN && vlans < 2) {
			if (vlans++ == 0)
				l->vlan = (int32_t)t[i].id;
			else
				l->inner_vlan = (int32_t)t[i].id;
		}
		if (l->n < ZEEK_LAYERS_MAX) {
			l->kind[l->n] = t[i].kind;
			l->id[l->n++] = t[i].id;
		}
	}
}

static void on_burst(void *self) { ((struct zeek_log *)self)->len = 0; }

/* The views: an anonymous mapping (zero pages, backed when first
 * touched), aligned to and advised for transparent huge pages where the
 * kernel has them. The flows of a run spread over many slots (ended
 * flows keep theirs while they linger as zombies): with 4 KiB pages the
 * first touch of each page was a fault, thousands in a run. */
static int map_views(struct zeek_log *z, uint32_t slots)
{
	size_t len = (size_t)(slots ? slots : 1) * sizeof(struct zeek_conn);
	size_t map_len = len >= HUGE_PAGE ? len + HUGE_PAGE : len;
	uintptr_t start;
	void *m = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return -1;
	z->map = m;
	z->map_len = map_len;
	start = (uintptr_t)m;
	if (len >= HUGE_PAGE) {
		start = (start + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
#ifdef MADV_HUGEPAGE
		madvise((void *)start, len, MADV_HUGEPAGE); /* advice only: failure is fine */
#endif
	}
	z->views = (struct zeek_conn *)start;
	return 0;
}

void zeek_log_free(struct zeek_log *z)
{
	if (!z)
		return;
	if (z->map)
		munmap(z->map, z->map_len);
	free(z->log);
	free(z->layers);
	free(z);
}

static void on_detach(void *self) { zeek_log_free(self); }

struct zeek_log *zeek_log_new(uint32_t slots, int format)
{
	struct zeek_log *z;

	if (format != ZEEK_VIEW_ONLY && format != ZEEK_JSON && format != ZEEK_TSV)
		return NULL;
	if (!(z = calloc(1, sizeof(*z))))
		return NULL;
	z->n_slots = slots;
	z->format = format;
	if (format != ZEEK_VIEW_ONLY) {
		z->cap = CONN_LOG_SIZE;
		z->log = malloc(z->cap);
	}
	if (map_views(z, slots) < 0 || (format != ZEEK_VIEW_ONLY && !z->log)) {
		zeek_log_free(z);
		return NULL;
	}
	z->obs.name = "zeek";
	z->obs.self = z;
	z->obs.tcp_updated = on_tcp;
	z->obs.dgram_updated = on_dgram;
	z->obs.flow_created = on_created;
	z->obs.flow_layers = on_layers;
	z->obs.late_pkt = on_late;
	z->obs.flow_forgotten = on_forgotten;
	z->obs.burst = on_burst;
	if (z->log) { /* room for one more packet's records, tested by the core */
		z->obs.room_used = &z->len;
		z->obs.room_limit = z->cap - 4 * CONN_RECORD_MAX;
	}
	z->obs.detach = on_detach;
	return z;
}

static int add_net(struct zeek_nets *nets, unsigned family, const uint8_t *addr, unsigned bits)
{
	struct zeek_net *n;
	unsigned i;

	if (!addr || (family != 4 && family != 6) || bits > (family == 4 ? 32u : 128u) ||
	    nets->n >= ZEEK_LOCAL_NETS_MAX)
		return -1;
	n = &nets->net[nets->n++];
	memset(n, 0, sizeof(*n));
	n->family = (uint8_t)family;
	n->bits = (uint8_t)bits;
	for (i = 0; i < bits / 8u; i++)
		n->addr[i] = addr[i];
	if (bits % 8u)
		n->addr[i] = (uint8_t)(addr[i] & (0xffu << (8u - bits % 8u)));
	return 0;
}

int zeek_log_add_local_net(struct zeek_log *z, unsigned family, const uint8_t *addr, unsigned bits)
{
	return z ? add_net(&z->nets, family, addr, bits) : -1;
}

int zeek_log_add_checksum_net(struct zeek_log *z, unsigned family, const uint8_t *addr,
                              unsigned bits)
{
	return z ? add_net(&z->csum_nets, family, addr, bits) : -1;
}

const struct zeek_nets *zeek_log_nets(const struct zeek_log *z) { return z ? &z->nets : NULL; }

const struct mosfw_observer *zeek_log_observer(struct zeek_log *z) { return &z->obs; }

size_t zeek_log_take(const struct zeek_log *z, const char **data)
{
	*data = z->log;
	return z->log ? z->len : 0;
}

const struct zeek_conn *zeek_log_view(const struct zeek_log *z, const struct mosfw_flow *f,
                                      uint32_t slot)
{
	static const struct zeek_conn none;

	if (!z || !f || slot >= z->n_slots || !f->id || z->views[slot].flow_id != f->id)
		return &none;
	return &z->views[slot];
}

const struct zeek_layers *zeek_log_layers(const struct zeek_log *z, const struct mosfw_flow *f,
                                          uint32_t slot)
{
	if (!z || !f || !z->layers || slot >= z->n_slots || !f->id ||
	    z->layers[slot].flow_id != f->id)
		return NULL;
	return &z->layers[slot];
}
