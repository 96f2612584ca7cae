/*
 * walk_floor.c -- how long it takes just to get a classic pcap file's
 * records through one core, with no parsing: the floor under any tracker
 * that reads the file (bench/README.md, "What stays").
 *
 * Each way of reading walks every record header (the next one is found
 * from the current one's caplen) and reads one byte of each packet.  The
 * mapped ways prefetch every cache line 4 kB ahead of the walk, as
 * native/source.c does; without that the walk waits on one cache miss
 * per record.
 *
 *   fault      mmap, pages mapped by page faults as the walk reaches them
 *   populate   mmap with MAP_POPULATE: every page mapped up front
 *   ahead      mmap, MADV_POPULATE_READ 4 MB ahead of the walk (the engine)
 *   huge       as populate, on a 2 MB-aligned mapping with MADV_HUGEPAGE
 *   read       read() 1 MB at a time into a reused buffer (records may
 *              straddle two reads: the walk keeps the tail)
 *   parts      populate, then a plain read of every cache line: prints
 *              the mapping and the memory-bandwidth parts apart
 *
 * The file must be a classic pcap file in this machine's byte order.
 *
 * Build: cc -O2 -Wall -Wextra -o walk_floor walk_floor.c
 * Usage: walk_floor FILE.pcap [way ...]      (default: every way)
 * Prints one line per way: milliseconds, records, packets/s.  Run it a
 * few times and take the minimum: the machine's other work adds noise.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

#define PCAP_HDR 24
#define REC_HDR 16
#define PREFETCH_AHEAD 4096
#define POPULATE_CHUNK (4u << 20)
#define HUGE_ALIGN (2u << 20)
#define READ_CHUNK (1u << 20)

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

struct walk {
	uint64_t records;
	uint64_t sum; /* keeps the byte reads from being optimised away */
};

/* One record at rec, with room bytes after it in memory: counts it and
 * returns its length with its header, or 0 when it does not fit in room
 * (or is no record: caplen over 64 kB). */
static inline size_t walk_record(const unsigned char *rec, size_t room, struct walk *w)
{
	uint32_t caplen;

	memcpy(&caplen, rec + 8, 4);
	if (caplen > 65536 || REC_HDR + (size_t)caplen > room)
		return 0;
	if (caplen)
		w->sum += rec[REC_HDR];
	w->records++;
	return REC_HDR + caplen;
}

/* Walks the records of a mapped file.  populate_ahead: MADV_POPULATE_READ
 * in chunks ahead of the walk. */
static void walk_mapped(const unsigned char *b, size_t len, int populate_ahead, struct walk *w)
{
	size_t off = PCAP_HDR, pf = 0, populated = 0;

	while (off + REC_HDR <= len) {
		size_t step;

		if (populate_ahead && off + POPULATE_CHUNK / 2 >= populated && populated < len) {
			size_t end = populated + POPULATE_CHUNK < len ? populated + POPULATE_CHUNK : len;

			madvise((void *)(b + populated), end - populated, MADV_POPULATE_READ);
			populated = end;
		}
		for (; pf < off + PREFETCH_AHEAD && pf < len; pf += 64)
			__builtin_prefetch(b + pf);
		if (!(step = walk_record(b + off, len - off, w)))
			break;
		off += step;
	}
}

