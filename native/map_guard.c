/* SPDX-License-Identifier: MIT */
/* map_guard.c -- SIGBUS on a truncated file mapping becomes a flag (see
 * map_guard.h). */
#define _GNU_SOURCE
#include "map_guard.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GUARD_SLOTS 64

struct guard_slot {
	uintptr_t base; /* 0: free (written last on add, first on remove) */
	size_t len;
	struct mosfw_map_fault *fault;
};

static struct guard_slot slots[GUARD_SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction prev; /* the disposition before ours */
static uintptr_t page_mask;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	unsigned i;

	for (i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t b = __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE);
		size_t len = slots[i].len;
		if (b && a >= b && a - b < len) {
			uintptr_t page = a & ~page_mask;
			struct mosfw_map_fault *f = slots[i].fault;
			if (!f)
				break; /* being removed */
			/* zeros in place of the vanished pages, up to the end of the
			 * mapping (they are all beyond the file's end) */
			if (mmap((void *)page, b + len - page, PROT_READ,
			         MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
				break; /* cannot go on: as without the guard */
			if (!f->hit || page - b < f->off)
				f->off = page - b;
			f->hit = 1;
			return; /* the read is done again and gets zeros */
		}
	}
	/* not ours: what was there before */
	if ((prev.sa_flags & SA_SIGINFO) && prev.sa_sigaction) {
		prev.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler != SIG_DFL &&
	    prev.sa_handler != SIG_IGN) {
		prev.sa_handler(sig);
		return;
	}
	/* the default action: the read faults again and the process dies of
	 * SIGBUS, as it would have without us */
	signal(SIGBUS, SIG_DFL);
}

/* Under lock: make sure on_sigbus is SIGBUS's handler (someone may have
 * put theirs in since; it is then chained to). */
static int install(void)
{
	struct sigaction cur, sa;

	if (sigaction(SIGBUS, NULL, &cur) < 0)
		return -1;
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == on_sigbus)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	page_mask = (uintptr_t)sysconf(_SC_PAGESIZE) - 1;
	if (sigaction(SIGBUS, &sa, &prev) < 0)
		return -1;
	return 0;
}

int mosfw_map_guard_add(const void *base, size_t len, struct mosfw_map_fault *f)
{
	int h = -1;
	unsigned i;

	if (!base || !len)
		return -1;
	memset((void *)f, 0, sizeof(*f));
	pthread_mutex_lock(&lock);
	if (install() == 0) {
		for (i = 0; i < GUARD_SLOTS; i++) {
			if (!__atomic_load_n(&slots[i].base, __ATOMIC_RELAXED)) {
				slots[i].len = len;
				slots[i].fault = f;
				__atomic_store_n(&slots[i].base, (uintptr_t)base, __ATOMIC_RELEASE);
				h = (int)i;
				break;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return h;
}

void mosfw_map_guard_move(int h, const void *base, size_t len)
{
	if (h < 0 || h >= GUARD_SLOTS)
		return;
	pthread_mutex_lock(&lock);
	__atomic_store_n(&slots[h].base, 0, __ATOMIC_RELEASE);
	slots[h].len = len;
	__atomic_store_n(&slots[h].base, (uintptr_t)base, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&lock);
}

void mosfw_map_guard_remove(int h)
{
	if (h < 0 || h >= GUARD_SLOTS)
		return;
	pthread_mutex_lock(&lock);
	__atomic_store_n(&slots[h].base, 0, __ATOMIC_RELEASE);
	slots[h].fault = NULL;
	pthread_mutex_unlock(&lock);
}
