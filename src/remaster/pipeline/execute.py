"""Running one stage of a pipeline: device, alpha, padding, tiling, compilation and autocast, the contract checks.

:class:`StageExecutor` is what :class:`~remaster.Remasterer` hands each stage to. It gets what it needs passed in
(the options, the context factory and the copy engines) and never imports the facade.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import replace
from typing import NamedTuple

import torch

from remaster.errors import RemasterError, StageContractError, StageError
from remaster.pipeline import devices, tiling, transfer
from remaster.pipeline.artifact_run import BUCKET, ArtifactRun, CompileSettings, compiled_tile
from remaster.pipeline.channels import (
    RowSink,
    fill_transparent,
    pad_to_multiple,
    pad_to_requirements,
    resample_to,
    row_chunks,
    to_gray,
    write_bands,
)
from remaster.pipeline.checks import BandChecks
from remaster.pipeline.compiling import DEFAULT_COMPILE_TILE, CompiledRun
from remaster.pipeline.configured import ConfiguredStage, ContextFactory
from remaster.pipeline.options import PipelineOptions
from remaster.pipeline.stage import RunContext, Stage, scaled_size, tile_overlap_of
from remaster.plugin.specs import StageInfo, Tiling

__all__ = ["StageExecutor", "StageOutput", "CopyEngines"]

log = logging.getLogger("remaster.pipeline")

#: The pinned-memory copy engine for a device (``None``: plain copies).
CopyEngines = Callable[[torch.device], "transfer.CopyEngine | None"]


class StageOutput(NamedTuple):
    """What one stage gave: colour and alpha (``None`` where they went to the sink), and the dtype it ran in."""

    pixels: torch.Tensor | None
    alpha: torch.Tensor | None
    dtype: torch.dtype


class StageExecutor:
    """Runs one configured stage on colour (and alpha), held to its contract.

    Args:
        options: The pipeline's options (tiling, compilation).
        context: Makes each stage's :class:`PrepareContext`.
        copy_engine: The copy engine for a device.
        compiling: Where compiled artifacts live and how they are made (``None``: no artifacts; ``compile="on"``
            then compiles in the process).
    """

    def __init__(self, options: PipelineOptions, context: ContextFactory, copy_engine: CopyEngines,
                 compiling: CompileSettings | None = None) -> None:
        self.options = options
        self.compiling = compiling
        self.context = context
        self.copy_engine = copy_engine

    def run_stage(self, stage: ConfiguredStage, pixels: torch.Tensor, alpha: torch.Tensor | None, ctx: RunContext,
                  progress: Callable[[float], None], *, sink: RowSink | None = None) -> StageOutput:
        """Run one stage on colour (and alpha); the result has the size ``ctx.out_size`` (the pipeline's plan).

        With ``sink`` (the last stage of a run that wants integers) the result goes into it instead, and the
        output's pixels and alpha are ``None``. A tiled stage at its planned size writes band by band.
        """
        info = stage.info
        assert ctx.out_size is not None
        final_size = ctx.out_size
        engine = self.copy_engine(ctx.device)
        pixels = transfer.to_device(pixels, ctx.device, engine)
        if pixels.shape[1] not in info.in_channels:
            pixels = pixels.expand(-1, 3, -1, -1)  # plan() allowed only gray -> RGB here
        height, width = pixels.shape[-2:]
        alpha_runs = alpha is not None and stage.alpha == "process"
        # When alpha goes through the stage too, colour and alpha each take half of the stage's progress.
        share = 0.5 if alpha_runs else 1.0
        # A stage that resamples by itself is asked for the planned size; a fixed-scale network runs natively.
        ctx = replace(ctx, progress=lambda fraction: progress(share * fraction),
                      out_size=final_size if stage.run_scale == stage.scale
                      else scaled_size(height, width, stage.run_scale))
        if alpha is not None and info.fill_transparent and stage.run_scale != 1:
            alpha = transfer.to_device(alpha, ctx.device, engine)
            pixels = fill_transparent(pixels, alpha)
        colour_rows = None if sink is None else sink.colour_rows
        alpha_rows = None if sink is None else sink.alpha_rows
        # Band by band only when no resampling follows: the stage's own rows are then the final ones.
        banded = sink is not None and stage.run_scale == stage.scale and scaled_size(
            height, width, stage.run_scale) == final_size
        result, ran = self.checked_run(stage, pixels, ctx, rows=colour_rows if banded else None)
        if result is not None and result.shape[-2:] != final_size:  # a fixed-scale network ran natively;
            result = resample_to(result, final_size)                    # a good filter does the rest
        if result is not None and colour_rows is not None:
            write_bands(colour_rows, result)
            result = None
        if alpha is not None:
            alpha = transfer.to_device(alpha, ctx.device, engine)
            if alpha_runs:
                gray_alpha = alpha.expand(-1, 3 if 1 not in info.in_channels else 1, -1, -1)
                alpha_ctx = replace(ctx, report={}, progress=lambda fraction: progress(0.5 + fraction / 2),
                                    sequence=None)  # the alpha plane is not the sequence's next frame
                alpha, _ = self.checked_run(stage, gray_alpha, alpha_ctx, rows=alpha_rows if banded else None)
                # Folded back with luma weights, as RealESRGANer's BGR2GRAY does, so results match it.
                alpha = to_gray(alpha) if alpha is not None and alpha.shape[1] == 3 else alpha
        if alpha is not None and alpha.shape[-2:] != final_size:
            alpha = resample_to(alpha, final_size)
        if alpha is not None and alpha_rows is not None:
            write_bands(alpha_rows, alpha)
            alpha = None
        return StageOutput(result, alpha, ran)

    def checked_run(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                    rows: tiling.RowsFn | None = None) -> tuple[torch.Tensor | None, torch.dtype]:
        """Run one stage and hold it to its contract; retry in fp32 if reduced precision gives NaN/Inf.

        The output must be ``ctx.out_size``, or ``round(input size × the stage's own scale)``
        for a stage that ignores ``ctx.out_size`` (the pipeline then resamples it).

        With ``rows``, a tiled stage hands its output over in bands of rows instead (None is
        returned); the same checks then run on the bands, after the last one.

        Returns:
            The result (or ``None``) and the dtype it ran in (fp32 after a retry).
        """
        native = scaled_size(pixels.shape[-2], pixels.shape[-1], stage.run_scale)
        checks = BandChecks()

        def checked_rows(top: int, band: torch.Tensor) -> None:
            checks.add(top, band)
            assert rows is not None
            rows(top, band)

        try:
            result = self.execute(stage, pixels, ctx, rows=checked_rows if rows is not None else None)
        except RemasterError as exc:
            if exc.path is None:  # e.g. the tiler's shape check: say which stage it was about
                exc.path = stage.name
            raise
        except Exception as exc:  # a stage's own bug or OOM: still a remaster error naming the stage
            if tiling.is_out_of_memory(exc):
                raise StageError(f"ran out of memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                 path=stage.name, hint="use {opt:tile}, or a smaller image") from exc
            raise StageError(f"failed: {type(exc).__name__}: {exc}", path=stage.name,
                             hint="run with {opt:debug} for the traceback and report it to the stage's author") from exc
        if result is None:  # went to ``rows`` band by band
            if not checks.finite:
                return self.retry_in_fp32(stage, pixels, ctx, rows)
            checks.plausible(stage.name)
            return None, ctx.dtype
        if (result.ndim != 4 or tuple(result.shape[-2:]) not in {native, ctx.out_size}
                or result.shape[0] != pixels.shape[0]):
            out_size = ctx.out_size or native
            raise StageContractError(
                f"returned shape {tuple(result.shape)}, expected (N, C, {out_size[0]}, {out_size[1]})",
                path=stage.name, hint="this is a bug in the stage; report it to its plugin's author",
            )
        checks.add(0, result)
        if not checks.finite:
            return self.retry_in_fp32(stage, pixels, ctx, rows)
        result = result.float()
        checks.plausible(stage.name)
        shares_input = result.untyped_storage().data_ptr() == pixels.untyped_storage().data_ptr()
        if result.is_inference() or shares_input:  # spandrel returns inference tensors; never clamp the input
            return result.clamp(0.0, 1.0), ctx.dtype
        return result.clamp_(0.0, 1.0), ctx.dtype  # in place: the output is the one full-size buffer we keep

    def retry_in_fp32(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                      rows: tiling.RowsFn | None) -> tuple[torch.Tensor | None, torch.dtype]:
        """After NaN/Inf: the stage once more in fp32, or the error if it already ran in fp32."""
        if ctx.dtype != torch.float32:
            log.warning("%s gave NaN/Inf in %s; running it again in fp32", stage.name, ctx.dtype)
            return self.checked_run(stage, pixels, replace(ctx, dtype=torch.float32), rows)
        raise StageContractError("produced NaN or Inf values", path=stage.name,
                                 hint="try {opt:precision_fp32}, or report it to the plugin's author")

    def window_side(self, instance: Stage, info: StageInfo, multiple_of: int) -> int:
        """The side of the windows a compiled stage runs on: the tile (``auto``: :data:`DEFAULT_COMPILE_TILE`)
        with its overlap, rounded up to ``multiple_of``."""
        tile = self.options.tile if isinstance(self.options.tile, int) else DEFAULT_COMPILE_TILE
        return tiling.fixed_window_size(tile, tile_overlap_of(instance, info), multiple_of=multiple_of)

    def execute(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                rows: tiling.RowsFn | None = None) -> torch.Tensor | None:
        """Run the stage, tiled where it may be; with ``rows``, a tiled run emits its (cropped) rows there."""
        info = stage.info
        instance = stage.instance(ctx.device, ctx.dtype, self.context, vulkan=ctx.vulkan)
        padded, pad = pad_to_requirements(pixels, info.min_size, info.multiple_of)
        scale = stage.run_scale
        tileable = scale >= 1 and float(scale).is_integer() and (
            info.tiling is Tiling.SUPPORTED
            or (info.tiling is Tiling.DISCOURAGED and isinstance(self.options.tile, int)))
        exact = scaled_size(pixels.shape[-2], pixels.shape[-1], scale)
        # Tiles are made at exactly scale × input; when the plan wants another size (an earlier stage rounded),
        # a stage that resizes by itself runs whole and makes the planned size, rather than being resampled twice.
        if ctx.out_size is not None and ctx.out_size != exact and isinstance(self.options.tile, str):
            tileable = False
        tiled = tileable and self.options.tile != 0
        # Compiled: tiles of one fixed size, one at a time, so that a single shape compiles for every image.
        compiled_run: ArtifactRun | CompiledRun | None = None
        multiple, window_tile = info.multiple_of, 0
        if (tiled and self.options.compile != "off" and getattr(instance, "compilable", False)
                and ctx.vulkan is None):  # a stage on Vulkan runs its own runtime's network, never torch's
            artifacts = stage.artifact_run(instance, ctx.device, self.options, self.compiling)
            if artifacts is not None:  # the CPU's cached artifacts: one shape per image, sides bucketed
                multiple = math.lcm(info.multiple_of, BUCKET)
                height, width = (_round_up(max(side, info.min_size), multiple) for side in pixels.shape[-2:])
                overlap = tile_overlap_of(instance, info)
                window_tile = self.options.tile if isinstance(self.options.tile, int) else compiled_tile(
                    height, width, tiling.fixed_window_size(0, overlap), multiple)
                window = tiling.fixed_window_size(window_tile, overlap, multiple_of=multiple)
                shape = (pixels.shape[0], pixels.shape[1], min(height, window), min(width, window))
                if artifacts.ready(shape, ctx.dtype, ctx.device):
                    padded = pad_to_multiple(padded, multiple)
                    pad = (padded.shape[-2] - pixels.shape[-2], padded.shape[-1] - pixels.shape[-1])
                    compiled_run = artifacts
                else:
                    multiple = info.multiple_of  # eager, exactly as with compile off
            elif self.options.compile == "on":  # torch.compile in the process (CUDA, or another backend)
                in_process = stage.compiled_run(instance, self.options.compile_backend)
                side = self.window_side(instance, info, info.multiple_of)
                in_process.window = (side, side)  # other sizes run eagerly
                compiled_run = in_process
        compiled = compiled_run is not None
        run = compiled_run if compiled_run is not None else instance.run
        # A stage reports progress of its own only when it gets the whole image in one call; per tile, the tiler does.
        # Neither a tile, the tiler's single call, nor a padded image can be resized to the planned size of the whole.
        # A tile is not a frame: state kept across a sequence's frames is for stages that see the whole frame.
        tile_ctx = replace(ctx, progress=None, out_size=None, sequence=None)
        whole_ctx = ctx if not (any(pad) or tiled) else replace(ctx, out_size=None)

        # A stage holding its weights in the compute precision casts for itself (half weights): no autocast; nor
        # for a stage on Vulkan, whose runtime computes in ctx.dtype on the device.
        casts_itself = getattr(instance, "weights_dtype", None) == ctx.dtype != torch.float32
        autocast_dtype = torch.float32 if casts_itself or ctx.vulkan is not None else ctx.dtype

        def call(x: torch.Tensor) -> torch.Tensor:
            whole = x.shape[-2:] == padded.shape[-2:] and x.shape[0] == padded.shape[0]
            with torch.no_grad(), devices.autocast_context(ctx.device, autocast_dtype):
                out = run(x, whole_ctx if whole and not compiled else tile_ctx)
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():  # checked per tile: the tiler casts
                got = out.dtype if isinstance(out, torch.Tensor) else type(out).__name__
                raise StageContractError(f"returned {got} pixels instead of a float tensor", path=stage.name,
                                         hint="this is a bug in the stage; report it to its plugin's author")
            return out

        if tiled:
            integer_scale = int(scale)
            overlap = tile_overlap_of(instance, info)  # the built stage knows its parameters; the spec does not
            tile = self.options.tile
            if tile == "auto" and isinstance(compiled_run, ArtifactRun):
                tile = window_tile
            elif tile == "auto" and ctx.vulkan is not None:  # from the device's memory, where it says
                tile = tiling.vulkan_tile_size(padded.shape, memory_bytes=ctx.vulkan.memory_bytes,
                                               scale=integer_scale, overlap=overlap)
            elif tile == "auto":
                tile = DEFAULT_COMPILE_TILE if compiled else tiling.auto_tile_size(
                    padded.shape, device=ctx.device, scale=integer_scale, overlap=overlap,
                    output_bytes_per_value=4 if rows is None else 2)  # rows: into a uint8/uint16 image
            wanted_h, wanted_w = scaled_size(pixels.shape[-2], pixels.shape[-1], scale)

            def cropped_rows(top: int, band: torch.Tensor) -> None:
                # Padding went to the bottom/right: only the top-left corner is wanted.
                if rows is not None and top < wanted_h:
                    # In small chunks, so that the checks and the quantisation make no band-sized temporaries.
                    for offset, chunk in row_chunks(band[:, :, :wanted_h - top, :wanted_w]):
                        rows(top + offset, chunk)

            result = tiling.run_with_backoff(call, padded, scale=integer_scale, tile=int(tile),
                                             overlap=overlap, multiple_of=multiple,
                                             # Batching tiles fills a GPU; on a CPU it only adds memory.
                                             batch=1 if ctx.device.type == "cpu" or compiled else 4,
                                             progress=ctx.progress, emit=cropped_rows if rows is not None else None,
                                             fixed_window=compiled)
            if result is None:
                return None
        else:
            result = call(padded)
        if any(pad):  # padding went to the bottom/right, so the wanted output is the top-left corner
            height, width = scaled_size(pixels.shape[-2], pixels.shape[-1], scale)
            result = result[..., :height, :width]
        return result


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
