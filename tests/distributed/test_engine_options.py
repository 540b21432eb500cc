"""``--engine`` and its options, without a cluster: Ray missing, Ray's options on a local run."""

from __future__ import annotations

import sys

import pytest

from ray_support import tiny_folder
from remaster.cli import main

pytestmark = pytest.mark.timeout(60)


def test_without_ray_the_ray_engine_says_how_to_install_it_in_one_line(tmp_path, monkeypatch, capsys):
    if "ray" in sys.modules and sys.modules["ray"] is not None and sys.modules["ray"].is_initialized():
        pytest.skip("a Ray cluster is connected in this process")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` finds when ray is not installed
    source = tiny_folder(tmp_path / "in", 1)
    assert main(["run", "nearest", str(source), "-o", str(tmp_path / "out"), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("remaster: error: --engine ray needs Ray, which is not installed")
    assert err[0].endswith("(pip install 'remaster[ray]')")
    assert not (tmp_path / "out").exists()


def test_ray_options_need_the_ray_engine(tmp_path, capsys):
    source = tiny_folder(tmp_path / "in", 1)
    assert main(["run", "nearest", str(source), "-o", str(tmp_path / "out"), "--workers", "2"]) == 2
    assert "--workers is for distributed runs" in capsys.readouterr().err
