"""Tests for mosfw.mosconf: the mos.conf parser and validation."""

from __future__ import annotations

import io
import itertools
import os
import pathlib
import pickle
import sys

import attrs
import pytest

from mosfw.mosconf import (
    ConfigError,
    Diagnostic,
    MosConfig,
    default_config,
    emit_diagnostics,
    ensure_log_dir,
    load_config,
    parse_config,
)

DATA = pathlib.Path(__file__).resolve().parent.parent / "data"


def mos(body: str) -> str:
    """Wrap lines in a mos { } block."""
    return "mos {\n" + body + "\n}\n"


def error_of(text: str, filename: str = "mos.conf") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, filename)
    return info.value


# ---------------------------------------------------------------------------
# defaults


def test_defaults():
    cfg = default_config()
    assert cfg == MosConfig()
    assert cfg.forward == 0
    assert cfg.netdevs == ()
    assert cfg.cores == 1
    assert cfg.stat_print == ()
    assert cfg.mos_log is None
    assert cfg.max_concurrency == 1_000_000
    assert cfg.rmem_size == 8192
    assert cfg.tcp_timeout == 30
    assert cfg.tcp_tw_interval == 5
    assert cfg.no_ring_buffers == 0
    assert cfg.notes == () and cfg.warnings == ()
    assert cfg.source is None


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "mos {\n}\n", "mos { }"])
def test_empty_files_give_defaults(text):
    assert parse_config(text) == default_config()


def test_config_is_frozen():
    cfg = default_config()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.rmem_size = 1  # type: ignore[misc]


def test_every_field_has_a_docstring():
    import ast
    import inspect

    src = inspect.getsource(MosConfig)
    cls = ast.parse(src).body[0]
    documented = set()
    body = cls.body
    for stmt, nxt in itertools.pairwise(body):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            documented.add(stmt.target.id)
    assert documented == {f.name for f in attrs.fields(MosConfig)}


# ---------------------------------------------------------------------------
# honoured keys, decimal and hex


@pytest.mark.parametrize(
    "key, text, expected",
    [
        ("forward", "0", 0),
        ("forward", "0x0", 0),
        ("max_concurrency", "5000", 5000),
        ("max_concurrency", "0x1000", 4096),
        ("max_concurrency", "0X1F", 31),
        ("rmem_size", "65536", 65536),
        ("rmem_size", "0x10000", 65536),
        ("tcp_timeout", "60", 60),
        ("tcp_timeout", "0x3c", 60),
        ("tcp_timeout", "0", 0),
        ("tcp_timeout", "-1", 0),  # mOS's spelling of "no timeout checking"
        ("tcp_tw_interval", "0", 0),
        ("tcp_tw_interval", "30", 30),
        ("tcp_tw_interval", "0x1e", 30),
        ("tcp_tw_interval", "+7", 7),
        ("no_ring_buffers", "1", 1),
        ("no_ring_buffers", "0x0", 0),
    ],
)
def test_numeric_keys(key, text, expected):
    cfg = parse_config(mos(f"\t{key} = {text}"))
    assert getattr(cfg, key) == expected
    assert cfg.notes == () and cfg.warnings == ()


def test_all_honoured_keys_together():
    cfg = parse_config(
        mos(
            """
    forward = 0
    netdev {
        eth0 0x0003
    }
    stat_print = eth0
    mos_log = /var/log/mosfw
    max_concurrency = 200000
    rmem_size = 16384
    tcp_timeout = 120
    tcp_tw_interval = 0
    no_ring_buffers = 1
"""
        )
    )
    assert cfg == MosConfig(
        forward=0,
        netdevs=(("eth0", 3),),
        cores=2,
        stat_print=("eth0",),
        mos_log="/var/log/mosfw",
        max_concurrency=200000,
        rmem_size=16384,
        tcp_timeout=120,
        tcp_tw_interval=0,
        no_ring_buffers=1,
    )


def test_stat_print_several_interfaces():
    cfg = parse_config(mos("netdev {\n eth0 0x1\n eth1 0x1\n}\nstat_print = eth0   eth1"))
    assert cfg.stat_print == ("eth0", "eth1")
    assert cfg.warnings == ()


