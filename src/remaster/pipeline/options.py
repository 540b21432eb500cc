"""What a pipeline is asked to do besides its stages, as one frozen value: :class:`PipelineOptions`.

The same object is taken by :class:`~remaster.Remasterer`, handed to a stage's own pipelines
(:meth:`PrepareContext.pipeline`), pickled into a Ray run's spec, and built by the CLI and the server from their
flags and headers. Torch-free, so that those callers build it without importing torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from remaster.errors import UsageError
from remaster.plugin.specs import PRECISION_NAMES

__all__ = ["PipelineOptions", "COMPILE_MODES", "DEFAULT_MAX_OUTPUT_PIXELS", "OPTION_NAMES", "precision_request"]

#: Largest output, in pixels, a run may produce unless raised; checked before any work.
DEFAULT_MAX_OUTPUT_PIXELS = 400_000_000
#: The values of :attr:`PipelineOptions.compile`.
COMPILE_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class PipelineOptions:
    """How a pipeline runs: device, precision, tiling, limits, weights and compilation.

    Attributes:
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"vulkan"`` or ``"vulkan:N"`` (a
            ``torch.device`` is accepted and kept as its name). On ``vulkan[:N]`` the stages that declare
            ``StageInfo.vulkan`` (the packaged Real-ESRGAN models, through ncnn) compute on that Vulkan device,
            CPU implementations such as lavapipe included, and everything else runs on the CPU; ``auto`` takes
            CUDA when there is a CUDA device, else a real Vulkan GPU when a stage runs there (never a CPU
            Vulkan), else the CPU (docs/usage.md, "Devices").
        precision: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"fp16"``; ``auto`` picks per device and CPU
            capability among what each stage supports. On Vulkan: fp16 where the device has it, else fp32;
            ``bf16`` is refused there.
        tile: ``"auto"`` (tile only when memory requires it), a tile size in pixels, or ``0`` to never tile.
        max_pixels: Largest input accepted, in pixels (``None``: the ``REMASTER_MAX_PIXELS`` environment
            variable or Pillow's default).
        max_output_pixels: Largest output a run may produce; checked before any stage runs.
        half_weights: Network stages that support it (the Real-ESRGAN ones) hold their weights in fp16/bf16
            when they run in it and compute without autocast, instead of float32 weights under autocast: the
            two ways of running in reduced precision, to measure against each other (docs/usage.md). No effect
            on stages that run in fp32.
        compile: ``"auto"`` (the default), ``"on"`` or ``"off"``: whether network stages (:attr:`Stage.compilable`)
            run compiled. On the CPU a compiled stage runs a cached artifact built on this machine for its
            network, input shape and precision (docs/compile.md): ``auto`` uses one that is cached and otherwise
            runs eagerly while a low-priority process builds it for later runs, so no job waits for a compile;
            ``on`` builds a missing one before the image runs; ``off`` always runs eagerly. On CUDA, ``on`` is
            ``torch.compile`` in the process (the first tile pays it) and ``auto`` runs eagerly. Compiled
            stages run on tiles of one fixed size (images smaller than a tile padded by at most 15 pixels, then
            cropped); what ran is in ``meta.extras["stages"]`` (``compiled``, ``compile_seconds``). If compiling
            fails the stage runs eagerly, with one warning.
        compile_backend: How to compile: ``"inductor"`` (the default: AOTInductor packages on the CPU, which
            need a C++ compiler; ``torch.compile``'s inductor on CUDA); ``"export"`` (``torch.export`` programs
            cached like the packages but without native code: quick, for tests); any other ``torch.compile``
            backend (``"aot_eager"``, a callable) compiles in the process, on any device.

    Raises:
        UsageError: a value that cannot work (an unknown precision, a negative tile, compiling untiled).
    """

    device: str = "auto"
    precision: str = "auto"
    tile: int | str = "auto"
    max_pixels: int | None = None
    max_output_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS
    half_weights: bool = False
    compile: str = "auto"
    compile_backend: str | Callable[..., Any] = "inductor"

    def __post_init__(self) -> None:
        if not isinstance(self.device, str):  # a torch.device: kept by name, so the options stay torch-free
            object.__setattr__(self, "device", str(self.device))
        object.__setattr__(self, "precision", precision_request(self.precision))
        tile = self.tile
        if not (tile == "auto" or (isinstance(tile, int) and not isinstance(tile, bool) and tile >= 0)):
            raise UsageError(f"tile must be 'auto' or a size in pixels, not {tile!r}")
        mode = self.compile.strip().lower() if isinstance(self.compile, str) else self.compile
        if mode not in COMPILE_MODES:
            raise UsageError(f"compile must be 'auto', 'on' or 'off', not {self.compile!r}",
                             hint="{opt:compile_on} compiles before running, {opt:compile_off} never compiles")
        object.__setattr__(self, "compile", mode)
        if mode == "on" and tile == 0:
            raise UsageError("compiling needs tiles of one fixed size, not --tile 0",
                             hint="give a tile size (e.g. {opt:tile_512}) or leave the tile auto when compiling")
        object.__setattr__(self, "half_weights", bool(self.half_weights))

    def replace(self, **changes: Any) -> PipelineOptions:
        """These options with ``changes`` (field names) applied.

        Raises:
            UsageError: a name that is not an option.
        """
        unknown = sorted(set(changes) - set(OPTION_NAMES))
        if unknown:
            raise UsageError(f"unknown pipeline option {unknown[0]!r}", hint=f"options: {', '.join(OPTION_NAMES)}")
        return replace(self, **changes)


def precision_request(requested: str) -> str:
    """The normalised precision a user asks for (``" BF16"`` → ``"bf16"``): ``"auto"`` or a precision name.

    Raises:
        UsageError: for a name that is not auto, fp32, bf16 or fp16.
    """
    name = str(requested).strip().lower()
    if name != "auto" and name not in PRECISION_NAMES:
        raise UsageError(f"unknown precision {requested!r}", hint="use auto, fp32, bf16 or fp16")
    return name


#: The names of :class:`PipelineOptions`' fields, in order.
OPTION_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PipelineOptions))
