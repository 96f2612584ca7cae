/* SPDX-License-Identifier: MIT */
/*
 * zeek.h -- the tracker's C surface (the only header its cffi module,
 * samples/tracker/_zeek, includes): Zeek's conn.log view of a flow, kept
 * by an observer of the engine's core (zeek_log.c, attached through
 * mosfw_core_observe() of the engine's public header, mosfw_api.h), and
 * reading it: conn_state, sizes, uid, one formatted record.
 */
#ifndef TRACKER_ZEEK_H
#define TRACKER_ZEEK_H

#include <stddef.h>
#include <stdint.h>

#include "mosfw_api.h"

/* Zeek's view of a connection, for conn.log (zeek_view.c keeps it up to
 * date on every packet of a flow while the tracker's observer is
 * attached).
 * It emulates Zeek's TCP analyzer (TCP_Endpoint, TCPSessionAdapter) beside
 * mosfw's own RFC 793 emulation: Zeek's endpoint states, sequence
 * bookkeeping (sizes from sequence numbers), history letters with their
 * repetition rules, and originator/responder roles (flips included). */
enum zeek_state {
	ZEEK_INACTIVE = 0,     /* nothing seen from this side */
	ZEEK_SYN_SENT = 1,     /* SYN seen, no ACK */
	ZEEK_SYN_ACK_SENT = 2, /* SYN/ACK seen, no initial SYN */
	ZEEK_PARTIAL = 3,      /* data seen, no SYN */
	ZEEK_ESTABLISHED = 4,
	ZEEK_CLOSED = 5, /* FIN seen */
	ZEEK_RESET = 6,  /* RST seen */
};

#define ZEEK_HISTORY_MAX 31 /* letters kept; later ones are dropped */

/* The per-packet part of one endpoint as Zeek tracks it (48 bytes);
 * indexed like mosfw_flow.side[]. What only some packets touch (history
 * bookkeeping, scaled letters, blocks above a hole) is kept apart in
 * struct zeek_conn, by side. */
struct zeek_conn_side {
	uint32_t start_seq; /* Zeek start_seq (ISN, or first seq - 1): a 32-bit value */
	uint32_t last_seq, seq_wraps, ack_seq, ack_wraps;
	uint8_t state, prev_state; /* enum zeek_state */
	uint8_t flags;             /* internal (zeek_view.c) */
	uint8_t n_blk;             /* blocks in zeek_conn.blk[side] */
	uint64_t reassem_seq;      /* relative seq delivered in order up to */
	uint64_t trim_seq;         /* relative seq acknowledged up to */
	uint64_t fin_seq;          /* relative seq one past its FIN */
};

/* One per flow slot, in the observer's own array (zeek_log.c), allocated
 * when it is attached: a run without the tracker has none. Five cache
 * lines (the array is page-aligned): every packet reads the first two
 * only; the third holds the history letters and the SYN/FIN bookkeeping,
 * the last two what only RSTs, retransmissions, zero windows and content
 * gaps touch. Per-side arrays are indexed by mosfw side. */
struct zeek_conn {
	/* lines 0-1: every packet */
	uint64_t flow_id;   /* the flow it belongs to (0: not kept yet) */
	double last_ts;     /* Zeek's last_time: last packet before both closed */
	uint32_t hist_seen; /* Zeek's hist_seen mask */
	uint8_t orig_side;  /* the mosfw side Zeek calls the originator */
	uint8_t flags;      /* internal (zeek_view.c) */
	uint8_t hist_len;
	uint8_t pad0;
	struct zeek_conn_side ep[2]; /* by mosfw side, not by Zeek role */
	uint8_t pad1[8];
	/* line 2: history letters */
	char history[ZEEK_HISTORY_MAX + 1];          /* Zeek history letters, NUL-terminated */
	uint64_t hist_last_syn[2], hist_last_fin[2]; /* relative seqs */
	/* line 3 */
	uint64_t hist_last_rst[2];
	uint32_t rxmt_cnt[2], rxmt_thresh[2]; /* 'T': retransmitted payload */
	uint32_t win0_cnt[2], win0_thresh[2]; /* 'W': zero window */
	uint32_t gap_cnt[2], gap_thresh[2];   /* 'G': content gap */
	union {
		/* line 4: TCP: data above a hole, [lo, hi) (content gaps) */
		uint64_t blk[2][2][2];
		/* UDP: datagrams with a bad checksum (zeek_dgram.c) */
		struct {
			uint64_t bad_bytes[2];              /* their payload bytes */
			uint32_t bad_pkts[2];               /* their count */
			uint32_t chk_cnt[2], chk_thresh[2]; /* 'C': bad checksum */
		} udp;
	};
	/* line 5: what only content gaps, late packets and the record touch */
	uint64_t missed_bytes; /* Zeek's missed_bytes: bytes in content gaps */
	/* packets after the engine ended the flow (FIN/RST) and before it
   * forgot it (tcp_tw_interval: Zeek's tcp_close_delay), by mosfw side */
	uint64_t late_pkts[2], late_ip_bytes[2];
} __attribute__((aligned(64)));

/* Site::local_nets: the prefixes local_orig/local_resp test addresses
 * against (--local-nets). With none, both fields are unset. */