def test_local_nets_for_the_tracker():
    cfg = parse_config(mos("local_nets = 10.0.0.0/8  fd00::/8 192.168.1.1"))
    assert cfg.local_nets == ("10.0.0.0/8", "fd00::/8", "192.168.1.1")
    assert cfg.warnings == ()
    assert cfg.merged(local_nets="172.16.0.0/12").local_nets == ("172.16.0.0/12",)


def test_bad_local_net_names_it():
    e = error_of(mos("local_nets = 10.0.0.0/8 10.0.0.0/40"))
    assert "local_nets: '10.0.0.0/40' is not a network" in str(e)


def test_stat_print_empty_value_is_none():
    # setup.sh writes "stat_print =" when no device was selected
    cfg = parse_config(mos("stat_print ="))
    assert cfg.stat_print == ()


def test_stat_print_unknown_interface_warns():
    cfg = parse_config(mos("netdev {\n eth0 0x1\n}\nstat_print = eth0 eht0"))
    assert cfg.stat_print == ("eth0", "eht0")
    assert len(cfg.warnings) == 1
    w = cfg.warnings[0]
    assert w.startswith("mos.conf:5: warning:")
    assert "'eht0'" in w and "did you mean 'eth0'" in w


def test_mos_log_values():
    assert parse_config(mos("mos_log = logs/")).mos_log == "logs/"
    assert parse_config(mos("mos_log = /tmp/my logs  # trailing")).mos_log == "/tmp/my logs"
    assert parse_config(mos("mos_log =")).mos_log is None


# ---------------------------------------------------------------------------
# netdev and cores


@pytest.mark.parametrize(
    "lines, netdevs, cores",
    [
        ("eth0 0x0001", (("eth0", 1),), 1),
        ("eth0 0x0003", (("eth0", 3),), 2),
        ("eth0 0x000F", (("eth0", 15),), 4),
        ("eth0 0xFF00", (("eth0", 0xFF00),), 8),
        ("eth0 5", (("eth0", 5),), 2),
        ("eth0 0xFFFFFFFFFFFFFFFF", (("eth0", 2**64 - 1),), 64),
        ("dpdk0 0x000F\n dpdk1 0x000F", (("dpdk0", 15), ("dpdk1", 15)), 4),
        # mOS: num_cores = popcount of the union of all masks
        ("eth0 0x3\n eth1 0xC", (("eth0", 3), ("eth1", 12)), 4),
        ("enp3s0f0.100 0x1\n br-lan 0x1", (("enp3s0f0.100", 1), ("br-lan", 1)), 1),
    ],
)
def test_netdev_masks_give_cores(lines, netdevs, cores):
    cfg = parse_config(mos(f"netdev {{\n {lines}\n}}"))
    assert cfg.netdevs == netdevs
    assert cfg.cores == cores


def test_no_netdev_means_one_core():
    assert parse_config(mos("rmem_size = 1")).cores == 1
    assert parse_config(mos("netdev {\n}")).cores == 1


def test_netdev_on_one_line_and_brace_on_next_line():
    cfg = parse_config("mos {\n netdev { eth0 0x3 }\n}")
    assert cfg.netdevs == (("eth0", 3),)
    cfg = parse_config("mos\n{\n netdev\n {\n eth1 0x1\n }\n}")
    assert cfg.netdevs == (("eth1", 1),)


def test_netdev_repeated_interface_warns_last_wins():
    cfg = parse_config(mos("netdev {\n eth0 0x1\n eth0 0x3\n}"))
    assert cfg.netdevs == (("eth0", 3),)
    assert cfg.cores == 2
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("mos.conf:4: warning:")
    assert "line 3" in cfg.warnings[0]