static const unsigned char *map_file(int fd, size_t len, int flags, int huge)
{
	void *want = NULL, *p;

	if (huge) {
		/* reserve, then map the file at a 2 MB boundary inside it */
		unsigned char *r = mmap(NULL, len + HUGE_ALIGN, PROT_NONE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r == MAP_FAILED)
			return NULL;
		want = (void *)(((uintptr_t)r + HUGE_ALIGN - 1) & ~(uintptr_t)(HUGE_ALIGN - 1));
		flags |= MAP_FIXED;
		/* the reservation's slack before and after the file */
		if ((unsigned char *)want > r)
			munmap(r, (size_t)((unsigned char *)want - r));
		munmap((unsigned char *)want + len, (size_t)(r + len + HUGE_ALIGN - ((unsigned char *)want + len)));
	}
	p = mmap(want, len, PROT_READ, MAP_PRIVATE | flags, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	if (huge) {
		madvise(p, len, MADV_HUGEPAGE);
		madvise(p, len, MADV_POPULATE_READ);
	}
	return p;
}

static void walk_read(int fd, struct walk *w)
{
	unsigned char *buf = malloc(READ_CHUNK + 65536 + REC_HDR);
	size_t have = 0, pos = 0;
	int first = 1;
	ssize_t n;

	if (!buf)
		return;
	for (;;) {
		memmove(buf, buf + pos, have - pos);
		have -= pos;
		pos = 0;
		n = read(fd, buf + have, READ_CHUNK);
		if (n <= 0)
			break;
		have += (size_t)n;
		if (first) {
			pos = PCAP_HDR;
			first = 0;
		}
		while (pos + REC_HDR <= have) {
			size_t step = walk_record(buf + pos, have - pos, w);

			if (!step)
				break; /* the rest comes with the next read() */
			pos += step;
		}
		if (have - pos > 65536 + REC_HDR) /* no record fits: not a pcap */
			break;
	}
	free(buf);
}

static int run_way(const char *path, const char *way)
{
	struct walk w = {0, 0};
	struct stat st;
	double t0, t1, t2 = 0;
	int fd = open(path, O_RDONLY);
	size_t len;
	const unsigned char *b = NULL;

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return 1;
	}
	len = (size_t)st.st_size;
	{
		uint32_t magic = 0;

		if (pread(fd, &magic, 4, 0) != 4 || (magic != 0xa1b2c3d4 && magic != 0xa1b23c4d)) {
			fprintf(stderr, "walk_floor: %s: not a classic pcap file in this machine's byte order\n", path);
			close(fd);
			return 1;
		}
	}
	t0 = now();
	if (!strcmp(way, "read")) {
		walk_read(fd, &w);
	} else if (!strcmp(way, "parts")) {
		b = map_file(fd, len, MAP_POPULATE, 0);
		t2 = now();
		if (b)
			for (size_t i = 0; i < len; i += 64)
				w.sum += b[i];
	} else {
		int ahead = !strcmp(way, "ahead");

		if (!ahead && strcmp(way, "fault") && strcmp(way, "populate") && strcmp(way, "huge")) {
			fprintf(stderr, "walk_floor: unknown way '%s'\n", way);
			close(fd);
			return 2;
		}
		b = map_file(fd, len, !strcmp(way, "populate") ? MAP_POPULATE : 0, !strcmp(way, "huge"));
		if (b)
			walk_mapped(b, len, ahead, &w);
	}
	if (b)
		munmap((void *)b, len);
	else if (strcmp(way, "read")) {
		perror("mmap");
		close(fd);
		return 1;
	}
	t1 = now();
	close(fd);
	if (!strcmp(way, "parts"))
		printf("%-8s map %.1f ms, read every cache line %.1f ms (%.1f GB/s)  [%u]\n", way,
		       (t2 - t0) * 1e3, (t1 - t2) * 1e3, (double)len / (t1 - t2) / 1e9,
		       (unsigned)(w.sum & 1));
	else
		printf("%-8s %.1f ms, %llu records, %.2f Mpkt/s  [%u]\n", way, (t1 - t0) * 1e3,
		       (unsigned long long)w.records, (double)w.records / (t1 - t0) / 1e6,
		       (unsigned)(w.sum & 1));
	return 0;
}

int main(int argc, char **argv)
{
	static const char *all[] = {"fault", "populate", "ahead", "huge", "read", "parts"};
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: walk_floor FILE.pcap [fault|populate|ahead|huge|read|parts ...]\n");
		return 2;
	}
	if (argc == 2)
		for (i = 0; i < (int)(sizeof(all) / sizeof(all[0])); i++)
			rc |= run_way(argv[1], all[i]);
	else
		for (i = 2; i < argc; i++)
			rc |= run_way(argv[1], argv[i]);
	return rc;
}
