/* SPDX-License-Identifier: MIT */
/* source.c -- libpcap input. */
#include "source.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#endif

#include "mosfw_api.h"

struct mosfw_source {
	pcap_t *pcap;
	int linktype;
	int live;
	int nano;
	char iface[64];  /* live: the interface name */
	char err[MOSFW_ERRBUF_SIZE];
};

/* Live captures are non-blocking and mosfw_source_next() polls this long
 * itself: libpcap's TPACKET_V3 read blocks until a packet arrives, so an
 * idle capture would never return (no wall-time timeouts or ticks, and a
 * downed interface would not be noticed). */
#define LIVE_POLL_MS 50

/* Live: is the interface administratively down? libpcap keeps waiting on
 * a downed interface (it only fails once the interface is deleted). 0
 * when it is up or cannot be asked (e.g. the "any" pseudo-device). */
static int live_iface_down(struct mosfw_source *s)
{
#ifdef __linux__
	struct ifreq ifr;
	size_t n = strlen(s->iface);

	if (n == 0 || n >= sizeof(ifr.ifr_name))
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, s->iface, n);
	if (ioctl(pcap_fileno(s->pcap), SIOCGIFFLAGS, &ifr) < 0)
		return 0;
	return !(ifr.ifr_flags & IFF_UP);
#else
	(void)s;
	return 0;
#endif
}

static int apply_filter(struct mosfw_source *s, const char *bpf, char *errbuf)
{
	struct bpf_program prog;

	if (!bpf || !*bpf)
		return 0;
	if (pcap_compile(s->pcap, &prog, bpf, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "bad BPF filter '%s': %s", bpf,
		         pcap_geterr(s->pcap));
		return -1;
	}
	if (pcap_setfilter(s->pcap, &prog) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot set BPF filter '%s': %s", bpf,
		         pcap_geterr(s->pcap));
		pcap_freecode(&prog);
		return -1;
	}
	pcap_freecode(&prog);
	return 0;
}

struct mosfw_source *mosfw_source_open_file(const char *path, const char *bpf, char *errbuf)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct mosfw_source *s = calloc(1, sizeof(*s));

	if (!s) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	s->pcap = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, perr);
	if (!s->pcap) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot read capture '%s': %s", path, perr);
		free(s);
		return NULL;
	}
	s->nano = pcap_get_tstamp_precision(s->pcap) == PCAP_TSTAMP_PRECISION_NANO;
	s->linktype = pcap_datalink(s->pcap);
	if (apply_filter(s, bpf, errbuf) < 0) {
		mosfw_source_close(s);
		return NULL;
	}
	return s;
}

struct mosfw_source *mosfw_source_open_live(const char *iface, const char *bpf, int snaplen,
                                            int promisc, int buffer_mb, char *errbuf)
{
	char perr[PCAP_ERRBUF_SIZE] = "";
	struct mosfw_source *s = calloc(1, sizeof(*s));
	int rc;

	if (!s) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "out of memory");
		return NULL;
	}
	s->live = 1;
	snprintf(s->iface, sizeof(s->iface), "%s", iface);
	s->pcap = pcap_create(iface, perr);
	if (!s->pcap) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot open interface '%s': %s", iface, perr);
		free(s);
		return NULL;
	}
	pcap_set_snaplen(s->pcap, snaplen > 0 ? snaplen : 65535);
	pcap_set_promisc(s->pcap, promisc);
	pcap_set_timeout(s->pcap, 50);
	pcap_set_buffer_size(s->pcap, (buffer_mb > 0 ? buffer_mb : 64) * 1024 * 1024);
	pcap_set_tstamp_precision(s->pcap, PCAP_TSTAMP_PRECISION_NANO);
	rc = pcap_activate(s->pcap);
	if (rc < 0) {
		const char *why = pcap_geterr(s->pcap);
		if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "no such interface '%s': %s", iface, why);
		else if (rc == PCAP_ERROR_PERM_DENIED)
			snprintf(errbuf, MOSFW_ERRBUF_SIZE,
			         "permission denied capturing on '%s' (needs root or CAP_NET_RAW): %s",
			         iface, why);
		else if (rc == PCAP_ERROR_IFACE_NOT_UP)
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "interface '%s' is not up", iface);
		else
			snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot capture on '%s': %s", iface,
			         *why ? why : pcap_statustostr(rc));
		pcap_close(s->pcap);
		free(s);
		return NULL;
	}
	s->nano = pcap_get_tstamp_precision(s->pcap) == PCAP_TSTAMP_PRECISION_NANO;
	s->linktype = pcap_datalink(s->pcap);
	if (pcap_setnonblock(s->pcap, 1, perr) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot capture on '%s': %s", iface, perr);
		mosfw_source_close(s);
		return NULL;
	}
	if (apply_filter(s, bpf, errbuf) < 0) {
		mosfw_source_close(s);
		return NULL;
	}
	return s;
}

