/* SPDX-License-Identifier: MIT */
/*
 * mosfw_api.h -- the whole public C surface of the mosfw engine.
 *
 * One `struct mosfw_core` is one per-core event loop: it owns a packet
 * source (a pcap/pcapng file or a live interface), a flow table, both
 * endpoints' emulated TCP state machines for every flow, and produces
 * mOS-style events into a caller-allocated array of fixed-size records.
 *
 * Driving it (see mosfw/engine/ for the Python side):
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
#include "mosfw_tunnel.h" /* the encapsulation part of this surface */

#define MOSFW_ERRBUF_SIZE 512

/* ---- events ---------------------------------------------------------- */

/* Event bits, used both as the subscription mask and as the record type.
 * Each says exactly when it is raised; unsubscribed events cost nothing. */
enum mosfw_event_type {
	/* Every packet of a tracked flow, before any state update; side =
	 * the sender. TCP, UDP and ICMP (len = its payload_len, packet.h). */
	MOSFW_EV_PKT_IN = 1u << 0,
	/* An endpoint starts: the client's first SYN (client side), the
	 * server's first SYN/ACK (server side). Not for retransmitted SYNs.
	 * A flow picked up mid-stream raises it once per side with
	 * MOSFW_EVF_MIDSTREAM set. A UDP or ICMP flow raises it once, on
	 * its first packet (side = its sender). */
	MOSFW_EV_CONN_START = 1u << 1,
	/* An emulated endpoint changed state; side = that endpoint,
	 * old_state/new_state say from what to what. */
	MOSFW_EV_TCP_STATE_CHANGE = 1u << 2,
	/* New bytes of a side's stream. With reassembly buffers on
	 * (stream_buf.h): in-order bytes became readable (a segment extended
	 * the in-order data, filled a gap, or a gap was given up); seq/len =
	 * from the first newly readable byte to the new end of the in-order
	 * data (given-up bytes inside it read as lost). With buffers off: a
	 * segment carried payload beyond the highest sequence number seen so
	 * far from its sender; seq/len = the new bytes only. side = the
	 * sender. */
	MOSFW_EV_CONN_NEW_DATA = 1u << 3,
	/* A segment (payload, SYN or FIN) starts before the highest sequence
	 * end already seen from its sender: a duplicate, a retransmission,
	 * a gap fill, a repeated SYN/FIN. Keep-alive probes are not.
	 * side = the sender; seq/len = the segment. */
	MOSFW_EV_REXMIT = 1u << 4,
	/* A flow is torn down: reason is one of enum mosfw_end_reason.
	 * Exactly once per flow that raised CONN_START. The flow slot stays
	 * readable until the next mosfw_core_run(). UDP/ICMP flows end by
	 * timeout (udp_timeout/icmp_timeout), eviction or end of input.
	 * (TCP_STATE_CHANGE, CONN_NEW_DATA, REXMIT, ORPHAN: TCP only.) */
	MOSFW_EV_CONN_END = 1u << 5,
	/* A TCP packet that belongs to no tracked flow (a stray RST, a
	 * packet after the flow ended, a new flow refused because the table
	 * is full). slot indexes mosfw_core_orphan_tuple(). */
	MOSFW_EV_ORPHAN = 1u << 6,
	/* A protocol or resource error; code in `reason` (enum
	 * mosfw_error_code), flow in slot, or MOSFW_NO_SLOT. */
	MOSFW_EV_ERROR = 1u << 7,
	/* An application timer fired (mosfw_core_timer_add): ts = its
	 * deadline, seq = its handle, slot/flow_id = its flow (0 and
	 * MOSFW_NO_SLOT for a global timer). Fired before the first packet at
	 * or after the deadline (live and idle: on wall time). */
	MOSFW_EV_TIMEOUT = 1u << 8,
	/* Input time crossed a whole second (ts = that second). Only
	 * produced when subscribed; lets the caller run per-second work in
	 * order with the events. It is the last record of its burst: the
	 * packet that crossed the second is processed in the next one, so
	 * while the TICK is handled the flow table (mosfw_core_live_flows,
	 * every flow's state now) is as it was at the tick. */
	MOSFW_EV_TICK = 1u << 9,
};

