"""Fixtures of the multi-core tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mc_helpers import child_pids


@pytest.fixture
def no_leftover_children():
    """Fails a test that leaves a child process of this one behind."""
    before = set(child_pids(os.getpid()))
    yield
    left = sorted(set(child_pids(os.getpid())) - before)
    assert not left, f"worker processes left behind (running or not reaped): {left}"