int mosfw_source_join_fanout(struct mosfw_source *s, unsigned group, char *errbuf)
{
#if defined(__linux__) && defined(PACKET_FANOUT) && defined(PACKET_FANOUT_FLAG_DEFRAG)
	int val;

	if (!s->live || group == 0 || group > 0xffffu) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE,
		         "AF_PACKET fanout needs a live capture and a group id in 1..65535 (got %u)",
		         group);
		return -1;
	}
	/* hash mode is symmetric for TCP/IP: both directions of a flow reach
	 * the same socket */
	val = (int)(group | ((unsigned)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16));
	if (setsockopt(pcap_fileno(s->pcap), SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0) {
		snprintf(errbuf, MOSFW_ERRBUF_SIZE, "cannot join AF_PACKET fanout group %u: %s%s",
		         group, strerror(errno),
		         errno == EINVAL ? " (a group of that id with another mode exists?)" : "");
		return -1;
	}
	return 0;
#else
	snprintf(errbuf, MOSFW_ERRBUF_SIZE, "AF_PACKET fanout (group %u) needs Linux", group);
	return -1;
#endif
}

int mosfw_source_next(struct mosfw_source *s, const uint8_t **frame, uint32_t *caplen,
                      uint32_t *wirelen, double *ts)
{
	struct pcap_pkthdr *h;
	const u_char *data;
	int rc = pcap_next_ex(s->pcap, &h, &data);

#ifdef __linux__
	if (rc == 0 && s->live) {
		/* nothing ready: wait (bounded) for the next block */
		struct pollfd pfd = { pcap_get_selectable_fd(s->pcap), POLLIN, 0 };
		if (pfd.fd >= 0 && poll(&pfd, 1, LIVE_POLL_MS) > 0)
			rc = pcap_next_ex(s->pcap, &h, &data);
	}
#endif
	if (rc == 1) {
		*frame = data;
		*caplen = h->caplen;
		*wirelen = h->len;
		*ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec * (s->nano ? 1e-9 : 1e-6);
		return MOSFW_SRC_PACKET;
	}
	if (rc == 0) {
		if (s->live && live_iface_down(s)) {
			snprintf(s->err, sizeof(s->err), "interface '%s' went down", s->iface);
			return MOSFW_SRC_ERROR;
		}
		return MOSFW_SRC_TIMEOUT;
	}
	if (rc == PCAP_ERROR_BREAK)
		return s->live ? MOSFW_SRC_BREAK : MOSFW_SRC_EOF;
	snprintf(s->err, sizeof(s->err), "%s", pcap_geterr(s->pcap));
	return MOSFW_SRC_ERROR;
}

int mosfw_source_linktype(const struct mosfw_source *s) { return s->linktype; }

const char *mosfw_source_linktype_name(const struct mosfw_source *s)
{
	const char *n = pcap_datalink_val_to_name(s->linktype);
	return n ? n : "unknown";
}

int mosfw_source_is_live(const struct mosfw_source *s) { return s->live; }
const char *mosfw_source_error(const struct mosfw_source *s) { return s->err; }

void mosfw_source_drops(struct mosfw_source *s, uint64_t *kernel, uint64_t *iface)
{
	struct pcap_stat st;

	*kernel = *iface = 0;
	if (s->live && pcap_stats(s->pcap, &st) == 0) {
		*kernel = st.ps_drop;
		*iface = st.ps_ifdrop;
	}
}

int64_t mosfw_source_offset(struct mosfw_source *s)
{
	FILE *fp;

	if (s->live)
		return -1;
	fp = pcap_file(s->pcap);
	return fp ? (int64_t)ftell(fp) : -1;
}


void mosfw_source_close(struct mosfw_source *s)
{
	if (!s)
		return;
	if (s->pcap)
		pcap_close(s->pcap);
	free(s);
}
