/* SPDX-License-Identifier: MIT */
/*
 * resp_frame.h -- the Redis sink's XADD commands (RESP) of newline-
 * terminated records, made in one pass by C: the sender thread calls
 * these through cffi, which releases the GIL for the call.
 */
#ifndef MOSFW_RESP_FRAME_H
#define MOSFW_RESP_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* The offset just past the newline that ends the max_lines-th line of
 * data[0..len) (or len, when it holds fewer); *lines: the lines up to
 * there (a last line without a newline counts). */
size_t resp_lines_end(const uint8_t *data, size_t len, size_t max_lines, size_t *lines);

/* Room resp_frame() needs for `lines` lines of `len` bytes with a prefix
 * of plen bytes. */
size_t resp_frame_bound(size_t len, size_t lines, size_t plen);

/* Each line of data[0..len) (its newline left out) as one command:
 * prefix (the command's array header and arguments up to the record's),
 * then the record as a bulk string ("$" LENGTH CRLF RECORD CRLF), into
 * out (resp_frame_bound() bytes). Returns the bytes written. */
size_t resp_frame(const uint8_t *data, size_t len, const uint8_t *prefix, size_t plen,
                  uint8_t *out);

#endif /* MOSFW_RESP_FRAME_H */
