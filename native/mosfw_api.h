/* SPDX-License-Identifier: MIT */
/*
 * mosfw_api.h -- the whole public C surface of the mosfw engine.
 *
 * One `struct mosfw_core` is one per-core event loop: it owns a packet
 * source (a pcap/pcapng file or a live interface), a flow table, both
 * endpoints' emulated TCP state machines for every flow, and produces
 * mOS-style events into a caller-allocated array of fixed-size records.
 *
 * Driving it (see mosfw/engine.py for the Python side):
 *
 *   core = mosfw_core_new(&cfg, err);
 *   mosfw_core_open_file(core, "x.pcap", "tcp port 80", err);
 *   while ((st = mosfw_core_run(core, evs, cap, &n)) == MOSFW_RUN_MORE ||
 *          st == MOSFW_RUN_IDLE || n)
 *       handle(evs, n);     // flow slots stay valid until the next run()
 *   ...                     // after EOF: run() emits CONN_END(eof) for all
 *   mosfw_core_free(core);
 *
 * Nothing here calls exit(), prints, or allocates per packet.
 */
#ifndef MOSFW_API_H
#define MOSFW_API_H

#include <stdint.h>
#include <stddef.h>

#define MOSFW_ERRBUF_SIZE 512

/* ---- events ---------------------------------------------------------- */

/* Event bits, used both as the subscription mask and as the record type.
 * Each says exactly when it is raised; unsubscribed events cost nothing. */
enum mosfw_event_type {
	/* Every packet of a tracked flow, before any state update; side =
	 * the sender. */
	MOSFW_EV_PKT_IN = 1u << 0,
	/* An endpoint starts: the client's first SYN (client side), the
	 * server's first SYN/ACK (server side). Not for retransmitted SYNs.
	 * A flow picked up mid-stream raises it once per side with
	 * MOSFW_EVF_MIDSTREAM set. */
	MOSFW_EV_CONN_START = 1u << 1,
	/* An emulated endpoint changed state; side = that endpoint,
	 * old_state/new_state say from what to what. */
	MOSFW_EV_TCP_STATE_CHANGE = 1u << 2,
	/* A segment carried payload beyond the highest sequence number seen
	 * so far from its sender; side = the sender, seq/len = the new
	 * bytes only. */
	MOSFW_EV_CONN_NEW_DATA = 1u << 3,
	/* A segment (payload, SYN or FIN) starts before the highest sequence
	 * end already seen from its sender: a duplicate, a retransmission,
	 * a gap fill, a repeated SYN/FIN. Keep-alive probes are not.
	 * side = the sender; seq/len = the segment. */
	MOSFW_EV_REXMIT = 1u << 4,
	/* A flow is torn down: reason is one of enum mosfw_end_reason.
	 * Exactly once per flow that raised CONN_START. The flow slot stays
	 * readable until the next mosfw_core_run(). */
	MOSFW_EV_CONN_END = 1u << 5,
	/* A TCP packet that belongs to no tracked flow (a stray RST, a
	 * packet after the flow ended, a new flow refused because the table
	 * is full). slot indexes mosfw_core_orphan_tuple(). */
	MOSFW_EV_ORPHAN = 1u << 6,
	/* A protocol or resource error; code in `reason` (enum
	 * mosfw_error_code), flow in slot, or MOSFW_NO_SLOT. */
	MOSFW_EV_ERROR = 1u << 7,
	/* An application timer fired (reserved for timers). */
	MOSFW_EV_TIMEOUT = 1u << 8,
	/* Input time crossed a whole second (ts = that second). Only
	 * produced when subscribed; lets the caller run per-second work in
	 * order with the events. */
	MOSFW_EV_TICK = 1u << 9,
};

#define MOSFW_EV_ALL 0x3ffu

enum mosfw_side {
	MOSFW_SIDE_CLIENT = 0,
	MOSFW_SIDE_SERVER = 1,
};

