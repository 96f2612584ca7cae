/* SPDX-License-Identifier: MIT */
/* source_live.h -- live-capture helpers of source.c (source_live.c). */
#ifndef MOSFW_SOURCE_LIVE_H
#define MOSFW_SOURCE_LIVE_H

#include <pcap/pcap.h>

/* Is the interface administratively down? 0 when up or unknown. */
int mosfw_live_iface_down(pcap_t *p, const char *iface);
/* Join AF_PACKET fanout group `group` in hash mode (source.h's
 * mosfw_source_join_fanout). 0, or -1 with a message. */
int mosfw_live_join_fanout(pcap_t *p, int live, unsigned group, char *errbuf);

#endif /* MOSFW_SOURCE_LIVE_H */
