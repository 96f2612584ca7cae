/* SPDX-License-Identifier: MIT */
/*
 * fuzz_pcap.c -- libFuzzer harness for whole capture files: the input is
 * a pcap or pcapng file image (any bytes), opened through the public API
 * exactly as `mosfw run -r FILE` opens a file and run to its end with
 * every event subscribed, a small flow table, reassembly buffers and
 * packet copies on, and the app-facing API poked on every record
 * (checks: fuzz_common.h).
 * What it adds to fuzz_packets.c: libpcap's file reader (pcapng blocks,
 * bad block lengths, byte orders, per-record caplen/snaplen, truncated
 * records) in front of the engine, and source.c's error path.
 *
 * Build: native/fuzz/build.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mosfw_config cfg;
	struct fz_opts o = { .cap = 64, .max_conc = 16, .poke = 1, .rng = fz_seed(data, size) };
	struct mosfw_core *core;
	char err[MOSFW_ERRBUF_SIZE];
	uint64_t recs;
	int rc;

	mosfw_config_defaults(&cfg);
	cfg.max_concurrency = 16;
	cfg.event_mask = MOSFW_EV_ALL;
	cfg.tcp_timeout = 5.0;
	cfg.burst_packets = 256;
	cfg.rmem_size = 4096;
	core = mosfw_core_new(&cfg, err);
	FZ_CHECK(core != NULL, "mosfw_core_new: %s", err);
	if (mosfw_core_open_file(core, fz_file(data, size), NULL, err) == 0) {
		mosfw_core_set_bytestream(core, 1);
		mosfw_core_set_packets(core, 1);
		rc = fz_drive(core, cfg.event_mask, &o, &recs);
		FZ_CHECK(rc == MOSFW_RUN_DONE || rc == MOSFW_RUN_ERROR, "final status %d", rc);
		if (rc == MOSFW_RUN_ERROR)
			FZ_CHECK(*mosfw_core_error(core), "read error without a message");
	} else {
		FZ_CHECK(*err, "open failed without a message");
	}
	mosfw_core_free(core);
	return 0;
}
