/* SPDX-License-Identifier: MIT */
/* resp_frame.c -- see resp_frame.h. */
#include "resp_frame.h"

#include <string.h>

size_t resp_lines_end(const uint8_t *data, size_t len, size_t max_lines, size_t *lines)
{
	size_t pos = 0, n = 0;

	while (pos < len && n < max_lines) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		n++;
		if (!nl) {
			pos = len;
			break;
		}
		pos = (size_t)(nl - data) + 1;
	}
	*lines = n;
	return pos;
}

size_t resp_frame_bound(size_t len, size_t lines, size_t plen)
{
	/* per line: the prefix, "$", up to 20 digits, two CRLFs */
	return len + lines * (plen + 1 + 20 + 4);
}

static size_t put_decimal(uint8_t *p, size_t v)
{
	uint8_t tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = (uint8_t)('0' + v % 10);
		v /= 10;
	} while (v);
	for (i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

size_t resp_frame(const uint8_t *data, size_t len, const uint8_t *prefix, size_t plen, uint8_t *out)
{
	uint8_t *o = out;
	size_t pos = 0;

	while (pos < len) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - data) : len, n = end - pos;

		memcpy(o, prefix, plen);
		o += plen;
		*o++ = '$';
		o += put_decimal(o, n);
		*o++ = '\r';
		*o++ = '\n';
		memcpy(o, data + pos, n);
		o += n;
		*o++ = '\r';
		*o++ = '\n';
		pos = nl ? end + 1 : len;
	}
	return (size_t)(o - out);
}
