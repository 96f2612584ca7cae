/* SPDX-License-Identifier: MIT */
/*
 * pcap_record.h -- one record of a classic pcap file in memory, checked as
 * libpcap's sf-pcap.c checks it (same messages): the mapped reader
 * (source.c) reads records with it.
 */
#ifndef MOSFW_PCAP_RECORD_H
#define MOSFW_PCAP_RECORD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define PCAP_MAX_CAPLEN 262144u /* libpcap's max_snaplen_for_dlt() for our link types */

enum {
	PCAP_REC_OK = 0,
	PCAP_REC_EOF = 1,
	PCAP_REC_ERROR = -1
};

struct pcap_rec {
	uint32_t caplen; /* bytes handed out (cut to the snapshot length) */
	uint32_t body;   /* bytes the record holds in the file */
	uint32_t wirelen;
	int32_t sec, frac;
};

/* The record at pos of a file of len bytes. */
static inline int pcap_rec_read(const uint8_t *base, size_t len, size_t pos, uint32_t snapshot,
                                struct pcap_rec *r, char *err, size_t errlen)
{
	uint32_t h[4];
	size_t left = len - pos;

	if (left == 0)
		return PCAP_REC_EOF;
	if (left < 16) {
		snprintf(err, errlen,
		         "truncated dump file; tried to read 16 header bytes, only got %zu", left);
		return PCAP_REC_ERROR;
	}
	memcpy(h, base + pos, 16);
	r->caplen = r->body = h[2];
	r->wirelen = h[3];
	r->sec = (int32_t)h[0];
	r->frac = (int32_t)h[1];
	if (r->body > PCAP_MAX_CAPLEN) {
		if (r->body > snapshot)
			snprintf(err, errlen,
			         "invalid packet capture length %u, bigger than snaplen of %u",
			         r->body, snapshot);
		else
			snprintf(err, errlen,
			         "invalid packet capture length %u, bigger than maximum of %u",
			         r->body, PCAP_MAX_CAPLEN);
		return PCAP_REC_ERROR;
	}
	if (r->caplen > snapshot)
		r->caplen = snapshot; /* libpcap cuts it to the snapshot length */
	if (left - 16 < r->body) {
		snprintf(err, errlen,
		         "truncated dump file; tried to read %u captured bytes, only got %zu",
		         r->body > r->caplen && left - 16 >= r->caplen ? r->body : r->caplen,
		         left - 16);
		return PCAP_REC_ERROR;
	}
	return PCAP_REC_OK;
}

/* The wire length in the header of the record after one that ends at
 * `end` (1 when no header fits before len: the record's last byte is
 * read instead). A file that shrank while mapped reads as zeros past its
 * new end, up to the end of that page (no real record has wire length
 * 0), and faults beyond it (map_guard.h): a record cut by the shrink is
 * seen before it is handed out. */
static inline uint32_t pcap_rec_next_wirelen(const uint8_t *base, size_t len, size_t end)
{
	uint32_t w = 1;

	if (len - end >= 16)
		memcpy(&w, base + end + 12, 4);
	else
		(void)*(const volatile uint8_t *)(base + end - 1);
	return w;
}

/* Packet time as libpcap gives it at nanosecond precision: signed 32-bit
 * seconds and fraction, microseconds scaled up. */
static inline double pcap_rec_ts(const struct pcap_rec *r, int nano)
{
	return (double)r->sec + (double)((int64_t)r->frac * (nano ? 1 : 1000)) * 1e-9;
}

#endif /* MOSFW_PCAP_RECORD_H */
