/* SPDX-License-Identifier: MIT */
/*
 * mosfw_zeek.h -- Zeek's conn.log view of a flow, for samples/tracker:
 * the view's structs, reading it (conn_state, sizes, uid, one formatted
 * record) and turning it on (a conn log, or the view alone). It is an
 * observer of the core (native/zeek_log.c, attached with
 * mosfw_core_observe()); included by mosfw_api.h.
 */
#ifndef MOSFW_ZEEK_H
#define MOSFW_ZEEK_H

#include <stddef.h>
#include <stdint.h>

#include "mosfw_api.h"

/* Zeek's view of a connection, for conn.log (native/zeek_view.c keeps
 * it up to date on every packet of a flow while a conn log or the conn
 * view is on: zeek_log.c).
 * It emulates Zeek's TCP analyzer (TCP_Endpoint, TCPSessionAdapter) beside
 * mosfw's own RFC 793 emulation: Zeek's endpoint states, sequence
 * bookkeeping (sizes from sequence numbers), history letters with their
 * repetition rules, and originator/responder roles (flips included). */
enum mosfw_zeek_state {
	MOSFW_ZEEK_INACTIVE = 0,     /* nothing seen from this side */
	MOSFW_ZEEK_SYN_SENT = 1,     /* SYN seen, no ACK */
	MOSFW_ZEEK_SYN_ACK_SENT = 2, /* SYN/ACK seen, no initial SYN */
	MOSFW_ZEEK_PARTIAL = 3,      /* data seen, no SYN */
	MOSFW_ZEEK_ESTABLISHED = 4,
	MOSFW_ZEEK_CLOSED = 5,       /* FIN seen */
	MOSFW_ZEEK_RESET = 6,        /* RST seen */
};

#define MOSFW_HISTORY_MAX 31 /* letters kept; later ones are dropped */

/* One endpoint as Zeek tracks it; indexed like mosfw_flow.side[]. */
struct mosfw_conn_side {
	int64_t start_seq;         /* Zeek start_seq (ISN, or first seq - 1) */
	uint64_t hist_last_syn, hist_last_fin, hist_last_rst; /* relative seqs */
	uint64_t fin_seq;          /* relative seq one past its FIN */
	uint64_t reassem_seq;      /* relative seq delivered in order up to */
	uint64_t trim_seq;         /* relative seq acknowledged up to */
	uint64_t blk[2][2];        /* data above a hole, [lo, hi) (content gaps) */
	uint32_t last_seq, ack_seq, seq_wraps, ack_wraps;
	uint32_t rxmt_cnt, rxmt_thresh; /* 'T': retransmitted payload */
	uint32_t win0_cnt, win0_thresh; /* 'W': zero window */
	uint32_t gap_cnt, gap_thresh;   /* 'G': content gap */
	uint8_t state, prev_state; /* enum mosfw_zeek_state */
	uint8_t flags;             /* internal (zeek_view.c) */
	uint8_t n_blk;
	uint32_t pad;
};

/* Kept beside the flow table, not in struct mosfw_flow (a run that does
 * not ask for it never touches its memory); mosfw_core_conn() reads it. */
struct mosfw_conn {
	struct mosfw_conn_side ep[2];  /* by mosfw side, not by Zeek role */
	uint64_t flow_id;     /* the flow it belongs to (0: not kept yet) */
	double last_ts;       /* Zeek's last_time: last packet before both closed */
	uint32_t hist_seen;   /* Zeek's hist_seen mask */
	uint8_t orig_side;    /* the mosfw side Zeek calls the originator */
	uint8_t flags;        /* internal (zeek_view.c) */
	uint8_t hist_len;
	char history[MOSFW_HISTORY_MAX + 1]; /* Zeek history letters, NUL-terminated */
	uint8_t pad[5];
};

/* ---- conn.log view (native/zeek_view.c) ---------------------------- */

enum mosfw_conn_format {
	MOSFW_CONN_JSON = 0, /* one JSON object per line (Zeek's JSON field names) */
	MOSFW_CONN_ZEEK = 1, /* one Zeek TSV line (the #fields order) */
};

/* The conn.log view of the flow in `slot` (a zeroed view when it was not
 * kept: no conn log or conn view was set while the flow
 * lived). Valid while the flow slot is (until the next run() after its
 * CONN_END). */
const struct mosfw_conn *mosfw_core_conn(const struct mosfw_core *core, uint32_t slot);
/* Zeek's conn_state of the flow ("SF", "S0", "REJ", ... "OTH"). */
const char *mosfw_conn_state(const struct mosfw_conn *k);
/* Zeek's TCP size of one role (0 = originator, 1 = responder): payload
 * bytes taken from sequence numbers, as conn.log's orig_bytes/resp_bytes. */
uint64_t mosfw_conn_size(const struct mosfw_conn *k, unsigned role);
/* The flow's uid: "C" and 17 base62 characters, a hash of its tuple and
 * first packet time (the same on every run and any core count). buf must
 * hold 19 bytes. */
void mosfw_conn_uid(const struct mosfw_flow *f, char *buf);
/* One conn.log record of the flow, newline-terminated, in buf (format: an
 * enum mosfw_conn_format). Returns its length; a return >= cap means it
 * did not fit (nothing usable was written; 1024 bytes always suffice). */
size_t mosfw_conn_record(const struct mosfw_flow *f, const struct mosfw_conn *k, unsigned format,
                         char *buf, size_t cap);

/* Write conn.log records in C: with a format (enum mosfw_conn_format) the
 * core appends the record of every flow it ends to a per-burst buffer,
 * read after each mosfw_core_run() with mosfw_core_conn_log() (valid until
 * the next run). -1 turns it off. No Python call per connection. */
int mosfw_core_set_conn_log(struct mosfw_core *core, int format);
size_t mosfw_core_conn_log(const struct mosfw_core *core, const char **data);
/* Keep the conn.log view (mosfw_core_conn()) without a log: 1 on, 0 off.
 * Either attaches the Zeek observer (native/zeek_log.c): a run that asks
 * for neither pays nothing for it. 0, or -1 when out of memory. */
int mosfw_core_set_conn_view(struct mosfw_core *core, int on);

#endif /* MOSFW_ZEEK_H */