#define MOSFW_EV_ALL 0x3ffu
/* how many event types there are (bits of MOSFW_EV_ALL) */
#define MOSFW_EV_TYPES 10

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
	MOSFW_END_FIN = 1,     /* both FINs seen and the last one acked (tcp_one_sided_close:
	                          or a FIN whose peer never sent) */
	MOSFW_END_RST = 2,     /* a RST from either side */
	MOSFW_END_TIMEOUT = 3, /* idle for tcp_timeout seconds */
	MOSFW_END_EVICTED = 4, /* removed to make room (table full) */
	MOSFW_END_EOF = 5,     /* still open at end of input */
	MOSFW_END_REUSED = 6,  /* a new SYN reused the 5-tuple of a closing flow */
};

enum mosfw_error_code {
	MOSFW_ERR_NONE = 0,
	MOSFW_ERR_TABLE_FULL = 1,     /* a flow was evicted or refused */
	MOSFW_ERR_BAD_SEQUENCE = 2,   /* a segment far outside the window */
	MOSFW_ERR_BAD_CHECKSUM = 3,   /* checksum verification on and it failed */
	MOSFW_ERR_BUFFER_OVERRUN = 4, /* a reassembly buffer overflowed: a gap was
	                                 given up, or bytes not yet peeked were
	                                 overwritten */
	MOSFW_ERR_FRAG_OVERLAP = 5,   /* its IP fragments overlapped, bytes differed */
};

/* Event record flags. */
#define MOSFW_EVF_MIDSTREAM 0x01 /* flow picked up without its handshake */
#define MOSFW_EVF_LATE 0x02      /* ORPHAN of a FIN/RST-ended flow within tcp_tw_interval */

#define MOSFW_NO_SLOT 0xffffffffu

/* Protocols tracked besides TCP (mosfw_config.protocols). */
#define MOSFW_PROTO_UDP 0x1u
#define MOSFW_PROTO_ICMP 0x2u /* ICMP and ICMPv6 */
#define MOSFW_PROTO_OTHER \
	0x4u /* any other IP protocol: a flow per address pair
                                  and protocol number (ports 0), udp_timeout */
/* An ICMP flow's srv_port for a one-way message: this bit | its code. */
#define MOSFW_ICMP_ONE_WAY 0x100u

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
	double ts;            /* packet time (seconds) of the packet that caused it */
	uint64_t flow_id;     /* stable per-core flow id (0 for orphans/ticks) */
	uint32_t slot;        /* flow slot (mosfw_core_flow) or orphan index */
	uint32_t type;        /* one enum mosfw_event_type bit */
	uint32_t seq;         /* segment (or new bytes) sequence number */
	uint32_t ack;         /* ack number of the packet */
	uint32_t len;         /* payload length (REXMIT/NEW_DATA/PKT_IN) */
	uint16_t window;      /* raw window field of the packet */
	uint8_t side;         /* enum mosfw_side the event is about */
	uint8_t old_state;    /* TCP_STATE_CHANGE: from */
	uint8_t new_state;    /* TCP_STATE_CHANGE: to; CONN_START: state now */
	uint8_t reason;       /* CONN_END: mosfw_end_reason; ERROR: error code */
	uint8_t flags;        /* MOSFW_EVF_* */
	uint8_t tcp_flags;    /* MOSFW_TH_* of the packet */
	uint8_t cli_state;    /* client state at event time */
	uint8_t srv_state;    /* server state at event time */
	uint16_t from_pkt;    /* 1: caused by the packet pkt_index names (0: by a
	                       timer, a timeout or the end of input) */
	uint32_t pkt_index;   /* 1-based index of the packet in the input */
	uint32_t filter_bits; /* event filters (mosfw_core_set_filter 0..31) that
	                         matched the packet; 0 without a packet */
};

/* ---- flows ----------------------------------------------------------- */

/* Canonical connection identity. Addresses are 16 bytes; IPv4 uses the
 * first 4 and family 4. Client is the side that sent the first SYN (or
 * the likely client when the flow was picked up mid-stream); of a UDP
 * flow, its first packet's sender unless only the receiver's port is a
 * likely server port; of an ICMP flow, its first packet's sender, with
 * cli_port = that packet's type and srv_port = the type that answers it
 * (echo reply for an echo request...), else MOSFW_ICMP_ONE_WAY | code. */
