"""Shared by the test modules: the reliability helpers are importable, the fault plugin installable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # tests/reliability_support.py (tests run with --import-mode=importlib)

import remaster  # noqa: E402
from reliability_support import FAULT_PLUGIN, install_fault_plugin  # noqa: E402


@pytest.fixture
def fault_host(tmp_path_factory, monkeypatch):
    """A fresh process-wide plugin host that also holds the fault plugin's stages."""
    site = install_fault_plugin(tmp_path_factory.mktemp("site"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(FAULT_PLUGIN))
    monkeypatch.setattr("remaster.plugins._default_host", None)
    host = remaster.plugins.get_host()
    assert "fault.raise" in host.stages, host.errors
    return host
