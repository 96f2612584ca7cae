/* SPDX-License-Identifier: MIT */
/* filters.c -- BPF monitor and event filters, evaluated in C. */
#include "filters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mosfw_filters *mosfw_filters_new(void) { return calloc(1, sizeof(struct mosfw_filters)); }

static void bpf_clear(struct mosfw_bpf *b)
{
	if (b->set)
		pcap_freecode(&b->prog);
	b->set = 0;
}

void mosfw_filters_free(struct mosfw_filters *f)
{
	unsigned i;

	if (!f)
		return;
	for (i = 0; i < MOSFW_FILTER_EVENTS; i++)
		bpf_clear(&f->ev[i]);
	bpf_clear(&f->syn);
	bpf_clear(&f->orphan);
	free(f);
}

static void rebuild(struct mosfw_filters *f)
{
	unsigned i, b;

	f->types = 0;
	memset(f->by_type, 0, sizeof(f->by_type));
	for (i = 0; i < MOSFW_FILTER_EVENTS; i++) {
		if (!f->ev[i].set)
			continue;
		f->types |= f->ev_types[i];
		for (b = 0; b < 16; b++)
			if (f->ev_types[i] & (1u << b))
				f->by_type[b] |= 1u << i;
	}
	f->cache_valid = 0;
}

int mosfw_filters_set(struct mosfw_filters *f, unsigned which, uint32_t event_types,
                      const char *expr, int linktype, int snaplen, char *errbuf)
{
	struct mosfw_bpf *b;
	struct bpf_program prog;
	pcap_t *dead;

	if (which < MOSFW_FILTER_EVENTS)
		b = &f->ev[which];
	else if (which == MOSFW_FILTER_SYN)
		b = &f->syn;
	else if (which == MOSFW_FILTER_ORPHAN)
		b = &f->orphan;
	else {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "no filter number %u", which);
		return -1;
	}
	if (!expr || !*expr) {
		bpf_clear(b);
		if (which < MOSFW_FILTER_EVENTS)
			f->ev_types[which] = 0;
		rebuild(f);
		return 0;
	}
	dead = pcap_open_dead(linktype, snaplen > 0 ? snaplen : 262144);
	if (!dead) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot compile BPF filters (out of memory)");
		return -1;
	}
	if (pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "bad BPF filter '%s': %s", expr,
		         pcap_geterr(dead));
		pcap_close(dead);
		return -1;
	}
	pcap_close(dead);
	bpf_clear(b);
	b->prog = prog;
	b->set = 1;
	if (which < MOSFW_FILTER_EVENTS)
		f->ev_types[which] = event_types;
	rebuild(f);
	return 0;
}

int mosfw_bpf_match(const struct mosfw_bpf *b, const uint8_t *frame, uint32_t caplen,
                    uint32_t wirelen, double ts)
{
	struct pcap_pkthdr h;

	if (!b->set)
		return 1;
	if (!frame)
		return 0;
	memset(&h, 0, sizeof(h));
	h.ts.tv_sec = (time_t)ts;
	h.ts.tv_usec = (suseconds_t)((ts - (double)h.ts.tv_sec) * 1e6);
	h.caplen = caplen;
	h.len = wirelen;
	return pcap_offline_filter(&b->prog, &h, frame) != 0;
}

uint32_t mosfw_filters_bits(struct mosfw_filters *f, uint32_t type, uint32_t pkt_index,
                            const uint8_t *frame, uint32_t caplen, uint32_t wirelen, double ts)
{
	uint32_t want = f->by_type[__builtin_ctz(type) & 15];
	unsigned i;

	if (!want)
		return 0;
	if (!f->cache_valid || f->cache_index != pkt_index) {
		uint32_t bits = 0;
		for (i = 0; i < MOSFW_FILTER_EVENTS; i++)
			if ((f->types && f->ev[i].set) &&
			    mosfw_bpf_match(&f->ev[i], frame, caplen, wirelen, ts))
				bits |= 1u << i;
		f->cache_bits = bits;
		f->cache_index = pkt_index;
		f->cache_valid = 1;
	}
	return f->cache_bits & want;
}
