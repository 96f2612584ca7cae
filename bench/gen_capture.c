/*
 * gen_capture.c -- write a deterministic synthetic TCP capture (classic pcap,
 * Ethernet link type) for benchmarking mosfw and other passive TCP trackers.
 *
 * Every connection is an HTTP/1.1-looking exchange over server port 80:
 *
 *   C->S SYN (MSS option)
 *   S->C SYN/ACK (MSS option)
 *   C->S ACK
 *   C->S PSH/ACK  request ("GET /obj/N HTTP/1.1 ..." padded to 200-600 bytes)
 *   D x  S->C ACK data segment (200..MSS bytes, PSH on the last one);
 *        the response is "HTTP/1.1 200 OK" + Content-Length exactly matching
 *        the body carried by the D segments
 *        - in a chosen fraction of connections, one data segment (picked at
 *          random) is sent a second time, identically, right after the
 *          original and before the client acknowledges it: exactly one
 *          retransmission, flagged as such by tshark's tcp.analysis
 *        - the client ACKs every second segment and the last one
 *   S->C FIN/ACK
 *   C->S FIN/ACK
 *   S->C ACK
 *
 * i.e. 7 + D + ceil(D/2) (+1 with the retransmission) packets: 20 with the
 * defaults.  Every 8th connection (index % 8 == 7) runs over IPv6.  Every
 * connection has its own 5-tuple.  Connections are interleaved: a window of
 * CONCURRENCY slots is served round-robin, one packet per slot per round;
 * when a connection ends its slot takes the next one.  Slot start times are
 * staggered so that the window holds connections in every phase.
 * Timestamps advance STEP microseconds per packet.  IPv4 header checksums and
 * TCP checksums are valid (-z writes zero TCP checksums instead).
 *
 * The content of connection i depends only on (seed, i, options other than
 * -c), never on the interleaving.
 *
 * -p BYTES gives every payload-carrying segment (the request and each
 * response data segment) exactly BYTES bytes instead: a capture of small
 * packets.  The request is then cut to BYTES bytes when its text is longer,
 * and the response header spans several segments when it does not fit in
 * the first (it is cut, with Content-Length 0, when the whole response is
 * shorter than it).  The random draws are the same as without -p, so which
 * segment is retransmitted does not change.
 *
 * -m est / -m syn (for memory measurements) write only the handshakes: every
 * connection's SYN, then every SYN/ACK, then every ACK (-m est: all N
 * connections established at once and never closed), or only the SYNs
 * (-m syn: N half-open connections). No payload, no retransmission; -c is
 * ignored (all N are concurrent).
 *
 * Build: cc -O2 -Wall -Wextra -o gen_capture gen_capture.c
 * Usage: gen_capture [-o FILE] [-n CONNECTIONS] [-c CONCURRENCY] [-s SEED]
 *                    [-d DATA_SEGMENTS] [-r REXMIT_FRACTION] [-6 V6_EVERY]
 *                    [-t STEP_US] [-p BYTES] [-m full|est|syn] [-z] [-q]
 * A summary line (key=value pairs) is printed on stderr unless -q.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SEGS 256
#define MAX_OPS (8 + MAX_SEGS * 2 + MAX_SEGS / 2 + 8)
#define MSS4 1460
#define MSS6 1440
#define MAXPAY4 1448 /* payload per data segment, as with TCP timestamps */
#define MAXPAY6 1428
#define MINPAY 200
#define SERVERS 64
#define CLIENT_HOSTS 4000
#define TS_BASE 1700000000u
#define OUTBUF_SIZE (8u << 20)
#define MAX_FRAME 2048

/* ------------------------------------------------------------------ rng */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint32_t rnd_range(uint64_t *s, uint32_t lo, uint32_t hi) /* [lo, hi] */
{
    return lo + (uint32_t)(splitmix64(s) % (uint64_t)(hi - lo + 1));
}

static double rnd01(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* --------------------------------------------------------------- output */

static FILE *out_fp;
static unsigned char *outbuf;
static size_t outpos;
static uint64_t out_bytes;

static void out_flush(void)
{
    if (outpos && fwrite(outbuf, 1, outpos, out_fp) != outpos) {
        fprintf(stderr, "gen_capture: write failed: %s\n", strerror(errno));
        exit(1);
    }
    out_bytes += outpos;
    outpos = 0;
}

static void put16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)(v >> 8); p[1] = (unsigned char)v; }
static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)(v >> 16); p[2] = (unsigned char)(v >> 8); p[3] = (unsigned char)v;
}
static void put32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}

