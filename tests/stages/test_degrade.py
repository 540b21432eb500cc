"""The built-in degraders: downsample, noise, jpeg, blur."""

from __future__ import annotations

import pytest
import torch

from remaster import Remasterer
from remaster.pipeline import prepare_context
from remaster.pipeline.stage import RunContext
from remaster.plugin.host import PluginHost
from remaster.testing import check_stage, sample_pixels

CTX = RunContext()


@pytest.fixture(scope="module")
def host() -> PluginHost:
    return PluginHost(load_entry_points=False).ensure_loaded()


def build(host: PluginHost, name: str, **params: object):
    spec = host.stages.get(name)
    stage = spec.load_factory()(**spec.resolve_params(params))
    stage.prepare(prepare_context(torch.device("cpu"), torch.float32, host=host))
    return stage


def image(channels: int = 3, height: int = 48, width: int = 64, seed: int = 0) -> torch.Tensor:
    return sample_pixels(1, channels, height, width, seed=seed)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("degrade.downsample", {"method": "area", "scale": 0.5}),
        ("degrade.downsample", {"method": "nearest", "scale": 0.3}),
        ("degrade.downsample", {"method": "lanczos"}),
        ("degrade.noise", {"kind": "poisson", "sigma": 20}),
        ("degrade.noise", {"kind": "poisson", "gray": True}),
        ("degrade.noise", {"gray": True}),
        ("degrade.noise", {"sigma": 0}),
        ("degrade.jpeg", {"quality": 5}),
        ("degrade.jpeg", {"quality": 100}),
        ("degrade.blur", {"sigma": 50}),
    ],
)
def test_conforms_with_params(host: PluginHost, name: str, params: dict[str, object]) -> None:
    check_stage(host.stages.get(name), params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("degrade.noise", {}),
        ("degrade.noise", {"kind": "poisson"}),
        ("degrade.noise", {"kind": "poisson", "gray": True}),
        ("degrade.noise", {"gray": True}),
    ],
)
def test_seeds(host: PluginHost, name: str, params: dict[str, object]) -> None:
    pixels = image()
    first = build(host, name, seed=7, **params).run(pixels, CTX)
    again = build(host, name, seed=7, **params).run(pixels, CTX)
    other = build(host, name, seed=8, **params).run(pixels, CTX)
    unseeded = build(host, name, **params)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(unseeded.run(pixels, CTX), unseeded.run(pixels, CTX))


def test_seeded_noise_does_not_touch_global_rng(host: PluginHost) -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    build(host, "degrade.noise", seed=3).run(image(), CTX)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("sigma", [5.0, 25.0])
def test_gaussian_noise_std(host: PluginHost, sigma: float) -> None:
    flat = torch.full((1, 3, 128, 128), 0.5)
    out = build(host, "degrade.noise", sigma=sigma, seed=1).run(flat, CTX)
    std = float((out - flat).std())
    assert abs(std - sigma / 255) < 0.1 * sigma / 255
    assert abs(float((out - flat).mean())) < 0.05 * sigma / 255


def test_poisson_noise_strength_follows_sigma(host: PluginHost) -> None:
    flat = torch.full((1, 3, 128, 128), 0.5)
    std = {s: float((build(host, "degrade.noise", kind="poisson", sigma=s, seed=1).run(flat, CTX) - flat).std())
           for s in (10.0, 20.0)}
    # BasicSR scale 1 on a 0.5 image: sqrt(0.5 * 256) / 256 photons.
    assert abs(std[10.0] - (0.5 * 256) ** 0.5 / 256) < 0.005
    assert abs(std[20.0] / std[10.0] - 2.0) < 0.1


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
def test_gray_noise_is_the_same_in_every_channel(host: PluginHost, kind: str) -> None:
    flat = torch.full((1, 3, 32, 32), 0.5)
    noise = build(host, "degrade.noise", kind=kind, gray=True, seed=2).run(flat, CTX) - flat
    assert noise.abs().max() > 0
    assert torch.equal(noise[:, 0], noise[:, 1]) and torch.equal(noise[:, 1], noise[:, 2])
    colour = build(host, "degrade.noise", kind=kind, seed=2).run(flat, CTX) - flat
    assert not torch.equal(colour[:, 0], colour[:, 1])


def test_noise_output_is_clamped(host: PluginHost) -> None:
    out = build(host, "degrade.noise", sigma=255, seed=0).run(image(), CTX)
    assert out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_quality(host: PluginHost, channels: int) -> None:
    # Smooth content: OpenCV subsamples chroma (4:2:0) even at quality 100,
    # which would dominate the error on per-channel pixel noise.
    pixels = torch.nn.functional.interpolate(image(channels, 12, 16), size=(48, 64), mode="bicubic").clamp(0, 1)
    error = {q: float((build(host, "degrade.jpeg", quality=q).run(pixels, CTX) - pixels).abs().mean())
             for q in (100, 10)}
    assert error[100] < 0.015
    assert error[10] > 3 * error[100]
    out = build(host, "degrade.jpeg", quality=10).run(pixels, CTX)
    assert out.shape == pixels.shape
    # Decoded from 8-bit, so every value is a multiple of 1/255.
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)


