"""The docs build with warnings as errors and cover every hook, mos.conf
key and CLI command (datasette-style: a new one without docs fails)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

sphinx = pytest.importorskip("sphinx", reason="sphinx not installed (make test installs it)")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("html")
    r = subprocess.run(
        [sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going", "-b", "html", str(DOCS), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def hook_names():
    from mosfw import hookspecs

    return [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("mosfw_")]


def test_every_hook_is_documented(built):
    from mosfw import hookspecs

    html = (built / "hooks.html").read_text()
    for name in hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert len(doc.splitlines()) >= 3, f"{name}: docstring must say exactly when it fires"
        assert f'id="mosfw.hookspecs.{name}"' in html, f"{name} missing from the hook reference"
    events_page = (DOCS / "events.md").read_text()
    from mosfw.manager import EVENT_HOOKS

    for name in EVENT_HOOKS:
        if name != "mosfw_tick":
            assert f"`{name}`" in events_page, f"{name} missing from docs/events.md"


def test_every_mos_conf_key_is_documented():
    from mosfw import mosconf as config

    page = (DOCS / "mos-conf.md").read_text()
    for key in config._HONOURED_KEYS + tuple(config._IGNORED_MOS_KEYS):
        assert f"`{key}`" in page, f"mos.conf key {key!r} missing from docs/mos-conf.md"


def test_every_cli_command_and_option_is_documented(built):
    from mosfw.cli import cli

    html = (built / "cli.html").read_text()
    for name, cmd in cli.commands.items():
        assert f"mosfw {name}" in html, f"command {name} missing from docs/cli.md"
        # the command's own options (an in-process run with -p PLUGIN adds
        # the plugin's to cmd.params until the next run)
        for p in getattr(cmd, "_base_params", None) or cmd.params:
            for opt in getattr(p, "opts", []):
                if opt.startswith("-"):
                    assert opt in html, f"{name} {opt} missing from the CLI reference"


def test_toctree_reaches_every_page(built):
    for md in DOCS.glob("*.md"):
        assert (built / (md.stem + ".html")).exists(), f"{md.name} is not built (not in the toctree?)"


def test_every_sample_is_in_the_docs():
    page = (DOCS / "samples.md").read_text()
    for d in sorted((ROOT / "samples").iterdir()):
        if (d / "README.md").exists():
            assert f"../samples/{d.name}/README.md" in page, f"samples/{d.name} missing from docs/samples.md"


def test_attribute_docs_are_prose_not_a_type_field(built):
    """An attribute or property docstring with a colon in its first line
    ("TCP sequence number (REXMIT: the segment's; ...)") must render as
    written, not be split by napoleon into a bogus ``Type:`` field."""
    import re

    garbled = []
    for page in built.glob("*.html"):
        html = page.read_text()
        for m in re.finditer(
            r'<dl class="py (?:attribute|property|data)">\s*<dt[^>]*id="([^"]+)"(.*?)</dd></dl>', html, re.S
        ):
            if '>Type<span class="colon">' in m.group(2):
                garbled.append(f"{page.name}#{m.group(1)}")
    assert not garbled, f"{len(garbled)} attribute docs rendered as a Type field: {garbled}"
    # the text survives whole: Event.seq, Flow.last_ts
    hooks = (built / "hooks.html").read_text()
    assert "TCP sequence number (REXMIT: the segment’s; NEW_DATA: first new byte)" in hooks  # noqa: RUF001 - as Sphinx renders it
    assert "Input time of the last packet (for ended flows: when it ended)" in hooks


def test_demo_capture_named_in_the_docs_is_the_one_make_demo_uses():
    """`make demo` runs midstat on the Makefile's DEMO_PCAP: the midstat
    README and the quick start show that command on that file, and every
    capture they name exists."""
    import re

    demo = re.search(r"^DEMO_PCAP := (\S+)", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert (ROOT / demo).is_file()
    for page in (ROOT / "samples" / "midstat" / "README.md", DOCS / "quickstart.md"):
        text = page.read_text()
        assert f"samples/midstat/midstat -r {demo}" in text, f"{page.name}: make demo's command is not shown"
        for line in text.splitlines():
            if "make demo" in line and ".pcap" in line:
                assert demo in line, f"{page.name}: make demo does not use the file named in {line.strip()!r}"
        for named in re.findall(r"(?<![\w/.-])((?:tests|samples)/[\w/.-]+\.pcap(?:ng)?)\b", text):
            assert (ROOT / named).is_file(), f"{page.name} names {named}, which does not exist"
