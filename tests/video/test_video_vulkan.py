"""A video on Vulkan (issue 25): ``remaster upscale clip.mkv --device vulkan`` runs each frame's network through ncnn
and gives the video the CPU run gives, frame for frame (the rest of the video path is unchanged).

Skipped, with the reason, where Vulkan cannot be used (tests/vulkan_support.py); on lavapipe the clip is tiny.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("av")
sys.path.insert(0, str(Path(__file__).parent))

from clips import frames_of, make_clip  # noqa: E402

from remaster.cli import main  # noqa: E402
from vulkan_support import ANIME, BAR_DB, psnr, vulkan_devices_or_skip  # noqa: E402

DEVICES = vulkan_devices_or_skip()

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_a_clip_on_vulkan_is_the_clip_the_cpu_makes(tmp_path, capsys):
    clip = make_clip(tmp_path / "clip.mkv", width=32, height=24, pts=(0, 40, 80, 120), audio=False)  # random pixels
    outputs = {}
    for device in ("vulkan", "cpu"):
        outputs[device] = tmp_path / f"{device}.mkv"
        assert main(["upscale", str(clip), "-o", str(outputs[device]), "--model", ANIME, "--device", device,
                     "--precision", "fp32"]) == 0
    assert f"on {DEVICES[0]} (" in capsys.readouterr().err  # the start line names the Vulkan device
    ours, cpu = frames_of(outputs["vulkan"]), frames_of(outputs["cpu"])
    assert [ms for ms, _ in ours] == [ms for ms, _ in cpu] == [0, 40, 80, 120]
    for (ms, mine), (_, theirs) in zip(ours, cpu):
        assert mine.shape == theirs.shape == (96, 128, 3)
        assert psnr(mine, theirs) >= BAR_DB, f"frame at {ms} ms: {psnr(mine, theirs):.1f} dB"