struct mosfw_tuple {
	uint8_t cli_addr[16];
	uint8_t srv_addr[16];
	uint16_t cli_port; /* host order */
	uint16_t srv_port; /* host order */
	uint8_t family;    /* 4 or 6 */
	uint8_t proto;     /* IP protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 */
	uint8_t pad[2];
	uint32_t zone; /* 0, or the tunnel identity's hash (decap.key_by_tunnel) */
};

/* One endpoint's emulated TCP stack and counters. */
struct mosfw_half {
	uint32_t isn;           /* initial sequence number (SYN seq) */
	uint32_t seq_hi;        /* highest sequence end sent (incl. SYN/FIN) */
	uint32_t fin_seq;       /* sequence number of its FIN */
	uint32_t last_ack;      /* last ack number it sent */
	uint64_t pkts;          /* packets sent */
	uint64_t ip_bytes;      /* IP bytes sent (header + payload) */
	uint64_t payload_bytes; /* TCP payload bytes sent, retransmissions included */
	uint32_t rexmit_pkts;   /* REXMIT-classified segments sent */
	uint32_t rexmit_bytes;  /* payload bytes in those segments */
	uint16_t window;        /* last raw window it advertised */
	uint8_t state;          /* enum mosfw_tcp_state */
	uint8_t flags;          /* MOSFW_HF_* */
	uint16_t hist;          /* MOSFW_HIST_* bits seen (SYN, SYN/ACK, FIN, RST, data, ...) */
	uint16_t pad;
};

#define MOSFW_HF_SEQ_KNOWN 0x01 /* seq_hi is valid */
#define MOSFW_HF_SYN_SEEN 0x02
#define MOSFW_HF_FIN_SEEN 0x04
#define MOSFW_HF_RST_SEEN 0x08
#define MOSFW_HF_SYNACK_SEEN 0x10
#define MOSFW_HF_DATA_SEEN 0x20
#define MOSFW_HF_STARTED 0x40 /* CONN_START raised for this side */

/* The ids of UDP, ICMP and other-protocol flows have this bit: a TCP
 * flow's id is the same whether or not other protocols are tracked. */
#define MOSFW_ID_DGRAM (1ull << 62)

struct mosfw_flow {
	struct mosfw_tuple tuple;
	uint32_t created;            /* creation order on this core (wraps; any protocol) */
	uint64_t id;                 /* stable id; 0 = slot free */
	double first_ts;             /* first packet */
	double last_ts;              /* input time of its last packet (never before the
	                         latest packet time read: a capture's time may
	                         go back); idle timeouts count from it */
	struct mosfw_half side[2];   /* [MOSFW_SIDE_CLIENT], [MOSFW_SIDE_SERVER] */
	uint32_t hash;               /* symmetric hash of the tuple */
	uint32_t lru_prev, lru_next; /* idle list links (slots) */
	uint8_t lru_list;            /* which idle list (internal) */
	uint8_t end_reason;          /* enum mosfw_end_reason once ended */
	uint8_t midstream;           /* 1 = picked up without handshake */
	uint8_t first_dir;           /* side that sent the first packet seen */
	uint32_t core;               /* core id that owns it */
};

/* ---- configuration and statistics ------------------------------------ */

