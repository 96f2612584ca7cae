/* SPDX-License-Identifier: MIT */
/*
 * gen_synflood.c -- write a SYN flood capture fast, for the bounded-memory
 * test (tests/hostile/test_memory.py) and docs/robustness.md:
 *
 *   gen_synflood OUT.pcap N_SYNS [N_ESTABLISHED [syn|ack]]
 *
 * Ethernet/IPv4 pcap, microsecond timestamps, valid checksums, 1 us apart.
 *  1. N_ESTABLISHED (default 1000) connections 192.168.x.y:port ->
 *     10.255.255.1:80 do their handshake first;
 *  2. N_SYNS distinct half-open connections follow: a SYN from
 *     10.(i/50000).x.y:(10000 + i % 50000) -> 10.255.255.1:80, never
 *     answered. Every 1000 SYNs one of the "active" established
 *     connections (index % 4 < 2) sends 100 bytes and gets an ACK; the
 *     others stay idle, so they are the oldest flows in the table;
 *  3. at the end the established connections with an even index close
 *     (FIN, FIN, ACK: reason fin), the odd ones stay open (reason eof).
 *
 * Mode "ack" sends, instead of each SYN, a lone ACK with one byte of
 * data from the same tuple (a spoofed-ACK flood: every packet looks like
 * a connection picked up mid-stream, seen in one direction only).
 *
 * Expected with max_concurrency M < N_SYNS + N_ESTABLISHED: every
 * established connection ends with fin or eof (none evicted), and
 * N_SYNS + N_ESTABLISHED - M' half-open flows are evicted, oldest first.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;
static uint64_t now_us = 1700000000ULL * 1000000ULL;

struct ep {
	uint32_t addr;
	uint16_t port;
};

static uint16_t csum_fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static uint32_t csum_add(uint32_t s, const uint8_t *p, size_t n)
{
	while (n > 1) {
		s += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		n -= 2;
	}
	if (n)
		s += (uint32_t)p[0] << 8;
	return s;
}

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}
static void be32(uint8_t *p, uint32_t v)
{
	be16(p, v >> 16);
	be16(p + 2, v & 0xffff);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static void packet(struct ep src, struct ep dst, uint32_t seq, uint32_t ack, uint8_t flags,
                   uint32_t paylen)
{
	uint8_t f[16 + 14 + 20 + 20 + 256];
	uint8_t *eth = f + 16, *ip = eth + 14, *tcp = ip + 20;
	uint32_t len = 14 + 20 + 20 + paylen, s;

	memset(f, 0, 16 + len);
	put_le32(f, (uint32_t)(now_us / 1000000));
	put_le32(f + 4, (uint32_t)(now_us % 1000000));
	put_le32(f + 8, len);
	put_le32(f + 12, len);
	now_us++;
	memcpy(eth, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
	ip[0] = 0x45;
	be16(ip + 2, (uint16_t)(20 + 20 + paylen));
	ip[8] = 64;
	ip[9] = 6;
	be32(ip + 12, src.addr);
	be32(ip + 16, dst.addr);
	be16(ip + 10, csum_fold(csum_add(0, ip, 20)));
	be16(tcp, src.port);
	be16(tcp + 2, dst.port);
	be32(tcp + 4, seq);
	be32(tcp + 8, ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	be16(tcp + 14, 64240);
	memset(tcp + 20, 'x', paylen);
	s = csum_add(0, ip + 12, 8) + 6 + 20 + paylen;
	be16(tcp + 16, csum_fold(csum_add(s, tcp, 20 + paylen)));
	if (fwrite(f, 16 + len, 1, out) != 1) {
		perror("gen_synflood: write");
		exit(1);
	}
}

#define FIN 0x01
#define SYN 0x02
#define PSH 0x08
#define ACK 0x10

struct conn {
	struct ep cli, srv;
	uint32_t cseq, sseq;
};

int main(int argc, char **argv)
{
	uint8_t hdr[24];
	struct conn *c;
	struct ep server = { 0x0affff01, 80 };
	unsigned long n_syn, n_est, i, k = 0;
	int ack_mode;

	if (argc < 3 || argc > 5 ||
	    (argc == 5 && strcmp(argv[4], "syn") && strcmp(argv[4], "ack"))) {
		fprintf(stderr, "usage: gen_synflood OUT.pcap N_SYNS [N_ESTABLISHED [syn|ack]]\n");
		return 2;
	}
	n_syn = strtoul(argv[2], NULL, 0);
	n_est = argc > 3 ? strtoul(argv[3], NULL, 0) : 1000;
	ack_mode = argc > 4 && !strcmp(argv[4], "ack");
	if (n_syn > 50000UL * 256 || n_est > 60000) {
		fprintf(stderr, "gen_synflood: at most %lu SYNs and 60000 established\n",
		        50000UL * 256);
		return 2;
	}
	out = fopen(argv[1], "wb");
	c = calloc(n_est ? n_est : 1, sizeof(*c));
	if (!out || !c) {
		perror("gen_synflood");
		return 1;
	}
	setvbuf(out, NULL, _IOFBF, 1 << 20);
	put_le32(hdr, 0xa1b2c3d4);
	hdr[4] = 2;
	hdr[5] = 0;
	hdr[6] = 4;
	hdr[7] = 0;
	memset(hdr + 8, 0, 8);
	put_le32(hdr + 16, 65535);
	put_le32(hdr + 20, 1);
	fwrite(hdr, 24, 1, out);

	for (i = 0; i < n_est; i++) {
		c[i].cli.addr =
			0xc0a80000u | (uint32_t)(i / 250 + 1) << 8 | (uint32_t)(i % 250 + 1);
		c[i].cli.port = (uint16_t)(40000 + i % 20000);
		c[i].srv = server;
		c[i].cseq = 1000u + (uint32_t)i * 7919u;
		c[i].sseq = 5000u + (uint32_t)i * 104729u;
		packet(c[i].cli, c[i].srv, c[i].cseq, 0, SYN, 0);
		packet(c[i].srv, c[i].cli, c[i].sseq, c[i].cseq + 1, SYN | ACK, 0);
		c[i].cseq++;
		c[i].sseq++;
		packet(c[i].cli, c[i].srv, c[i].cseq, c[i].sseq, ACK, 0);
	}
	for (i = 0; i < n_syn; i++) {
		struct ep src = { 0x0a000000u | (uint32_t)(i / 50000) << 16 |
			                  (uint32_t)(i % 50000) % 256,
			          (uint16_t)(10000 + i % 50000) };
		/* vary the third octet too so addresses spread */
		src.addr |= (uint32_t)((i % 50000) / 256) << 8;
		if (ack_mode)
			packet(src, server, (uint32_t)(i * 2654435761u), (uint32_t)(i * 40503u),
			       PSH | ACK, 1);
		else
			packet(src, server, (uint32_t)(i * 2654435761u), 0, SYN, 0);
		if (n_est && i % 1000 == 999) {
			struct conn *a;
			unsigned long active = (n_est + 1) / 2;
			unsigned long j = k++ % active;
			/* active ones: index % 4 < 2 */
			j = (j / 2) * 4 + (j % 2);
			if (j >= n_est)
				j = 0;
			a = &c[j];
			packet(a->cli, a->srv, a->cseq, a->sseq, PSH | ACK, 100);
			a->cseq += 100;
			packet(a->srv, a->cli, a->sseq, a->cseq, ACK, 0);
		}
	}
	for (i = 0; i < n_est; i += 2) {
		packet(c[i].cli, c[i].srv, c[i].cseq, c[i].sseq, FIN | ACK, 0);
		c[i].cseq++;
		packet(c[i].srv, c[i].cli, c[i].sseq, c[i].cseq, FIN | ACK, 0);
		c[i].sseq++;
		packet(c[i].cli, c[i].srv, c[i].cseq, c[i].sseq, ACK, 0);
	}
	if (fclose(out) != 0) {
		perror("gen_synflood: close");
		return 1;
	}
	free(c);
	return 0;
}
