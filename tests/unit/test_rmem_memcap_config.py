"""mos.conf's ``rmem_memcap`` (the per-core reassembly memory cap) and how
a run picks its value (mosfw.runconfig.rmem_memcap_of)."""

from __future__ import annotations

import pytest

from mosfw.mosconf import DEFAULT_RMEM_MEMCAP, ConfigError, parse_config
from mosfw.runconfig import Config, UsageError, rmem_memcap_of


def test_default_is_one_gib_per_core():
    assert DEFAULT_RMEM_MEMCAP == 1 << 30
    assert parse_config("mos {\n}\n").rmem_memcap == 1 << 30
    assert rmem_memcap_of(Config()) == 1 << 30


@pytest.mark.parametrize("text, expected", [("0", 0), ("16777216", 16 << 20), ("8589934592", 8 << 30)])
def test_parsed_like_rmem_size(text, expected):
    cfg = parse_config(f"mos {{\n\trmem_memcap = {text}\n}}\n")
    assert cfg.rmem_memcap == expected
    assert not cfg.warnings  # a known key
    assert rmem_memcap_of(Config(mos=cfg)) == expected


def test_negative_is_an_error_naming_the_key():
    with pytest.raises(ConfigError) as info:
        parse_config("mos {\n\trmem_memcap = -1\n}\n")
    assert "rmem_memcap" in str(info.value)


def test_config_value_overrides_mos_conf():
    cfg = parse_config("mos {\n\trmem_memcap = 4096\n}\n")
    assert rmem_memcap_of(Config(mos=cfg, rmem_memcap=0)) == 0
    with pytest.raises(UsageError):
        rmem_memcap_of(Config(rmem_memcap=-5))
