"""The tiler's row-band mode (``emit``): the same float sums as the full-size buffer, bit for bit, in bounded memory."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from remaster.pipeline.tiling import run_tiled, run_with_backoff

_WEIGHT = torch.randn(3, 3, 3, 3, generator=torch.Generator().manual_seed(1))


def sharp_up(scale: int):
    """A local stage whose values need the feather weights (conv, then bilinear upsampling)."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        y = F.conv2d(x, _WEIGHT, padding=1)
        return F.interpolate(y, scale_factor=scale, mode="bilinear", align_corners=False) if scale > 1 else y

    return fn


def collect(height: int, width: int, channels: int = 3) -> tuple[torch.Tensor, list[tuple[int, int]], object]:
    """An output filled by emit, the (top, rows) calls it got, and the emit function."""
    out = torch.full((1, channels, height, width), float("nan"))
    calls: list[tuple[int, int]] = []

    def emit(top: int, rows: torch.Tensor) -> None:
        assert rows.shape[-1] == width
        calls.append((top, rows.shape[-2]))
        out[:, :, top:top + rows.shape[-2]] = rows

    return out, calls, emit


@pytest.mark.parametrize("scale", [1, 2, 4])
@pytest.mark.parametrize("tile,overlap,feather,batch",
                         [(16, 4, None, 1), (16, 4, 0, 1), (11, 3, 2, 3), (7, 2, None, 2)])
@pytest.mark.parametrize("multiple_of", [1, 4])
def test_emitted_rows_equal_the_full_buffer_bit_for_bit(scale, tile, overlap, feather, batch, multiple_of):
    pixels = torch.rand(1, 3, 30, 40, generator=torch.Generator().manual_seed(scale * 100 + tile))
    fn = sharp_up(scale)
    kwargs = dict(scale=scale, tile=tile, overlap=overlap, feather=feather, batch=batch, multiple_of=multiple_of)
    full = run_tiled(fn, pixels, **kwargs)
    out, calls, emit = collect(30 * scale, 40 * scale)
    assert run_tiled(fn, pixels, emit=emit, **kwargs) is None
    assert torch.equal(out, full)
    # Top to bottom, each row exactly once.
    assert calls[0][0] == 0 and all(a + h == b for (a, h), (b, _) in zip(calls, calls[1:]))
    assert calls[-1][0] + calls[-1][1] == 30 * scale
    assert len(calls) > 1


def test_band_is_one_tile_row_high_not_the_image():
    pixels = torch.rand(1, 3, 64, 16)
    heights: list[int] = []
    run_tiled(sharp_up(2), pixels, scale=2, tile=16, overlap=2, emit=lambda top, rows: heights.append(rows.shape[-2]))
    assert max(heights) <= 2 * (16 + 2)  # a core plus the feather band, never the 128 output rows


def test_single_tile_emits_the_whole_call():
    pixels = torch.rand(1, 1, 9, 12)
    out, calls, emit = collect(18, 24, channels=1)
    run_tiled(lambda x: F.interpolate(x, scale_factor=2), pixels, scale=2, tile=64, overlap=2, emit=emit)
    assert calls == [(0, 18)] and torch.equal(out, F.interpolate(pixels, scale_factor=2))


def test_emit_refuses_out_and_batches_of_images():
    with pytest.raises(ValueError, match="emit"):
        run_tiled(lambda x: x, torch.rand(2, 3, 8, 8), scale=1, tile=4, overlap=0, emit=lambda *_: None)
    with pytest.raises(ValueError, match="emit"):
        run_tiled(lambda x: x, torch.rand(1, 3, 8, 8), scale=1, tile=4, overlap=0, out=torch.empty(1, 3, 8, 8),
                  emit=lambda *_: None)


def test_backoff_restarts_the_rows_from_the_top():
    pixels = torch.rand(1, 3, 48, 48)
    fn = sharp_up(2)
    calls = {"n": 0}

    def flaky(x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 5:  # fails once, part-way, after the first tile row was emitted
            raise RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return fn(x)

    out, tops, emit = collect(96, 96)
    run_with_backoff(flaky, pixels, scale=2, tile=16, overlap=4, emit=emit, min_tile=4)
    assert [top for top, _ in tops].count(0) == 2  # once per attempt
    assert torch.equal(out, run_tiled(fn, pixels, scale=2, tile=8, overlap=4))