struct mosfw_config {
	uint32_t core_id;         /* reported in records and stats */
	uint32_t shard_index;     /* this core keeps flows with (hash * count) >> 32 == index */
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
	/* live: join this AF_PACKET fanout group (1..65535) in hash mode
	 * (symmetric for TCP/IP, IP fragments reassembled first) right after
	 * the capture is activated. The kernel then splits flows between the
	 * sockets of the group, so the core keeps every packet it is handed
	 * (shard_index/shard_count are not applied). 0 = no fanout; files
	 * ignore it. Packets the socket received before it joined may also
	 * reach another member (a start-up transient). */
	uint32_t fanout_group;
	/* files: the capture's size in bytes when the run started (0 =
	 * unknown). A core that opens the file later and finds it smaller
	 * (rotated or truncated in between) ends its input with the
	 * "shrank" read error after the records still there. */
	uint64_t input_size;
	/* reassembly buffers (stream_buf.h): bytes kept per side of a flow for
	 * peek/ppeek; they exist only while CONN_NEW_DATA is subscribed or
	 * mosfw_core_set_bytestream() asked for them. */
	uint32_t rmem_size;
	int no_ring_buffers; /* 1 = never keep reassembly buffers */
	/* the most bytes one core's reassembly buffers take together (each
	 * is rmem_size + a header): a side whose buffer would go past it
	 * gets none (its payload is not kept: stats rmem_memcap_bytes).
	 * 0 = no cap. Default 1 GiB. */
	uint64_t rmem_memcap;
	double tcp_attempt_delay; /* > 0: a SYN's flow with no reply ends (timeout) at a packet this late */
	int tcp_one_sided_close; /* 1: a FIN from a side whose peer never sent ends the flow (fin) */
	int tcp_partial_open; /* 1: any first TCP packet starts a flow (RST, FIN, no flags: Zeek) */
	uint64_t frag_memcap; /* IP reassembly bytes/core (0 = off): docs/fragments.md */
	double frag_timeout;  /* s of packet time a datagram waits for its fragments */
	struct mosfw_decap_config decap; /* tags and tunnels */
	/* MOSFW_PROTO_* tracked besides TCP (0: TCP only), and their idle
	 * timeouts (packet time; <= 0 off; other protocols: udp_timeout):
	 * defaults 0, 60 s, 60 s */
	uint32_t protocols;
	double udp_timeout, icmp_timeout;
	int udp_checksums; /* 1: verify UDP checksums, flag bad ones to observers (mosfw_seg) */
};

struct mosfw_stats {
	uint64_t packets;          /* packets read from the source */
	uint64_t bytes;            /* wire bytes read */
	uint64_t tcp_packets;      /* parsed TCP packets (before sharding) */
	uint64_t non_tcp;          /* parsed, but not TCP (UDP, ICMP, ARP...) */
	uint64_t malformed;        /* could not be parsed (bad header, runt frame) */
	uint64_t truncated;        /* headers cut by the capture's snaplen before the
	                            end of the TCP header (caplen < wire length):
	                            not tracked */
	uint64_t unsupported_link; /* link type not understood */
	uint64_t fragments;        /* IP fragments read (docs/fragments.md) */
	uint64_t bad_checksum;     /* failed verification (when enabled) */
	uint64_t other_shard;      /* TCP packets left to other cores */
	/* non-TCP IP packets by IP protocol number (the innermost IP header's;
	 * UDP at 17, ICMP at 1 and 58, tracked or not) */
	uint64_t ip_protos[256];
	uint64_t flows_created;
	uint64_t flows_midstream; /* of which picked up mid-stream */
	uint64_t flows_active;
	uint64_t flows_ended_fin, flows_ended_rst, flows_ended_timeout;
	uint64_t flows_evicted, flows_ended_eof, flows_reused;
	uint64_t flows_refused; /* new flows not tracked: table full */
	uint64_t orphans;
	uint64_t rexmits;
	uint64_t events;       /* events written to records */
	uint64_t kernel_drops; /* live: dropped by the kernel (pcap_stats) */
	uint64_t iface_drops;  /* live: dropped by the interface */
	/* allocations on the packet path that failed (out of memory): the
	 * flow index could not grow (new flows are then refused once it is
	 * 3/4 full: flows_refused), a reassembly buffer (that side's payload
	 * is not kept) */
	uint64_t nomem;
	uint64_t rmem_memcap_bytes; /* payload bytes not kept: rmem_memcap reached */
	uint64_t frag_reassembled, frag_timeouts, frag_cap_drops; /* docs/fragments.md */
	uint64_t frag_overlaps, frag_conflicts, frag_malformed, frag_pending, frag_mem_peak;
	double first_ts, last_ts;          /* input time span */
	struct mosfw_tunnel_stats tunnels; /* by tunnel kind (mosfw_tunnel.h) */
};

