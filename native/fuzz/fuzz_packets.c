/* SPDX-License-Identifier: MIT */
/*
 * fuzz_packets.c -- libFuzzer harness for the parser and both endpoints'
 * TCP state machines: the input is a tiny framing of a packet sequence,
 * turned into a classic pcap image and run through the public engine API
 * (see fuzz_common.h for what is checked).
 *
 * Input format (build_corpus.py writes it from real captures):
 *
 *   byte 0   link type: index into LINKTYPES below (modulo its size)
 *   byte 1   bits 0-2 max_concurrency {1,2,3,5,8,32,256,1000}
 *            bit 3    verify checksums
 *            bits 4-5 tcp_timeout {30, 1, 0 (off), 300} s
 *            bit 6    tcp_tw_interval 0 (else 5 s)
 *            bit 7    nanosecond pcap (else microseconds)
 *   byte 2   bits 0-1 event array size {64, 65, 128, 4096}
 *            bits 2-3 burst_packets {1, 7, 64, 4096}
 *            bit 4    subscribe to every event (else the default mask)
 *            bits 5-7 call mosfw_core_stop() before run number N (0 = never)
 *   byte 3   the app-facing API: bits 0-1 rmem_size {0, 64, 1500, 65536};
 *            bit 2 reassembly buffers on (mosfw_core_set_bytestream);
 *            bit 3 packet copies on (mosfw_core_set_packets); bit 4 poke
 *            the API on every record (fuzz_common.h); bit 5 an event
 *            filter; bit 6 a SYN filter; bit 7 an orphan filter
 *   then records, each:
 *     dt     1 byte: 0-127 = that many ms after the previous packet;
 *            128-247 = 1-120 s; 248-254 = 100-700 s; 255 = 2 s back in time
 *     len    2 bytes little-endian: bits 0-14 = frame length; bit 15 = the
 *            frame was cut by a snaplen (wire length 1000 bytes longer)
 *     frame  len bytes; when fewer remain, the pcap ends mid-record (a
 *            truncated file: the engine must report a read error)
 *
 * Build: native/fuzz/build.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "fuzz_common.h"

static const uint32_t LINKTYPES[] = {
	1,   /* EN10MB */
	113, /* LINUX_SLL */
	276, /* LINUX_SLL2 */
	101, /* RAW */
	12,  /* RAW (BSD) */
	14,  /* RAW (OpenBSD) */
	0,   /* NULL */
	108, /* LOOP */
	228, /* IPV4 */
	229, /* IPV6 */
	147, /* USER0: refused at open */
	105, /* IEEE802_11 */
	9,   /* PPP */
	104, /* C_HDLC */
	127, /* IEEE802_11_RADIOTAP */
	239, /* NFLOG */
};
#define N_LINKTYPES (sizeof(LINKTYPES) / sizeof(LINKTYPES[0]))

static const uint32_t MAXCONC[] = { 1, 2, 3, 5, 8, 32, 256, 1000 };
static const double TIMEOUTS[] = { 30.0, 1.0, 0.0, 300.0 };
static const uint32_t CAPS[] = { 64, 65, 128, 4096 };
static const uint32_t BURSTS[] = { 1, 7, 64, 4096 };
static const uint32_t RMEM[] = { 0, 64, 1500, 65536 };

static uint8_t *img;
static size_t img_cap;

static void put(size_t *n, const void *p, size_t len)
{
	if (*n + len > img_cap) {
		size_t c = img_cap ? img_cap : 65536;
		while (c < *n + len)
			c *= 2;
		img = realloc(img, c);
		if (!img)
			abort();
		img_cap = c;
	}
	memcpy(img + *n, p, len);
	*n += len;
}