static uint32_t csum_add(uint32_t sum, const unsigned char *p, size_t len)
{
    uint64_t s = sum;
    while (len >= 2) {
        s += (uint32_t)(p[0] << 8 | p[1]);
        p += 2;
        len -= 2;
    }
    if (len)
        s += (uint32_t)(p[0] << 8);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* ----------------------------------------------------------- connection */

enum { C2S = 0, S2C = 1 };
enum { F_FIN = 0x01, F_SYN = 0x02, F_RST = 0x04, F_PSH = 0x08, F_ACK = 0x10 };
enum { PL_NONE = 0, PL_REQ, PL_RESP };

struct op {
    uint8_t dir, flags, pl;
    uint16_t len;
    uint32_t seq, ack;
    uint32_t off; /* offset of the payload in its stream */
};

struct conn {
    int active;
    uint64_t idx;
    int v6;
    unsigned char cmac[6], smac[6];
    unsigned char cip[16], sip[16];
    uint16_t cport, sport;
    uint16_t ipid[2];
    char req[MAXPAY4 + 1];
    uint32_t req_len;
    char resp_hdr[160];
    uint32_t resp_hdr_len;
    int nops, next;
    struct op ops[MAX_OPS];
};

struct opts {
    uint64_t n;
    uint32_t conc;
    uint64_t seed;
    int segs;
    double rexmit_frac;
    uint32_t v6_every;
    uint32_t step_us;
    int zero_tcp_csum;
    int mode; /* MODE_FULL, MODE_EST, MODE_SYN */
    uint32_t pay; /* -p: payload of every data segment; 0 = varied (default) */
};

enum { MODE_FULL = 0, MODE_EST = 1, MODE_SYN = 2 };

static struct opts O = { 60000, 1000, 1, 8, 1.0, 8, 10, 0, MODE_FULL, 0 };

static uint64_t n_rexmit, n_v6, n_pkts;

/* body byte at stream offset k is BODY[k % 64] */
static const char BODY_PAT[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_";
static char body_rep[64 + MAXPAY4 + 64];

static unsigned ndigits(uint32_t v)
{
    unsigned d = 1;
    while (v >= 10) { v /= 10; d++; }
    return d;
}

static void conn_init(struct conn *c, uint64_t idx)
{
    uint64_t rs = O.seed * 0xd1342543de82ef95ULL ^ (idx + 1) * 0x9e3779b97f4a7c15ULL;
    splitmix64(&rs);

    c->active = 1;
    c->idx = idx;
    c->v6 = O.v6_every && (idx % O.v6_every) == O.v6_every - 1;
    if (c->v6)
        n_v6++;

    uint32_t host = (uint32_t)(idx % CLIENT_HOSTS);
    uint32_t srv = rnd_range(&rs, 0, SERVERS - 1);
    uint32_t port_base = (uint32_t)(O.seed % 1000);
    c->cport = (uint16_t)(1024 + (idx / CLIENT_HOSTS + port_base) % 64000);
    c->sport = 80;

    static const unsigned char cmac[6] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x00 };
    static const unsigned char smac[6] = { 0x02, 0x00, 0x01, 0x00, 0x00, 0x00 };
    memcpy(c->cmac, cmac, 6);
    memcpy(c->smac, smac, 6);
    c->cmac[4] = (unsigned char)(host >> 8); c->cmac[5] = (unsigned char)host;
    c->smac[5] = (unsigned char)srv;

    memset(c->cip, 0, 16);
    memset(c->sip, 0, 16);
    if (!c->v6) {
        uint32_t ca = (10u << 24) + 1 + host;           /* 10.0.0.1 ... */
        uint32_t sa = (172u << 24) | (16u << 16) | (1 + srv); /* 172.16.0.1 ... */
        put32(c->cip, ca);
        put32(c->sip, sa);
    } else {
        /* 2001:db8:c::/64 clients, 2001:db8:5::/64 servers */
        static const unsigned char cp[8] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0c, 0, 0 };
        static const unsigned char sp[8] = { 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x05, 0, 0 };
        memcpy(c->cip, cp, 8);
        memcpy(c->sip, sp, 8);
        put32(c->cip + 12, 1 + host);
        put32(c->sip + 12, 1 + srv);
    }
    c->ipid[C2S] = (uint16_t)rnd_range(&rs, 0, 65535);
    c->ipid[S2C] = (uint16_t)rnd_range(&rs, 0, 65535);

    uint32_t cisn = (uint32_t)splitmix64(&rs);
    uint32_t sisn = (uint32_t)splitmix64(&rs);
    uint32_t maxpay = c->v6 ? MAXPAY6 : MAXPAY4;

    /* request */
    uint32_t req_len = rnd_range(&rs, 200, 600);
    if (O.pay)
        req_len = O.pay;
    int k = snprintf(c->req, sizeof c->req,
                     "GET /obj/%" PRIu64 " HTTP/1.1\r\nHost: s%u.example\r\n"
                     "User-Agent: mosfw-bench\r\nX-Pad: ",
                     idx, srv);
    if (req_len >= (uint32_t)k + 4) {
        memset(c->req + k, 'p', req_len - (uint32_t)k - 4);
        memcpy(c->req + req_len - 4, "\r\n\r\n", 4);
    } /* else (-p shorter than the request's text): the request is cut */
    c->req_len = req_len;

    /* response segment sizes: skewed towards the small end, some full-size */
    uint16_t seglen[MAX_SEGS];
    uint32_t seg_off[MAX_SEGS + 1];
    uint32_t total = 0;
    for (int i = 0; i < O.segs; i++) {
        uint32_t l;
        if (rnd_range(&rs, 0, 3) == 0) {
            l = maxpay;
        } else {
            double u = rnd01(&rs);
            l = MINPAY + (uint32_t)(u * u * (maxpay - MINPAY));
        }
        if (O.pay)
            l = O.pay;
        seg_off[i] = total;
        seglen[i] = (uint16_t)l;
        total += l;
    }
    seg_off[O.segs] = total;

    /* response header with exact Content-Length (the header fits in the
     * first segment, since MINPAY >= 200); when no digit count fits
     * (e.g. 999 vs 1000) the Server value is lengthened by one character */
    static const char hfmt[] = "HTTP/1.1 200 OK\r\nServer: mosfw-bench%.*s\r\n"
                               "Content-Type: application/octet-stream\r\n"
                               "Content-Length: %u\r\n\r\n";
    uint32_t body = 0;
    int pad = 0, found = 0;
    for (pad = 0; pad <= 1 && !found; pad++) {
        uint32_t base = (uint32_t)snprintf(NULL, 0, hfmt, pad, "2", 0u) - 1;
        for (unsigned d = 1; d <= 10 && base + d <= total; d++) {
            body = total - base - d;
            if (ndigits(body) == d) {
                found = 1;
                break;
            }
        }
    }
    pad--;
    c->resp_hdr_len = (uint32_t)snprintf(c->resp_hdr, sizeof c->resp_hdr, hfmt, pad, "2", body);

    int rex = -1;
    if (O.rexmit_frac > 0 && rnd01(&rs) < O.rexmit_frac) {
        rex = (int)rnd_range(&rs, 0, (uint32_t)O.segs - 1);
        n_rexmit++;
    }

    /* script */
    struct op *op = c->ops;
    int n = 0;
#define OP(d_, f_, s_, a_, pl_, off_, len_) \
    (op[n].dir = (d_), op[n].flags = (f_), op[n].seq = (s_), op[n].ack = (a_), \
     op[n].pl = (pl_), op[n].off = (off_), op[n].len = (uint16_t)(len_), n++)
    uint32_t c1 = cisn + 1, s1 = sisn + 1, cend = c1 + req_len;
    OP(C2S, F_SYN, cisn, 0, PL_NONE, 0, 0);
    OP(S2C, F_SYN | F_ACK, sisn, c1, PL_NONE, 0, 0);
    OP(C2S, F_ACK, c1, s1, PL_NONE, 0, 0);
    OP(C2S, F_PSH | F_ACK, c1, s1, PL_REQ, 0, req_len);
    for (int i = 0; i < O.segs; i++) {
        uint8_t f = F_ACK | (i == O.segs - 1 ? F_PSH : 0);
        OP(S2C, f, s1 + seg_off[i], cend, PL_RESP, seg_off[i], seglen[i]);
        if (i == rex)
            OP(S2C, f, s1 + seg_off[i], cend, PL_RESP, seg_off[i], seglen[i]);
        if ((i & 1) || i == O.segs - 1)
            OP(C2S, F_ACK, cend, s1 + seg_off[i + 1], PL_NONE, 0, 0);
    }
    uint32_t send = s1 + total;
    OP(S2C, F_FIN | F_ACK, send, cend, PL_NONE, 0, 0);
    OP(C2S, F_FIN | F_ACK, cend, send + 1, PL_NONE, 0, 0);
    OP(S2C, F_ACK, send + 1, cend + 1, PL_NONE, 0, 0);
#undef OP
    c->nops = n;
    c->next = 0;
}