/* mosfw_core_run() results. */
enum mosfw_run_status {
	MOSFW_RUN_MORE = 0,      /* burst done, more input may follow */
	MOSFW_RUN_IDLE = 1,      /* live: no packet within the poll timeout */
	MOSFW_RUN_DONE = 2,      /* input ended and every flow got CONN_END */
	MOSFW_RUN_ERROR = 3,     /* source error: see mosfw_core_error(); flows
	                        were still ended (reason eof) */
	MOSFW_RUN_STOPPED = 4,   /* mosfw_core_stop() was called; flows ended */
	MOSFW_RUN_INPUT_END = 5, /* the input ended (end of file, read error or
	                            stop) and the flows still open are not ended
	                            yet: only with mosfw_core_pause_at_input_end;
	                            returned once, the next call ends them */
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
int mosfw_core_open_file(struct mosfw_core *core, const char *path, const char *bpf, char *errbuf);
int mosfw_core_open_live(struct mosfw_core *core, const char *iface, const char *bpf, char *errbuf);
/* n capture files as one stream (source_set.h); failed files are skipped. */
int mosfw_core_open_files(struct mosfw_core *core, const char *const *paths, uint32_t n,
                          const char *bpf, char *errbuf);
struct mosfw_input_file { /* a file of open_files; index: in the list given */
	uint32_t index;   /* state: 0 unread, 1 open, 2 done, 3 failed (error: why) */
	int state;        /* first_ts/last_ts: first (scan) and last packet read */
	uint64_t size, packets;
	double first_ts, last_ts;
	char error[256];
};
/* The files of open_files in read order (up to max); returns their count. */
uint32_t mosfw_core_input_files(const struct mosfw_core *core, struct mosfw_input_file *out,
                                uint32_t max);

/* Change the subscription mask (takes effect for the next packet). */
void mosfw_core_set_event_mask(struct mosfw_core *core, uint32_t mask);

/* Run one bounded burst: read up to cfg.burst_packets packets, and write
 * at most `cap` events into evs (cap must be >= 64). *n_events gets the
 * count. Flow slots named by these events stay valid until the next call.
 * Thread-safe with respect to other cores; call without holding the GIL. */
int mosfw_core_run(struct mosfw_core *core, struct mosfw_event *evs, uint32_t cap,
                   uint32_t *n_events);

/* ---- observers: features attached at the core loop's fixed points ---- */
#include "mosfw_observer.h" /* (here: it uses the flow and the core above) */

#include "mosfw_feed.h" /* -c N offline: one reader feeding every core */

/* Ask a running loop to finish: the next run() ends every flow (reason
 * eof) and returns MOSFW_RUN_STOPPED. Async-signal-safe. */
void mosfw_core_stop(struct mosfw_core *core);

/* Flow in a slot (NULL if out of range). Check ->id against the event's
 * flow_id: a slot is reused after the flow ended. */
const struct mosfw_flow *mosfw_core_flow(const struct mosfw_core *core, uint32_t slot);
/* The slots of the flows tracked now (not ended, not stopped on both
 * sides with mosfw_core_stop_monitor), in the order they started
 * (mosfw_flow.created). Returns how many there are; when that is more
 * than cap nothing is written (ask again with room for all). */
uint32_t mosfw_core_live_flows(const struct mosfw_core *core, uint32_t *slots, uint32_t cap);
/* on: when the input ends, return MOSFW_RUN_INPUT_END once before ending
 * the flows still open (reason eof), so the flow table at the end of the
 * input can be read (mosfw_core_live_flows). Off by default. */
void mosfw_core_pause_at_input_end(struct mosfw_core *core, int on);

/* A copy of a flow's record made when it ended (mosfw_core_recent_ends). */
struct mosfw_ended {
	double ts;              /* input time of the end */
	struct mosfw_flow flow; /* the record then: end_reason, both states... */
};
/* Keep copies of the records of the last n flows that ended before the
 * end of the input (every reason but eof), without an event per flow:
 * how samples/midstat lists the last connections that ended. 0 (the
 * default) keeps none. 0 on success, -1 out of memory. */
int mosfw_core_keep_recent_ends(struct mosfw_core *core, uint32_t n);
/* Copy the kept records, oldest first, into out (room for cap); returns
 * how many are kept (at most the n asked for). */
uint32_t mosfw_core_recent_ends(const struct mosfw_core *core, struct mosfw_ended *out,
                                uint32_t cap);
/* Tuple of an ORPHAN event's packet (client = sender), valid until the
 * next run(). */
const struct mosfw_tuple *mosfw_core_orphan_tuple(const struct mosfw_core *core, uint32_t index);
void mosfw_core_stats(struct mosfw_core *core, struct mosfw_stats *out);
/* Event records produced since the start, by type: out[i] gets the count
 * of type 1u << i, for i < min(n, MOSFW_EV_TYPES); they add up to
 * mosfw_stats.events. Returns MOSFW_EV_TYPES. Events nobody subscribed
 * to are never produced, so never counted. */
uint32_t mosfw_core_event_counts(const struct mosfw_core *core, uint64_t *out, uint32_t n);
/* Bytes of the input file consumed so far (-1 for live sources): for
 * progress reports. */
int64_t mosfw_core_input_offset(struct mosfw_core *core);
/* Last source error message ("" if none). */
const char *mosfw_core_error(const struct mosfw_core *core);
/* Link type name of the open source ("EN10MB", ...). */
const char *mosfw_core_linktype(const struct mosfw_core *core);

/* ---- the app-facing mOS API (core_api.c) ------------------------------
 * For use between bursts (from event handlers), on flows named by this
 * burst's records (slot + flow_id; -1 when the slot holds another flow). */

enum mosfw_overlap_policy {
	MOSFW_OVERLAP_FIRST = 0, /* bytes already held win (mOS default) */
	MOSFW_OVERLAP_LAST = 1,  /* retransmitted bytes overwrite held ones */
};

/* MOS_INFO_CLIBUF/SVRBUF. Offsets count from 0 = the byte after the ISN. */
struct mosfw_stream_info {
	uint64_t head;               /* oldest offset still held */
	uint64_t last_byte_read;     /* the consuming read (peek) position */
	uint64_t next_byte_expected; /* end of the in-order bytes */
	uint64_t last_byte_received; /* one past the highest byte received */
	uint64_t lost_read;          /* bytes the consuming read skipped */
	uint64_t lost_gap;           /* bytes given up in gaps (never seen) */
	uint64_t lost_overrun;       /* bytes evicted before peek reached them */
	uint32_t init_seq;           /* sequence number of offset 0 */
	uint32_t size;               /* capacity (rmem_size) */
	uint8_t nfrags;              /* out-of-order fragments held */
	uint8_t nholes;              /* given-up ranges inside the in-order data */
	uint8_t policy;              /* enum mosfw_overlap_policy */
	uint8_t pad[5];
};

/* MOS_FRAGINFO_CLIBUF/SVRBUF: one contiguous range of held bytes. */
struct mosfw_stream_frag {
	uint64_t offset;
	uint32_t len;
	uint32_t pad;
};

/* A packet that caused a record of this burst (mOS struct pkt_info). */
struct mosfw_packet {
	double ts;
	const uint8_t *frame;                 /* caplen bytes from the link-layer header on */
	uint32_t pkt_index;                   /* as in the records */
	uint32_t caplen, wirelen;             /* captured / on-the-wire frame length */
	uint32_t l3_off, l4_off, payload_off; /* header offsets in frame */
	uint32_t ip_len;                      /* IP length as the header says */
	uint32_t payload_len;                 /* TCP payload length as the headers say */
	uint32_t payload_caplen;              /* of which captured */
	uint32_t seq, ack;
	uint16_t window;
	uint8_t tcp_flags, family;
};

struct mosfw_feature_stats {
	uint64_t buffers_allocated;  /* reassembly buffers created */
	uint64_t buffers_failed;     /* could not be allocated */
	uint64_t buffers_live;       /* held now */
	uint64_t buffers_peak;       /* most held at once */
	uint64_t stream_bytes;       /* payload bytes offered to buffers */
	uint64_t lost_gap_bytes;     /* given up in gaps */
	uint64_t lost_overrun_bytes; /* evicted before peek got them */
	uint64_t bursts_cut;         /* bursts ended early to keep event-time reads */
	uint64_t syn_filtered;       /* new flows the SYN filter kept out */
	uint64_t orphan_filtered;    /* orphans the orphan filter kept out */
	uint64_t timers_fired;
	uint64_t timers_dropped; /* per-flow timers whose flow had ended */
};

/* Which filter mosfw_core_set_filter() sets: 0..31 are event filters
 * (their bit in the records' filter_bits), or one of these. */
#define MOSFW_FILTER_EVENTS 32
#define MOSFW_FILTER_SYN 32    /* stream_syn_filter: which new flows are tracked */
#define MOSFW_FILTER_ORPHAN 33 /* stream_orphan_filter: which orphans are reported */

/* Reassembly buffers on for flows' next payload (when rmem_size > 0 and
 * no_ring_buffers is 0); returns 1 when they are on. */
int mosfw_core_set_bytestream(struct mosfw_core *core, int on);
/* Keep a copy of every packet that produces a record, until the next
 * run() (for mosfw_core_packet). */
void mosfw_core_set_packets(struct mosfw_core *core, int on);
/* mtcp_peek: up to len in-order bytes of `side` from the consuming read
 * position, which advances; never across a hole. *lost gets the bytes
 * skipped first (overwritten or given up). -1: no such flow, -2: no
 * buffer for that side. */
int64_t mosfw_core_peek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                        uint8_t *buf, uint32_t len, uint64_t *lost);
/* mtcp_ppeek: up to len bytes from stream offset `offset` (in-order data
 * or an out-of-order fragment), contiguous; 0 when that byte is not held. */