static void put32(size_t *n, uint32_t v) { put(n, &v, 4); }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mosfw_config cfg;
	struct fz_opts o = { 0 };
	struct mosfw_core *core;
	char err[MOSFW_ERRBUF_SIZE];
	uint64_t recs;
	int64_t sec = 1700000000, frac = 0; /* frac in ns */
	size_t pos = 4, n = 0;
	uint32_t lt;
	int nano;
	uint16_t v16;

	if (size < 4)
		return 0;
	lt = LINKTYPES[data[0] % N_LINKTYPES];
	nano = (data[1] >> 7) & 1;
	mosfw_config_defaults(&cfg);
	cfg.max_concurrency = MAXCONC[data[1] & 7];
	cfg.verify_checksums = (data[1] >> 3) & 1;
	cfg.tcp_timeout = TIMEOUTS[(data[1] >> 4) & 3];
	cfg.tcp_tw_interval = (data[1] >> 6) & 1 ? 0.0 : 5.0;
	cfg.burst_packets = BURSTS[(data[2] >> 2) & 3];
	if ((data[2] >> 4) & 1)
		cfg.event_mask = MOSFW_EV_ALL;
	o.cap = CAPS[data[2] & 3];
	o.stop_at_run = data[2] >> 5;
	o.max_conc = cfg.max_concurrency;
	cfg.rmem_size = RMEM[data[3] & 3];
	o.poke = (data[3] >> 4) & 1;
	o.rng = fz_seed(data, size);

	/* the pcap image: header, then the records */
	put32(&n, nano ? 0xa1b23c4d : 0xa1b2c3d4);
	v16 = 2;
	put(&n, &v16, 2);
	v16 = 4;
	put(&n, &v16, 2);
	put32(&n, 0);
	put32(&n, 0);
	put32(&n, 65535);
	put32(&n, lt);
	while (pos < size) {
		uint8_t dt = data[pos++];
		uint32_t len, caplen, wirelen;
		if (dt < 128)
			frac += (int64_t)dt * 1000000;
		else if (dt < 248)
			sec += dt - 127;
		else if (dt < 255)
			sec += (int64_t)(dt - 247) * 100;
		else
			sec -= 2;
		sec += frac / 1000000000;
		frac %= 1000000000;
		if (pos + 2 > size)
			break;
		len = (uint32_t)data[pos] | ((uint32_t)data[pos + 1] << 8);
		pos += 2;
		caplen = len & 0x7fff;
		wirelen = caplen + ((len & 0x8000) ? 1000 : 0);
		put32(&n, (uint32_t)sec);
		put32(&n, (uint32_t)(nano ? frac : frac / 1000));
		put32(&n, caplen);
		put32(&n, wirelen);
		if (caplen > size - pos)
			caplen = (uint32_t)(size - pos); /* the file ends mid-record */
		put(&n, data + pos, caplen);
		pos += caplen;
	}

	core = mosfw_core_new(&cfg, err);
	FZ_CHECK(core != NULL, "mosfw_core_new: %s", err);
	if (mosfw_core_open_file(core, fz_file(img, n), NULL, err) == 0) {
		if ((data[3] >> 2) & 1)
			mosfw_core_set_bytestream(core, 1);
		if ((data[3] >> 3) & 1)
			mosfw_core_set_packets(core, 1);
		/* a filter may not compile for every link type ("tcp[13]" on
		 * DLT_IPV6): that is libpcap's answer, not an engine fault */
		if ((data[3] >> 5) & 1)
			mosfw_core_set_filter(core, 0, MOSFW_EV_ALL, "tcp[13] & 2 != 0 or port 80",
			                      err);
		if ((data[3] >> 6) & 1)
			mosfw_core_set_filter(core, MOSFW_FILTER_SYN, 0, "not port 22", err);
		if ((data[3] >> 7) & 1)
			mosfw_core_set_filter(core, MOSFW_FILTER_ORPHAN, 0, "tcp[13] & 4 != 0",
			                      err);
		fz_drive(core, cfg.event_mask, &o, &recs);
	} else {
		/* only the refused link types may fail to open */
		FZ_CHECK(lt == 147 || lt == 105, "open failed: %s", err);
		FZ_CHECK(strstr(err, "unsupported link type") != NULL, "unclear message: %s", err);
	}
	mosfw_core_free(core);
	return 0;
}
