"""Event sequences the engine raises for the common TCP phases, as
``RunRecord.short()`` tuples, for exact-sequence assertions in tests.

``HANDSHAKE``: SYN, SYN/ACK, ACK. ``CLIENT_CLOSE``: the client's FIN, the
server's FIN/ACK, the client's last ACK, ending the flow.
"""

HANDSHAKE = [
    ("conn_start", "client"),
    ("tcp_state_change", "client", "CLOSED", "SYN_SENT"),
    ("conn_start", "server"),
    ("tcp_state_change", "server", "LISTEN", "SYN_RCVD"),
    ("tcp_state_change", "client", "SYN_SENT", "ESTABLISHED"),
    ("tcp_state_change", "server", "SYN_RCVD", "ESTABLISHED"),
]

CLIENT_CLOSE = [
    ("tcp_state_change", "client", "ESTABLISHED", "FIN_WAIT_1"),
    ("tcp_state_change", "server", "ESTABLISHED", "CLOSE_WAIT"),
    ("tcp_state_change", "server", "CLOSE_WAIT", "LAST_ACK"),
    ("tcp_state_change", "client", "FIN_WAIT_1", "FIN_WAIT_2"),
    ("tcp_state_change", "client", "FIN_WAIT_2", "TIME_WAIT"),
    ("tcp_state_change", "server", "LAST_ACK", "CLOSED"),
    ("conn_end", "fin"),
]
