"""``--engine ray --device vulkan`` (issue 25): Ray workers run the network on Vulkan through ncnn, each probing the
device in its own process, and give the in-process CPU fp32 result.

A local cluster that remaster starts (module-scoped); its workers inherit the environment it was started with
(``PYTHONPATH`` with the plugins, the weights cache), as in test_ray_engine.py. Without Ray, a Vulkan loader, ncnn or
any device the module skips and says why. On lavapipe the images are tiny (24×24) and the network the fast one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import remaster
from ray_support import HAVE_RAY, worker_environment
from remaster import PipelineOptions
from remaster import io as rio
from remaster.cli import main
from vulkan_support import ANIME, BAR_DB, FP16_BAR_DB, photo, psnr, vulkan_devices_or_skip

if not HAVE_RAY:
    pytest.skip("ray is not installed (pip install 'remaster[ray]'; make test installs it)", allow_module_level=True)
DEVICES = vulkan_devices_or_skip()

pytestmark = [pytest.mark.ray, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU local cluster started by remaster's own code; its workers see this process's environment."""
    from remaster.runs.ray.cluster import connected

    with worker_environment(tmp_path_factory.mktemp("site")):
        with connected(None, num_cpus=2) as ray:
            yield ray


def two_photos(folder: Path) -> Path:
    """Two 24×24 crops of the astronaut (her face, the flag), as 8-bit PNGs."""
    folder.mkdir(parents=True)
    Image.fromarray(photo(24)).save(folder / "face.png")
    Image.fromarray(photo(24, top=380, left=300)).save(folder / "flag.png")
    return folder


def cpu_results(source: Path) -> dict[str, np.ndarray]:
    """The in-process CPU fp32 results, by file name."""
    pipeline = remaster.Remasterer(ANIME, device="cpu", precision="fp32")
    return {path.name: pipeline.run(np.asarray(Image.open(path))) for path in sorted(source.glob("*.png"))}


def check_outputs(out: Path, expected: dict[str, np.ndarray], bar: float) -> None:
    assert sorted(path.name for path in out.iterdir()) == sorted(expected)
    for name, cpu in expected.items():
        ours = rio.to_numpy(rio.load(out / name))
        assert ours.dtype == cpu.dtype == np.uint8 and ours.shape == cpu.shape == (96, 96, 3)
        assert psnr(ours, cpu) >= bar, f"{name}: {psnr(ours, cpu):.1f} dB"


def test_the_cli_runs_a_folder_on_vulkan_in_the_workers(cluster, tmp_path, capsys):
    source = two_photos(tmp_path / "in")
    report = tmp_path / "report.json"
    code = main(["run", ANIME, str(source), "-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2",
                 "--device", "vulkan", "--precision", "fp32", "--report", str(report)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert f"on {DEVICES[0]} in each Ray worker" in err, err  # what the first worker said of itself
    summary = json.loads(report.read_text())
    assert (summary["ok"], summary["failed"]) == (2, 0), summary
    for item in summary["items"]:
        assert item["stages"] == [{"stage": ANIME, "device": str(DEVICES[0]), "precision": "fp32"}], item
    check_outputs(tmp_path / "ray", cpu_results(source), BAR_DB)


def test_the_api_runs_on_the_vulkan_device_named(cluster, tmp_path):
    from remaster.runs.ray import run_folder

    source = two_photos(tmp_path / "in")
    summary = run_folder(str(source), str(tmp_path / "ray"), stages=[ANIME], workers=2,
                         options=PipelineOptions(device=f"vulkan:{DEVICES[0].index}"))
    assert (summary["ok"], summary["failed"]) == (2, 0), summary
    # Precision auto on 8-bit images: fp16 where the device has it (lavapipe does), fp32 elsewhere.
    precision = "fp16" if DEVICES[0].fp16 else "fp32"
    for item in summary["items"]:
        assert item["stages"] == [{"stage": ANIME, "device": str(DEVICES[0]), "precision": precision}], item
    check_outputs(tmp_path / "ray", cpu_results(source), BAR_DB if precision == "fp32" else FP16_BAR_DB)
