"""The pipeline: parse stage strings, check the chain, run it, convert back.

``Remasterer`` is the one entry point the library, the CLI and the server share.
It owns everything around a stage — device and precision, channel conversion,
padding to size requirements, tiling, alpha, output checks — so stages stay
small image operations.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from remaster import io
from remaster.errors import ImageTooLargeError, RemasterError, StageContractError, StageError, UsageError
from remaster.io.conversion import returns_integers
from remaster.io.encoding import saves_integers
from remaster.io.image import LUMA_BT601, Image
from remaster.io.intbuffer import IntegerBuffer
from remaster.pipeline import devices, tiling, transfer
from remaster.pipeline.compiling import DEFAULT_COMPILE_TILE, CompiledRun
from remaster.pipeline.resample import resize
from remaster.pipeline.stage import PrepareContext, RunContext, Stage, scaled_size, tile_overlap_of
from remaster.pipeline.syntax import MODEL_FILE_SUFFIXES, parse_pipeline, parse_stage, split_top_level
from remaster.plugin.host import PluginHost, get_host
from remaster.plugin.specs import StageInfo, StageSpec, Tiling
from remaster.weights import get_manager

__all__ = ["Remasterer", "ConfiguredStage", "parse_pipeline", "split_top_level", "resolve_spec", "DEFAULT_UPSCALER", "default_upscaler", "DEFAULT_MAX_OUTPUT_PIXELS", "prepare_context"]

log = logging.getLogger(__name__)

#: What ``Remasterer()`` and ``remaster upscale`` run when no stages or model are given.
DEFAULT_UPSCALER = "realesrgan-x4plus"

#: Used instead, with a warning, when the remaster-realesrgan plugin is not installed.
FALLBACK_UPSCALER = "lanczos"

#: Largest output, in pixels, a run may produce unless raised; checked before any work.
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000

# Values a stage may return that are clamped without complaint: resampling and sharp
# networks overshoot [0, 1] a little; anything past these bounds is a scaling mistake
# (e.g. 0-255 data), which clamping would turn silently into a white or black image.
_PLAUSIBLE_LOW, _PLAUSIBLE_HIGH = -1.0, 2.0




def default_upscaler(host: PluginHost) -> str:
    """:data:`DEFAULT_UPSCALER` if a plugin provides it, else Lanczos with a warning."""
    if DEFAULT_UPSCALER in host.stages:
        return DEFAULT_UPSCALER
    log.warning("%s is not installed (pip install remaster-realesrgan); upscaling with %s instead",
                DEFAULT_UPSCALER, FALLBACK_UPSCALER)
    return FALLBACK_UPSCALER


def resolve_spec(name: str, host: PluginHost) -> StageSpec:
    """The spec for a stage name, or for a model file path (asked of the plugins)."""
    if name in host.stages:
        return host.stages.get(name)
    if name.lower().endswith(MODEL_FILE_SUFFIXES) or os.sep in name or Path(name).is_file():
        return host.stage_from_file(Path(name).expanduser())
    return host.stages.get(name)  # raises UnknownStageError with close matches




@dataclass
class ConfiguredStage:
    """A stage with its parameters resolved; the implementation is built on first use.

    Attributes:
        spec: The registered description.
        params: Validated parameters including defaults.
    """

    spec: StageSpec
    params: dict[str, Any]
    _instance: Stage | None = field(default=None, repr=False)
    _prepared_for: tuple[torch.device, torch.dtype] | None = field(default=None, repr=False)
    _compiled: CompiledRun | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def info(self) -> StageInfo:
        return self.spec.info

    @property
    def scale(self) -> float:
        """The factor the user asked for."""
        return self.spec.info.scale_for(self.params)

    @property
    def run_scale(self) -> float:
        """The factor the stage itself runs at (its native one when the pipeline resamples the rest)."""
        return self.spec.info.scale if self.spec.info.resample else self.scale

    @property
    def alpha(self) -> str:
        """How alpha passes: a stage parameter named ``alpha`` overrides ``StageInfo.alpha``."""
        return str(self.params.get("alpha") or self.spec.info.alpha)

    def __str__(self) -> str:
        changed = {k: v for k, v in self.params.items() if any(p.name == k and p.default != v for p in self.spec.params)}
        return self.name + (f"({', '.join(f'{k}={v!r}' for k, v in changed.items())})" if changed else "")

    def run_notes(self, dtype: torch.dtype) -> dict[str, Any]:
        """What ``meta.extras["stages"]`` says about how the last run in ``dtype`` went, besides device and precision:
        ``weights`` (``"fp16"``/``"bf16"``) when the stage ran with half weights; with ``compile``, ``compiled``
        (the backend, or ``"eager"`` after a failure) and ``compile_seconds`` on the run that compiled."""
        notes: dict[str, Any] = {}
        weights = getattr(self._instance, "weights_dtype", None)
        if weights is not None and weights == dtype != torch.float32:
            notes["weights"] = devices.precision_name(weights)
        if self._compiled is not None:
            notes.update(self._compiled.take_report())
        return notes

    def compiled_run(self, instance: Stage, backend: str | Callable[..., Any]) -> CompiledRun:
        """The stage's ``run`` compiled (once per pipeline; compilation itself happens on the first call)."""
        if self._compiled is None:
            self._compiled = CompiledRun(instance.run, name=self.name, backend=backend)
        return self._compiled

    def instance(self, device: torch.device, dtype: torch.dtype,
                 context: Callable[[torch.device, torch.dtype], PrepareContext] | None = None) -> Stage:
        """The stage object, built and prepared for ``device``/``dtype`` once.

        ``context`` makes the :class:`PrepareContext` (the running
        :class:`Remasterer`'s host, weights and limits); without one, the
        process-wide plugin host's.
        """
        if self._instance is None:
            factory = self.spec.load_factory()
            try:
                self._instance = factory(**self.params)
            except RemasterError:
                raise
            except Exception as exc:
                raise StageError(f"could not be built: {type(exc).__name__}: {exc}", path=self.name) from exc
        if self._prepared_for != (device, dtype):
            try:
                self._instance.prepare((context or _default_context)(device, dtype))
            except RemasterError:
                raise
            except Exception as exc:  # a plugin's own failure while loading its model: name the stage
                raise StageError(f"could not be prepared: {type(exc).__name__}: {exc}", path=self.name) from exc
            self._prepared_for = (device, dtype)
        return self._instance


