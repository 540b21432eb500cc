"""The pipeline: parse stage strings, check the chain, run it, convert back.

``Remasterer`` is the one entry point the library, the CLI and the server share.
It owns everything around a stage — device and precision, channel conversion,
padding to size requirements, tiling, alpha, output checks — so stages stay
small image operations.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from remaster import io
from remaster.errors import ImageTooLargeError, RemasterError, StageError, UsageError
from remaster.io.conversion import returns_integers
from remaster.io.encoding import saves_integers
from remaster.io.image import Image
from remaster.io.intbuffer import IntegerBuffer
from remaster.pipeline import devices, transfer
from remaster.pipeline.artifact_run import CompileSettings
from remaster.pipeline.channels import RowSink, to_gray
from remaster.pipeline.checks import CallerStop
from remaster.pipeline.configured import (
    ConfiguredStage,
    default_upscaler,
    from_stage_object,
    resolve_spec,
)
from remaster.pipeline.execute import StageExecutor
from remaster.pipeline.options import PipelineOptions, precision_request
from remaster.pipeline.plan import Plan, make_plan, ran_report
from remaster.pipeline.stage import PrepareContext, RunContext, Stage, scaled_size
from remaster.plugin.host import PluginHost, get_host
from remaster.plugin.sequence import FrameSequence
from remaster.plugin.specs import precision_name
from remaster.plugin.syntax import StageCall, parse_pipeline, parse_stage
from remaster.plugin.vulkan import VulkanDevice
from remaster.weights import get_manager

__all__ = ["Remasterer", "prepare_context"]

log = logging.getLogger("remaster.pipeline")


def prepare_context(device: torch.device, dtype: torch.dtype, *, host: PluginHost,
                    options: PipelineOptions | None = None, vulkan: VulkanDevice | None = None,
                    pipeline_vulkan: VulkanDevice | None = None) -> PrepareContext:
    """The :class:`PrepareContext` for a stage on ``device``/``dtype`` (computing on ``vulkan``, if given) in a
    pipeline over ``host`` with ``options``.

    A pipeline the stage builds (:meth:`PrepareContext.pipeline`) inherits the options on ``device``, precision
    aside (each inner stage chooses its own from what the user asked for, per image) — on the running pipeline's
    Vulkan device, ``pipeline_vulkan``, when it has one (``vulkan`` by default): a face stage that runs on the CPU
    in a Vulkan pipeline still upscales its background on Vulkan.
    """
    inherit = pipeline_vulkan or vulkan
    inherited = (options or PipelineOptions()).replace(device=str(inherit if inherit is not None else device),
                                                       precision="auto")

    def build(stages: str | Sequence[StageCall | str | Stage], **overrides: Any) -> Remasterer:
        return Remasterer(stages, inherited.replace(**overrides), host=host)

    return PrepareContext(device=device, dtype=dtype, precision=precision_name(dtype),
                          weights=get_manager(host), host=host, build_pipeline=build,
                          half_weights=inherited.half_weights, vulkan=vulkan)


class Remasterer:
    """Runs a pipeline of stages on images.

    Args:
        stages: A list of :class:`StageCall` (``StageCall("bicubic", {"scale": 2})``), stage strings or stage
            objects; a pipeline string (``"degrade.jpeg(quality=30) | bicubic(scale=2)"``); or ``None`` for
            :data:`DEFAULT_UPSCALER` at x4. Text is read here, once.
        options: How to run (:class:`PipelineOptions`: device, precision, tile, limits, half weights,
            compilation); default ``PipelineOptions()``.
        host: Plugin host to take stages from (default: the process-wide one).
        **overrides: Fields of :class:`PipelineOptions` given by name (``device="cpu", tile=256``), applied on
            top of ``options``.

    Raises:
        UsageError: an unknown option or a value that cannot work (fp16 on a CPU, say).
        UnknownStageError: a stage name no plugin registered.

    Example:
        >>> out = Remasterer(["degrade.downsample(scale=0.25)", "bicubic(scale=4)"], device="cpu").run(pil_img)
    """

    def __init__(self, stages: str | Sequence[StageCall | str | Stage] | None = None,
                 options: PipelineOptions | None = None, *, host: PluginHost | None = None, **overrides: Any):
        self.options = (options or PipelineOptions()).replace(**overrides) if overrides else (
            options or PipelineOptions())
        self.host = host.ensure_loaded() if host is not None else get_host()
        if stages is None:
            stages = default_upscaler(self.host)
        items = parse_pipeline(stages) if isinstance(stages, str) else list(stages)
        if not items:
            raise UsageError("the pipeline has no stages")
        self.stages: list[ConfiguredStage] = [self._configure(item) for item in items]
        self.device = devices.resolve_device(self.options.device)
        #: The Vulkan device the stages that declare ``StageInfo.vulkan`` compute on (their tensors stay on
        #: :attr:`device`, the CPU), or ``None``.
        self.vulkan = devices.pick_vulkan(self.options.device, self.host.vulkan_devices,
                                          runs_on_vulkan=any(stage.info.vulkan for stage in self.stages))
        self.precision = self.options.precision
        if self.precision == "fp16" and self.device.type == "cpu" and self.vulkan is None:
            raise UsageError("fp16 is not supported on CPU, use bf16 or fp32",
                             hint="fp16 is for CUDA devices ({opt:device_cuda})")
        self.max_pixels = self.options.max_pixels if self.options.max_pixels is not None else io.max_pixels_from_env()
        self._noted: set[tuple[int, str]] = set()
        self._plans: dict[tuple[str, int], Plan] = {}
        self._copy_engines: dict[torch.device, transfer.CopyEngine | None] = {}
        self._executor = StageExecutor(self.options, self._prepare_context, self._copy_engine,
                                       CompileSettings.from_environment())
        self.sequence: FrameSequence | None = None  # for_sequence() sets it on its view
        # A stage that cannot run on its device at all fails now, not after loading images; one that cannot run
        # on Vulkan says so once and runs on the CPU.
        for step in self.plan_for(8).steps:
            if step.note is not None:
                log.warning("%s: %s", step.stage.name, step.note)

    @property
    def tile(self) -> int | str:
        """:attr:`PipelineOptions.tile`."""
        return self.options.tile

    @property
    def max_output_pixels(self) -> int:
        """:attr:`PipelineOptions.max_output_pixels`."""
        return self.options.max_output_pixels

    @property
    def half_weights(self) -> bool:
        """:attr:`PipelineOptions.half_weights`."""
        return self.options.half_weights

    @property
    def compile(self) -> str:
        """:attr:`PipelineOptions.compile`."""
        return self.options.compile

    @property
    def compile_backend(self) -> str | Callable[..., Any]:
        """:attr:`PipelineOptions.compile_backend`."""
        return self.options.compile_backend

    def _configure(self, item: StageCall | str | Stage) -> ConfiguredStage:
        if isinstance(item, Stage):
            return from_stage_object(item, self._prepare_context)
        if isinstance(item, str):
            item = parse_stage(item)  # text from the caller: read here, at the edge
        if not isinstance(item, StageCall):
            raise UsageError(f"a pipeline item must be a StageCall, a stage string or a Stage, "
                             f"not {type(item).__name__}")
        spec = resolve_spec(item.name, self.host)
        return ConfiguredStage(spec, spec.resolve_params(item.params), self._prepare_context)

    def __repr__(self) -> str:
        device = self.vulkan if self.vulkan is not None else self.device
        return f"Remasterer({' | '.join(map(str, self.stages))!r}, device={str(device)!r})"

    # -- planning -------------------------------------------------------------

    def plan(self, height: int, width: int, channels: int) -> tuple[int, int, int]:
        """Check the chain for an input of this size before doing any work.

        Returns:
            The output ``(height, width, channels)``.

        Raises:
            StageError: when a stage cannot take what the previous one gives.
            ImageTooLargeError: when the output would exceed ``max_output_pixels``.
        """
        sizes = self.output_sizes(height, width)
        for index, stage in enumerate(self.stages):
            accepted = stage.info.in_channels
            if channels not in accepted and not (channels == 1 and 3 in accepted):
                source = f"stage {self.stages[index - 1].name!r}" if index else "the input"
                raise StageError(
                    f"accepts {'/'.join(map(str, accepted))}-channel images but {source} gives {channels} channels",
                    path=stage.name,
                )
            channels = stage.info.channels_out(3 if channels not in accepted else channels)
            height, width = sizes[index]
            if height * width > self.max_output_pixels:
                raise ImageTooLargeError(
                    f"the output would be {width}x{height} = {height * width / 1e6:.1f} MP after stage {stage.name!r}, "
                    f"over the limit of {self.max_output_pixels:,} pixels ({self.max_output_pixels / 1e6:.1f} MP)",
                    hint="lower the scale, or raise the limit with {opt:max_output_pixels}",
                )
        return height, width, channels

    def check_header(self, header: io.Header) -> None:
        """:meth:`plan` for a file from its header alone, before it is decoded (the ``check`` of
        :func:`remaster.io.load`): a file whose output would be too large is refused at the cost of reading it.

        Raises:
            ImageTooLargeError, StageError: as :meth:`plan`, naming the file.
        """
        try:
            self.plan(header.height, header.width, header.channels)
        except RemasterError as exc:
            if header.path is not None and exc.path is None:
                exc.path = str(header.path)
            elif header.path is not None:
                exc.message, exc.path = f"{exc.path}: {exc.message}", str(header.path)
            raise

    def output_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """The ``(height, width)`` after each stage for an input of this size.

        Scale factors compose: after stage *k* the size is the input size times
        the product of the factors of stages 1..k, rounded to the nearest pixel
        (at least 1) — never a rounding of a rounding. So
        ``degrade.downsample(scale=0.25) | bicubic(scale=4)`` gives back exactly
        the input size, for any size.
        """
        sizes, factor = [], 1.0
        for stage in self.stages:
            factor *= stage.scale
            sizes.append(scaled_size(height, width, factor))
        return sizes

    def plan_for(self, bit_depth: int = 8, precision: str | None = None) -> Plan:
        """Each stage's device and precision for images of ``bit_depth`` bits per sample (computed once).

        Args:
            bit_depth: 8, 16, or 32 for float: ``auto`` keeps fp32 for 16-bit and float images.
            precision: A precision request instead of the pipeline's own (a stage that runs a pipeline of its
                own passes down what the user asked for).
        """
        requested = self.precision if precision is None else precision_request(precision)
        plan = self._plans.get((requested, bit_depth))
        if plan is None:
            plan = self._plans[(requested, bit_depth)] = make_plan(self.stages, self.device, requested, bit_depth,
                                                                            self.vulkan)
        return plan

    def precisions(self, bit_depth: int = 8) -> list[devices.PrecisionChoice]:
        """The precision each stage would run in for an image of ``bit_depth`` bits per sample.

        ``--precision auto`` keeps fp32 for 16-bit and float images, so the
        answer can differ per image; :attr:`Meta.extras` ``["stages"]`` of each
        result says what actually ran.
        """
        return [step.choice for step in self.plan_for(bit_depth).steps]

    def stage_plan(self, bit_depth: int = 8) -> list[dict[str, str]]:
        """Per stage: its name, device and precision, as ``meta.extras["stages"]`` reports what ran."""
        return self.plan_for(bit_depth).report()

    def describe(self, bit_depth: int = 8) -> str:
        """The pipeline with each stage's precision, e.g. ``"realesrgan-x4plus [bf16] | lanczos(scale=0.5) [fp32]"``.

        When 16-bit or float inputs would run in other precisions, that is said too.
        """
        plan, deep = self.plan_for(bit_depth), self.plan_for(16)
        text = plan.describe()
        if [step.dtype for step in deep.steps] != [step.dtype for step in plan.steps]:
            names = sorted({step.choice.name for step in deep.steps})
            text += f" ({'/'.join(names)} for 16-bit and float inputs)"
        return text

    # -- running --------------------------------------------------------------

    def prepare(self) -> Remasterer:
        """Build every stage and read its weights now, instead of on the first image.

        Call it before a batch so that missing weights or a broken plugin stop
        the run with one error before any image is read. Returns ``self``.

        Raises:
            WeightsNotFoundError: a stage's weights are not in the cache (the
                message says which command gets them).
            StageError: a stage could not be built.
        """
        for step in self.plan_for(8).steps:
            step.stage.instance(step.device, step.dtype, vulkan=step.vulkan)
        return self

    def run(self, img: Any, *, progress: Callable[[float], None] | None = None) -> Any:
        """Run the pipeline on ``img`` and return the result in the same kind.

        Args:
            img: A path, ``bytes``, ``PIL.Image``, numpy array (HW or HWC;
                uint8, uint16 or float in [0, 1]), torch tensor (CHW or NCHW,
                float in [0, 1]) or :class:`~remaster.Image`.
            progress: Called with the fraction done (0..1) as work proceeds.

        Returns:
            PIL in → PIL out, numpy → numpy of the same dtype and layout,
            tensor → tensor on the same device; a path, bytes or Image gives an
            :class:`~remaster.Image` (use :func:`remaster.io.save` to write it).
            For uint8/uint16 arrays and 8-bit PIL images the last stage writes
            the integers directly (``run_image(..., quantise=True)``), which
            gives the same values in less memory.
        """
        if isinstance(img, torch.Tensor) and img.ndim == 4 and img.shape[0] > 1:
            return torch.cat([self.run(item[None], progress=progress) for item in img])
        image = io.load(img, max_pixels=self.max_pixels, check=self.check_header)
        result = self.run_image(image, progress=progress, quantise=returns_integers(img, image.meta.bit_depth))
        return io.convert_like(result, img)

    def run_file(self, source: str | os.PathLike[str], target: str | os.PathLike[str], *, overwrite: bool = False,
                 quality: int | None = None, progress: Callable[[float], None] | None = None) -> tuple[Path, Image]:
        """Read ``source``, run the pipeline, write ``target`` atomically.

        Returns:
            The path written and the result image (its ``meta.extras`` holds
            what stages reported). Where saving quantises the result to the
            source's depth anyway (:func:`remaster.io.encoding.saves_integers`:
            8- and 16-bit sources, except JPEG with alpha and 16-bit into
            JPEG/WebP), it is an integer image written band by band by the
            last stage, so a huge result never exists as floats.

        Raises:
            OutputError: ``target`` exists (or is ``source``) without
                ``overwrite``: checked before any work.
        """
        image = self.read_file(source, target, overwrite=overwrite)
        result = self.run_for_file(image, target, progress=progress)
        return io.save(result, target, quality=quality, overwrite=overwrite), result

    def read_file(self, source: str | os.PathLike[str], target: str | os.PathLike[str] | None = None, *,
                  overwrite: bool = False) -> Image:
        """The first part of :meth:`run_file`: read ``source`` (within ``max_pixels``) for a run that writes ``target``.

        Raises:
            OutputError: ``target`` exists (or is ``source``) without ``overwrite``, before the file is read.
        """
        if target is not None and not overwrite:
            io.refuse_overwrite(Path(target), Path(source))
        return io.load(source, max_pixels=self.max_pixels, check=self.check_header)

    def run_for_file(self, image: Image, target: str | os.PathLike[str], *,
                     progress: Callable[[float], None] | None = None) -> Image:
        """The middle of :meth:`run_file`: :meth:`run_image` with the integer result wherever saving ``target``
        quantises to the source's depth anyway (write it with :func:`remaster.io.save`). Only ``target``'s
        extension counts: ``"result.png"`` for a result that :func:`remaster.io.encode` makes a PNG."""
        quantise = saves_integers(image.meta.bit_depth, image.alpha is not None, target)
        return self.run_image(image, progress=progress, quantise=quantise)

    def for_sequence(self, sequence: FrameSequence | None = None) -> Remasterer:
        """This pipeline, for the frames of one sequence run in order (a video, or one segment of it).

        Every :meth:`run_image` (and :meth:`run`) of the pipeline returned is the next frame of ``sequence``
        (default: a new :class:`~remaster.FrameSequence`), so stages that keep state across frames (the
        ``gfpgan`` stage's face tracks) see them as one sequence. It shares this pipeline's stages, weights
        and plans; this pipeline itself stays as it was (no sequence). Make one per sequence::

            frames = remasterer.for_sequence()
            for image in video_frames:
                frames.run_image(image, quantise=True)
        """
        view = copy.copy(self)
        view.sequence = sequence if sequence is not None else FrameSequence()
        return view

    def run_image(self, image: Image, *, progress: Callable[[float], None] | None = None,
                  precision: str | None = None, quantise: bool = False,
                  sequence: FrameSequence | None = None) -> Image:
        """Run every stage on an :class:`Image` (the internal representation).

        Args:
            image: The input; its ``meta.bit_depth`` takes part in the ``auto`` precision choice.
                An integer image is converted to floats first (:func:`remaster.io.dequantised`):
                stages always get float images.
            progress: As in :meth:`run`.
            precision: Overrides the precision request for this call (a stage that runs
                a pipeline of its own passes down what the user asked for).
            quantise: Return an integer image (:mod:`remaster.io.image`): ``uint8`` for 8-bit
                sources, ``uint16`` for 16-bit; float (32-bit) sources stay float. A tiled
                last stage then writes each finished band of rows straight into it,
                quantised on its device, instead of making a full-size float result; the
                integers are exactly ``to_numpy`` of the float result.
            sequence: This image is the next frame of ``sequence`` (default: the one :meth:`for_sequence`
                gave, else none: a still image). The sequence moves on one frame, and each stage gets it
                as :attr:`RunContext.sequence`.

        The result's ``meta.extras["stages"]`` lists, per stage, the device and the
        precision it actually ran in (after any fp32 retry).
        """
        image = io.dequantised(image)
        out_h, out_w, _ = self.plan(image.height, image.width, image.channels)
        plan = self.plan_for(image.meta.bit_depth, precision)
        sequence = sequence if sequence is not None else self.sequence
        if sequence is not None:
            sequence.advance()
        writer = sink = None
        if quantise and image.meta.bit_depth in (8, 16):
            # The last stage's rows cross to the host through pinned buffers when it runs on a GPU.
            copier = transfer.DeviceToHost(self._copy_engine(plan.steps[-1].device))
            writer = IntegerBuffer(out_h, out_w, np.uint8 if image.meta.bit_depth == 8 else np.uint16,
                                   alpha=image.alpha is not None, copier=copier)
            sink = RowSink(writer, gray=image.meta.grayscale)
        sizes = self.output_sizes(image.height, image.width)
        pixels: torch.Tensor | None = image.pixels
        alpha: torch.Tensor | None = image.alpha
        extras = dict(image.meta.extras)
        ran: list[dict[str, Any]] = []
        total = len(self.stages)
        for index, step in enumerate(plan.steps):
            stage = step.stage

            def stage_progress(fraction: float, _index: int = index) -> None:
                if progress is None:
                    return
                try:
                    progress((_index + min(max(fraction, 0.0), 1.0)) / total)
                except Exception as exc:  # the caller stops the run (e.g. a cancel): not a stage's failure
                    raise CallerStop(exc) from exc

            note = step.choice.note
            if note is not None and (index, note) not in self._noted:
                self._noted.add((index, note))
                log.warning("%s: %s (--precision %s applies to the stages that support it)",
                            stage.name, note, plan.requested)
            ctx = RunContext(device=step.device, dtype=step.dtype, precision=plan.requested,
                             bit_depth=image.meta.bit_depth, out_size=sizes[index], sequence=sequence,
                             vulkan=step.vulkan)
            assert pixels is not None  # only the last stage writes into the sink
            try:
                last = index == total - 1
                pixels, alpha, ran_dtype = self._executor.run_stage(stage, pixels, alpha, ctx, stage_progress,
                                                                    sink=sink if last else None)
                stage_progress(1.0)
            except CallerStop as stop:
                raise stop.error from None
            extras.update(ctx.report)
            ran.append({**ran_report(stage, step.device, ran_dtype, step.vulkan),
                        **stage.run_notes(step.device, ran_dtype, step.vulkan)})
        extras["stages"] = ran
        meta = type(image.meta)(**{**image.meta.__dict__, "extras": extras})
        if writer is not None:
            return writer.image(meta)
        assert pixels is not None
        if image.meta.grayscale and pixels.shape[1] == 3:
            pixels = to_gray(pixels)  # grayscale stays grayscale even when a stage needed RGB
        result = image.with_pixels(pixels.float().cpu(), None if alpha is None else alpha.float().cpu())
        result.meta = meta
        return result

    def _prepare_context(self, device: torch.device, dtype: torch.dtype, *,
                         vulkan: VulkanDevice | None = None) -> PrepareContext:
        return prepare_context(device, dtype, host=self.host, options=self.options, vulkan=vulkan,
                               pipeline_vulkan=self.vulkan)

    def _copy_engine(self, device: torch.device) -> transfer.CopyEngine | None:
        """The pinned-memory copy engine for ``device`` (one per device and pipeline: it owns a CUDA stream)."""
        if device not in self._copy_engines:
            self._copy_engines[device] = transfer.engine_for(device)
        return self._copy_engines[device]
