"""``remaster serve --device vulkan`` (issue 25): a real server process on loopback whose jobs run the network on
Vulkan through ncnn, against the library's CPU fp32 result.

Without a Vulkan loader, ncnn or any device the module skips and says why (tests/vulkan_support.py). On lavapipe
a job takes a second or two: the images are 24×24.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from remaster import Remasterer
from remaster import io as rio
from remaster.server.client import Client, encode_png
from vulkan_support import ANIME, BAR_DB, FP16_BAR_DB, photo, psnr, vulkan_devices_or_skip

DEVICES = vulkan_devices_or_skip()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def server(remaster_server):
    return remaster_server("--device", "vulkan")


@pytest.fixture(scope="module")
def cpu_pipeline():
    """The library's own CPU fp32 result is the reference."""
    return Remasterer(ANIME, device="cpu", precision="fp32")


def finished(client: Client, job_id: str, timeout: float = 180.0) -> dict:
    """The job's status once it has ended (bounded: fails after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    status = client.job(job_id)
    while status["state"] not in ("done", "failed", "cancelled"):
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {status['state']} after {timeout:.0f} s")
        time.sleep(0.05)
        status = client.job(job_id)
    return status


def run_on_server(server, image: np.ndarray) -> tuple[dict, np.ndarray]:
    """Submit ``image`` (8 or 16 bits, RGB) as a PNG the way the editors send it; the final status and the result."""
    height, width, channels = image.shape
    depth = 16 if image.dtype == np.uint16 else 8
    job_id = server.client.submit(encode_png(image.tobytes(), width, height, channels, depth), ANIME)
    status = finished(server.client, job_id)
    assert status["state"] == "done", status
    result = rio.to_numpy(rio.load(server.client.result(job_id)))
    server.client.cancel(job_id)  # forget it: the result is freed on the server
    return status, result


def test_health_names_the_vulkan_device(server):
    health = server.client.health()
    assert health["status"] == "ok"
    assert health["device"].startswith(f"{DEVICES[0]} ({DEVICES[0].name}"), health["device"]


def test_the_stages_say_which_run_on_vulkan(server):
    stages = {stage["name"]: stage for stage in server.client.stages()}
    assert stages[ANIME]["vulkan"] is True and stages["bicubic"]["vulkan"] is False


def test_a_16_bit_job_runs_on_vulkan_in_fp32_and_gives_the_cpu_result(server, cpu_pipeline):
    deep = (photo(24).astype(np.uint32) * 257).astype(np.uint16)  # auto keeps fp32 for 16-bit inputs
    status, ours = run_on_server(server, deep)
    assert status["stages"] == [{"stage": ANIME, "device": str(DEVICES[0]), "precision": "fp32"}]
    assert status["output"] == {"width": 96, "height": 96, "channels": 3}
    cpu = cpu_pipeline.run(deep)
    assert ours.dtype == cpu.dtype == np.uint16 and ours.shape == cpu.shape == (96, 96, 3)
    assert psnr(ours, cpu) >= BAR_DB, f"{psnr(ours, cpu):.1f} dB"


def test_an_8_bit_job_runs_on_vulkan_and_gives_the_cpu_result(server, cpu_pipeline):
    image = photo(24)
    status, ours = run_on_server(server, image)
    # The server's precision is auto: fp16 on a device that has it (lavapipe does), fp32 elsewhere.
    precision = "fp16" if DEVICES[0].fp16 else "fp32"
    assert status["stages"] == [{"stage": ANIME, "device": str(DEVICES[0]), "precision": precision}]
    cpu = cpu_pipeline.run(image)
    assert ours.dtype == cpu.dtype == np.uint8 and ours.shape == cpu.shape == (96, 96, 3)
    bar = BAR_DB if precision == "fp32" else FP16_BAR_DB
    assert psnr(ours, cpu) >= bar, f"{psnr(ours, cpu):.1f} dB ({precision})"