/* emit the connection's next packet; returns 1 when the connection is done */
static int conn_emit(struct conn *c, uint64_t pkt_no)
{
    const struct op *op = &c->ops[c->next++];
    int dir = op->dir;
    int syn = op->flags & F_SYN;
    unsigned tcp_hl = 20 + (syn ? 4 : 0);
    unsigned ip_hl = c->v6 ? 40 : 20;
    unsigned frame = 14 + ip_hl + tcp_hl + op->len;

    if (outpos + 16 + MAX_FRAME > OUTBUF_SIZE)
        out_flush();
    unsigned char *rec = outbuf + outpos;
    uint64_t us = pkt_no * O.step_us;
    put32le(rec, TS_BASE + (uint32_t)(us / 1000000));
    put32le(rec + 4, (uint32_t)(us % 1000000));
    put32le(rec + 8, frame);
    put32le(rec + 12, frame);
    unsigned char *p = rec + 16;

    const unsigned char *src_ip = dir == C2S ? c->cip : c->sip;
    const unsigned char *dst_ip = dir == C2S ? c->sip : c->cip;

    /* ethernet */
    memcpy(p, dir == C2S ? c->smac : c->cmac, 6);
    memcpy(p + 6, dir == C2S ? c->cmac : c->smac, 6);
    put16(p + 12, c->v6 ? 0x86dd : 0x0800);
    unsigned char *ip = p + 14;
    unsigned char *tcp = ip + ip_hl;
    unsigned tcp_len = tcp_hl + op->len;

    /* ip */
    if (!c->v6) {
        ip[0] = 0x45; ip[1] = 0;
        put16(ip + 2, (uint16_t)(20 + tcp_len));
        put16(ip + 4, c->ipid[dir]++);
        put16(ip + 6, 0x4000); /* DF */
        ip[8] = dir == C2S ? 64 : 63;
        ip[9] = 6;
        put16(ip + 10, 0);
        memcpy(ip + 12, src_ip, 4);
        memcpy(ip + 16, dst_ip, 4);
        put16(ip + 10, csum_fold(csum_add(0, ip, 20)));
    } else {
        put32(ip, 0x60000000u);
        put16(ip + 4, (uint16_t)tcp_len);
        ip[6] = 6;
        ip[7] = dir == C2S ? 64 : 63;
        memcpy(ip + 8, src_ip, 16);
        memcpy(ip + 24, dst_ip, 16);
    }

    /* tcp */
    put16(tcp, dir == C2S ? c->cport : c->sport);
    put16(tcp + 2, dir == C2S ? c->sport : c->cport);
    put32(tcp + 4, op->seq);
    put32(tcp + 8, op->ack);
    tcp[12] = (unsigned char)((tcp_hl / 4) << 4);
    tcp[13] = op->flags;
    put16(tcp + 14, 65535);
    put16(tcp + 16, 0);
    put16(tcp + 18, 0);
    if (syn) {
        tcp[20] = 2; tcp[21] = 4;
        put16(tcp + 22, c->v6 ? MSS6 : MSS4);
    }
    unsigned char *pl = tcp + tcp_hl;
    if (op->pl == PL_REQ) {
        memcpy(pl, c->req + op->off, op->len);
    } else if (op->pl == PL_RESP) {
        uint32_t off = op->off, len = op->len;
        if (off < c->resp_hdr_len) {
            uint32_t h = c->resp_hdr_len - off;
            if (h > len) h = len;
            memcpy(pl, c->resp_hdr + off, h);
            pl += h; off += h; len -= h;
        }
        if (len) {
            uint32_t boff = off - c->resp_hdr_len;
            memcpy(pl, body_rep + (boff % 64), len);
        }
    }
    if (!O.zero_tcp_csum) {
        uint32_t s;
        if (!c->v6) {
            s = csum_add(0, ip + 12, 8);
        } else {
            s = csum_add(0, ip + 8, 32);
        }
        s += 6 + tcp_len;
        s = csum_add(s, tcp, tcp_len);
        put16(tcp + 16, csum_fold(s));
    }

    outpos += 16 + frame;
    n_pkts++;
    return c->next == c->nops;
}