def test_jpeg_is_deterministic(host: PluginHost) -> None:
    pixels = image()
    stage = build(host, "degrade.jpeg", quality=30)
    assert torch.equal(stage.run(pixels, CTX), stage.run(pixels, CTX))


@pytest.mark.parametrize("sigma", [1.0, 3.0, 50.0])
def test_blur_keeps_mean_and_reduces_variance(host: PluginHost, sigma: float) -> None:
    pixels = torch.rand(1, 3, 40, 52, generator=torch.Generator().manual_seed(0))
    out = build(host, "degrade.blur", sigma=sigma).run(pixels, CTX)
    assert out.shape == pixels.shape
    assert abs(float(out.mean()) - float(pixels.mean())) < 0.01
    assert float(out.var()) < 0.5 * float(pixels.var())


def test_blur_matches_reflect_padding(host: PluginHost) -> None:
    # For small radii the hand-made reflection equals torch's reflect mode.
    pixels = torch.rand(1, 3, 20, 24, generator=torch.Generator().manual_seed(1))
    stage = build(host, "degrade.blur", sigma=1.5)
    radius = 5
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-x**2 / (2 * 1.5**2))
    kernel = (kernel / kernel.sum()).float()
    padded = torch.nn.functional.pad(pixels, (radius,) * 4, mode="reflect")
    weight = (kernel.view(-1, 1) * kernel.view(1, -1)).expand(3, 1, -1, -1)
    expected = torch.nn.functional.conv2d(padded, weight, groups=3)
    torch.testing.assert_close(stage.run(pixels, CTX), expected, atol=1e-5, rtol=0)


def test_blur_on_tiny_image(host: PluginHost) -> None:
    # Radius 150 folds the reflection many times over a 1x3 image.
    out = build(host, "degrade.blur", sigma=50).run(torch.tensor([[[[0.0, 0.5, 1.0]]]]), CTX)
    assert out.shape == (1, 1, 1, 3)
    assert torch.isfinite(out).all()


def blocks(size: int = 160) -> torch.Tensor:
    # 16 px blocks of random colour: strong edges wherever a tile's border falls.
    coarse = torch.rand(1, 3, size // 16, size // 16, generator=torch.Generator().manual_seed(3))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="nearest")


@pytest.mark.parametrize("sigma", [2.0, 15.0])
def test_blur_tiled_equals_untiled(sigma: float) -> None:
    # The overlap follows the kernel radius, ceil(3 * sigma); the fixed 32 px it had was short beyond sigma 10.6.
    untiled = Remasterer([f"degrade.blur(sigma={sigma})"], tile=0, precision="fp32").run(blocks())
    tiled = Remasterer([f"degrade.blur(sigma={sigma})"], tile=32, precision="fp32").run(blocks())
    torch.testing.assert_close(tiled, untiled, atol=1e-6, rtol=0)


def test_blur_is_really_tiled_at_large_sigma() -> None:
    # So that the test above compares tiles at all: windows smaller than the image at sigma 15 (radius 45).
    pipeline = Remasterer(["degrade.blur(sigma=15)"], tile=32, precision="fp32").prepare()
    instance = pipeline.stages[0].instance(torch.device("cpu"), torch.float32)
    seen: list[tuple[int, ...]] = []
    run = instance.run
    instance.run = lambda x, ctx: (seen.append(tuple(x.shape)), run(x, ctx))[1]  # type: ignore[method-assign]
    pipeline.run(blocks())
    assert len(seen) > 1 and all(shape[-2] < 160 and shape[-1] < 160 for shape in seen)


@pytest.mark.parametrize("method", ["nearest", "bilinear", "bicubic", "area", "lanczos"])
def test_downsample_methods(host: PluginHost, method: str) -> None:
    pixels = image(height=41, width=63)
    out = build(host, "degrade.downsample", scale=0.25, method=method).run(pixels, CTX)
    assert out.shape == (1, 3, 10, 16)
    assert abs(float(out.mean()) - float(pixels.mean())) < 0.02


def test_downsample_area_averages_blocks(host: PluginHost) -> None:
    pixels = torch.rand(1, 1, 8, 8)
    out = build(host, "degrade.downsample", scale=0.5, method="area").run(pixels, CTX)
    expected = torch.nn.functional.avg_pool2d(pixels, 2)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
