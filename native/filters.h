/* SPDX-License-Identifier: MIT */
/*
 * filters.h -- BPF filters evaluated in C on the packet being processed
 * (libpcap's pcap_offline_filter, compiled for the input's link type):
 * mOS's monitor filters (stream_syn_filter: which new connections are
 * tracked at all; stream_orphan_filter: which orphan packets are
 * reported) and up to 32 event filters for user-defined events, whose
 * results travel in the records' filter_bits.
 */
#ifndef MOSFW_FILTERS_H
#define MOSFW_FILTERS_H

#include <pcap/pcap.h>
#include <stdint.h>

#include "mosfw_api.h"

struct mosfw_bpf {
	struct bpf_program prog;
	int set;
};

struct mosfw_filters {
	struct mosfw_bpf ev[MOSFW_FILTER_EVENTS]; /* event filters, by bit */
	uint32_t ev_types[MOSFW_FILTER_EVENTS];   /* records each applies to */
	uint32_t by_type[16]; /* per event bit (ctz of the type): filters that apply */
	uint32_t types;       /* union of ev_types */
	struct mosfw_bpf syn, orphan;
	/* results of the event filters for one packet */
	uint32_t cache_index, cache_bits;
	int cache_valid;
};

struct mosfw_filters *mosfw_filters_new(void);
void mosfw_filters_free(struct mosfw_filters *f);
/* Compile expr (NULL/"" removes the filter). 0, or -1 with a message. */
int mosfw_filters_set(struct mosfw_filters *f, unsigned which, uint32_t event_types,
                      const char *expr, int linktype, int snaplen, char *errbuf);
/* Does the frame pass filter b (an unset filter passes everything)? */
int mosfw_bpf_match(const struct mosfw_bpf *b, const uint8_t *frame, uint32_t caplen,
                    uint32_t wirelen, double ts);
/* filter_bits for a record of `type` about the packet with pkt_index. */
uint32_t mosfw_filters_bits(struct mosfw_filters *f, uint32_t type, uint32_t pkt_index,
                            const uint8_t *frame, uint32_t caplen, uint32_t wirelen, double ts);

#endif /* MOSFW_FILTERS_H */