#define ZEEK_LOCAL_NETS_MAX 64
struct zeek_net {
	uint8_t family; /* 4 or 6 */
	uint8_t bits;   /* prefix length */
	uint8_t addr[16];
};
struct zeek_nets {
	uint32_t n;
	struct zeek_net net[ZEEK_LOCAL_NETS_MAX];
};

/* The layers a flow came through (engine: struct mosfw_tunnel), kept by
 * zeek_log.c for the flows that have any: Zeek's vlan and inner_vlan (the
 * first and second 802.1Q tags), and the first ZEEK_LAYERS_MAX layers for
 * mosfw's tunnels field ("vxlan:4242", outermost first). */
#define ZEEK_LAYERS_MAX 7
struct zeek_layers {
	uint64_t flow_id;         /* the flow they belong to; 0: none */
	int32_t vlan, inner_vlan; /* -1: none */
	uint32_t id[ZEEK_LAYERS_MAX];
	uint8_t kind[ZEEK_LAYERS_MAX]; /* enum mosfw_tunnel_kind */
	uint8_t n;
};

/* ---- the observer (zeek_log.c) ----------------------------------------- */

enum zeek_format {
	ZEEK_VIEW_ONLY = -1, /* keep the views, write no log */
	ZEEK_JSON = 0,       /* one JSON object per line (Zeek's JSON field names) */
	ZEEK_TSV = 1,        /* one Zeek TSV line (the #fields order) */
};

struct zeek_log;

/* A Zeek observer for a core of `slots` flow slots (mosfw_core_slots()),
 * writing records in `format` (enum zeek_format). NULL when out of memory. */
struct zeek_log *zeek_log_new(uint32_t slots, int format);
/* Its observer, to attach with mosfw_core_observe() (which copies it);
 * once attached, the core frees z when it is freed or detaches it. */
const struct mosfw_observer *zeek_log_observer(struct zeek_log *z);
/* Add a local network (family 4 or 6, addr in network order, IPv4 in its
 * first 4 bytes, bits <= 32 or 128); 0, or -1 when it is invalid or
 * ZEEK_LOCAL_NETS_MAX are set already. */
int zeek_log_add_local_net(struct zeek_log *z, unsigned family, const uint8_t *addr, unsigned bits);
/* The same for Zeek's ignore_checksums_nets: a UDP datagram from an
 * address there counts as one with a good checksum (no 'C'/'c'). */
int zeek_log_add_checksum_net(struct zeek_log *z, unsigned family, const uint8_t *addr,
                              unsigned bits);
/* Its local networks (for zeek_conn_record()). */
const struct zeek_nets *zeek_log_nets(const struct zeek_log *z);
/* Free an observer that was never attached. */
void zeek_log_free(struct zeek_log *z);
/* The records of the flows that ended in the last burst (valid until the
 * next mosfw_core_run()); their length. */
size_t zeek_log_take(const struct zeek_log *z, const char **data);
/* The view of flow f in slot (a zeroed view when it was not kept). Valid
 * while the flow slot is (until the next run after its CONN_END). */
const struct zeek_conn *zeek_log_view(const struct zeek_log *z, const struct mosfw_flow *f,
                                      uint32_t slot);
/* The layers of flow f in slot; NULL for a plain flow. Valid as the view. */
const struct zeek_layers *zeek_log_layers(const struct zeek_log *z, const struct mosfw_flow *f,
                                          uint32_t slot);

/* ---- reading a view (zeek_record.c) ----------------------------------------
 */

/* Zeek's conn_state of the flow ("SF", "S0", "REJ", ... "OTH"). */
const char *zeek_conn_state(const struct zeek_conn *k);
/* Zeek's TCP size of one role (0 = originator, 1 = responder): payload
 * bytes taken from sequence numbers, as conn.log's orig_bytes/resp_bytes. */
uint64_t zeek_conn_size(const struct zeek_conn *k, unsigned role);
/* The flow's uid: "C" and 17 base62 characters, a hash of its tuple and
 * first packet time (the same on every run and any core count). buf must
 * hold 19 bytes. */
void zeek_conn_uid(const struct mosfw_flow *f, char *buf);
/* Whether addr (family 4 or 6) is in one of nets: 1, 0, or -1 when nets
 * is NULL or empty (local_orig/local_resp unset). */
int zeek_is_local(const struct zeek_nets *nets, unsigned family, const uint8_t *addr);
/* One conn.log record of the flow, newline-terminated, in buf (format: an
 * enum zeek_format; nets: Site::local_nets, NULL for none). Returns its
 * length; a return >= cap means it did not fit (nothing usable was
 * written; 1024 bytes always suffice). */
size_t zeek_conn_record(const struct mosfw_flow *f, const struct zeek_conn *k,
                        const struct zeek_nets *nets, unsigned format, char *buf, size_t cap);
/* The same with the flow's layers (l may be NULL: a plain flow). */
size_t zeek_conn_record_layers(const struct mosfw_flow *f, const struct zeek_conn *k,
                               const struct zeek_nets *nets, const struct zeek_layers *l,
                               unsigned format, char *buf, size_t cap);

#endif /* TRACKER_ZEEK_H */
