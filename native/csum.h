/* SPDX-License-Identifier: MIT */
/*
 * csum.h -- the Internet checksum's ones' complement sum (RFC 1071), 8
 * bytes at a time: the parser's IPv4 header and TCP verification
 * (packet.c) and the UDP check of the core's datagram path (core_dgram.c).
 */
#ifndef MOSFW_CSUM_H
#define MOSFW_CSUM_H

#include <stdint.h>
#include <string.h>

/* sum plus the ones' complement sum of the len bytes at p, read as 16-bit
 * big-endian words (a last odd byte padded with a zero): added in native
 * order, 32 bits at a time, folded and put in network order at the end
 * (RFC 1071: the sum does not depend on the byte order). Fold the total
 * with mosfw_csum_fold(). */
static inline uint64_t mosfw_csum_add(uint64_t sum, const uint8_t *p, uint32_t len)
{
	uint64_t acc = 0; /* at most 2^32 - 1 a half, 2^29 halves: no carry lost */
	uint32_t w32;
	uint16_t w16;

	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		acc += (w & 0xffffffffu) + (w >> 32);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		memcpy(&w32, p, 4);
		acc += w32;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		acc += w16;
		p += 2;
		len -= 2;
	}
	if (len) {
		const uint8_t last[2] = { p[0], 0 };
		memcpy(&w16, last, 2);
		acc += w16;
	}
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffu) + (acc >> 16);
	acc = (acc & 0xffffu) + (acc >> 16);
	acc = (acc & 0xffffu) + (acc >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	acc = ((acc & 0xffu) << 8) | (acc >> 8);
#endif
	return sum + acc;
}

/* The checksum of a sum (its folded ones' complement): 0 when the data
 * summed held a right checksum. */
static inline uint16_t mosfw_csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)~sum;
}

#endif /* MOSFW_CSUM_H */
