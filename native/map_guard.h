/* SPDX-License-Identifier: MIT */
/*
 * map_guard.h -- a file mapping whose pages may vanish (the file is
 * truncated while it is read: tcpdump -C/-W rotation, logrotate
 * copytruncate) without killing the process.
 *
 * A read of a mapped page beyond the file's current end raises SIGBUS.
 * A guarded mapping turns that into a flag: the handler maps zero pages
 * (read-only, anonymous) over the faulting page and the rest of the
 * mapping, records the offset in the mapping's mosfw_map_fault and lets
 * the faulting read go on (it reads zeros). The reader checks the flag
 * after it touched a record (a plain load: no system call per packet)
 * and ends the input with a read error there.
 *
 * A SIGBUS at any other address goes to the handler that was there
 * before (or the default action: the process dies as it would have).
 */
#ifndef MOSFW_MAP_GUARD_H
#define MOSFW_MAP_GUARD_H

#include <signal.h>
#include <stddef.h>

struct mosfw_map_fault {
	volatile sig_atomic_t hit; /* a page of the mapping faulted */
	volatile size_t off;       /* lowest faulting page's offset in the mapping */
};

/* Guard [base, base + len): a handle >= 0, or -1 when it cannot be
 * guarded (no free slot, sigaction failed: reads then stay unguarded). */
int mosfw_map_guard_add(const void *base, size_t len, struct mosfw_map_fault *f);
/* The mapping moved (mapped again, bigger). */
void mosfw_map_guard_move(int handle, const void *base, size_t len);
/* Before munmap. */
void mosfw_map_guard_remove(int handle);

#endif /* MOSFW_MAP_GUARD_H */
