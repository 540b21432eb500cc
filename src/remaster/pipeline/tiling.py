"""The shared tiler: run an image operation on overlapping tiles and blend them.

Every stage that allows tiling goes through here, so that memory limits,
seams and out-of-memory recovery are handled once.

Design, and why:

* **Only one full-size allocation.** Large upscales are memory bound: at 4x a
  4000 px image gives a 16000 px output, whose float32 buffer alone is ~3 GiB.
  A classic tiler also keeps a full-size weight accumulator and divides at the
  end, doubling that. Instead each tile gets a weight that is the product of
  two 1-D *partitions of unity* (one per axis): along an axis, neighbouring
  tiles share a band of ``2 * feather`` input pixels centred on the boundary
  between their cores, where one tile's weight ramps linearly from 1 to 0 and
  the other's is exactly ``1 - ramp``; everywhere else (and at image borders)
  the weight is 1 or 0. The weights therefore already sum to 1 at every output
  pixel, so ``out += tile * weight`` is final and no normalisation is needed.
* **Context on top of the feather band.** A tile's window reaches ``overlap``
  input pixels *beyond* the farthest pixel it contributes to, feather band
  included. ``overlap`` is the stage's receptive-field radius
  (:attr:`StageInfo.tile_overlap`), so for a local operation every weighted
  pixel is computed exactly as in the untiled run and tiling is lossless; the
  feathering only hides the residual differences of networks whose true
  receptive field is larger than declared.
* **Equal window sizes.** Cores are balanced (sizes differ by at most one) and
  windows at the border are shifted inwards instead of clipped, which gives
  them *more* context, never less. All windows then share one shape, so tiles
  can be stacked into batches without padding, and a size requirement
  (``multiple_of``) can be met by rounding one number.
* **Back-off.** Memory use is hard to predict (cuDNN workspaces,
  fragmentation), so :func:`run_with_backoff` treats the tile size as a guess
  and halves it on out-of-memory rather than trying to be exact up front.
* **Finished rows can leave early.** Tiles run row by row, and only
  neighbouring tile rows overlap, so output rows above the next tile row's
  band are final. With ``emit``, :func:`run_tiled` accumulates into a float
  band one tile row high instead of a full-size buffer and hands each
  finished stretch of rows on (the pipeline quantises them straight into the
  final integer image). The band carries the rows it shares with the next
  tile row over, so every output pixel gets the same float additions, in the
  same order, as in the full-size buffer: the results are bit-identical.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from remaster.errors import StageContractError

__all__ = ["RowsFn", "run_tiled", "run_with_backoff", "auto_tile_size", "is_out_of_memory", "fixed_window_size",
           "VULKAN_TILE", "vulkan_tile_size"]

log = logging.getLogger(__name__)

TileFn = Callable[[torch.Tensor], torch.Tensor]
#: Receives ``(top, rows)``: finished output rows ``[top, top + rows.shape[-2])``, full width, top to bottom.
RowsFn = Callable[[int, torch.Tensor], None]

#: Smallest tile :func:`run_with_backoff` goes down to before giving up.
MIN_TILE = 32
#: Rough activation memory of a Real-ESRGAN-like network per output pixel (fp32).
DEFAULT_BYTES_PER_OUTPUT_PIXEL = 1024
#: Fraction of the free memory a tile may use; the rest absorbs fragmentation and workspaces.
DEFAULT_MEMORY_FRACTION = 0.5


@dataclass(frozen=True)
class _Span:
    """One tile along one axis, in input pixels."""

    start: int  # window fed to fn: [start, start + size)
    size: int
    lo: int  # part of the output this tile contributes to: [lo, hi)
    hi: int
    ramp_in: int | None  # core boundary where the weight rises from 0 to 1 (left/top neighbour)
    ramp_out: int | None  # core boundary where it falls back to 0 (right/bottom neighbour)


def _check_scale(scale: int | float) -> int:
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not float(scale).is_integer() or scale < 1:
        raise ValueError(f"the tiler needs an integer scale >= 1, got {scale!r}")
    return int(scale)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _plan_axis(length: int, tile: int, overlap: int, feather: int, multiple_of: int,
               window: int | None = None) -> tuple[list[_Span], int]:
    """Cut one axis into spans; returns them and the feather half-width used.

    With ``window`` (at least the largest window this tile size makes), an axis at least that long gets
    windows of exactly that size: more context than needed, never less, and no padding.
    """
    whole = [_Span(0, length, 0, length, None, None)]
    if tile <= 0 or length <= tile:
        return whole, 0
    count = math.ceil(length / tile)
    bounds = [k * length // count for k in range(count + 1)]
    # Bands must not reach past the middle of the smallest core, or ramps would overlap.
    half = min(feather, (length // count) // 2)
    reach = overlap + half
    size = _round_up(math.ceil(length / count) + 2 * reach, multiple_of)
    if window is not None and length >= window:
        size = max(size, window)
    if size >= length:  # every window would be the whole axis anyway
        return whole, 0
    spans = []
    for i in range(count):
        core_lo, core_hi = bounds[i], bounds[i + 1]
        start = min(max(core_lo - reach, 0), length - size)
        spans.append(
            _Span(
                start=start,
                size=size,
                lo=0 if i == 0 else core_lo - half,
                hi=length if i == count - 1 else core_hi + half,
                ramp_in=None if i == 0 or half == 0 else core_lo,
                ramp_out=None if i == count - 1 or half == 0 else core_hi,
            )
        )
    return spans, half


def _axis_weight(span: _Span, half: int, scale: int, device: torch.device) -> torch.Tensor | None:
    """Weight over the span's output pixels [lo*scale, hi*scale), or None when it is all ones."""
    if span.ramp_in is None and span.ramp_out is None:
        return None
    # Output pixel centres in input coordinates; both neighbours evaluate the same
    # expression, so their weights are complementary to the last bit.
    centres = (torch.arange(span.lo * scale, span.hi * scale, device=device, dtype=torch.float64) + 0.5) / scale
    weight = torch.ones_like(centres)
    if span.ramp_in is not None:
        weight = torch.minimum(weight, ((centres - (span.ramp_in - half)) / (2 * half)).clamp(0, 1))
    if span.ramp_out is not None:
        weight = torch.minimum(weight, 1 - ((centres - (span.ramp_out - half)) / (2 * half)).clamp(0, 1))
    return weight.to(torch.float32)


