"""The built-in interpolators: nearest, bilinear, bicubic, lanczos."""

from __future__ import annotations

import time

import pytest
import torch

from remaster.pipeline import prepare_context
from remaster.pipeline.stage import RunContext, scaled_size
from remaster.plugin.host import PluginHost
from remaster.plugin.specs import StageSpec
from remaster.testing import check_stage

INTERPOLATORS = ("nearest", "bilinear", "bicubic", "lanczos")
CTX = RunContext()


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entry_points=False).ensure_loaded()


def build(host: PluginHost, name: str, **params: object):
    spec: StageSpec = host.stages.get(name)
    stage = spec.load_factory()(**spec.resolve_params(params))
    stage.prepare(prepare_context(torch.device("cpu"), torch.float32, host=host))
    return stage


def gradient(height: int, width: int, channels: int = 3) -> torch.Tensor:
    """A smooth diagonal ramp with a gentle curve, in [0.1, 0.9]."""
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    ramp = 0.1 + 0.8 * (0.5 * x + 0.3 * y + 0.2 * torch.sin(torch.pi * x * y))
    return ramp.expand(1, channels, height, width).clone()


@pytest.mark.parametrize("name", INTERPOLATORS)
@pytest.mark.parametrize("scale", [2.0, 0.5, 1.5])
def test_conforms(host: PluginHost, name: str, scale: float) -> None:
    check_stage(host.stages.get(name), {"scale": scale})


@pytest.mark.parametrize("name", INTERPOLATORS)
@pytest.mark.parametrize("scale", [0.5, 1.5, 3.0, 4.0])
def test_output_shape_is_rounded_scale(host: PluginHost, name: str, scale: float) -> None:
    stage = build(host, name, scale=scale)
    out = stage.run(torch.rand(1, 3, 13, 21), CTX)
    assert tuple(out.shape) == (1, 3, *scaled_size(13, 21, scale))
    assert tuple(out.shape[-2:]) == (round(13 * scale), round(21 * scale))


@pytest.mark.parametrize("name", INTERPOLATORS)
@pytest.mark.parametrize("scale", [0.37, 2.5])
def test_constant_image_stays_constant(host: PluginHost, name: str, scale: float) -> None:
    out = build(host, name, scale=scale).run(torch.full((1, 3, 15, 19), 0.3), CTX)
    torch.testing.assert_close(out, torch.full_like(out, 0.3), atol=1e-5, rtol=0)


def test_bicubic_scale_one_is_identity(host: PluginHost) -> None:
    pixels = torch.rand(2, 3, 17, 23)
    out = build(host, "bicubic", scale=1.0).run(pixels, CTX)
    torch.testing.assert_close(out, pixels, atol=1e-6, rtol=0)


def test_nearest_x2_repeats_pixels(host: PluginHost) -> None:
    pixels = torch.rand(1, 3, 9, 11)
    out = build(host, "nearest", scale=2.0).run(pixels, CTX)
    expected = pixels.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
    assert torch.equal(out, expected)


@pytest.mark.parametrize("name", ["bilinear", "bicubic", "lanczos"])
def test_down_then_up_recovers_smooth_image(host: PluginHost, name: str) -> None:
    original = gradient(64, 96)
    small = build(host, name, scale=0.5).run(original, CTX)
    restored = build(host, name, scale=2.0).run(small, CTX)
    assert restored.shape == original.shape
    # Borders see only half a filter, so judge the interior tightly and the whole loosely.
    assert (restored - original)[..., 4:-4, 4:-4].abs().max() < 0.01
    assert (restored - original).abs().mean() < 0.01


def test_downscale_is_antialiased(host: PluginHost) -> None:
    # A one-pixel checkerboard shrunk by 4 should average to gray, not alias.
    yy, xx = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
    board = ((yy + xx) % 2).float().expand(1, 1, 64, 64).clone()
    for name in ("bilinear", "bicubic", "lanczos"):
        out = build(host, name, scale=0.25).run(board, CTX)
        assert (out[..., 2:-2, 2:-2] - 0.5).abs().max() < 0.05, name


def test_gray_stays_gray_and_input_untouched(host: PluginHost) -> None:
    pixels = torch.rand(1, 1, 10, 10)
    before = pixels.clone()
    out = build(host, "lanczos", scale=2.5).run(pixels, CTX)
    assert out.shape == (1, 1, 25, 25)
    assert torch.equal(pixels, before)


def test_output_is_clamped(host: PluginHost) -> None:
    # A hard edge makes bicubic and Lanczos ring; the stage keeps [0, 1].
    step = torch.zeros(1, 3, 8, 8)
    step[..., 4:] = 1.0
    out = build(host, "lanczos", scale=4.0).run(step, CTX)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_extreme_scales(host: PluginHost) -> None:
    out = build(host, "bicubic", scale=0.01).run(torch.rand(1, 3, 30, 40), CTX)
    assert out.shape == (1, 3, 1, 1)
    out = build(host, "nearest", scale=64).run(torch.rand(1, 1, 2, 3), CTX)
    assert out.shape == (1, 1, 128, 192)


def test_upscale_512_by_4_is_fast(host: PluginHost) -> None:
    # About 0.15 s on two cores; the bound is loose because the machine is shared.
    stage = build(host, "lanczos", scale=4.0)
    start = time.perf_counter()
    out = stage.run(torch.rand(1, 3, 512, 512), CTX)
    assert out.shape == (1, 3, 2048, 2048)
    assert time.perf_counter() - start < 5.0
