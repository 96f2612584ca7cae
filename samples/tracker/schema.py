"""The conn.log schema the tracker writes: its columns, in Zeek's order
then mosfw's, their Zeek types, and the TSV header and footer that
``zeek-cut`` reads (``#separator``, ``#fields``, ``#types``)."""

from __future__ import annotations

#: conn.log columns, in Zeek's order, then mosfw's
FIELDS = (
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "ip_proto",
    "orig_rexmit_pkts",
    "resp_rexmit_pkts",
    "cli_state",
    "svr_state",
    "close_reason",
    "core",
    "vlan",
    "inner_vlan",
    "tunnels",
)
#: their Zeek types (the #types line)
TYPES = (
    "time",
    "string",
    "addr",
    "port",
    "addr",
    "port",
    "enum",
    "interval",
    "count",
    "count",
    "string",
    "bool",
    "bool",
    "count",
    "string",
    "count",
    "count",
    "count",
    "count",
    "count",
    "count",
    "count",
    "string",
    "string",
    "string",
    "count",
    "int",
    "int",
    "set[string]",
)


def zeek_header(path: str, open_time: str) -> str:
    """Zeek's TSV log header; ``open_time``: the ``#open`` stamp as Zeek
    writes it."""
    return (
        "#separator \\x09\n"
        "#set_separator\t,\n"
        "#empty_field\t(empty)\n"
        "#unset_field\t-\n"
        f"#path\t{path}\n"
        f"#open\t{open_time}\n"
        "#fields\t" + "\t".join(FIELDS) + "\n"
        "#types\t" + "\t".join(TYPES) + "\n"
    )


def zeek_footer(close_time: str) -> str:
    return f"#close\t{close_time}\n"
