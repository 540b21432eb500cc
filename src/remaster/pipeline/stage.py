"""The stage contract at run time: the :class:`Stage` base class and the :class:`RunContext` it gets.

What a plugin declares about a stage (:class:`StageSpec`, :class:`StageInfo`,
:class:`Param`) lives in the torch-free :mod:`remaster.plugin`.

A :class:`Stage` works on colour pixels only: a ``(N, C, H, W)`` float tensor
in ``[0, 1]``. The pipeline takes care of everything around it — loading and
saving, channel conversion, padding to the size requirements, tiling, device
and precision, alpha — so that a stage is just the image operation.

What a stage needs from its surroundings while it sets up (the device, the
weights manager, the plugin host, a way to build a pipeline of its own) comes
in a :class:`PrepareContext`, handed down by the :class:`~remaster.Remasterer`
that runs it, never looked up in process-wide state: an embedding application,
the server or a test that gives ``Remasterer(..., host=...)`` is honoured all
the way down.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch

from remaster.errors import StageContractError
from remaster.plugin.sequence import FrameSequence
from remaster.plugin.specs import StageInfo
from remaster.plugin.vulkan import VulkanDevice

if TYPE_CHECKING:  # types only, and only from layers below this one (the pipeline, above, is never imported)
    from pathlib import Path

    from remaster.io.image import Image
    from remaster.plugin.host import PluginHost
    from remaster.plugin.syntax import StageCall
    from remaster.weights import WeightsManager

__all__ = [
    "Stage",
    "RunContext",
    "PrepareContext",
    "SubPipeline",
    "NetworkStage",
    "CompileTarget",
    "scaled_size",
    "tile_overlap_of",
]


@dataclass(frozen=True)
class RunContext:
    """What a stage gets to know about the run it is part of; immutable (the pipeline makes a new one per call).

    Attributes:
        device: Where the pixels live and the stage should compute.
        dtype: Precision the pipeline chose for this stage (the stage may
            compute in it, e.g. with autocast; pixels always arrive as float32).
        report: Per-image results a stage wants the caller to see (e.g.
            ``{"faces": 2}``); merged into ``Meta.extras``. The one mutable part:
            a stage adds to it (``ctx.report["faces"] = 2``).
        progress: Callback taking the fraction done of this stage, for stages
            that loop internally (or networks that can tell how far a forward
            pass is). Set only when the stage gets the whole image in one call;
            when the image is tiled it is ``None`` and the tiler reports per tile.
        precision: What the user asked for (``"auto"``, ``"bf16"``, ...); a stage
            that runs a pipeline of its own passes it on, so each inner stage
            chooses for itself.
        bit_depth: Bits per sample of the source image (8, 16, or 32 for float).
        out_size: The ``(height, width)`` the pipeline planned for this call's
            output, so that scale factors compose exactly across stages. A stage
            that resizes to a factor should produce this size when it is set;
            ``None`` for tiles and padded inputs (then ``round(size × scale)``).
        sequence: Set when this image is one frame of a sequence run in order (a
            video): the :class:`~remaster.plugin.FrameSequence` in which a stage may
            keep state across frames (``ctx.sequence.state(self, factory)``), e.g.
            a face stage's tracks. ``None`` for a still image, and, like
            ``progress``, for tiles and for the alpha pass (they are not frames):
            a stage then behaves as it does on any image.
        vulkan: The Vulkan device the stage computes on, for a stage that declares :attr:`StageInfo.vulkan` in a
            pipeline on Vulkan; ``None`` otherwise. :attr:`device` is then the CPU: the pixels are host
            tensors, which the stage hands to its Vulkan runtime and whose result it returns as a host tensor.
    """

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    dtype: torch.dtype = torch.float32
    report: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[float], None] | None = None
    precision: str = "auto"
    bit_depth: int = 8
    out_size: tuple[int, int] | None = None
    sequence: FrameSequence | None = None
    vulkan: VulkanDevice | None = None


class SubPipeline(Protocol):
    """What :meth:`PrepareContext.pipeline` returns — a :class:`~remaster.Remasterer` — as far as a stage uses it.

    A protocol rather than the class itself: the pipeline is the layer above
    this module, which must not import it (not even for types).
    """

    def prepare(self) -> Any:
        """Build every stage and read its weights now; see :meth:`Remasterer.prepare`."""

    def run(self, img: Any, *, progress: Callable[[float], None] | None = None) -> Any:
        """Run on a path, PIL image, array or tensor; see :meth:`Remasterer.run`."""

    def run_image(self, image: Image, *, progress: Callable[[float], None] | None = None,
                  precision: str | None = None, sequence: FrameSequence | None = None) -> Image:
        """Run on an :class:`~remaster.Image`; see :meth:`Remasterer.run_image`."""


@dataclass
class PrepareContext:
    """What a stage gets in :meth:`Stage.prepare`: where it will run, and the services of the pipeline running it.

    Built by the :class:`~remaster.Remasterer` for each stage; a stage takes
    everything it needs from here rather than from process-wide state
    (``get_host()``, ``get_manager()``), so that a pipeline made with a host of
    its own — a test's, an embedding application's, the server's — is
    honoured by every stage, and by any pipeline a stage builds.

    Attributes:
        device: Where the stage will compute (a CPU-only stage gets the CPU even
            in a CUDA run).
        dtype: The precision the pipeline chose for the stage at set-up, for an
            8-bit image. A run may still differ per image (16-bit inputs keep
            fp32 under ``auto``; a NaN retry runs in fp32): :attr:`RunContext.dtype`
            is what a given call runs in, so keep weights in float32 and compute
            under the autocast the pipeline provides.
        precision: The name of :attr:`dtype`: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        weights: The weights manager over the host's weights registry
            (``remaster.weights.get_manager(host)``): ``ctx.weights.ensure(name)``.
        host: The plugin host of the pipeline (its stage, weights and metric registries).
        build_pipeline: Builds a :class:`~remaster.Remasterer` like :meth:`pipeline`
            does; injected by the pipeline (this module sits below it and does
            not import it). Use :meth:`pipeline` rather than calling it.
        half_weights: The user asked for network weights in the reduced compute
            precision (``Remasterer(half_weights=True)``, ``--half-weights``). A
            network stage that can honour it converts its weights to :attr:`dtype`
            when that is fp16 or bf16, computes in it, and sets
            :attr:`Stage.weights_dtype`; when prepared again for fp32 (a 16-bit
            image, a NaN retry) it goes back to its exact float32 weights.
        vulkan: The Vulkan device to compute on (see :attr:`RunContext.vulkan`): set only for a stage that
            declares :attr:`StageInfo.vulkan`, in a pipeline on Vulkan. :attr:`device` is then the CPU and
            :attr:`dtype` fp32 or fp16. A pipeline a stage builds (:meth:`pipeline`) runs on the running
            pipeline's Vulkan device whenever it has one, whether or not the stage itself computes there.
    """

    device: torch.device
    dtype: torch.dtype
    precision: str
    weights: WeightsManager
    host: PluginHost
    build_pipeline: Callable[..., SubPipeline] = field(repr=False)
    half_weights: bool = False
    vulkan: VulkanDevice | None = None

    def pipeline(self, stages: str | Sequence[StageCall | str | Stage], **options: Any) -> SubPipeline:
        """A pipeline of the stage's own (e.g. a face stage's background upscaler): a :class:`~remaster.Remasterer`.

        ``stages`` are :class:`~remaster.StageCall` values (or stage strings, or stage objects). It takes
        its stages from the same plugin host, runs on :attr:`device`, and keeps the running pipeline's
        :class:`~remaster.PipelineOptions` (tiling, size limits, half weights, compilation); ``options`` are
        fields of those, by name, and override them.
        Precision is deliberately not inherited: pass what the user asked for
        per image (``run_image(..., precision=run_ctx.precision)``), so that each
        inner stage chooses its own.
        """
        return self.build_pipeline(stages, **options)


class Stage:
    """Base class for stage implementations.

    Subclasses set ``spec`` (or get it from the registry at build time),
    accept their validated parameters as keyword arguments, and implement
    :meth:`run`. Heavy set-up (building a network, reading weights) goes in
    :meth:`prepare`, which the pipeline calls once before the first run (and
    again should the device or precision change).

    Attributes:
        tile_overlap: Input pixels of context a tile needs on each side, for a
            stage whose reach depends on its parameters (a blur's radius grows
            with sigma): set it in ``__init__``, where the parameters are known.
            ``None`` (the default) leaves :attr:`StageInfo.tile_overlap` in force.
        weights_dtype: Set by :meth:`prepare` when the stage holds its weights in
            the reduced precision it was prepared for and casts its input to it
            itself (:attr:`PrepareContext.half_weights`); the pipeline then runs it
            without autocast. ``None`` (the default): float32 weights, and the
            pipeline's autocast does the reduced-precision work.
        compilable: ``True`` for a stage whose :meth:`run` is a network's forward
            pass that ``torch.compile`` can trace (no host round trips, no
            per-call Python state). With ``compile="on"`` (or ``"auto"`` and an
            artifact cached) such a stage runs compiled on fixed-size tiles;
            other stages run eagerly. On the CPU the compiled form is a cached
            artifact, which needs :meth:`compile_target` too.
    """

    tile_overlap: int | None = None
    weights_dtype: torch.dtype | None = None
    compilable: bool = False

    def __init__(self, **params: Any):
        self.params: dict[str, Any] = params

    def prepare(self, ctx: PrepareContext) -> None:
        """Build models and read weights; called once before the first :meth:`run`.

        Take the device, the weights manager and the plugin host from ``ctx``.
        """

    def run(self, pixels: torch.Tensor, ctx: RunContext) -> torch.Tensor:
        """Transform ``(N, C, H, W)`` float32 pixels in [0, 1]; return the result.

        The output must be float, shaped ``(N, C', *ctx.out_size)`` when
        ``ctx.out_size`` is set, else ``(N, C', H * scale, W * scale)`` rounded
        to the nearest pixel; it is clamped to [0, 1] by the pipeline.
        The input tensor must not be modified in place.
        """
        raise NotImplementedError

    def compile_target(self) -> CompileTarget | None:
        """What a compiled artifact of this stage is built from, or ``None`` (the default: no artifacts; with
        ``compile="on"`` a compilable stage is then compiled in the process).

        Called after :meth:`prepare`, before any :meth:`run` of the image, and must be cheap: the network itself
        is only asked for (:attr:`CompileTarget.network`) when an artifact is built.
        """
        return None


@dataclass(frozen=True)
class CompileTarget:
    """The network a compilable stage runs, for building (and finding) its compiled artifact.

    Attributes:
        identity: Changes whenever the network's structure or weights do (e.g. its class and its weights file's
            sha256); part of the artifact's key with the shape, precision, torch version and CPU.
        network: Returns the module :meth:`Stage.run` calls: it takes ``(N, C, H, W)`` float32 pixels
            (channels-last) and returns the output pixels. Weights as the stage holds them; the pipeline copies
            and converts them to the compute precision for the artifact.
    """

    identity: str
    network: Callable[[], torch.nn.Module]


@runtime_checkable
class NetworkStage(Protocol):
    """A stage that runs one network read from a weights file, and says which file.

    Fine-tuning (``remaster finetune --model STAGE``) starts from that file: a
    stage that implements this protocol can be fine-tuned by name. It is asked
    on a stage built but not prepared, so it must not need :meth:`Stage.prepare`
    to have run. The Real-ESRGAN plugin's upscaler implements it.
    """

    def network_file(self, weights: WeightsManager) -> Path:
        """The verified local weights file the stage loads, obtained through ``weights`` (``ctx.weights``).

        Raises:
            WeightsNotFoundError, ChecksumError, WeightsError: as :meth:`WeightsManager.ensure`.
        """
        ...


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Output ``(height, width)`` of a stage with ``scale``: rounded, at least 1."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def tile_overlap_of(stage: Stage, info: StageInfo) -> int:
    """The context each tile of ``stage`` gets: the built stage's own ``tile_overlap``, else ``info.tile_overlap``.

    Raises:
        StageContractError: The stage set ``tile_overlap`` to something other
            than a whole number of pixels >= 0.
    """
    # getattr: a factory may return any object with run() and prepare(), not only a Stage subclass.
    own = getattr(stage, "tile_overlap", None)
    if own is None:
        return info.tile_overlap
    if isinstance(own, bool) or not isinstance(own, int) or own < 0:
        raise StageContractError(f"set tile_overlap to {own!r}, not a whole number of pixels >= 0",
                                 hint="this is a bug in the stage; report it to its plugin's author")
    return own