@pytest.mark.parametrize(
    "body, line, column, words",
    [
        ("netdev {\n eth0\n}", 3, 6, ["missing core mask", "eth0"]),
        ("netdev {\n eth0 zz\n}", 3, 7, ["bad number", "zz"]),
        ("netdev {\n eth0 0\n}", 3, 7, ["greater than 0", "eth0"]),
        ("netdev {\n eth0 -1\n}", 3, 7, ["greater than 0"]),
        ("netdev {\n eth0 0x1 0x2\n}", 3, 11, ["unexpected '0x2'"]),
        ("netdev {\n dev = eth0\n}", 3, 2, ["'netdev'", "IFACE MASK"]),
        ("netdev {\n x {\n }\n}", 3, 2, ["nested", "netdev"]),
    ],
)
def test_netdev_errors(body, line, column, words):
    err = error_of(mos(body))
    assert (err.filename, err.line, err.column) == ("mos.conf", line, column)
    assert str(err).startswith(f"mos.conf:{line}:{column}: error: ")
    for w in words:
        assert w in str(err)


# ---------------------------------------------------------------------------
# syntax: comments, blocks, numbers


def test_comments_everywhere():
    text = """# header
mos { # opening
\tforward = 0 # trailing comment
\t# rmem_size = 1
\tnetdev { # devices
\t\teth0 0x0003 # two cores
\t} # end netdev
\ttcp_timeout = 10#no space
} # end
"""
    cfg = parse_config(text)
    assert cfg.rmem_size == 8192
    assert cfg.netdevs == (("eth0", 3),)
    assert cfg.tcp_timeout == 10
    assert cfg.warnings == () and cfg.notes == ()


def test_crlf_line_endings():
    cfg = parse_config("mos {\r\n\trmem_size = 1024\r\n\tnetdev {\r\n\t\teth0 0x3\r\n\t}\r\n}\r\n")
    assert cfg.rmem_size == 1024 and cfg.cores == 2


def test_one_line_blocks():
    cfg = parse_config("mos { rmem_size = 4096 }")
    assert cfg.rmem_size == 4096


def test_top_level_keys_are_accepted():
    # mOS ignores lines outside blocks; mosfw takes them as mos settings
    cfg = parse_config("rmem_size = 100\nnetdev {\n eth0 0x1\n}\n")
    assert cfg.rmem_size == 100 and cfg.netdevs == (("eth0", 1),)


def test_nested_blocks_and_tables():
    text = """
application {
\ttype = monitor
\trun = ./midstat
\tcore_mask = 0x000F
}
mos {
\tforward = 0
\tnetdev {
\t\teth0 0x000F
\t}
\tarp_table {
\t}
\troute_table {
\t\t10.0.0.0/24 eth0
\t\t10.0.1.0/24 eth0
\t}
\tnic_forward_table {
\t\teth0 eth1
\t}
}
"""
    cfg = parse_config(text)
    assert cfg.cores == 4
    assert cfg.warnings == ()
    notes = list(cfg.notes)
    # application block, non-empty route and nic_forward tables; the empty
    # arp_table gets no note
    assert [n.key for n in notes] == ["application", "route_table", "nic_forward_table"]
    assert notes[0].startswith("mos.conf:2: note:")
    assert notes[1].startswith("mos.conf:14: note:") and "2 entries" in notes[1]
    assert notes[2].startswith("mos.conf:18: note:") and "1 entry" in notes[2]


def test_unknown_block_warns_and_is_skipped():
    text = mos("netdevs {\n eth0 0x1\n foo = bar\n}\nrmem_size = 10")
    cfg = parse_config(text)
    assert cfg.netdevs == ()
    assert cfg.rmem_size == 10
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("mos.conf:2: warning: unknown block 'netdevs'")
    assert "did you mean 'netdev'" in cfg.warnings[0]


def test_unknown_block_contents_must_still_be_balanced():
    err = error_of("foo {\n bar {\n}\n")
    assert (err.line, err.column) == (1, 5)


