/* SPDX-License-Identifier: MIT */
/* names.c -- names of states, events, end reasons and errors, as the
 * eventlog, midstat and tracker print them. */
#include "mosfw_api.h"

const char *mosfw_state_name(unsigned state)
{
	static const char *const n[] = {
		"CLOSED",     "LISTEN",     "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
		"FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK", "TIME_WAIT",
	};
	return state < sizeof(n) / sizeof(n[0]) ? n[state] : "UNKNOWN";
}

const char *mosfw_event_name(unsigned type)
{
	switch (type) {
	case MOSFW_EV_PKT_IN: return "pkt_in";
	case MOSFW_EV_CONN_START: return "conn_start";
	case MOSFW_EV_TCP_STATE_CHANGE: return "tcp_state_change";
	case MOSFW_EV_CONN_NEW_DATA: return "conn_new_data";
	case MOSFW_EV_REXMIT: return "rexmit";
	case MOSFW_EV_CONN_END: return "conn_end";
	case MOSFW_EV_ORPHAN: return "orphan";
	case MOSFW_EV_ERROR: return "error";
	case MOSFW_EV_TIMEOUT: return "timeout";
	case MOSFW_EV_TICK: return "tick";
	default: return "unknown";
	}
}

const char *mosfw_end_reason_name(unsigned r)
{
	static const char *const n[] = {
		"none", "fin", "rst", "timeout", "evicted", "eof", "reused"
	};
	return r < sizeof(n) / sizeof(n[0]) ? n[r] : "unknown";
}

const char *mosfw_error_name(unsigned code)
{
	static const char *const n[] = { "none", "table_full", "bad_sequence", "bad_checksum",
		                         "buffer_overrun" };
	return code < sizeof(n) / sizeof(n[0]) ? n[code] : "unknown";
}