def prepare_context(device: torch.device, dtype: torch.dtype, *, host: PluginHost, tile: int | str = "auto",
                    max_pixels: int | None = None, max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
                    half_weights: bool = False, compile: bool = False,
                    compile_backend: str | Callable[..., Any] = "inductor") -> PrepareContext:
    """The :class:`PrepareContext` for a stage on ``device``/``dtype`` in a pipeline over ``host`` with these settings.

    A pipeline the stage builds (:meth:`PrepareContext.pipeline`) inherits them, precision aside.
    """
    def build(stages: str | Sequence[str | Stage], **options: Any) -> Remasterer:
        inherited: dict[str, Any] = {"host": host, "device": device, "tile": tile, "max_pixels": max_pixels,
                                     "max_output_pixels": max_output_pixels, "half_weights": half_weights,
                                     "compile": compile, "compile_backend": compile_backend}
        return Remasterer(stages, **{**inherited, **options})

    return PrepareContext(device=device, dtype=dtype, precision=devices.precision_name(dtype),
                          weights=get_manager(host), host=host, build_pipeline=build, half_weights=half_weights)


def _default_context(device: torch.device, dtype: torch.dtype) -> PrepareContext:
    return prepare_context(device, dtype, host=get_host())


def _from_stage_object(stage: Stage) -> ConfiguredStage:
    """Wrap a user-made stage object so it runs like a registered one."""
    spec = getattr(stage, "spec", None)
    if not isinstance(spec, StageSpec):
        info = getattr(stage, "info", StageInfo())
        name = getattr(stage, "name", type(stage).__name__.lower())
        spec = StageSpec(name=name, kind=getattr(stage, "kind", "filter"), factory=lambda **_: stage, info=info)  # type: ignore[arg-type]
    configured = ConfiguredStage(spec, dict(getattr(stage, "params", {}) or {}))
    configured._instance = stage
    return configured