@pytest.mark.parametrize(
    "text, line, column, words",
    [
        # unbalanced braces
        ("mos {\n rmem_size = 1\n", 1, 5, ["'mos'", "never closed"]),
        ("mos {\n netdev {\n eth0 0x1\n}\n", 1, 5, ["'mos'", "never closed"]),
        ("mos {\n}\n}\n", 3, 1, ["unmatched '}'"]),
        ("mos {\n  rmem_size = 1 }\n}", 3, 1, ["unmatched '}'"]),
        ("{\n}\n", 1, 1, ["'{' without a block name"]),
        # neither key = value, a block, nor a netdev entry
        ("mos {\n\tforward 0\n}", 2, 10, ["expected '='", "'forward'"]),
        ("mos {\n\t__num_memch\n}", 2, 2, ["'__num_memch'", "not a setting"]),
        ("mos {\n  eth0 0x0003\n}", 2, 8, ["expected '='", "netdev"]),
        ("mos {\n  = 3\n}", 2, 3, ["'=' without a key"]),
        ("mos {\n  rmem_size = {\n}", 2, 15, ["unexpected '{'", "rmem_size"]),
        ("application {\n  run\n}", 2, 3, ["'run'"]),
        # bad numbers
        ("mos {\n  rmem_size = 12ab\n}", 2, 15, ["bad number '12ab'", "rmem_size"]),
        ("mos {\n  rmem_size = 0x\n}", 2, 15, ["bad number"]),
        ("mos {\n  rmem_size = 8k\n}", 2, 15, ["bad number"]),
        ("mos {\n  rmem_size = 1.5\n}", 2, 15, ["bad number"]),
        ("mos {\n  rmem_size = 8192 16384\n}", 2, 15, ["bad number '8192 16384'"]),
        ("mos {\n  rmem_size = 010\n}", 2, 15, ["ambiguous", "octal"]),
        ("mos {\n  rmem_size =\n}", 2, 14, ["missing value", "rmem_size"]),
        ("mos {\n  rmem_size = # comment\n}", 2, 14, ["missing value"]),
    ],
)
def test_syntax_errors_name_file_line_column(text, line, column, words):
    err = error_of(text, "conf/test.conf")
    assert err.filename == "conf/test.conf"
    assert (err.line, err.column) == (line, column), str(err)
    assert str(err).startswith(f"conf/test.conf:{line}:{column}: error: ")
    for w in words:
        assert w in str(err)


@pytest.mark.parametrize(
    "body, words",
    [
        ("max_concurrency = 0", ["max_concurrency", "greater than 0"]),
        ("max_concurrency = -5", ["max_concurrency"]),
        ("max_concurrency = 0x100000000", ["max_concurrency", "at most"]),
        ("rmem_size = 0", ["rmem_size", "greater than 0"]),
        ("tcp_timeout = -2", ["tcp_timeout"]),
        ("tcp_tw_interval = -1", ["tcp_tw_interval", "at least 0"]),
        ("no_ring_buffers = 2", ["no_ring_buffers", "0 or 1"]),
    ],
)
def test_out_of_range_values(body, words):
    err = error_of(mos("\t" + body))
    assert err.line == 2
    assert err.column == len("\t" + body.split("=")[0]) + 3  # the value's column
    for w in words:
        assert w in err.message


# ---------------------------------------------------------------------------
# forward


@pytest.mark.parametrize("value", ["1", "0x1", "2"])
def test_forward_nonzero_is_a_clear_error(value):
    err = error_of(mos(f"\tforward = {value}"))
    msg = str(err)
    assert "forward" in msg
    assert "passive mode only" in msg
    assert msg.startswith("mos.conf:2:12: error: ")
    assert (err.line, err.column) == (2, 12)


def test_forward_zero_is_fine():
    assert parse_config(mos("forward = 0")).forward == 0


# ---------------------------------------------------------------------------
# notes and warnings


def test_unknown_key_warns_with_line_and_suggestion():
    text = "mos {\n\tforward = 0\n\n\n\n\n\n\n\n\n\n\tmax_concurency = 5\n}\n"
    cfg = parse_config(text)
    assert cfg.max_concurrency == 1_000_000  # not applied
    assert cfg.warnings == (
        "mos.conf:12: warning: unknown key 'max_concurency' (did you mean 'max_concurrency'?)",
    )
    w = cfg.warnings[0]
    assert isinstance(w, Diagnostic)
    assert (w.kind, w.line, w.key) == ("warning", 12, "max_concurency")


def test_unknown_key_without_close_match():
    cfg = parse_config(mos("frobnicate = 1"))
    assert cfg.warnings == ("mos.conf:2: warning: unknown key 'frobnicate'",)


