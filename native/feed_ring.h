/* SPDX-License-Identifier: MIT */
/*
 * feed_ring.h -- the memory the -c N reader (feed.c) shares with the cores
 * it feeds (source_ring.c): one header, one single-producer/single-
 * consumer ring per core, all in one MAP_SHARED|MAP_ANONYMOUS mapping made
 * before the worker processes fork.
 *
 * A ring is a power-of-two byte array written at ever-growing 64-bit
 * positions (position & (cap - 1) is the offset). The producer writes
 * records past `tail` and publishes them by storing `tail` (release); the
 * consumer reads up to `tail` (acquire) and gives space back by storing
 * `head`. A record is a struct feed_rec and its frame, 8-byte aligned;
 * fewer than sizeof(struct feed_rec) bytes left before the end of the
 * array are skipped by both sides, and a record that does not fit before
 * the end is preceded by a FEED_PAD record that fills it.
 *
 * Waiting blocks on futexes, never spins: a side that finds the ring empty
 * (full) sets its *_wait flag, checks again, and sleeps on the other
 * side's sequence word; the other side, after publishing, bumps the word
 * and wakes it only when the flag is set (one load per publish otherwise).
 * Both stores and both loads are sequentially consistent, so either the
 * sleeper sees the new position or the waker sees the flag.
 */
#ifndef MOSFW_FEED_RING_H
#define MOSFW_FEED_RING_H

#include <errno.h>
#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "mosfw_api.h"

enum feed_kind {
	FEED_PACKET = 1, /* a packet for this core: the frame follows */
	FEED_TIME = 2,   /* another core's packet opened a new second: ts */
	FEED_PAD = 3,    /* filler up to the end of the array */
	FEED_END = 4,    /* end of input: feed_shared.status says how */
};

struct feed_rec {
	uint32_t len; /* the whole record, header included, 8-aligned */
	uint8_t kind;
	uint8_t hashed;    /* FEED_PACKET: 1 when flow_hash holds the packet's */
	uint16_t linktype; /* of the file the packet came from */
	uint32_t caplen, wirelen;
	uint32_t gidx; /* 1-based index of the packet in the input */
	/* hashed: mosfw_ft_hash() of the TCP segment, as the reader found it
	 * choosing the owner: the core looks the flow up with it instead of
	 * hashing the packet again */
	uint32_t flow_hash;
	double ts;
};

#define FEED_REC_HDR ((uint32_t)sizeof(struct feed_rec))

/* A side asleep on a ring is woken once this much is there for it: a core
 * once a quarter of its ring waits to be read (feed.c: publish), the
 * reader that found the ring full once a quarter is free (feed.c:
 * wait_space, source_ring.c: mosfw_ring_src_burst_begin); each wake is a
 * system call and two context switches, and a side woken for a few
 * records goes back to sleep at once. */
#define FEED_WAKE_BYTES(cap) ((cap) / 4)

static inline uint32_t feed_rec_len(uint32_t caplen)
{
	return FEED_REC_HDR + ((caplen + 7u) & ~7u);
}

struct feed_ring {
	/* written by the producer */
	uint64_t tail;      /* published end */
	uint32_t data_seq;  /* futex word the consumer sleeps on */
	uint32_t prod_wait; /* the producer sleeps on space_seq */
	uint64_t own_tcp;   /* TCP packets given to this core (as of `stats_seq`) */
	uint8_t pad0[64 - 24];
	/* written by the consumer (or, for `gone`, the parent) */
	uint64_t head;      /* released: the producer may overwrite up to here */
	uint32_t space_seq; /* futex word the producer sleeps on */
	uint32_t cons_wait; /* the consumer sleeps on data_seq */
	uint32_t gone;      /* the consumer reads no more: its records are dropped */
	uint8_t pad1[64 - 20];
};

struct feed_shared {
	uint32_t n;   /* cores */
	int linktype; /* of the first file (the cores' before any packet) */
	uint64_t cap; /* bytes of each ring's array */
	size_t map_len;
	size_t data_off; /* ring k's array: (uint8_t *)sh + data_off + k * cap */
	/* the input counters of what was read, under a sequence lock (odd
	 * while the reader writes them) */
	uint32_t stats_seq;
	uint32_t status; /* 0 reading; else MOSFW_SRC_EOF or MOSFW_SRC_ERROR */
	int64_t offset;  /* bytes of the input read so far */
	struct mosfw_stats in;
	char err[MOSFW_ERRBUF_SIZE]; /* status MOSFW_SRC_ERROR: why */
	struct feed_ring ring[];     /* n of them */
};

static inline uint8_t *feed_data(struct feed_shared *sh, uint32_t k)
{
	return (uint8_t *)sh + sh->data_off + (size_t)k * sh->cap;
}

/* Sleep on *word while it holds `seen`, at most ms milliseconds (the
 * mapping is shared between processes: no FUTEX_PRIVATE_FLAG). */
static inline void feed_futex_wait(uint32_t *word, uint32_t seen, long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	syscall(SYS_futex, word, FUTEX_WAIT, seen, &t, NULL, 0);
}

static inline void feed_futex_wake(uint32_t *word)
{
	__atomic_add_fetch(word, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, word, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* The other side may sleep on `seq` (its flag `wait` is set): wake it. */
static inline void feed_wake_if_waiting(uint32_t *wait, uint32_t *seq)
{
	if (__atomic_load_n(wait, __ATOMIC_SEQ_CST) &&
	    __atomic_exchange_n(wait, 0, __ATOMIC_SEQ_CST))
		feed_futex_wake(seq);
}

#endif /* MOSFW_FEED_RING_H */
