"""midstat's table: mOS's column layout for the table of connections and
the per-second statistics line (the formatting half of ``app.py``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

HEADER = "Proto CPU Client Address        Client State Server Address        Server State"
"""mOS's header line (for tables whose addresses fit in 21 columns)."""

ADDR_WIDTH = 21
"""Width of an address column: ``%s:`` plus ``%*d`` with width ``space - 21``."""

STATE_WIDTH = 12
"""Width of a state column (``%-12s``)."""

_STATE_NAMES = (
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RCVD",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
)


CLEAR_SCREEN = "\x1b[H\x1b[2J"
"""Cursor home and erase display: what the live full-screen mode writes first."""


def state_name(state) -> str:
    """``TCP_ESTABLISHED`` -> ``ESTABLISHED``: a TcpState, its int value,
    or a name; ``-`` for anything else (mOS's ``strstate``)."""
    if isinstance(state, str):
        name = state[4:] if state.startswith("TCP_") else state
        return name if name in _STATE_NAMES else "-"
    try:
        i = int(state)
    except (TypeError, ValueError):
        return "-"
    return _STATE_NAMES[i] if 0 <= i < len(_STATE_NAMES) else "-"


# ---------------------------------------------------------------------------
# the table


def format_header(client_width: int = ADDR_WIDTH, server_width: int = ADDR_WIDTH) -> str:
    """The header line; with the default widths it is :data:`HEADER`."""
    return (
        f"Proto CPU {'Client Address':<{client_width}} {'Client State':<{STATE_WIDTH}} "
        f"{'Server Address':<{server_width}} Server State"
    )


_PADDED_STATES = {i: f"{name:<{STATE_WIDTH}}" for i, name in enumerate(_STATE_NAMES)}


def format_row(
    proto: str,
    cpu: int,
    client: str,
    client_state,
    server: str,
    server_state,
    client_width: int = ADDR_WIDTH,
    server_width: int = ADDR_WIDTH,
) -> str:
    """One row, as mOS prints it (``%-5s %-3d `` then ``ip:port`` in 21
    columns, the state in 12, the same for the server; the server state is
    padded to 12 too). ``client``/``server`` are ``ip:port`` strings."""
    return (
        f"{proto:<5} {cpu:<3d} {client:<{client_width}} {state_name(client_state):<{STATE_WIDTH}} "
        f"{server:<{server_width}} {state_name(server_state):<{STATE_WIDTH}}"
    )


def format_table(rows: Iterable[Sequence]) -> str:
    """Header and rows, each line ending in a newline.

    :param rows: ``(proto, cpu, client, client_state, server,
        server_state)`` tuples (states as names, ints or TcpState).
    """
    rows = list(rows)
    cw = max(ADDR_WIDTH, max([len(r[2]) for r in rows], default=0))
    sw = max(ADDR_WIDTH, max([len(r[4]) for r in rows], default=0))
    lines = [format_header(cw, sw)]
    padded = _PADDED_STATES
    prefixes: dict = {}  # (proto, cpu) -> "tcp   0   "
    for r in rows:
        cst, sst = padded.get(r[3]), padded.get(r[5])
        if cst is None or sst is None or type(r[1]) is not int:  # names, TcpStates...: the long way
            lines.append(format_row(*r[:6], client_width=cw, server_width=sw))
            continue
        # what format_row makes, a quarter of its cost (the table is
        # printed every second: 1,000 rows are 0.3 ms, not 1.2)
        pre = prefixes.get((r[0], r[1]))
        if pre is None:
            pre = prefixes[(r[0], r[1])] = f"{r[0]:<5} {r[1]:<3d} "
        lines.append("".join((pre, r[2].ljust(cw), " ", cst, " ", r[4].ljust(sw), " ", sst)))
    return "\n".join(lines) + "\n"


def rows_as_json(rows: Iterable[Sequence]) -> list[dict]:
    """Rows as dicts for ``--json``."""
    return [
        {
            "proto": r[0],
            "cpu": r[1],
            "client": r[2],
            "client_state": state_name(r[3]),
            "server": r[4],
            "server_state": state_name(r[5]),
        }
        for r in rows
    ]


# ---------------------------------------------------------------------------
# stat_print


def gbps(nbytes: float, seconds: float = 1.0) -> float:
    """Gbit/s as mOS's ``GBPS()`` computes it (bytes * 8 / 10**9), per second."""
    return nbytes * 8.0 / 1e9 / (seconds if seconds > 0 else 1.0)


def format_stat_line(cpu: int, iface: str, flows: int, pps: int, err: int, gbit: float, drops: int) -> str:
    """One per-second statistics line, in the layout of mOS's
    ``PrintThreadNetworkStats`` (``[CPU%2d] %s flows: %6u, RX: %7llu(pps)
    (err: %5llu), %5.2lf(Gbps)``) without the TX part (a passive monitor
    sends nothing) and with the capture drops appended: ``err`` counts
    frames that could not be parsed (as mOS counts bad Ethernet frames),
    ``drops`` the packets the kernel or the interface dropped before
    libpcap saw them (``pcap_stats``)."""
    return (
        f"[CPU{cpu:2d}] {iface} flows: {flows:6d}, RX: {pps:7d}(pps) (err: {err:5d}), "
        f"{gbit:5.2f}(Gbps), drops: {drops:5d}"
    )
