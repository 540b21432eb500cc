"""The shared tiler: tiled runs must match untiled ones, without seams or extra memory."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from remaster.errors import StageContractError
from remaster.pipeline.tiling import auto_tile_size, run_tiled, run_with_backoff

_GEN = torch.Generator().manual_seed(0)
_WEIGHT = torch.randn(3, 3, 3, 3, generator=_GEN)


def conv_up(scale: int):
    """A local stage: 3x3 conv (receptive radius 1) then nearest upsampling."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, _WEIGHT, padding=1)
        return F.interpolate(y, scale_factor=scale, mode="nearest") if scale > 1 else y

    return fn


def bilinear(scale: int):
    def fn(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)

    return fn


def image(height: int, width: int, channels: int = 3) -> torch.Tensor:
    return torch.rand(1, channels, height, width, generator=torch.Generator().manual_seed(height * 1000 + width))


@pytest.mark.parametrize("size", [(17, 23), (1, 50), (50, 1), (64, 64), (100, 37)])
@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("make_fn", [conv_up, bilinear])
def test_tiled_matches_untiled(size, scale, make_fn):
    pixels = image(*size)
    fn = make_fn(scale)
    expected = fn(pixels)
    got = run_tiled(fn, pixels, scale=scale, tile=16, overlap=2)
    assert got.shape == expected.shape and got.dtype == torch.float32
    assert (got - expected).abs().max().item() < 1e-5


@settings(max_examples=30, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    tile=st.integers(4, 24),
    overlap=st.integers(1, 6),
    feather=st.one_of(st.none(), st.integers(0, 4)),
    scale=st.sampled_from([1, 2, 4]),
    batch=st.integers(1, 3),
)
def test_tiled_matches_untiled_property(height, width, tile, overlap, feather, scale, batch):
    pixels = image(height, width)
    fn = conv_up(scale)
    got = run_tiled(fn, pixels, scale=scale, tile=tile, overlap=overlap, feather=feather, batch=batch)
    assert (got - fn(pixels)).abs().max().item() < 1e-5


def test_each_call_gets_at_most_tile_plus_context():
    shapes = []

    def fn(x):
        shapes.append(tuple(x.shape))
        return x.clone()

    run_tiled(fn, image(100, 70), scale=1, tile=32, overlap=4, feather=2, batch=1)
    assert len(shapes) == 4 * 3
    # Cores of at most 32, plus context (4) and feather band (2) on each side, all windows the same.
    assert set(shapes) == {(1, 3, 25 + 12, 24 + 12)}


def test_multiple_of_rounds_windows():
    seen = set()

    def fn(x):
        assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0
        seen.add(x.shape)
        return x * 2

    pixels = image(96, 80)
    got = run_tiled(fn, pixels, scale=1, tile=30, overlap=3, multiple_of=8)
    assert len(seen) == 1
    assert torch.allclose(got, pixels * 2, atol=1e-6)


def test_single_tile_is_one_whole_call():
    calls = []

    def fn(x):
        calls.append(x)
        return x * 3

    pixels = image(20, 30)
    got = run_tiled(fn, pixels, scale=1, tile=32, overlap=8)
    assert len(calls) == 1 and calls[0] is pixels
    assert torch.equal(got, pixels * 3)
    assert len(calls) == 1
    run_tiled(fn, pixels, scale=1, tile=0, overlap=8)
    assert len(calls) == 2


def test_feathering_hides_per_tile_offsets():
    # Each tile gets a different constant, as if a network's output drifted per tile.
    # Hard cuts would jump by the full offset; feathering spreads it over the band.
    counter = iter(range(1000))

    def fn(x):
        offsets = torch.tensor([float(next(counter) % 2) for _ in range(x.shape[0])]).view(-1, 1, 1, 1)
        return F.interpolate(x, scale_factor=2, mode="nearest") + offsets

    pixels = torch.zeros(1, 1, 64, 64)
    got = run_tiled(fn, pixels, scale=2, tile=16, overlap=8, feather=4, batch=2)
    # Band of 2 * feather input pixels = 16 output pixels for a 0 -> 1 change.
    step_x = (got[..., 1:] - got[..., :-1]).abs().max().item()
    step_y = (got[..., 1:, :] - got[..., :-1, :]).abs().max().item()
    assert max(step_x, step_y) <= 1 / 16 + 1e-6
    assert got.min() >= 0 and got.max() <= 1

    hard = run_tiled(fn, pixels, scale=2, tile=16, overlap=8, feather=0)
    assert (hard[..., 1:] - hard[..., :-1]).abs().max().item() == pytest.approx(1.0)


def test_weights_sum_to_one():
    pixels = torch.ones(1, 1, 53, 47)
    got = run_tiled(lambda x: F.interpolate(x, scale_factor=4), pixels, scale=4, tile=12, overlap=3, feather=5)
    assert (got - 1).abs().max().item() < 1e-6


def test_out_buffer_is_written_in_place():
    pixels = image(40, 33)
    fn = conv_up(2)
    out = torch.full((1, 3, 80, 66), 123.0)
    got = run_tiled(fn, pixels, scale=2, tile=16, overlap=2, out=out)
    assert got is out
    assert (out - fn(pixels)).abs().max().item() < 1e-5
    # The single-tile fast path writes into out too.
    small = image(8, 8)
    out_small = torch.empty(1, 3, 16, 16)
    assert run_tiled(fn, small, scale=2, tile=16, overlap=2, out=out_small) is out_small
    assert torch.allclose(out_small, fn(small))


