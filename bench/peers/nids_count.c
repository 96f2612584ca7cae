/*
 * nids_count.c -- the libnids peer of bench/run_bench.py.
 *
 * Reads a capture with libnids (Debian's libnids-dev), which reassembles
 * IPv4 TCP streams and emulates both endpoints, and counts what libnids
 * reports: connections established, closed by FIN, reset, timed out and
 * still open at the end, and the in-order payload bytes of both directions.
 * libnids does not report retransmissions (it drops them silently while
 * reassembling) and does not handle IPv6: IPv6 packets are read and skipped.
 *
 * Both sides' data is collected: libnids keeps following a connection up
 * to its close only while someone collects its data (a stream nobody
 * collects is freed right after NIDS_JUST_EST, so a "state only" libnids
 * would not track connections to their end).
 *
 * Build: cc -O2 -o nids_count nids_count.c -lnids -lpcap -lnet -lgthread-2.0 -lglib-2.0
 * Usage: nids_count [-k] [-s STREAMS] FILE
 *   -k          keep libnids' checksum verification (default: off, like
 *               mosfw, whose checksum check is off by default)
 *   -s STREAMS  libnids' stream hash size (default 65536; libnids tracks
 *               at most 3/4 of it at once)
 * Prints one `key=value` line on stdout.
 */
#include <nids.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint64_t n_est, n_close, n_reset, n_timeout, n_exiting, n_bytes, n_warn;

static void on_tcp(struct tcp_stream *a, void **param)
{
	(void)param;
	switch (a->nids_state) {
	case NIDS_JUST_EST:
		n_est++;
		a->client.collect++;
		a->server.collect++;
		break;
	case NIDS_DATA:
		n_bytes += (uint64_t)a->client.count_new + (uint64_t)a->server.count_new;
		break;
	case NIDS_CLOSE:
		n_close++;
		break;
	case NIDS_RESET:
		n_reset++;
		break;
	case NIDS_TIMED_OUT:
		n_timeout++;
		break;
	case NIDS_EXITING:
		n_exiting++;
		break;
	}
}

/* libnids' default logger calls syslog() for every odd packet */
static void quiet_syslog(int type, int err, struct ip *iph, void *data)
{
	(void)type; (void)err; (void)iph; (void)data;
	n_warn++;
}

int main(int argc, char **argv)
{
	int keep_checksums = 0, ch;
	long streams = 65536;
	while ((ch = getopt(argc, argv, "ks:")) != -1) {
		switch (ch) {
		case 'k': keep_checksums = 1; break;
		case 's': streams = strtol(optarg, NULL, 0); break;
		default:
			fprintf(stderr, "usage: nids_count [-k] [-s STREAMS] FILE\n");
			return 2;
		}
	}
	if (optind + 1 != argc || streams < 16) {
		fprintf(stderr, "usage: nids_count [-k] [-s STREAMS] FILE\n");
		return 2;
	}
	nids_params.filename = argv[optind];
	nids_params.device = NULL;
	nids_params.n_tcp_streams = (int)streams;
	nids_params.scan_num_hosts = 0; /* no port-scan detection */
	nids_params.syslog = (void (*)())quiet_syslog;
	nids_params.pcap_filter = NULL;
	if (!nids_init()) {
		fprintf(stderr, "nids_count: nids_init: %s\n", nids_errbuf);
		return 1;
	}
	if (!keep_checksums) {
		static struct nids_chksum_ctl ctl = { 0, 0, NIDS_DONT_CHKSUM, 0 };
		nids_register_chksum_ctl(&ctl, 1);
	}
	nids_register_tcp((void (*))on_tcp);
	nids_run();
	/* flows still open at the end are reported by nids_exit() as EXITING */
	nids_exit();
	printf("established=%llu closed=%llu reset=%llu timed_out=%llu open_at_end=%llu "
	       "bytes=%llu warnings=%llu\n",
	       (unsigned long long)n_est, (unsigned long long)n_close,
	       (unsigned long long)n_reset, (unsigned long long)n_timeout,
	       (unsigned long long)n_exiting, (unsigned long long)n_bytes,
	       (unsigned long long)n_warn);
	return 0;
}