@pytest.mark.parametrize("key", ["nb_mem_channels", "wmem_size", "multiprocess", "port"])
def test_dpdk_and_end_host_keys_get_a_note(key):
    cfg = parse_config(mos(f"\n{key} = 4"))
    assert cfg.warnings == ()
    assert len(cfg.notes) == 1
    n = cfg.notes[0]
    assert n.startswith("mos.conf:3: note: ") and f"'{key}'" in n
    assert (n.kind, n.line, n.key) == ("note", 3, key)
    assert "\n" not in n


def test_application_keys():
    cfg = parse_config("application {\n type = end\n run = epwget\n cpu_mask = 0xF\n}\n")
    assert cfg.warnings == ()
    assert len(cfg.notes) == 1
    cfg = parse_config("application {\n runn = x\n forward = 0\n}\n")
    assert len(cfg.warnings) == 2
    assert "did you mean 'run'" in cfg.warnings[0]
    assert "belongs in the 'mos' block" in cfg.warnings[1]
    assert cfg.forward == 0


def test_repeated_key_warns_last_wins():
    cfg = parse_config(mos("rmem_size = 1\nrmem_size = 2"))
    assert cfg.rmem_size == 2
    assert len(cfg.warnings) == 1
    assert cfg.warnings[0].startswith("mos.conf:3: warning: 'rmem_size' is set again")


def test_emit_diagnostics_in_line_order():
    text = mos("frobnicate = 1\nnb_mem_channels = 4\nmax_concurency = 3")
    cfg = parse_config(text, "x/mos.conf")
    out = io.StringIO()
    assert emit_diagnostics(cfg, out) == 3
    lines = out.getvalue().splitlines()
    assert [ln.split(":")[1] for ln in lines] == ["2", "3", "4"]
    assert lines[0] == "x/mos.conf:2: warning: unknown key 'frobnicate'"
    assert lines[1].startswith("x/mos.conf:3: note: 'nb_mem_channels'")
    assert lines[2] == (
        "x/mos.conf:4: warning: unknown key 'max_concurency' (did you mean 'max_concurrency'?)"
    )


def test_emit_diagnostics_defaults_to_stderr(capsys):
    cfg = parse_config(mos("frobnicate = 1"))
    emit_diagnostics(cfg)
    assert capsys.readouterr().err == "mos.conf:2: warning: unknown key 'frobnicate'\n"


def test_emit_diagnostics_nothing():
    out = io.StringIO()
    assert emit_diagnostics(default_config(), out) == 0
    assert out.getvalue() == ""


# ---------------------------------------------------------------------------
# ConfigError


def test_config_error_attributes_and_pickle():
    err = ConfigError("bad", "a.conf", 7, 12)
    assert str(err) == "a.conf:7:12: error: bad"
    assert (err.filename, err.line, err.column, err.message) == ("a.conf", 7, 12, "bad")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.line == 7
    assert str(ConfigError("bad")) == "error: bad"
    assert str(ConfigError("bad", "a.conf")) == "a.conf: error: bad"
    assert isinstance(err, Exception)


def test_diagnostic_pickles():
    cfg = parse_config(mos("frobnicate = 1"))
    again = pickle.loads(pickle.dumps(cfg))
    assert again == cfg
    assert again.warnings[0].line == 2


# ---------------------------------------------------------------------------
# files


def test_load_config_sets_source(tmp_path):
    p = tmp_path / "mos.conf"
    p.write_text(mos("rmem_size = 0x400"))
    cfg = load_config(p)
    assert cfg.rmem_size == 1024
    assert cfg.source == str(p)
    assert load_config(str(p)) == cfg