/* RFC 793 states, as mOS names them (without the TCP_ST_ prefix). */
enum mosfw_tcp_state {
	MOSFW_TCP_CLOSED = 0,
	MOSFW_TCP_LISTEN = 1,
	MOSFW_TCP_SYN_SENT = 2,
	MOSFW_TCP_SYN_RCVD = 3,
	MOSFW_TCP_ESTABLISHED = 4,
	MOSFW_TCP_FIN_WAIT_1 = 5,
	MOSFW_TCP_FIN_WAIT_2 = 6,
	MOSFW_TCP_CLOSE_WAIT = 7,
	MOSFW_TCP_CLOSING = 8,
	MOSFW_TCP_LAST_ACK = 9,
	MOSFW_TCP_TIME_WAIT = 10,
};

enum mosfw_end_reason {
	MOSFW_END_NONE = 0,
	MOSFW_END_FIN = 1,     /* both FINs seen and the last one acked */
	MOSFW_END_RST = 2,     /* a RST from either side */
	MOSFW_END_TIMEOUT = 3, /* idle for tcp_timeout seconds */
	MOSFW_END_EVICTED = 4, /* removed to make room (table full) */
	MOSFW_END_EOF = 5,     /* still open at end of input */
	MOSFW_END_REUSED = 6,  /* a new SYN reused the 5-tuple of a closing flow */
};

enum mosfw_error_code {
	MOSFW_ERR_NONE = 0,
	MOSFW_ERR_TABLE_FULL = 1,   /* a flow was evicted or refused */
	MOSFW_ERR_BAD_SEQUENCE = 2, /* a segment far outside the window */
	MOSFW_ERR_BAD_CHECKSUM = 3, /* checksum verification on and it failed */
};

/* Event record flags. */
#define MOSFW_EVF_MIDSTREAM 0x01 /* flow picked up without its handshake */

#define MOSFW_NO_SLOT 0xffffffffu

/* TCP header flag bits as on the wire. */
#define MOSFW_TH_FIN 0x01
#define MOSFW_TH_SYN 0x02
#define MOSFW_TH_RST 0x04
#define MOSFW_TH_PSH 0x08
#define MOSFW_TH_ACK 0x10
#define MOSFW_TH_URG 0x20

/* One event. 56 bytes, no padding holes; Python unpacks the array in
 * bulk (struct.iter_unpack), so the field order is part of the ABI. */
struct mosfw_event {
	double ts;          /* packet time (seconds) of the packet that caused it */
	uint64_t flow_id;   /* stable per-core flow id (0 for orphans/ticks) */
	uint32_t slot;      /* flow slot (mosfw_core_flow) or orphan index */
	uint32_t type;      /* one enum mosfw_event_type bit */
	uint32_t seq;       /* segment (or new bytes) sequence number */
	uint32_t ack;       /* ack number of the packet */
	uint32_t len;       /* payload length (REXMIT/NEW_DATA/PKT_IN) */
	uint16_t window;    /* raw window field of the packet */
	uint8_t side;       /* enum mosfw_side the event is about */
	uint8_t old_state;  /* TCP_STATE_CHANGE: from */
	uint8_t new_state;  /* TCP_STATE_CHANGE: to; CONN_START: state now */
	uint8_t reason;     /* CONN_END: mosfw_end_reason; ERROR: error code */
	uint8_t flags;      /* MOSFW_EVF_* */
	uint8_t tcp_flags;  /* MOSFW_TH_* of the packet */
	uint8_t cli_state;  /* client state at event time */
	uint8_t srv_state;  /* server state at event time */
	uint16_t pad0;
	uint32_t pkt_index; /* 1-based index of the packet in the input */
	uint32_t pad1;
};

/* ---- flows ----------------------------------------------------------- */

/* Canonical connection identity. Addresses are 16 bytes; IPv4 uses the
 * first 4 and family 4. Client is the side that sent the first SYN (or
 * the likely client when the flow was picked up mid-stream). */
struct mosfw_tuple {
	uint8_t cli_addr[16];
	uint8_t srv_addr[16];
	uint16_t cli_port; /* host order */
	uint16_t srv_port; /* host order */
	uint8_t family;    /* 4 or 6 */
	uint8_t pad[3];
};