int64_t mosfw_core_ppeek(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                         uint64_t offset, uint8_t *buf, uint32_t len);
int mosfw_core_stream_info(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                           struct mosfw_stream_info *out);
/* Held ranges in offset order; returns how many there are (may exceed max). */
int64_t mosfw_core_stream_frags(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                                unsigned side, struct mosfw_stream_frag *out, uint32_t max);
/* Stream offset of a sequence number of `side` (-2: no buffer). */
int mosfw_core_stream_offset(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                             unsigned side, uint32_t seq, int64_t *out);
int mosfw_core_set_overlap(struct mosfw_core *core, uint32_t slot, uint64_t flow_id, unsigned side,
                           int policy);
/* Segment mode (--dask, docs/archives.md): only flows first seen in [t0, t1)
 * count; input starts at t0 - the longest idle timeout tracked - tcp_tw_interval, ends past t1
 * once they left the table */
int mosfw_core_own_window(struct mosfw_core *core, double t0, double t1);
/* MOS_STOP_MON: sides = 1 (client), 2 (server) or 3 (both). A stopped
 * side raises no more events (CONN_END still comes unless both are
 * stopped) and its buffer is dropped; the flow is still tracked so it
 * ends and is not picked up again. */
int mosfw_core_stop_monitor(struct mosfw_core *core, uint32_t slot, uint64_t flow_id,
                            unsigned sides);