/* ----------------------------------------------------------------- main */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gen_capture [-o FILE] [-n CONNECTIONS] [-c CONCURRENCY] [-s SEED]\n"
            "                   [-d DATA_SEGMENTS] [-r REXMIT_FRACTION] [-6 V6_EVERY]\n"
            "                   [-t STEP_US] [-p BYTES] [-m full|est|syn] [-z] [-q]\n"
            "  -o FILE      output pcap (default: stdout)\n"
            "  -n N         connections (default 60000)\n"
            "  -c N         concurrently interleaved connections (default 1000)\n"
            "  -s N         seed (default 1)\n"
            "  -d N         server data segments per connection, 1..%d (default 8)\n"
            "  -r F         fraction of connections with one retransmitted data\n"
            "               segment, 0..1 (default 1)\n"
            "  -6 N         every Nth connection over IPv6, 0 = none (default 8)\n"
            "  -t N         microseconds between packets (default 10)\n"
            "  -p N         payload bytes of every data segment (the request and\n"
            "               each response segment), 1..%d: small packets; by\n"
            "               default the request has 200-600 bytes and response\n"
            "               segments %d..MSS, skewed to the small end\n"
            "  -m MODE      full: whole connections (default); est: only the N\n"
            "               handshakes, all connections open at once (every SYN,\n"
            "               then every SYN/ACK, then every ACK); syn: only the N\n"
            "               SYNs (half-open); for memory measurements\n"
            "  -z           write zero TCP checksums\n"
            "  -q           no summary on stderr\n",
            MAX_SEGS, MAXPAY6, MINPAY);
}

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || end == s || *end || *s == '-') {
        fprintf(stderr, "gen_capture: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    int quiet = 0, ch;
    while ((ch = getopt(argc, argv, "o:n:c:s:d:r:6:t:p:m:zqh")) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'n': O.n = parse_u64(optarg, "connection count"); break;
        case 'c': O.conc = (uint32_t)parse_u64(optarg, "concurrency"); break;
        case 's': O.seed = parse_u64(optarg, "seed"); break;
        case 'd': O.segs = (int)parse_u64(optarg, "segment count"); break;
        case 'r': {
            char *end;
            O.rexmit_frac = strtod(optarg, &end);
            if (end == optarg || *end || O.rexmit_frac < 0 || O.rexmit_frac > 1) {
                fprintf(stderr, "gen_capture: bad retransmission fraction: %s\n", optarg);
                return 2;
            }
            break;
        }
        case '6': O.v6_every = (uint32_t)parse_u64(optarg, "IPv6 interval"); break;
        case 't': O.step_us = (uint32_t)parse_u64(optarg, "time step"); break;
        case 'p': {
            uint64_t v = parse_u64(optarg, "payload size");
            if (v < 1 || v > MAXPAY6) {
                fprintf(stderr, "gen_capture: -p must be 1..%d\n", MAXPAY6);
                return 2;
            }
            O.pay = (uint32_t)v;
            break;
        }
        case 'm':
            if (strcmp(optarg, "full") == 0) {
                O.mode = MODE_FULL;
            } else if (strcmp(optarg, "est") == 0) {
                O.mode = MODE_EST;
            } else if (strcmp(optarg, "syn") == 0) {
                O.mode = MODE_SYN;
            } else {
                fprintf(stderr, "gen_capture: -m must be full, est or syn\n");
                return 2;
            }
            break;
        case 'z': O.zero_tcp_csum = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (O.segs < 1 || O.segs > MAX_SEGS) {
        fprintf(stderr, "gen_capture: -d must be 1..%d\n", MAX_SEGS);
        return 2;
    }
    if (O.conc < 1 || O.conc > 10000000) {
        fprintf(stderr, "gen_capture: -c must be 1..10000000\n");
        return 2;
    }
    if (O.n > (uint64_t)CLIENT_HOSTS * 64000) {
        fprintf(stderr, "gen_capture: at most %u connections (unique 5-tuples)\n",
                CLIENT_HOSTS * 64000);
        return 2;
    }

    if (out && strcmp(out, "-") != 0) {
        out_fp = fopen(out, "wb");
        if (!out_fp) {
            fprintf(stderr, "gen_capture: %s: %s\n", out, strerror(errno));
            return 1;
        }
    } else {
        if (isatty(STDOUT_FILENO)) {
            fprintf(stderr, "gen_capture: refusing to write a capture to a terminal (use -o)\n");
            return 2;
        }
        out_fp = stdout;
        out = "-";
    }
    outbuf = malloc(OUTBUF_SIZE);
    if (!outbuf) {
        fprintf(stderr, "gen_capture: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < sizeof body_rep; i++)
        body_rep[i] = BODY_PAT[i % 64];

    /* pcap global header: microsecond resolution, Ethernet */
    unsigned char *g = outbuf;
    put32le(g, 0xa1b2c3d4u);
    g[4] = 2; g[5] = 0; g[6] = 4; g[7] = 0;
    put32le(g + 8, 0);
    put32le(g + 12, 0);
    put32le(g + 16, 65535);
    put32le(g + 20, 1);
    outpos = 24;

    uint32_t conc = O.conc;
    if ((uint64_t)conc > O.n)
        conc = (uint32_t)(O.n ? O.n : 1);
    if (O.mode != MODE_FULL) {
        /* handshakes only: one scratch connection rebuilt per packet (the
         * content of connection i depends only on the seed and i) */
        struct conn *c = malloc(sizeof *c);
        if (!c) {
            fprintf(stderr, "gen_capture: out of memory\n");
            return 1;
        }
        O.rexmit_frac = 0;
        int steps = O.mode == MODE_EST ? 3 : 1;
        for (int step = 0; step < steps; step++) {
            for (uint64_t i = 0; i < O.n; i++) {
                uint64_t v6_before = n_v6;
                conn_init(c, i);
                if (step)
                    n_v6 = v6_before; /* count each connection once */
                c->next = step;
                conn_emit(c, n_pkts);
            }
        }
        free(c);
        conc = (uint32_t)(O.n < 10000000 ? O.n : 10000000);
        goto done;
    }
    struct conn *slots = calloc(conc, sizeof *slots);
    if (!slots) {
        fprintf(stderr, "gen_capture: out of memory for %u slots\n", conc);
        return 1;
    }
    /* stagger the slots' first connections over one connection lifetime */
    uint32_t life = (uint32_t)(7 + O.segs + (O.segs + 1) / 2);
    uint64_t next_conn = 0, done = 0, round = 0;
    while (done < O.n) {
        for (uint32_t j = 0; j < conc; j++) {
            struct conn *c = &slots[j];
            if (!c->active) {
                if (next_conn >= O.n)
                    continue;
                if (round * conc < (uint64_t)j * life)
                    continue;
                conn_init(c, next_conn++);
            }
            if (conn_emit(c, n_pkts)) {
                c->active = 0;
                done++;
            }
        }
        round++;
    }
    free(slots);
done:
    out_flush();
    if (fflush(out_fp) != 0 || (out_fp != stdout && fclose(out_fp) != 0)) {
        fprintf(stderr, "gen_capture: write failed: %s\n", strerror(errno));
        return 1;
    }
    char paybuf[16] = "varied";
    if (O.pay)
        snprintf(paybuf, sizeof paybuf, "%u", O.pay);
    if (!quiet)
        fprintf(stderr,
                "gen_capture: file=%s packets=%" PRIu64 " connections=%" PRIu64
                " ipv4=%" PRIu64 " ipv6=%" PRIu64 " rexmits=%" PRIu64
                " bytes=%" PRIu64 " segments=%d concurrency=%u seed=%" PRIu64
                " duration_us=%" PRIu64 " mode=%s payload=%s\n",
                out, n_pkts, O.n, O.n - n_v6, n_v6, n_rexmit, out_bytes,
                O.mode == MODE_FULL ? O.segs : 0,
                conc, O.seed, n_pkts ? (n_pkts - 1) * O.step_us : 0,
                O.mode == MODE_FULL ? "full" : O.mode == MODE_EST ? "est" : "syn", paybuf);
    free(outbuf);
    return 0;
}
