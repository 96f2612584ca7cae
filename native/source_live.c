/* SPDX-License-Identifier: MIT */
/* source_live.c -- the live-capture helpers of source.c that need only
 * the pcap handle: is the interface down, join an AF_PACKET fanout group. */
#include "source_live.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#ifdef __linux__
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#endif

#include "mosfw_api.h"

/* Live: is the interface administratively down? libpcap keeps waiting on
 * a downed interface (it only fails once the interface is deleted). 0
 * when it is up or cannot be asked (e.g. the "any" pseudo-device). */
int mosfw_live_iface_down(pcap_t *p, const char *iface)
{
#ifdef __linux__
	struct ifreq ifr;
	size_t n = strlen(iface);

	if (n == 0 || n >= sizeof(ifr.ifr_name))
		return 0;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, iface, n);
	if (ioctl(pcap_fileno(p), SIOCGIFFLAGS, &ifr) < 0)
		return 0;
	return !(ifr.ifr_flags & IFF_UP);
#else
	(void)p;
	(void)iface;
	return 0;
#endif
}

int mosfw_live_join_fanout(pcap_t *p, int live, unsigned group, char *errbuf)
{
#if defined(__linux__) && defined(PACKET_FANOUT) && defined(PACKET_FANOUT_FLAG_DEFRAG)
	int val;

	if (!live || group == 0 || group > 0xffffu) {
		snprintf(
			errbuf, MOSFW_ERRBUF_SIZE,
			"AF_PACKET fanout needs a live capture and a group id in 1..65535 (got %u)",
			group);
		return -1;
	}
	/* hash mode is symmetric for TCP/IP: both directions of a flow reach
	 * the same socket */
	val = (int)(group | ((unsigned)(PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG) << 16));
	if (setsockopt(pcap_fileno(p), SOL_PACKET, PACKET_FANOUT, &val, sizeof(val)) < 0) {
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