/* One endpoint's emulated TCP stack and counters. */
struct mosfw_half {
	uint32_t isn;         /* initial sequence number (SYN seq) */
	uint32_t seq_hi;      /* highest sequence end sent (incl. SYN/FIN) */
	uint32_t fin_seq;     /* sequence number of its FIN */
	uint32_t last_ack;    /* last ack number it sent */
	uint64_t pkts;        /* packets sent */
	uint64_t ip_bytes;    /* IP bytes sent (header + payload) */
	uint64_t payload_bytes;  /* TCP payload bytes sent, retransmissions included */
	uint32_t rexmit_pkts;    /* REXMIT-classified segments sent */
	uint32_t rexmit_bytes;   /* payload bytes in those segments */
	uint16_t window;      /* last raw window it advertised */
	uint8_t state;        /* enum mosfw_tcp_state */
	uint8_t flags;        /* MOSFW_HF_* */
	uint16_t hist;        /* MOSFW_HIST_* bits seen (for conn.log history) */
	uint16_t pad;
};

#define MOSFW_HF_SEQ_KNOWN 0x01 /* seq_hi is valid */
#define MOSFW_HF_SYN_SEEN 0x02
#define MOSFW_HF_FIN_SEEN 0x04
#define MOSFW_HF_RST_SEEN 0x08
#define MOSFW_HF_SYNACK_SEEN 0x10
#define MOSFW_HF_DATA_SEEN 0x20

struct mosfw_flow {
	struct mosfw_tuple tuple;
	uint64_t id;          /* stable id; 0 = slot free */
	double first_ts;      /* first packet */
	double last_ts;       /* last packet */
	struct mosfw_half side[2]; /* [MOSFW_SIDE_CLIENT], [MOSFW_SIDE_SERVER] */
	uint32_t hash;        /* symmetric hash of the tuple */
	uint32_t lru_prev, lru_next;  /* idle list links (slots) */
	uint8_t lru_list;     /* which idle list (internal) */
	uint8_t end_reason;   /* enum mosfw_end_reason once ended */
	uint8_t midstream;    /* 1 = picked up without handshake */
	uint8_t first_dir;    /* side that sent the first packet seen */
	uint32_t core;        /* core id that owns it */
};

/* ---- configuration and statistics ------------------------------------ */

struct mosfw_config {
	uint32_t core_id;         /* reported in records and stats */
	uint32_t shard_index;     /* this core keeps flows with hash % count == index */
	uint32_t shard_count;     /* 1 = keep everything */
	uint32_t max_concurrency; /* flow table capacity (live flows) */
	double tcp_timeout;       /* idle seconds before CONN_END(timeout); <= 0 off */
	double tcp_tw_interval;   /* seconds an ended flow's tuple is remembered */
	uint32_t event_mask;      /* subscribed MOSFW_EV_* bits */
	uint32_t burst_packets;   /* max packets per mosfw_core_run() */
	int verify_checksums;     /* 1 = IPv4/TCP checksums verified */
	int snaplen;              /* live capture snap length */
	int live_buffer_mb;       /* live capture kernel buffer */
	int promisc;              /* live capture promiscuous mode */
};

struct mosfw_stats {
	uint64_t packets;        /* packets read from the source */
	uint64_t bytes;          /* wire bytes read */
	uint64_t tcp_packets;    /* parsed TCP packets (before sharding) */
	uint64_t non_tcp;        /* parsed, but not TCP (UDP, ICMP, ARP...) */
	uint64_t malformed;      /* could not be parsed (truncated, bad header) */
	uint64_t unsupported_link;  /* link type not understood */
	uint64_t fragments;      /* IP fragments (not reassembled, skipped) */
	uint64_t bad_checksum;   /* failed verification (when enabled) */
	uint64_t other_shard;    /* TCP packets left to other cores */
	uint64_t flows_created;
	uint64_t flows_midstream;  /* of which picked up mid-stream */
	uint64_t flows_active;
	uint64_t flows_ended_fin, flows_ended_rst, flows_ended_timeout;
	uint64_t flows_evicted, flows_ended_eof, flows_reused;
	uint64_t flows_refused;  /* new flows not tracked: table full */
	uint64_t orphans;
	uint64_t rexmits;
	uint64_t events;         /* events written to records */
	uint64_t kernel_drops;   /* live: dropped by the kernel (pcap_stats) */
	uint64_t iface_drops;    /* live: dropped by the interface */
	double first_ts, last_ts;  /* input time span */
};

