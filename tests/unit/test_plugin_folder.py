"""An app folder given to -p is a package: its modules import each other
relatively, whether the folder's entry is app.py or __init__.py."""

from __future__ import annotations

import pytest

from mosfw.manager import PluginLoadError, resolve_plugin


@pytest.mark.parametrize("entry", ["app.py", "__init__.py"])
def test_folder_app_imports_its_sibling_module(tmp_path, entry):
    app = tmp_path / f"myapp_{entry[:-3].strip('_')}"
    app.mkdir()
    (app / "helper.py").write_text("ANSWER = 42\n")
    (app / entry).write_text("from .helper import ANSWER\n")
    mod = resolve_plugin(str(app))
    assert mod.ANSWER == 42
    assert resolve_plugin(str(app)) is mod  # loaded once


def test_folder_app_with_a_broken_sibling_is_a_load_error(tmp_path):
    app = tmp_path / "broken"
    app.mkdir()
    (app / "app.py").write_text("from .missing import X\n")
    with pytest.raises(PluginLoadError, match="failed to import"):
        resolve_plugin(str(app))