def _check_output(result: torch.Tensor, count: int, channels: int | None, height: int, width: int) -> None:
    if result.ndim != 4 or result.shape[0] != count or result.shape[-2:] != (height, width) or (
        channels is not None and result.shape[1] != channels
    ):
        raise StageContractError(
            f"returned shape {tuple(result.shape)}, expected "
            f"({count}, {'C' if channels is None else channels}, {height}, {width})",
            hint="this is a bug in the stage; report it to its plugin's author",
        )


def run_tiled(
    fn: TileFn,
    pixels: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    out: torch.Tensor | None = None,
    out_channels: int | None = None,
    batch: int = 1,
    progress: Callable[[float], None] | None = None,
    feather: int | None = None,
    multiple_of: int = 1,
    emit: RowsFn | None = None,
    fixed_window: bool = False,
) -> torch.Tensor | None:
    """Run ``fn`` over ``pixels`` tile by tile and blend the tiles without seams.

    Args:
        fn: Maps an ``(n, C, h, w)`` float tensor to ``(n, C', h * scale, w * scale)``.
        pixels: ``(N, C, H, W)`` input (normally ``N == 1``).
        scale: Integer output/input size ratio, at least 1.
        tile: Largest core size of a tile in input pixels; ``<= 0`` means no tiling.
        overlap: Input pixels of context each tile gets around the pixels it
            contributes to (the stage's receptive-field radius).
        out: Buffer of the final shape to write into (its contents are
            overwritten); allocated as float32 on ``pixels.device`` if not given.
        out_channels: ``C'``; inferred from the first tile when not given.
        batch: How many tiles to stack into one call of ``fn``.
        progress: Called with the fraction done after each call of ``fn``.
        feather: Half-width of the blending band in input pixels; defaults to
            ``overlap // 2``. 0 gives hard (still exact for local ops) cuts.
        multiple_of: Tile windows are made a multiple of this in both
            dimensions (for stages with size requirements).
        emit: Instead of returning the result, hand it on in finished bands
            of rows: ``emit(top, rows)`` with ``rows`` a float32
            ``(1, C', h, W * scale)`` view that is only valid during the
            call, from row 0 down; no full-size buffer is allocated. Each
            attempt starts again at row 0. Needs ``N == 1`` and no ``out``.
        fixed_window: Make every window along an axis at least
            :func:`fixed_window_size` long exactly that long (more context,
            same result), so that one shape serves every tile of every large
            image (a compiled ``fn``). A shorter axis is one window of its own
            length, never padded: padding would change what the network sees
            at the image's edge, so the caller runs those calls differently
            (the pipeline runs them uncompiled). Needs ``tile > 0``.

    Returns:
        ``out`` if given, else a new float32 tensor ``(N, C', H * scale, W * scale)``;
        ``None`` with ``emit``. An image that fits in one tile is passed to ``fn`` whole.

    Raises:
        ValueError: for a non-integer scale, negative overlap, an ``out`` of the wrong shape,
            or ``emit`` with ``out`` or several images.
        StageContractError: when ``fn`` returns a tensor of the wrong shape.
    """
    scale = _check_scale(scale)
    if overlap < 0 or (feather is not None and feather < 0):
        raise ValueError(f"overlap and feather must be >= 0, got {overlap} and {feather}")
    if pixels.ndim != 4:
        raise ValueError(f"pixels must be (N, C, H, W), got shape {tuple(pixels.shape)}")
    images, _, height, width = pixels.shape
    out_h, out_w = height * scale, width * scale
    if out is not None and (out.ndim != 4 or out.shape[0] != images or out.shape[-2:] != (out_h, out_w) or (
            out_channels is not None and out.shape[1] != out_channels)):
        raise ValueError(f"out has shape {tuple(out.shape)}, expected ({images}, C, {out_h}, {out_w})")
    if out is not None:
        out_channels = out.shape[1]
    if emit is not None and (out is not None or images != 1):
        raise ValueError(f"emit needs one image and no out buffer, got {images} images and out={out is not None}")

    feather = overlap // 2 if feather is None else feather
    window = None
    if fixed_window:
        if tile <= 0:
            raise ValueError("fixed_window needs a tile size > 0")
        window = fixed_window_size(tile, overlap, feather, multiple_of)
    rows, half_y = _plan_axis(height, tile, overlap, feather, max(1, multiple_of), window)
    cols, half_x = _plan_axis(width, tile, overlap, feather, max(1, multiple_of), window)

    if len(rows) == 1 and len(cols) == 1:  # fast path: identical to the untiled call
        result = fn(pixels)
        _check_output(result, images, out_channels, out_h, out_w)
        if progress is not None:
            progress(1.0)
        if emit is not None:
            emit(0, result.float())
            return None
        if out is None:
            return result.float()
        return out.copy_(result)

    row_weights = [_axis_weight(span, half_y, scale, pixels.device) for span in rows]
    col_weights = [_axis_weight(span, half_x, scale, pixels.device) for span in cols]
    tiles = [(n, r, c) for n in range(images) for r in range(len(rows)) for c in range(len(cols))]
    step = max(1, batch)
    win_h, win_w = rows[0].size, cols[0].size  # all windows share one shape (see module docstring)
    band_row, band_top = -1, 0  # with emit: the tile row whose band ``out`` is, and its first output row
    band_rows = max(span.hi - span.lo for span in rows) * scale
    storage: torch.Tensor | None = None  # with emit: the one band buffer, reused for every tile row

    for first in range(0, len(tiles), step):
        group = tiles[first:first + step]
        inputs = torch.cat([
            pixels[n:n + 1, :, rows[r].start:rows[r].start + win_h, cols[c].start:cols[c].start + win_w]
            for n, r, c in group
        ])
        result = fn(inputs)
        _check_output(result, len(group), out_channels, win_h * scale, win_w * scale)
        if emit is None:
            if out is None:
                # Allocated only now because C' may come from the first tile.
                out = torch.zeros(images, result.shape[1], out_h, out_w, dtype=torch.float32, device=pixels.device)
                out_channels = out.shape[1]
            elif first == 0:
                out.zero_()
        for k, (n, r, c) in enumerate(group):
            ys, xs = rows[r], cols[c]
            if emit is not None and r != band_row:
                if storage is None:
                    storage = torch.empty(1, result.shape[1], band_rows, out_w, dtype=torch.float32,
                                          device=pixels.device)
                out = _next_band(storage, out, band_top, ys.lo * scale, ys.hi * scale, emit)
                out_channels = out.shape[1]
                band_row, band_top = r, ys.lo * scale
            assert out is not None
            src = result[k, :, (ys.lo - ys.start) * scale:(ys.hi - ys.start) * scale,
                         (xs.lo - xs.start) * scale:(xs.hi - xs.start) * scale].to(out.dtype)
            dst = out[n if emit is None else 0, :, ys.lo * scale - band_top:ys.hi * scale - band_top,
                      xs.lo * scale:xs.hi * scale]
            wy, wx = row_weights[r], col_weights[c]
            if wy is None and wx is None:
                dst.add_(src)
            else:
                wy = torch.ones(dst.shape[-2], device=dst.device) if wy is None else wy
                wx = torch.ones(dst.shape[-1], device=dst.device) if wx is None else wx
                dst.addcmul_(src, (wy[:, None] * wx[None, :]).to(out.dtype))
        del result, inputs
        if progress is not None:
            progress((first + len(group)) / len(tiles))
    assert out is not None
    if emit is not None:
        emit(band_top, out)
        return None
    return out