class Remasterer:
    """Runs a pipeline of stages on images.

    Args:
        stages: A pipeline string (``"degrade.jpeg(quality=30) | bicubic(scale=2)"``),
            a list of stage strings or stage objects, or ``None`` for
            :data:`DEFAULT_UPSCALER` at x4.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``auto``
            picks per device and CPU capability among what each stage supports.
        tile: ``"auto"`` (tile only when memory requires it), a tile size in
            pixels, or ``0`` to never tile.
        max_pixels: Largest input accepted, in pixels (``None``: the
            ``REMASTER_MAX_PIXELS`` environment variable or Pillow's default).
        max_output_pixels: Largest output a run may produce; checked before
            any stage runs.
        host: Plugin host to take stages from (default: the process-wide one).
        half_weights: Network stages that support it (the Real-ESRGAN ones)
            hold their weights in fp16/bf16 when they run in it and compute
            without autocast, instead of float32 weights under autocast: the
            two ways of running in reduced precision, to measure against each
            other (docs/usage.md). No effect on stages that run in fp32.
        compile: ``torch.compile`` the stages that declare themselves
            compilable (:attr:`Stage.compilable`: network stages), run on
            tiles of one fixed size so that only one shape compiles; the
            first tile pays the compilation, reported as ``compile_seconds``
            in ``meta.extras["stages"]``. If compiling fails the stage runs
            eagerly, with one warning.
        compile_backend: The ``torch.compile`` backend (``"inductor"``, the
            default, needs a C++ compiler on the CPU; ``"aot_eager"`` and
            ``"eager"`` compile nothing and serve for tests).

    Example:
        >>> out = Remasterer(["degrade.downsample(scale=0.25)", "bicubic(scale=4)"]).run(pil_img)
    """

    def __init__(
        self,
        stages: str | Sequence[str | Stage] | None = None,
        *,
        device: str | torch.device = "auto",
        precision: str = "auto",
        tile: int | str = "auto",
        max_pixels: int | None = None,
        max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS,
        host: PluginHost | None = None,
        half_weights: bool = False,
        compile: bool = False,
        compile_backend: str | Callable[..., Any] = "inductor",
    ):
        self.host = host.ensure_loaded() if host is not None else get_host()
        if stages is None:
            stages = default_upscaler(self.host)
        items = parse_pipeline(stages) if isinstance(stages, str) else list(stages)
        if not items:
            raise UsageError("the pipeline has no stages")
        self.stages: list[ConfiguredStage] = [self._configure(item) for item in items]
        self.device = devices.resolve_device(device)
        self.precision = devices.check_precision_name(precision)
        if self.precision == "fp16" and self.device.type == "cpu":
            raise UsageError("fp16 is not supported on CPU, use bf16 or fp32",
                             hint="fp16 is for CUDA devices (--device cuda)")
        if not (tile == "auto" or (isinstance(tile, int) and tile >= 0)):
            raise UsageError(f"tile must be 'auto' or a size in pixels, not {tile!r}")
        if compile and tile == 0:
            raise UsageError("compiling needs tiles of one fixed size, not --tile 0",
                             hint="give a tile size (e.g. --tile 512) or leave --tile auto with --compile")
        self.tile = tile
        self.half_weights = bool(half_weights)
        self.compile = bool(compile)
        self.compile_backend = compile_backend
        self.max_pixels = max_pixels if max_pixels is not None else io.max_pixels_from_env()
        self.max_output_pixels = max_output_pixels
        self._noted: set[tuple[int, str]] = set()
        self._copy_engines: dict[torch.device, transfer.CopyEngine | None] = {}
        for stage in self.stages:  # a stage that cannot run on its device at all fails now, not after loading images
            self._choice_for(stage, self._device_for(stage), bit_depth=8, requested=self.precision)

    def _configure(self, item: str | Stage) -> ConfiguredStage:
        if isinstance(item, Stage):
            return _from_stage_object(item)
        if not isinstance(item, str):
            raise UsageError(f"a pipeline item must be a stage string or a Stage, not {type(item).__name__}")
        name, given = parse_stage(item)
        spec = resolve_spec(name, self.host)
        return ConfiguredStage(spec, spec.resolve_params(given))

    def __repr__(self) -> str:
        return f"Remasterer({' | '.join(map(str, self.stages))!r}, device={str(self.device)!r})"

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
                    hint="lower the scale, or raise the limit with --max-output-pixels",
                )
        return height, width, channels

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

    def precisions(self, bit_depth: int = 8) -> list[devices.PrecisionChoice]:
        """The precision each stage would run in for an image of ``bit_depth`` bits per sample.

        ``--precision auto`` keeps fp32 for 16-bit and float images, so the
        answer can differ per image; :attr:`Meta.extras` ``["stages"]`` of each
        result says what actually ran.
        """
        return [self._choice_for(stage, self._device_for(stage), bit_depth=bit_depth, requested=self.precision)
                for stage in self.stages]

    def stage_plan(self, bit_depth: int = 8) -> list[dict[str, str]]:
        """Per stage: its name, device and precision, as ``meta.extras["stages"]`` reports what ran."""
        return [_ran(stage, self._device_for(stage), choice.dtype)
                for stage, choice in zip(self.stages, self.precisions(bit_depth))]

    def describe(self, bit_depth: int = 8) -> str:
        """The pipeline with each stage's precision, e.g. ``"realesrgan-x4plus [bf16] | lanczos(scale=0.5) [fp32]"``.

        When 16-bit or float inputs would run in other precisions, that is said too.
        """
        choices = self.precisions(bit_depth)
        text = " | ".join(f"{stage} [{choice.name}]" for stage, choice in zip(self.stages, choices))
        deep = self.precisions(16)
        if [c.dtype for c in deep] != [c.dtype for c in choices]:
            names = sorted({c.name for c in deep})
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
        for stage in self.stages:
            device = self._device_for(stage)
            stage.instance(device, self._choice_for(stage, device, bit_depth=8, requested=self.precision).dtype,
                           self._prepare_context)
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
        image = io.load(img, max_pixels=self.max_pixels)
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
        return io.load(source, max_pixels=self.max_pixels)

    def run_for_file(self, image: Image, target: str | os.PathLike[str], *,
                     progress: Callable[[float], None] | None = None) -> Image:
        """The middle of :meth:`run_file`: :meth:`run_image` with the integer result wherever saving ``target``
        quantises to the source's depth anyway (write it with :func:`remaster.io.save`). Only ``target``'s
        extension counts: ``"result.png"`` for a result that :func:`remaster.io.encode` makes a PNG."""
        quantise = saves_integers(image.meta.bit_depth, image.alpha is not None, target)
        return self.run_image(image, progress=progress, quantise=quantise)

    def run_image(self, image: Image, *, progress: Callable[[float], None] | None = None,
                  precision: str | None = None, quantise: bool = False) -> Image:
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

        The result's ``meta.extras["stages"]`` lists, per stage, the device and the
        precision it actually ran in (after any fp32 retry).
        """
        image = io.dequantised(image)
        out_h, out_w, _ = self.plan(image.height, image.width, image.channels)
        writer = None
        if quantise and image.meta.bit_depth in (8, 16):
            # The last stage's rows cross to the host through pinned buffers when it runs on a GPU.
            copier = transfer.DeviceToHost(self._copy_engine(self._device_for(self.stages[-1])))
            writer = IntegerBuffer(out_h, out_w, np.uint8 if image.meta.bit_depth == 8 else np.uint16,
                                   alpha=image.alpha is not None, copier=copier)
        requested = self.precision if precision is None else devices.check_precision_name(precision)
        sizes = self.output_sizes(image.height, image.width)
        pixels, alpha = image.pixels, image.alpha
        extras = dict(image.meta.extras)
        ran: list[dict[str, Any]] = []
        total = len(self.stages)
        for index, stage in enumerate(self.stages):
            def stage_progress(fraction: float, _index: int = index) -> None:
                if progress is None:
                    return
                try:
                    progress((_index + min(max(fraction, 0.0), 1.0)) / total)
                except Exception as exc:  # the caller stops the run (e.g. a cancel): not a stage's failure
                    raise _CallerStop(exc) from exc

            device = self._device_for(stage)
            choice = self._choice_for(stage, device, bit_depth=image.meta.bit_depth, requested=requested)
            if choice.note is not None and (index, choice.note) not in self._noted:
                self._noted.add((index, choice.note))
                log.warning("%s: %s (--precision %s applies to the stages that support it)",
                            stage.name, choice.note, requested)
            ctx = RunContext(device=device, dtype=choice.dtype, precision=requested, bit_depth=image.meta.bit_depth,
                             out_size=sizes[index])
            try:
                last = index == total - 1
                pixels, alpha = self._run_stage(stage, pixels, alpha, ctx, stage_progress,
                                                writer=writer if last else None, gray=image.meta.grayscale)
                stage_progress(1.0)
            except _CallerStop as stop:
                raise stop.error from None
            extras.update(ctx.report)
            ran.append({**_ran(stage, device, ctx.dtype), **stage.run_notes(ctx.dtype)})
        extras["stages"] = ran
        meta = type(image.meta)(**{**image.meta.__dict__, "extras": extras})
        if writer is not None:
            return writer.image(meta)
        assert pixels is not None
        if image.meta.grayscale and pixels.shape[1] == 3:
            pixels = _to_gray(pixels)  # grayscale stays grayscale even when a stage needed RGB
        result = image.with_pixels(pixels.float().cpu(), None if alpha is None else alpha.float().cpu())
        result.meta = meta
        return result

    def _prepare_context(self, device: torch.device, dtype: torch.dtype) -> PrepareContext:
        return prepare_context(device, dtype, host=self.host, tile=self.tile, max_pixels=self.max_pixels,
                               max_output_pixels=self.max_output_pixels, half_weights=self.half_weights,
                               compile=self.compile, compile_backend=self.compile_backend)

    def _copy_engine(self, device: torch.device) -> transfer.CopyEngine | None:
        """The pinned-memory copy engine for ``device`` (one per device and pipeline: it owns a CUDA stream)."""
        if device not in self._copy_engines:
            self._copy_engines[device] = transfer.engine_for(device)
        return self._copy_engines[device]

    def _device_for(self, stage: ConfiguredStage) -> torch.device:
        return self.device if self.device.type in stage.info.devices else torch.device("cpu")

    def _choice_for(self, stage: ConfiguredStage, device: torch.device, *, bit_depth: int,
                    requested: str) -> devices.PrecisionChoice:
        try:
            return devices.choose_precision(requested, device, stage.info.dtypes, bit_depth=bit_depth)
        except UsageError as exc:
            raise UsageError(exc.message, path=stage.name, hint=exc.hint) from None

    def _run_stage(self, stage: ConfiguredStage, pixels: torch.Tensor, alpha: torch.Tensor | None, ctx: RunContext,
                   progress: Callable[[float], None], *, writer: IntegerBuffer | None = None,
                   gray: bool = False) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Run one stage on colour (and alpha); the result has the size ``ctx.out_size`` (the pipeline's plan).

        With ``writer`` (the last stage of a run that wants integers) the result goes into it instead, and
        ``(None, None)`` is returned: colour folded to gray when ``gray`` (the source was), as
        :meth:`run_image` does with a float result. A tiled stage at its planned size writes band by band.
        """
        info = stage.info
        assert ctx.out_size is not None
        final_size = ctx.out_size
        engine = self._copy_engine(ctx.device)
        pixels = transfer.to_device(pixels, ctx.device, engine)
        if pixels.shape[1] not in info.in_channels:
            pixels = pixels.expand(-1, 3, -1, -1)  # plan() allowed only gray -> RGB here
        height, width = pixels.shape[-2:]
        # A stage that resamples by itself is asked for the planned size; a fixed-scale network runs natively.
        ctx.out_size = final_size if stage.run_scale == stage.scale else scaled_size(height, width, stage.run_scale)
        alpha_runs = alpha is not None and stage.alpha == "process"
        # When alpha goes through the stage too, colour and alpha each take half of the stage's progress.
        share = 0.5 if alpha_runs else 1.0
        ctx.progress = lambda fraction: progress(share * fraction)
        if alpha is not None and info.fill_transparent and stage.run_scale != 1:
            alpha = transfer.to_device(alpha, ctx.device, engine)
            pixels = _fill_transparent(pixels, alpha)
        colour_rows = alpha_rows = None
        if writer is not None:
            def colour_rows(top: int, rows: torch.Tensor) -> None:
                rows = rows.clamp(0.0, 1.0)
                writer.write(top, _to_gray(rows) if gray and rows.shape[1] == 3 else rows)

            def alpha_rows(top: int, rows: torch.Tensor) -> None:
                rows = rows.clamp(0.0, 1.0)
                # Folded back with luma weights, as RealESRGANer's BGR2GRAY does, so results match it.
                writer.write(top, _to_gray(rows) if rows.shape[1] == 3 else rows, alpha=True)
        # Band by band only when no resampling follows: the stage's own rows are then the final ones.
        banded = writer is not None and stage.run_scale == stage.scale and scaled_size(
            height, width, stage.run_scale) == final_size
        result = self._checked_run(stage, pixels, ctx, rows=colour_rows if banded else None)
        if result is not None and result.shape[-2:] != final_size:  # a fixed-scale network ran natively;
            result = _resample(result, final_size)                    # a good filter does the rest
        if result is not None and colour_rows is not None:
            _write_bands(colour_rows, result)
            result = None
        if alpha is not None:
            alpha = transfer.to_device(alpha, ctx.device, engine)
            if alpha_runs:
                gray_alpha = alpha.expand(-1, 3 if 1 not in info.in_channels else 1, -1, -1)
                alpha_ctx = replace(ctx, report={}, progress=lambda fraction: progress(0.5 + fraction / 2))
                alpha = self._checked_run(stage, gray_alpha, alpha_ctx, rows=alpha_rows if banded else None)
                # Folded back with luma weights, as RealESRGANer's BGR2GRAY does, so results match it.
                alpha = _to_gray(alpha) if alpha is not None and alpha.shape[1] == 3 else alpha
        if alpha is not None and alpha.shape[-2:] != final_size:
            alpha = _resample(alpha, final_size)
        if alpha is not None and alpha_rows is not None:
            _write_bands(alpha_rows, alpha)
            alpha = None
        ctx.out_size = final_size
        return result, alpha

    def _checked_run(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                     rows: tiling.RowsFn | None = None) -> torch.Tensor | None:
        """Run one stage and hold it to its contract; retry in fp32 if reduced precision gives NaN/Inf.

        The output must be ``ctx.out_size``, or ``round(input size × the stage's own scale)``
        for a stage that ignores ``ctx.out_size`` (the pipeline then resamples it).

        With ``rows``, a tiled stage hands its output over in bands of rows instead (None is
        returned); the same checks then run on the bands, after the last one.
        """
        native = scaled_size(pixels.shape[-2], pixels.shape[-1], stage.run_scale)
        checks = _BandChecks()

        def checked_rows(top: int, band: torch.Tensor) -> None:
            checks.add(top, band)
            assert rows is not None
            rows(top, band)

        try:
            result = self._execute(stage, pixels, ctx, rows=checked_rows if rows is not None else None)
        except RemasterError as exc:
            if exc.path is None:  # e.g. the tiler's shape check: say which stage it was about
                exc.path = stage.name
            raise
        except Exception as exc:  # a stage's own bug or OOM: still a remaster error naming the stage
            if tiling.is_out_of_memory(exc):
                raise StageError(f"ran out of memory: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                                 path=stage.name, hint="use a smaller --tile, or a smaller image") from exc
            raise StageError(f"failed: {type(exc).__name__}: {exc}", path=stage.name,
                             hint="run with --debug for the traceback and report it to the stage's author") from exc
        if result is None:  # went to ``rows`` band by band
            if not checks.finite:
                return self._retry_in_fp32(stage, pixels, ctx, rows)
            checks.plausible(stage.name)
            return None
        if result.ndim != 4 or tuple(result.shape[-2:]) not in {native, ctx.out_size} or result.shape[0] != pixels.shape[0]:
            out_size = ctx.out_size or native
            raise StageContractError(
                f"returned shape {tuple(result.shape)}, expected (N, C, {out_size[0]}, {out_size[1]})",
                path=stage.name, hint="this is a bug in the stage; report it to its plugin's author",
            )
        checks.add(0, result)
        if not checks.finite:
            return self._retry_in_fp32(stage, pixels, ctx, rows)
        result = result.float()
        checks.plausible(stage.name)
        shares_input = result.untyped_storage().data_ptr() == pixels.untyped_storage().data_ptr()
        if result.is_inference() or shares_input:  # spandrel returns inference tensors; never clamp the input
            return result.clamp(0.0, 1.0)
        return result.clamp_(0.0, 1.0)  # in place: the output is the one full-size buffer we keep

    def _retry_in_fp32(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                       rows: tiling.RowsFn | None) -> torch.Tensor | None:
        """After NaN/Inf: the stage once more in fp32, or the error if it already ran in fp32."""
        if ctx.dtype != torch.float32:
            log.warning("%s gave NaN/Inf in %s; running it again in fp32", stage.name, ctx.dtype)
            ctx.dtype = torch.float32
            return self._checked_run(stage, pixels, ctx, rows)
        raise StageContractError("produced NaN or Inf values", path=stage.name,
                                 hint="try --precision fp32, or report it to the plugin's author")

    def _execute(self, stage: ConfiguredStage, pixels: torch.Tensor, ctx: RunContext,
                 rows: tiling.RowsFn | None = None) -> torch.Tensor | None:
        """Run the stage, tiled where it may be; with ``rows``, a tiled run emits its (cropped) rows there."""
        info = stage.info
        instance = stage.instance(ctx.device, ctx.dtype, self._prepare_context)
        padded, pad = _pad_to_requirements(pixels, info.min_size, info.multiple_of)
        scale = stage.run_scale
        tileable = scale >= 1 and float(scale).is_integer() and (
            info.tiling is Tiling.SUPPORTED or (info.tiling is Tiling.DISCOURAGED and isinstance(self.tile, int)))
        exact = scaled_size(pixels.shape[-2], pixels.shape[-1], scale)
        # Tiles are made at exactly scale × input; when the plan wants another size (an earlier stage rounded),
        # a stage that resizes by itself runs whole and makes the planned size, rather than being resampled twice.
        if ctx.out_size is not None and ctx.out_size != exact and isinstance(self.tile, str):
            tileable = False
        tiled = tileable and self.tile != 0
        # Compiled: tiles of one fixed size, one at a time, so that a single shape compiles for every image.
        compiled = self.compile and tiled and bool(getattr(instance, "compilable", False))
        run = stage.compiled_run(instance, self.compile_backend) if compiled else instance.run
        # A stage reports progress of its own only when it gets the whole image in one call; per tile, the tiler does.
        # Neither a tile, the tiler's single call, nor a padded image can be resized to the planned size of the whole.
        tile_ctx = replace(ctx, progress=None, out_size=None)
        whole_ctx = ctx if not (any(pad) or tiled) else replace(ctx, out_size=None)

        # A stage holding its weights in the compute precision casts for itself (half weights): no autocast.
        casts_itself = getattr(instance, "weights_dtype", None) == ctx.dtype != torch.float32
        autocast_dtype = torch.float32 if casts_itself else ctx.dtype

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
            tile = self.tile
            if tile == "auto":
                tile = DEFAULT_COMPILE_TILE if compiled else tiling.auto_tile_size(
                    padded.shape, device=ctx.device, scale=integer_scale, overlap=overlap,
                    output_bytes_per_value=4 if rows is None else 2)  # rows: into a uint8/uint16 image
            if compiled:
                side = tiling.fixed_window_size(int(tile), overlap, multiple_of=info.multiple_of)
                run.window = (side, side)  # type: ignore[union-attr]  # other sizes run eagerly
            wanted_h, wanted_w = scaled_size(pixels.shape[-2], pixels.shape[-1], scale)

            def cropped_rows(top: int, band: torch.Tensor) -> None:
                # Padding went to the bottom/right: only the top-left corner is wanted.
                if rows is not None and top < wanted_h:
                    # In small chunks, so that the checks and the quantisation make no band-sized temporaries.
                    for offset, chunk in _row_chunks(band[:, :, :wanted_h - top, :wanted_w]):
                        rows(top + offset, chunk)

            result = tiling.run_with_backoff(call, padded, scale=integer_scale, tile=int(tile),
                                             overlap=overlap, multiple_of=info.multiple_of,
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


class _BandChecks:
    """The pipeline's checks on a stage's values (finite, plausible range), gathered band by band.

    A band at row 0 starts a new pass (the tiler's retry after out-of-memory starts over).
    """

    def __init__(self) -> None:
        self.finite, self.low, self.high = True, math.inf, -math.inf

    def add(self, top: int, band: torch.Tensor) -> None:
        if top == 0:
            self.finite, self.low, self.high = True, math.inf, -math.inf
        # A sum is NaN/Inf exactly when some element is (values are bounded), without a full-size mask.
        self.finite = self.finite and bool(torch.isfinite(band.sum(dtype=torch.float64)))
        if self.finite and band.numel():
            low, high = (float(v) for v in torch.aminmax(band.float()))
            self.low, self.high = min(self.low, low), max(self.high, high)

    def plausible(self, name: str) -> None:
        """Raise when the values seen are outside what clamping may silently fix."""
        if self.low < _PLAUSIBLE_LOW or self.high > _PLAUSIBLE_HIGH:
            raise StageContractError(f"returned values in [{self.low:.4g}, {self.high:.4g}], expected [0, 1]",
                                     path=name, hint="this is a bug in the stage (pixels scaled to 0-255?); "
                                                     "report it to its plugin's author")


def _row_chunks(pixels: torch.Tensor) -> Iterator[tuple[int, torch.Tensor]]:
    """``(offset, rows)`` views of ``(1, C, H, W)`` pixels, a few MB of float32 at a time."""
    step = max(1, (4 << 20) // max(1, pixels.shape[1] * pixels.shape[-1] * 4))
    for top in range(0, pixels.shape[-2], step):
        yield top, pixels[:, :, top:top + step]


def _write_bands(rows: tiling.RowsFn, pixels: torch.Tensor) -> None:
    """Hand a whole float result to ``rows`` a few MB at a time, so that no full-size float copy is made."""
    for top, chunk in _row_chunks(pixels):
        rows(top, chunk)


def _ran(stage: ConfiguredStage, device: torch.device, dtype: torch.dtype) -> dict[str, str]:
    return {"stage": str(stage), "device": str(device), "precision": devices.precision_name(dtype)}


class _CallerStop(BaseException):
    """Carries an exception raised by the caller's progress callback out through the stage's own error handling.

    A ``BaseException``, so that the ``except Exception`` that turns a stage's failure into a
    :class:`StageError` (and the tiler's out-of-memory retry) let it pass; :meth:`Remasterer.run_image`
    re-raises the caller's exception unchanged.
    """

    def __init__(self, error: Exception):
        super().__init__(error)
        self.error = error


def _pad_to_requirements(pixels: torch.Tensor, min_size: int, multiple_of: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad bottom/right by reflection so a stage's size requirements hold; the caller crops after."""
    height, width = pixels.shape[-2:]
    target_h = max(height, min_size)
    target_w = max(width, min_size)
    target_h = math.ceil(target_h / multiple_of) * multiple_of
    target_w = math.ceil(target_w / multiple_of) * multiple_of
    pad_h, pad_w = target_h - height, target_w - width
    if not (pad_h or pad_w):
        return pixels, (0, 0)
    # Reflection needs the pad to be smaller than the side; replicate covers tiny images.
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(pixels, (0, pad_w, 0, pad_h), mode=mode), (pad_h, pad_w)


def _fill_transparent(pixels: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Colour under alpha = 0 replaced by the colour of the nearest visible pixels.

    Fully transparent pixels often hold garbage (an editor's leftovers, magenta
    keys); a resampling filter would spread it into the visible edge as a fringe.
    Their colour is invisible, so it is replaced before a stage resamples, with a
    push-pull pyramid (cost: a third of the image, whatever the hole's size).
    """
    visible = alpha > 0
    if bool(visible.all()) or not bool(visible.any()):
        return pixels
    weight = visible.to(pixels.dtype)
    return torch.where(visible, pixels, _pull_mean(pixels * weight, weight))


def _pull_mean(weighted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weighted mean colour at every pixel, holes filled from ever coarser levels."""
    height, width = weighted.shape[-2:]
    mean = weighted / weight.clamp_min(1e-12)
    if height == 1 and width == 1:
        return mean
    kernel = (min(2, height), min(2, width))
    coarse = _pull_mean(F.avg_pool2d(weighted, kernel, ceil_mode=True), F.avg_pool2d(weight, kernel, ceil_mode=True))
    return torch.where(weight > 0, mean, F.interpolate(coarse, size=(height, width), mode="nearest"))


def _resample(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Lanczos, antialiased when shrinking: the same filter as the ``lanczos`` stage."""
    return resize(pixels, size, "lanczos").clamp_(0.0, 1.0)


def _to_gray(pixels: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA_BT601, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
    return (pixels * weights).sum(dim=1, keepdim=True)
