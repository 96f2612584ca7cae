/* SPDX-License-Identifier: MIT */
/*
 * zeek_log.c -- Zeek's conn.log view as an observer of a core, on the
 * engine's public API only (mosfw_api.h): attached on demand (a conn log
 * or the Flow accessors asked for it), it keeps one struct mosfw_conn per
 * flow slot (allocated when attached, so a run without it pays nothing),
 * updates it after each TCP update (zeek_view.c) and, with a log format,
 * appends each ended flow's record (zeek_record.c) to a per-burst buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "mosfw_api.h"
#include "zeek_view.h"

#define ZEEK_OBSERVER "zeek"
#define CONN_RECORD_MAX 1024u /* mosfw_conn_record() never needs more */
#define CONN_LOG_SIZE (256u * 1024u)

struct zeek_log {
	struct mosfw_conn *views; /* by flow slot */
	uint32_t n_slots;
	int view_wanted;          /* attached for the Flow accessors too */
	char *log;                /* records of flows ended this burst; NULL = no log */
	size_t len, cap;
	int format;
};

static void on_tcp(void *self, const struct mosfw_flow *f, uint32_t slot, const struct mosfw_seg *s)
{
	struct zeek_log *z = self;

	mosfw_conn_packet(&z->views[slot], f, s);
}

static void on_end(void *self, const struct mosfw_flow *f, uint32_t slot)
{
	struct zeek_log *z = self;
	size_t n;

	if (!z->log)
		return;
	n = mosfw_conn_record(f, &z->views[slot], (unsigned)z->format, z->log + z->len,
	                      z->cap - z->len);
	if (n < z->cap - z->len)
		z->len += n;
}

static void on_burst(void *self)
{
	((struct zeek_log *)self)->len = 0;
}

static int on_room(void *self)
{
	const struct zeek_log *z = self;

	return !z->log || z->cap - z->len >= 4 * CONN_RECORD_MAX;
}

static void on_detach(void *self)
{
	struct zeek_log *z = self;

	free(z->views);
	free(z->log);
	free(z);
}

/* The core's Zeek observer, attached now if it is not. */
static struct zeek_log *attach(struct mosfw_core *core)
{
	struct zeek_log *z = mosfw_core_observer(core, ZEEK_OBSERVER);
	struct mosfw_observer o;

	if (z)
		return z;
	if (!(z = calloc(1, sizeof(*z))))
		return NULL;
	z->n_slots = mosfw_core_slots(core);
	z->views = calloc(z->n_slots, sizeof(*z->views));
	memset(&o, 0, sizeof(o));
	o.name = ZEEK_OBSERVER;
	o.self = z;
	o.tcp_updated = on_tcp;
	o.flow_ended = on_end;
	o.burst = on_burst;
	o.room = on_room;
	o.detach = on_detach;
	if (!z->views || mosfw_core_observe(core, &o) < 0) {
		on_detach(z);
		return NULL;
	}
	return z;
}

static void detach_if_unused(struct mosfw_core *core, struct zeek_log *z)
{
	if (z && !z->log && !z->view_wanted)
		mosfw_core_unobserve(core, ZEEK_OBSERVER);
}

int mosfw_core_set_conn_view(struct mosfw_core *core, int on)
{
	struct zeek_log *z = on ? attach(core) : mosfw_core_observer(core, ZEEK_OBSERVER);

	if (!z)
		return on ? -1 : 0;
	z->view_wanted = on != 0;
	detach_if_unused(core, z);
	return 0;
}

int mosfw_core_set_conn_log(struct mosfw_core *core, int format)
{
	struct zeek_log *z;

	if (format < 0) {
		z = mosfw_core_observer(core, ZEEK_OBSERVER);
		if (z) {
			free(z->log);
			z->log = NULL;
			z->len = z->cap = 0;
			detach_if_unused(core, z);
		}
		return 0;
	}
	if (format != MOSFW_CONN_JSON && format != MOSFW_CONN_ZEEK)
		return -1;
	if (!(z = attach(core)))
		return -1;
	if (!z->log) {
		z->cap = CONN_LOG_SIZE;
		if (!(z->log = malloc(z->cap))) {
			z->cap = 0;
			detach_if_unused(core, z);
			return -1;
		}
	}
	z->format = format;
	z->len = 0;
	return 0;
}

size_t mosfw_core_conn_log(const struct mosfw_core *core, const char **data)
{
	const struct zeek_log *z = mosfw_core_observer(core, ZEEK_OBSERVER);

	*data = z ? z->log : NULL;
	return z && z->log ? z->len : 0;
}

const struct mosfw_conn *mosfw_core_conn(const struct mosfw_core *core, uint32_t slot)
{
	static const struct mosfw_conn none;
	const struct zeek_log *z = mosfw_core_observer(core, ZEEK_OBSERVER);
	const struct mosfw_flow *f = mosfw_core_flow(core, slot);

	if (!z || !f || slot >= z->n_slots || !f->id || z->views[slot].flow_id != f->id)
		return &none;
	return &z->views[slot];
}