def test_load_config_errors_name_the_file(tmp_path):
    p = tmp_path / "mos.conf"
    p.write_text("mos {\n\tforward = 1\n}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(p)
    err = raised.value
    assert str(err).startswith(f"{p}:2:12: error: forward = 1")

    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as raised:
        load_config(missing)
    err = raised.value
    assert err.filename == str(missing) and err.line is None
    assert str(err).startswith(f"{missing}: error: cannot read")

    with pytest.raises(ConfigError) as raised:  # a directory
        load_config(tmp_path)
    err = raised.value
    assert err.filename == str(tmp_path)

    binary = tmp_path / "bin.conf"
    binary.write_bytes(b"mos {\n  rmem_size = \xff\n}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(binary)
    err = raised.value
    assert (err.line, err.column) == (2, 15)


# ---------------------------------------------------------------------------
# mos_log directory


def test_ensure_log_dir_creates(tmp_path, monkeypatch):
    target = tmp_path / "a" / "b" / "logs"
    cfg = parse_config(mos(f"mos_log = {target}"))
    assert ensure_log_dir(cfg) == target
    assert target.is_dir()
    assert ensure_log_dir(cfg) == target  # already there: fine

    monkeypatch.chdir(tmp_path)
    cfg = parse_config(mos("mos_log = logs/"))
    assert ensure_log_dir(cfg) == pathlib.Path("logs")
    assert (tmp_path / "logs").is_dir()


def test_ensure_log_dir_none():
    assert ensure_log_dir(default_config()) is None


def test_ensure_log_dir_failure_names_the_directory(tmp_path):
    cfg = parse_config(mos("mos_log = /dev/null/x"))
    with pytest.raises(ConfigError) as raised:
        ensure_log_dir(cfg)
    err = raised.value
    assert "/dev/null/x" in str(err)
    assert "mos_log" in str(err)

    afile = tmp_path / "file"
    afile.write_text("")
    cfg = load_config(_write(tmp_path / "m.conf", mos(f"mos_log = {afile}")))
    with pytest.raises(ConfigError) as raised:
        ensure_log_dir(cfg)
    err = raised.value
    assert str(afile) in str(err)
    assert err.filename == cfg.source


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can write anywhere")
def test_ensure_log_dir_not_writable(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        cfg = default_config().merged(mos_log=str(ro / "logs"))
        with pytest.raises(ConfigError, match="logs"):
            ensure_log_dir(cfg)
        cfg = default_config().merged(mos_log=str(ro))
        with pytest.raises(ConfigError, match="not writable"):
            ensure_log_dir(cfg)
    finally:
        ro.chmod(0o700)


def _write(path: pathlib.Path, text: str) -> pathlib.Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------------------
# command-line overrides


def test_merged_overrides_and_ignores_none():
    base = parse_config(mos("rmem_size = 100\nnetdev {\n eth0 0x3\n}\nnb_mem_channels = 4"))
    new = base.merged(rmem_size=200, tcp_timeout=None, max_concurrency="0x10", mos_log=None)
    assert new is not base
    assert new.rmem_size == 200
    assert new.max_concurrency == 16
    assert new.tcp_timeout == base.tcp_timeout
    assert new.netdevs == base.netdevs and new.cores == 2
    assert new.notes == base.notes
    assert base.rmem_size == 100  # unchanged
    assert base.merged() == base
    assert base.merged(cores=None, netdevs=None) == base


def test_merged_netdevs_and_cores():
    base = parse_config(mos("netdev {\n eth0 0x3\n}"))
    assert base.merged(cores=8).cores == 8
    assert base.merged(cores=8).netdevs == (("eth0", 3),)
    new = base.merged(netdevs=[("eth1", 0xF)])
    assert new.netdevs == (("eth1", 15),) and new.cores == 4
    new = base.merged(netdevs=["eth1"], cores=3)
    assert new.netdevs == (("eth1", 7),) and new.cores == 3
    new = base.merged(netdevs="eth1")
    assert new.netdevs == (("eth1", 3),) and new.cores == 2


def test_merged_other_types():
    cfg = default_config().merged(
        no_ring_buffers=True,
        stat_print="eth0 eth1",
        mos_log=pathlib.Path("/tmp/x"),
        tcp_timeout=-1,
    )
    assert cfg.no_ring_buffers == 1
    assert cfg.stat_print == ("eth0", "eth1")
    assert cfg.mos_log == "/tmp/x"
    assert cfg.tcp_timeout == 0
    assert default_config().merged(stat_print=["a", "b c"]).stat_print == ("a", "b", "c")


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"forward": 1}, ["forward", "passive mode only"]),
        ({"max_concurrency": 0}, ["max_concurrency"]),
        ({"rmem_size": "lots"}, ["bad number", "rmem_size"]),
        ({"cores": 0}, ["cores"]),
        ({"no_ring_buffers": 3}, ["no_ring_buffers"]),
        ({"netdevs": [("eth0", 0)]}, ["eth0"]),
        ({"tcp_tw_interval": 1.5}, ["tcp_tw_interval"]),
    ],
)
def test_merged_validates(overrides, words):
    with pytest.raises(ConfigError) as info:
        default_config().merged(**overrides)
    err = info.value
    assert err.filename is None and err.line is None
    assert str(err).startswith("error: ")
    for w in words:
        assert w in str(err)