/* The packet with this index, if it produced a record in this burst. */
const struct mosfw_packet *mosfw_core_packet(struct mosfw_core *core, uint32_t pkt_index);
/* A one-shot timer: a TIMEOUT record at `deadline` (input time), about
 * the flow (slot, flow_id) or global (MOSFW_NO_SLOT, 0). */
int mosfw_core_timer_add(struct mosfw_core *core, double deadline, uint32_t slot, uint64_t flow_id,
                         uint32_t handle);
/* Input time now (packet time offline; wall time live when idle). */
double mosfw_core_now(const struct mosfw_core *core);
/* Compile a BPF filter for the open input's link type. which < 32: an
 * event filter evaluated on the packet of records of `event_types`;
 * MOSFW_FILTER_SYN / MOSFW_FILTER_ORPHAN: the monitor filters. NULL or ""
 * removes it. 0, or -1 with a message. */
int mosfw_core_set_filter(struct mosfw_core *core, unsigned which, uint32_t event_types,
                          const char *bpf, char *errbuf);
/* Records of these event types are produced only when an event filter
 * matched their packet (filter_bits != 0): for events subscribed only by
 * BPF-filtered user events. CONN_END is always produced. */
void mosfw_core_set_filter_only(struct mosfw_core *core, uint32_t types);
void mosfw_core_feature_stats(struct mosfw_core *core, struct mosfw_feature_stats *out);

/* ---- names ----------------------------------------------------------- */

const char *mosfw_state_name(unsigned state);  /* "ESTABLISHED" */
const char *mosfw_event_name(unsigned type);   /* "conn_start" */
const char *mosfw_end_reason_name(unsigned r); /* "fin" */
const char *mosfw_error_name(unsigned code);   /* "table_full" */

#endif /* MOSFW_API_H */
