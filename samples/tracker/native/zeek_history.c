/* SPDX-License-Identifier: MIT */
/*
 * zeek_history.c -- Zeek's history letters for the conn.log view
 * (zeek_view.h): upper case from the originator, lower case from the
 * responder, Zeek's repetition rules (CheckHistory, the scaled letters)
 * and the role flip ('^'); and Zeek's likely server ports.
 */
#include "zeek_view.h"

#include <string.h>

int zeek_likely_server_port(uint16_t port)
{
	switch (port) {
	case 21:
	case 22:
	case 25:
	case 53:
	case 79:
	case 80:
	case 81:
	case 88:
	case 135:
	case 139:
	case 143:
	case 389:
	case 443:
	case 445:
	case 465:
	case 502:
	case 514:
	case 563:
	case 585:
	case 587:
	case 614:
	case 631:
	case 636:
	case 989:
	case 990:
	case 992:
	case 993:
	case 995:
	case 1080:
	case 1434:
	case 1883:
	case 2811:
	case 3128:
	case 3268:
	case 3306:
	case 3389:
	case 5222:
	case 5223:
	case 5269:
	case 5432:
	case 6379:
	case 6666:
	case 6667:
	case 6668:
	case 6669:
	case 8000:
	case 8080:
	case 8888:
	case 20000: return 1;
	default: return 0;
	}
}

/* ---- history ------------------------------------------------------------ */

static inline char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c; }

void zeek_add_history(struct zeek_conn *k, char c)
{
	if (k->hist_len < ZEEK_HISTORY_MAX) {
		k->history[k->hist_len++] = c;
		k->history[k->hist_len] = '\0';
	}
}

/* A letter about `side`: upper case for the originator. */
void zeek_side_history(struct zeek_conn *k, unsigned side, char code)
{
	zeek_add_history(k, side == k->orig_side ? code : lower(code));
}

/* Connection::FlipRoles (+ the adapter's: is_partial reset). */
void zeek_flip_roles(struct zeek_conn *k)
{
	k->orig_side ^= 1;
	k->flags &= (uint8_t)~CF_PARTIAL;
	zeek_add_history(k, '^');
}

/* TCP_Endpoint::CheckHistory: returns 1 when the letter was seen before. */
int zeek_check_history(struct zeek_conn *k, unsigned side, uint32_t mask, char code)
{
	if ((code == 'A' || code == 'D') && k->hist_len == 1 && k->history[0] == 'H') {
		/* began with a SYN/ACK; productive traffic now: flip, and pretend
		 * the missing SYN was seen */
		zeek_flip_roles(k);
		memcpy(k->history, "^h", 3);
		k->hist_len = 2;
		k->ep[k->orig_side].flags |= EF_SEEN;
	}
	if (side != k->orig_side) {
		mask <<= 16;
		code = lower(code);
	}
	if (!(k->hist_seen & mask)) {
		k->hist_seen |= mask;
		zeek_add_history(k, code);
		return 0;
	}
	return 1;
}

/* Session::ScaledHistoryEntry: the letter at counts 1, 10, 100, ... */
void zeek_scaled_history(struct zeek_conn *k, unsigned side, char code, uint32_t *cnt,
                         uint32_t *thresh)
{
	if (++*cnt == *thresh) {
		uint32_t next = *thresh * 10u;
		zeek_side_history(k, side, code);
		if (next <= *thresh)
			*cnt = 0; /* wrapped: keep the threshold */
		else
			*thresh = next;
	}
}