def test_merged_rejects_unknown_names():
    with pytest.raises(TypeError, match="max_concurency"):
        default_config().merged(max_concurency=3)
    with pytest.raises(TypeError, match="notes"):
        default_config().merged(notes=())


# ---------------------------------------------------------------------------
# real mos.conf files from the mOS repository


def test_sample_standalone_conf():
    cfg = load_config(DATA / "mos-standalone.conf")
    assert cfg.warnings == ()
    assert cfg.notes == ()
    assert cfg.forward == 0
    assert cfg.netdevs == (("eth0", 1),)
    assert cfg.cores == 1
    assert cfg.stat_print == ("eth0",)
    assert cfg.mos_log == "logs/"
    assert cfg.max_concurrency == 1_000_000


def test_sample_end_dpdk_conf():
    cfg = load_config(DATA / "mos-end-dpdk.conf")
    assert cfg.warnings == ()
    assert {n.key for n in cfg.notes} == {"application", "nb_mem_channels"}
    assert cfg.netdevs == (("dpdk0", 15), ("dpdk1", 15))
    assert cfg.cores == 4
    assert cfg.stat_print == ("dpdk0", "dpdk1")
    assert cfg.mos_log == "logs/"


@pytest.mark.parametrize("path", sorted(DATA.glob("mos-*.conf")), ids=lambda p: p.name)
def test_every_sample_parses_with_at_most_notes(path):
    cfg = load_config(path)
    assert cfg.warnings == ()


def test_setup_sh_output_with_forward_1_is_rejected():
    # setup.sh writes forward = 1 (inline mode); mosfw must refuse it
    text = (DATA / "mos-standalone.conf").read_text()
    assert "\tforward = 0\n" in text
    line = text[: text.index("\tforward = 0")].count("\n") + 1
    err = error_of(text.replace("\tforward = 0\n", "\tforward = 1\n"))
    assert (err.line, err.column) == (line, 12)
    assert "forward" in str(err) and "passive" in str(err)


def test_mtcp_init_man_page_example():
    # the example from mOS's docs/man/mtcp_init, forward set to 0
    text = """
 mos {
             forward = 0

             # number of memory channels per socket [mandatory for DPDK]
             nb_mem_channels = 4

             # devices used for MOS applications [mandatory]
             netdev {
                     dpdk0 0x000F
                     dpdk1 0x000F
             }

             stat_print = dpdk0 dpdk1

             # A directory contains MOS system log files
             mos_log = logs/

             # dpdk0 and dpdk1 will forward traffic in either direction
             nic_forward_table {
                     dpdk0 dpdk1
             }

 }
"""
    cfg = parse_config(text)
    assert cfg.warnings == ()
    assert [n.key for n in cfg.notes] == ["nb_mem_channels", "nic_forward_table"]
    assert cfg.cores == 4


def test_module_is_self_contained():
    import re

    import mosfw.mosconf as mod

    # mosfw.mosconf and its parts (mosfw/mosconf/*.py) use nothing else of mosfw
    files = sorted(pathlib.Path(mod.__file__).parent.glob("*.py"))
    assert len(files) > 3
    for f in files:
        src = f.read_text()
        others = set(re.findall(r"^\s*(?:from|import) (mosfw[\w.]*)", src, re.M)) - {"mosfw.mosconf"}
        assert not [m for m in others if not m.startswith("mosfw.mosconf.")], (f, others)
        assert "from ." not in src
    assert sys.modules["mosfw.mosconf"] is mod