/* mosfw_core_run() results. */
enum mosfw_run_status {
	MOSFW_RUN_MORE = 0,  /* burst done, more input may follow */
	MOSFW_RUN_IDLE = 1,  /* live: no packet within the poll timeout */
	MOSFW_RUN_DONE = 2,  /* input ended and every flow got CONN_END */
	MOSFW_RUN_ERROR = 3, /* source error: see mosfw_core_error(); flows
	                        were still ended (reason eof) */
	MOSFW_RUN_STOPPED = 4, /* mosfw_core_stop() was called; flows ended */
};

/* ---- the core -------------------------------------------------------- */

struct mosfw_core;

/* Fill cfg with the defaults (max_concurrency 1M, tcp_timeout 30 s,
 * tcp_tw_interval 5 s, all events but PKT_IN/TICK, ...). */
void mosfw_config_defaults(struct mosfw_config *cfg);

/* Create a core. NULL and a message in errbuf on failure. */
struct mosfw_core *mosfw_core_new(const struct mosfw_config *cfg, char *errbuf);
void mosfw_core_free(struct mosfw_core *core);

/* Open an input. bpf may be NULL or "". 0 on success, -1 with a message. */
int mosfw_core_open_file(struct mosfw_core *core, const char *path,
                         const char *bpf, char *errbuf);
int mosfw_core_open_live(struct mosfw_core *core, const char *iface,
                         const char *bpf, char *errbuf);

/* Change the subscription mask (takes effect for the next packet). */
void mosfw_core_set_event_mask(struct mosfw_core *core, uint32_t mask);

/* Run one bounded burst: read up to cfg.burst_packets packets, and write
 * at most `cap` events into evs (cap must be >= 64). *n_events gets the
 * count. Flow slots named by these events stay valid until the next call.
 * Thread-safe with respect to other cores; call without holding the GIL. */
int mosfw_core_run(struct mosfw_core *core, struct mosfw_event *evs,
                   uint32_t cap, uint32_t *n_events);

/* Ask a running loop to finish: the next run() ends every flow (reason
 * eof) and returns MOSFW_RUN_STOPPED. Async-signal-safe. */
void mosfw_core_stop(struct mosfw_core *core);

/* Flow in a slot (NULL if out of range). Check ->id against the event's
 * flow_id: a slot is reused after the flow ended. */
const struct mosfw_flow *mosfw_core_flow(const struct mosfw_core *core,
                                         uint32_t slot);
/* Tuple of an ORPHAN event's packet (client = sender), valid until the
 * next run(). */
const struct mosfw_tuple *mosfw_core_orphan_tuple(const struct mosfw_core *core,
                                                  uint32_t index);
void mosfw_core_stats(struct mosfw_core *core, struct mosfw_stats *out);
/* Bytes of the input file consumed so far (-1 for live sources): for
 * progress reports. */
int64_t mosfw_core_input_offset(struct mosfw_core *core);
/* Last source error message ("" if none). */
const char *mosfw_core_error(const struct mosfw_core *core);
/* Link type name of the open source ("EN10MB", ...). */
const char *mosfw_core_linktype(const struct mosfw_core *core);

/* ---- names ----------------------------------------------------------- */

const char *mosfw_state_name(unsigned state);   /* "ESTABLISHED" */
const char *mosfw_event_name(unsigned type);    /* "conn_start" */
const char *mosfw_end_reason_name(unsigned r);  /* "fin" */
const char *mosfw_error_name(unsigned code);    /* "table_full" */

#endif /* MOSFW_API_H */