def test_out_channels_and_wrong_out_shape():
    pixels = image(30, 30)

    def gray(x):
        return x.mean(dim=1, keepdim=True)

    got = run_tiled(gray, pixels, scale=1, tile=10, overlap=0, out_channels=1)
    assert got.shape == (1, 1, 30, 30)
    with pytest.raises(ValueError):
        run_tiled(gray, pixels, scale=1, tile=10, overlap=0, out=torch.empty(1, 1, 31, 30))
    with pytest.raises(StageContractError):
        run_tiled(lambda x: x[..., :-1], pixels, scale=1, tile=10, overlap=0)


def test_backoff_halves_tile_on_memory_error(caplog):
    sizes = []

    def fn(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 60:
            raise MemoryError
        return F.interpolate(x, scale_factor=2, mode="nearest")

    pixels = image(200, 180)
    with caplog.at_level(logging.WARNING, logger="remaster.pipeline.tiling"):
        got = run_with_backoff(fn, pixels, scale=2, tile=0, overlap=2)
    assert (got - F.interpolate(pixels, scale_factor=2, mode="nearest")).abs().max().item() < 1e-6
    assert sizes[:3] == [200, 106, 56]  # whole image first, then halving tiles (+ context)
    assert len([r for r in caplog.records if "out of memory" in r.getMessage()]) >= 2


def test_backoff_recognises_runtime_oom_and_gives_up():
    def fn(x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes")

    with pytest.raises(RuntimeError, match="DefaultCPUAllocator"):
        run_with_backoff(fn, image(80, 80), scale=1, tile=64, overlap=2)


def test_backoff_from_a_tile_larger_than_the_image():
    sizes = []

    def fn(x):
        sizes.append(max(x.shape[-2:]))
        if max(x.shape[-2:]) > 60:
            raise MemoryError
        return x.clone()

    run_with_backoff(fn, image(100, 100), scale=1, tile=4096, overlap=2)
    assert sizes[0] == 100 and set(sizes[1:]) == {56}  # no wasted whole-image retries at tile 2048, 1024, ...


def test_backoff_does_not_swallow_other_errors():
    calls = []

    def fn(x):
        calls.append(1)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_with_backoff(fn, image(80, 80), scale=1, tile=64, overlap=2)
    assert len(calls) == 1


def test_backoff_reduces_batch_first():
    batches = []

    def fn(x):
        batches.append(x.shape[0])
        if x.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return x.clone()

    pixels = image(64, 64)
    got = run_with_backoff(fn, pixels, scale=1, tile=16, overlap=2, batch=4, out_channels=3)
    assert torch.allclose(got, pixels)
    assert batches[:2] == [4, 2] and set(batches[2:]) == {1}


def test_progress_reaches_one():
    seen = []
    run_tiled(conv_up(1), image(50, 50), scale=1, tile=16, overlap=2, batch=3, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) == 6  # 16 tiles in batches of 3
    seen.clear()
    run_tiled(conv_up(1), image(10, 10), scale=1, tile=16, overlap=2, progress=seen.append)
    assert seen == [1.0]


@pytest.mark.parametrize("scale", [1.5, 0, -2, 0.5])
def test_non_integer_scale_raises(scale):
    with pytest.raises(ValueError):
        run_tiled(conv_up(1), image(10, 10), scale=scale, tile=4, overlap=1)


def test_float_integer_scale_is_accepted():
    pixels = image(20, 20)
    got = run_tiled(conv_up(2), pixels, scale=2.0, tile=8, overlap=2)
    assert (got - conv_up(2)(pixels)).abs().max().item() < 1e-5


def test_auto_tile_size(monkeypatch):
    import remaster.pipeline.tiling as tiling

    cpu = torch.device("cpu")
    monkeypatch.setattr(tiling, "_available_memory", lambda device: 8 * 2**30)
    assert auto_tile_size((1, 3, 64, 64), device=cpu, scale=4) == 0
    tile = auto_tile_size((1, 3, 8000, 8000), device=cpu, scale=4)
    assert 64 <= tile <= 2048 and tile % 32 == 0
    monkeypatch.setattr(tiling, "_available_memory", lambda device: 2**20)
    assert auto_tile_size((1, 3, 8000, 8000), device=cpu, scale=4) == 64
    monkeypatch.setattr(tiling, "_available_memory", lambda device: 2**50)
    assert auto_tile_size((1, 3, 10**6, 10**6), device=cpu, scale=4) == 2048
    monkeypatch.setattr(tiling, "_available_memory", lambda device: None)
    assert auto_tile_size((1, 3, 8000, 8000), device=cpu, scale=4) == 512


def test_auto_tile_size_counts_an_integer_output_at_its_own_size(monkeypatch):
    import remaster.pipeline.tiling as tiling

    # 2000x2000 x4: the float32 result alone is 768 MB of the 1 GB; a uint8 image is a quarter of that.
    monkeypatch.setattr(tiling, "_available_memory", lambda device: 10**9)
    cpu = torch.device("cpu")
    into_floats = auto_tile_size((1, 3, 2000, 2000), device=cpu, scale=4)
    into_bytes = auto_tile_size((1, 3, 2000, 2000), device=cpu, scale=4, output_bytes_per_value=1)
    assert into_floats == 64 and into_bytes == 128


def test_auto_tile_size_reads_this_machine():
    tile = auto_tile_size((1, 3, 256, 256), device=torch.device("cpu"), scale=2)
    assert tile == 0 or (64 <= tile <= 2048 and tile % 32 == 0)