def fixed_window_size(tile: int, overlap: int, feather: int | None = None, multiple_of: int = 1) -> int:
    """The side of the largest window :func:`run_tiled` makes for this tile size: every window fits in it.

    A core is at most ``tile`` pixels, and a window adds ``overlap`` plus at most ``feather`` on each side.
    """
    feather = overlap // 2 if feather is None else feather
    return _round_up(tile + 2 * (overlap + feather), max(1, multiple_of))


def _next_band(storage: torch.Tensor, band: torch.Tensor | None, band_top: int, top: int, bottom: int,
               emit: RowsFn) -> torch.Tensor:
    """The float band for output rows ``[top, bottom)`` in ``storage``.

    The rows of ``band`` above ``top`` are emitted first. The rows ``band`` shares with the new one keep
    their partial sums, so accumulation goes on exactly as it would in a full-size buffer. Only those few
    shared rows are copied aside; the band itself is reused.
    """
    carried = None
    if band is not None:
        if top > band_top:
            emit(band_top, band[:, :, :top - band_top])
        carried = band[:, :, top - band_top:].clone()
    new = storage[:, :, :bottom - top]
    new.zero_()
    if carried is not None:
        new[:, :, :carried.shape[-2]].copy_(carried)
    return new


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` means an allocation failed (GPU or CPU)."""
    if isinstance(error, (torch.cuda.OutOfMemoryError, MemoryError)):
        return True
    oom = getattr(torch, "OutOfMemoryError", None)
    if oom is not None and isinstance(error, oom):
        return True
    if isinstance(error, RuntimeError):
        message = str(error)
        return "out of memory" in message or "DefaultCPUAllocator: can't allocate memory" in message
    return False


def run_with_backoff(
    fn: TileFn,
    pixels: torch.Tensor,
    *,
    scale: int,
    tile: int,
    overlap: int,
    out: torch.Tensor | None = None,
    out_channels: int | None = None,
    batch: int = 1,
    progress: Callable[[float], None] | None = None,
    feather: int | None = None,
    multiple_of: int = 1,
    min_tile: int = MIN_TILE,
    emit: RowsFn | None = None,
    fixed_window: bool = False,
) -> torch.Tensor | None:
    """:func:`run_tiled`, retried with smaller tiles when memory runs out.

    On out-of-memory the batch is halved first (when above 1), then the tile
    size, and the whole image is redone from scratch (progress starts over;
    with ``emit``, rows are emitted again from row 0).
    ``tile=0`` tries the whole image first. Gives up, re-raising the error,
    when the tile would go below ``min_tile``.

    Arguments are those of :func:`run_tiled`.
    """
    scale = _check_scale(scale)
    height, width = pixels.shape[-2:]
    if out is None and out_channels is not None and emit is None:
        # Allocated once here so that retries reuse it instead of reallocating the largest buffer.
        out = torch.empty(pixels.shape[0], out_channels, height * scale, width * scale,
                          dtype=torch.float32, device=pixels.device)
    while True:
        try:
            return run_tiled(fn, pixels, scale=scale, tile=tile, overlap=overlap, out=out, out_channels=out_channels,
                             batch=batch, progress=progress, feather=feather, multiple_of=multiple_of, emit=emit,
                             fixed_window=fixed_window)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            # A tile larger than the image ran it whole, so halve from the image size.
            size = max(height, width) if tile <= 0 else min(tile, max(height, width))
            if batch <= 1 and size // 2 < min_tile:
                raise
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
        # Out of the except block, so the traceback (and the tensors its frames hold) is gone.
        gc.collect()
        if pixels.device.type == "cuda":
            torch.cuda.empty_cache()
        if batch > 1:
            log.warning("out of memory with %d tiles per batch (%s); retrying with %d", batch, message, batch // 2)
            batch //= 2
        else:
            log.warning("out of memory with tile size %s (%s); retrying with tile size %d",
                        "whole image" if tile <= 0 else tile, message, size // 2)
            tile = size // 2


def _available_memory(device: torch.device) -> int | None:
    """Bytes a new allocation can get on ``device``, or None when unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        # Memory PyTorch has cached but not handed out is free to us too.
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


#: The tile side (input pixels) of a stage on Vulkan under ``tile="auto"`` where the device does not say its memory.
#: An x4 RRDBNet tile of 256² holds a few hundred MB of activations, which any GPU with 1 GiB has; the tiler halves
#: it on out-of-memory as on CUDA.
VULKAN_TILE = 256


def vulkan_tile_size(pixels_shape: Sequence[int], *, memory_bytes: int | None, scale: int, overlap: int = 0,
                     bytes_per_output_pixel: int = DEFAULT_BYTES_PER_OUTPUT_PIXEL,
                     memory_fraction: float = DEFAULT_MEMORY_FRACTION) -> int:
    """:func:`auto_tile_size` for a stage on a Vulkan device with ``memory_bytes`` of device memory: the output
    stays on the host, so only a tile's working memory counts. :data:`VULKAN_TILE` where the memory is unknown.

    Returns:
        0 when the whole image fits, otherwise a multiple of 32 between 64 and 2048.
    """
    if not memory_bytes:
        return VULKAN_TILE
    height, width = int(pixels_shape[-2]), int(pixels_shape[-1])
    per_input_pixel = bytes_per_output_pixel * scale * scale
    budget = memory_bytes * memory_fraction
    if height * width * per_input_pixel <= budget:
        return 0
    side = math.isqrt(max(0, int(budget / per_input_pixel))) - 2 * (overlap + overlap // 2)
    return min(2048, max(64, side // 32 * 32))


def auto_tile_size(
    pixels_shape: Sequence[int],
    *,
    device: torch.device,
    scale: int,
    bytes_per_output_pixel: int = DEFAULT_BYTES_PER_OUTPUT_PIXEL,
    memory_fraction: float = DEFAULT_MEMORY_FRACTION,
    overlap: int = 0,
    output_bytes_per_value: int = 4,
) -> int:
    """Guess a tile size that fits in the memory of ``device``.

    The estimate is deliberately rough; :func:`run_with_backoff` corrects it.

    Args:
        pixels_shape: Shape of the input, ``(..., H, W)``.
        device: Where the stage runs; CUDA uses the free GPU memory, the CPU
            ``MemAvailable`` from ``/proc/meminfo``.
        scale: Integer output/input size ratio.
        bytes_per_output_pixel: Working memory of the stage per output pixel.
        memory_fraction: Share of the available memory a tile may use.
        overlap: Context pixels added to each side of a tile (the feather
            band of :func:`run_tiled`'s default is accounted for too).
        output_bytes_per_value: What the one full-size buffer holds per value:
            4 for the float32 result, 1 or 2 where finished rows go straight
            into a uint8/uint16 image (``run_tiled(emit=...)``).

    Returns:
        0 when the whole image fits comfortably (no tiling), otherwise a
        multiple of 32 between 64 and 2048; 512 when the memory is unknown.
    """
    height, width = int(pixels_shape[-2]), int(pixels_shape[-1])
    channels = int(pixels_shape[-3]) if len(pixels_shape) >= 3 else 3
    available = _available_memory(device)
    if available is None:
        return 512
    per_input_pixel = bytes_per_output_pixel * scale * scale
    # The full-size output buffer is allocated regardless of tiling.
    budget = (available - height * width * scale * scale * channels * output_bytes_per_value) * memory_fraction
    if height * width * per_input_pixel <= budget:
        return 0
    side = math.isqrt(max(0, int(budget / per_input_pixel))) - 2 * (overlap + overlap // 2)
    return min(2048, max(64, side // 32 * 32))
