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


def test_a_driver_without_the_workers_device_describes_the_pipeline_on_its_cpu():
    """A CPU head node of GPU (or Vulkan) workers: the video manifest's description of the pipeline is made in the
    driver, which must not refuse a run because it lacks the device the workers have."""
    import torch

    from remaster import Remasterer
    from remaster.errors import RemasterError, UsageError
    from remaster.pipeline.options import PipelineOptions
    from remaster.plugin.syntax import parse_pipeline
    from remaster.runs.ray.driver import describe_pipeline

    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    stages = parse_pipeline("nearest(scale=2)")
    with pytest.raises(UsageError, match="cuda:7"):  # what the driver met before
        Remasterer(list(stages), PipelineOptions(device="cuda:7"))
    described = describe_pipeline(stages, PipelineOptions(device="cuda:7", precision="fp16"))
    assert described == describe_pipeline(stages, PipelineOptions(device="cpu", precision="fp32"))
    with pytest.raises(RemasterError, match="no stage named"):  # other mistakes still stop the run in the driver
        describe_pipeline(parse_pipeline("nearst"), PipelineOptions(device="cuda:7"))
